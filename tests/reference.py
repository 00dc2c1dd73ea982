"""Naive float64 references: one agent at a time, each at its own true widths, no padding.

These loops are the specification the stacked (and later fused) paths are tested against:
they rebuild agent k's narrow network from slice k of a stack and feed it the concatenation
[x_k, o_k, a_order[0], ..., a_order[k-1]] exactly as DESIGN.md 1.3 writes it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scoredec import sde
from scoredec.nets import CompactScoreNet, ResNetScoreNet, StackedLinear, StackedMLP


def linear(layer: StackedLinear, k: int, x: torch.Tensor, columns=None) -> torch.Tensor:
    w = layer.weight[k].double()
    if columns is not None:
        w = w[columns]
    return x @ w + layer.bias[k, 0].double()


def mlp(net: StackedMLP, k: int, x: torch.Tensor, columns=None, act=F.relu) -> torch.Tensor:
    for i, layer in enumerate(net.layers):
        x = linear(layer, k, x, columns if i == 0 else None)
        if i < len(net.layers) - 1:
            x = act(x)
    return x


def score_single(net, k: int, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                 columns: torch.Tensor) -> torch.Tensor:
    """Model k of a score stack on narrow inputs x [B, d_k], cond [B, c_k]; float64, eval mode."""
    fourier = sde.fourier_features(t.double(), net.freqs.double())
    if isinstance(net, CompactScoreNet):
        act = {"mish": F.mish, "relu": F.relu}[net.mlp.activation_name]
        return mlp(net.mlp, k, torch.cat([x, cond, fourier], -1), columns, act=act)
    assert isinstance(net, ResNetScoreNet)
    temb = linear(net.time2, k, F.relu(linear(net.time1, k, fourier)))
    h = linear(net.embed, k, torch.cat([x, cond], -1), columns)
    h = linear(net.trunk_in, k, torch.cat([temb, h], -1))
    for norm, up, down in zip(net.norms, net.up, net.down):
        y = F.layer_norm(h, h.shape[-1:]) * norm.weight[k, 0].double() + norm.bias[k, 0].double()
        h = h + linear(down, k, F.relu(linear(up, k, y)))
    return linear(net.head, k, F.relu(h))


def narrow_inputs(spec, mode: str, order, k: int, obs: torch.Tensor, actions):
    """(x columns, condition) of model k as DESIGN.md writes them, from padded arrays."""
    n = spec.n_agents
    if mode == "joint":
        cond = torch.cat([obs[:, i, :spec.obs_dims[i]] for i in range(n)], -1)
        return cond
    agent = order[k]
    parts = [obs[:, agent, :spec.obs_dims[agent]]]
    if mode == "sequential":
        parts += [actions[:, j, :spec.act_dims[j]] for j in order[:k]]
    return torch.cat(parts, -1)


def first_layer_columns(model, k: int) -> torch.Tensor:
    """Rows of the stacked first-layer weight that model k really has, in input order."""
    mask = model.layout.in_mask()[k]
    if isinstance(model.net, CompactScoreNet):
        mask = torch.cat([mask, torch.ones(2 * sde.FOURIER_FREQUENCIES, dtype=torch.bool)])
    return mask.nonzero()[:, 0]


def as_x0(out: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: str,
          sigma_data: float = 0.5) -> torch.Tensor:
    """A network output [..., d] at (x [..., d], t [...]) as the clean action: x_t = alpha x0 +
    sigma eps with log alpha = -0.25 t^2 (20 - 0.1) - 0.05 t (DESIGN.md 1.2); EDM: x0 =
    c_skip x_t / alpha + c_out F at noise level s = sigma / alpha. Written out independently."""
    alpha = torch.exp(-0.25 * t.double() ** 2 * 19.9 - 0.05 * t.double())[..., None]
    sigma = torch.sqrt(1 - alpha ** 2)
    if prediction == "x0":
        return out
    if prediction == "eps":
        return (x - sigma * out) / alpha
    s = sigma / alpha
    c_skip = sigma_data ** 2 / (s ** 2 + sigma_data ** 2)
    c_out = s * sigma_data / torch.sqrt(s ** 2 + sigma_data ** 2)
    return c_skip * x / alpha + c_out * out


def as_eps(out: torch.Tensor, x: torch.Tensor, t: torch.Tensor, prediction: str,
           sigma_data: float = 0.5) -> torch.Tensor:
    """A network output as eps (see as_x0)."""
    if prediction == "eps":
        return out
    alpha = torch.exp(-0.25 * t.double() ** 2 * 19.9 - 0.05 * t.double())[..., None]
    return (x - alpha * as_x0(out, x, t, prediction, sigma_data)) / torch.sqrt(1 - alpha ** 2)


def reference_epsilon(model, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor, actions):
    """Loop over models: x [m, B, x_dim] padded, t [m, B] -> the network's output (eps, or x0
    for a clean-action net) [m, B, x_dim] float64 (padded columns of the output are zero)."""
    spec, lay = model.spec, model.layout
    out = torch.zeros(x.shape, dtype=torch.float64)
    for k in range(lay.models):
        xmask = lay.x_mask()[k]
        cond = narrow_inputs(spec, lay.mode, lay.order, k, obs.double(),
                             None if actions is None else actions.double())
        eps = score_single(model.net, k, x[k][:, xmask].double(), t[k].double(), cond,
                           first_layer_columns(model, k))
        out[k][:, xmask] = eps[:, xmask]  # the head's other columns are padding
    return out


def vp_alpha_sigma64(t: torch.Tensor, beta_0: float = 0.1, beta_1: float = 20.0):
    """alpha_t, sigma_t of the VP-SDE in float64, written out (DESIGN.md 1.2):
    log alpha = -0.25 t^2 (beta_1 - beta_0) - 0.5 t beta_0, sigma = sqrt(1 - alpha^2)."""
    t = t.double()
    alpha = torch.exp(-0.25 * t ** 2 * (beta_1 - beta_0) - 0.5 * t * beta_0)
    return alpha, torch.sqrt(1.0 - alpha ** 2)


def noise_embed64(a, z, t, freqs, beta_0: float = 0.1, beta_1: float = 20.0):
    """x_t = alpha_t a + sigma_t z and [sin(2 pi t f), cos(2 pi t f)], float64 on the CPU."""
    alpha, sigma = vp_alpha_sigma64(t.cpu(), beta_0, beta_1)
    x_t = alpha[:, None] * a.cpu().double() + sigma[:, None] * z.cpu().double()
    proj = 2 * math.pi * t.cpu().double()[:, None] * freqs.cpu().double()[None, :]
    return x_t, torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


def sequential_sample64(net, mask, obs, x_T, step_noise, steps: int, solver: str, eta: float, clip):
    """Ancestral sampling model by model (DESIGN.md 1.6), in float64 on the CPU: each model as its
    own narrow network (score_single, the columns its in_mask [m, dx + cond_dim] keeps) on
    [obs_k, clip(x_0), ..., clip(x_{k-1})], integrated with sde.py's step functions on the logSNR
    grid. obs [m, B, obs_w], x_T [m, B, dx], step_noise [m, steps, B, dx] or None."""
    m, B, dx = x_T.shape
    fourier = 2 * net.freqs.shape[0]
    grid = sde.time_grid(steps, spacing="logSNR")
    samples = []
    for k in range(m):
        cols = torch.cat([mask[k], torch.ones(fourier, dtype=torch.bool)]).nonzero()[:, 0]
        cond = torch.cat([obs[k].cpu().double(), *samples,
                          torch.zeros(B, (m - 1 - k) * dx, dtype=torch.float64)], dim=-1)[:, mask[k, dx:]]

        def eps(x, t):
            return score_single(net, k, x, torch.full((B,), t, dtype=torch.float64), cond, cols)

        x = x_T[k].cpu().double()
        for i in range(steps):
            t, s = float(grid[i]), float(grid[i + 1])
            e = eps(x, t)
            if solver == "ddim":
                noise = None if step_noise is None else step_noise[k, i].cpu().double()
                x = sde.ddim_step(e, x, t, s, eta=eta, noise=noise)
            elif solver == "dpm1":
                x = sde.dpm_solver_1_step(e, x, t, s)
            else:
                u, s1 = sde.dpm_solver_2_midpoint(x, e, t, s)
                x = sde.dpm_solver_2_step(x, e, eps(u, s1), t, s)
        if clip is not None:
            x = x.clamp(-clip, clip)
        samples.append(x)
    return torch.stack(samples)
