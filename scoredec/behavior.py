"""Stage 1a: behaviour score models, one per agent, and the sequential sampler (DESIGN.md 1.3, 1.6).

A BehaviorModel is n score networks eps_k(x_t, t | c_k) in one stack, with the conditions of
a ScoreLayout: the OMSD prefixes [o_k, a_<k] ("sequential"), the marginal IND/CTDE models
("marginal") or one joint JAL model ("joint"). Training, all models at once, t ~ U(t_min, 1):
  prediction "x0" (default): the net predicts the clean action, loss E || x0_k(x_t, t | c_k) - a_k ||^2
      (weight 1 at every t), read as eps = (x_t - alpha_t x0_k) / sigma_t;
  prediction "eps": the denoising loss E || eps_k(alpha_t a_k + sigma_t z, t | c_k) - z ||^2.
The score function is the same; DESIGN.md 1.3 has the measurement that chose the default
(clean-action loss, ReLU, time features at scale 1 and an EMA of the weights: sampled as a
policy on spread expert 80-93 normalized, where eps/Mish/scale 30 gave 9-17).
Sequential models train on earlier actions with Gaussian noise (cond_noise, conditioning
augmentation as in cascaded diffusion models): the sampler and stage 2 feed them sampled or
actor actions, never exactly the data's, and without it the later agents follow an earlier
agent's small error (spread expert, tuning seed: 80.6 -> 94.5 as a policy at 0.2).
With obs_norm the networks see every observation feature standardized by the dataset's moments
(fit_observations; HalfCheetah's joint velocities are ~20x its angles: +5-7 on the actors on
the tuning seed, within noise on the reported seeds).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from scoredec import distributed, sde
from scoredec.config import param
from scoredec.layout import AgentSpec, ScoreLayout, to_stack
from scoredec.nets import ACTIVATIONS, PREDICTIONS, SIGMA_DATA, ScoreNet, make_score_net
from scoredec.ops import noise_and_embed
from scoredec.ops import sampler as op_sampler
from scoredec.sampling import ConditionalSampler, draw_or_check_noise, graphed, run_solver
from scoredec.training import EMA, Stage, cosine_schedule, optimizer_step


@dataclass
class BehaviorConfig:
    """Behaviour score models (stage 1a)."""

    arch: str = param("resnet", "score network: the authors' residual MLP or a plain MLP",
                      choices=("resnet", "compact"))
    hidden: int = param(512, "trunk width H of the resnet, or the compact MLP's width",
                        bounds="[1, inf)")
    blocks: int = param(2, "residual blocks of the resnet", bounds="[1, inf)")
    compact_layers: int = param(3, "hidden layers of the compact MLP", bounds="[1, inf)")
    dropout: float = param(0.1, "dropout inside the resnet blocks while training", bounds="[0, 1)")
    activation: str = param("relu", "activation of the compact MLP (the resnet is ReLU only)",
                            choices=tuple(ACTIVATIONS))
    prediction: str = param("x0", "what the network predicts: the clean action (x0, loss "
                                  "||x0_hat - a||^2), the noise (eps, loss ||eps_hat - z||^2), or "
                                  "EDM's preconditioned residual (edm, loss ||x0_hat - a||^2 / c_out^2)",
                            choices=PREDICTIONS)
    sigma_data: float = param(SIGMA_DATA, "EDM's scale of the clean actions (prediction = edm only)",
                              bounds="(0, inf)")
    fourier_scale: float = param(1.0, "std of the random Fourier time-feature frequencies (the "
                                      "authors' 30 measured worse at the cpu budget)",
                                 bounds="(0, inf)")
    ema: float = param(0.999, "decay of the exponential moving average of the weights that "
                              "becomes the saved model (0 = no average: the last weights)",
                       bounds="[0, 1)")
    lr: float = param(3e-4, "AdamW learning rate", bounds="(0, inf)")
    lr_end: float = param(1e-5, "learning rate at the end of the cosine schedule",
                          bounds="[0, inf)")
    weight_decay: float = param(0.01, "AdamW weight decay", bounds="[0, inf)")
    batch_size: int = param(512, "transitions per step (each model sees the same rows)",
                            bounds="[1, inf)")
    steps: int = param(100_000, "optimizer steps (the authors train 2M)", bounds="[1, inf)")
    t_min: float = param(sde.T_MIN, "training draws t ~ U(t_min, 1)", bounds="(0, 1)")
    cond_noise: float = param(0.2, "std of Gaussian noise added to the earlier agents' actions in "
                                   "the sequential models' conditions while training (0 = none; "
                                   "0.2 measured best, results/README.md)", bounds="[0, inf)")
    obs_norm: bool = param(False, "standardize every observation feature by the dataset's mean "
                                  "and std before the score networks (fitted when stage 1 starts, "
                                  "saved with the model)")
    sample_steps: int = param(15, "solver steps per agent when sampling", bounds="[1, inf)")
    solver: str = param("dpm2", "sampler", choices=sde.SOLVERS)


def legacy_defaults(saved: dict) -> dict:
    """A saved behaviour config (a dict) completed with the values models had before these
    fields existed: eps prediction, Mish (compact), Fourier scale 30, no average, no condition
    noise. Products saved then must rebuild (and resume) as they were trained, not with today's
    defaults."""
    old = {"prediction": "eps", "fourier_scale": sde.FOURIER_SCALE, "ema": 0.0, "cond_noise": 0.0,
           "obs_norm": False,
           "activation": "mish" if saved.get("arch", "resnet") == "compact" else "relu"}
    return {**old, **saved}


class BehaviorModel(nn.Module, ConditionalSampler):
    """The behaviour policy mu(a | s) as a stack of score models over one ScoreLayout."""

    def __init__(self, spec: AgentSpec, mode: str, cfg: BehaviorConfig, order=None,
                 vp: sde.VPSDE = sde.VPSDE(), generator: torch.Generator | None = None):
        super().__init__()
        self.spec, self.cfg, self.vp = spec, cfg, vp
        self.layout = ScoreLayout(spec, mode, order)
        lay = self.layout
        self.net = make_score_net(cfg.arch, lay.models, lay.x_dim, lay.cond_dim, lay.in_mask(),
                                  hidden=cfg.hidden, blocks=cfg.blocks, dropout=cfg.dropout,
                                  compact_layers=cfg.compact_layers, activation=cfg.activation,
                                  prediction=cfg.prediction, fourier_scale=cfg.fourier_scale,
                                  vp=vp, sigma_data=cfg.sigma_data, generator=generator)
        self.register_buffer("x_mask", lay.x_mask().to(torch.float32)[:, None, :])
        # Where the condition noise may go (real action columns); built once, not per step.
        self.register_buffer("act_mask", spec.act_mask().to(torch.float32), persistent=False)
        if cfg.obs_norm:
            # Identity until fit_observations; saved with the model (a model without the option
            # has no such buffers, so its files are as before).
            self.register_buffer("obs_shift", torch.zeros(spec.n_agents, spec.obs_max))
            self.register_buffer("obs_scale", torch.ones(spec.n_agents, spec.obs_max))

    @torch.no_grad()
    def fit_observations(self, obs: Tensor) -> None:
        """Set the observation standardization from the dataset's observations [N, n, obs_max]
        (float64 moments over all rows; a constant or padding column keeps shift 0, scale 1).
        Without cfg.obs_norm this does nothing."""
        if not self.cfg.obs_norm:
            return
        rows = obs.detach().to(torch.float64).reshape(-1, *obs.shape[-2:])
        mean, std = rows.mean(0), rows.std(0, correction=0)
        varies = std > 1e-6
        self.obs_shift.copy_(torch.where(varies, mean, torch.zeros_like(mean)))
        self.obs_scale.copy_(torch.where(varies, std, torch.ones_like(std)))

    def _standardized(self, obs: Tensor, stacked: bool = False) -> Tensor:
        """obs [B, n, obs_max] (or, stacked, [n, B, obs_max] / joint [1, B, n * obs_max]) with
        the fitted standardization applied; unchanged without cfg.obs_norm."""
        if not self.cfg.obs_norm:
            return obs
        shift, scale = self.obs_shift.to(obs.dtype), self.obs_scale.to(obs.dtype)
        if stacked:
            shift, scale = ((shift.reshape(1, 1, -1), scale.reshape(1, 1, -1)) if self.mode == "joint"
                            else (shift[:, None], scale[:, None]))
        return (obs - shift) / scale

    @property
    def mode(self) -> str:
        return self.layout.mode

    @property
    def x_dim(self) -> int:
        return self.layout.x_dim

    @property
    def noisy_conditions(self) -> bool:
        return self.cfg.cond_noise > 0 and self.mode == "sequential" and self.spec.n_agents > 1

    def draw_noise(self, actions: Tensor, generator: torch.Generator | None) -> tuple[Tensor, ...]:
        """The loss's random inputs for a batch of actions [B, n, act_max]: t [m, B] and
        z [m, B, x_dim], then u [B, n, act_max] (the condition noise) when noisy_conditions."""
        lay = self.layout
        noise = draw_noise(lay.models, actions.shape[0], lay.x_dim, self.cfg.t_min, 1.0,
                           generator, actions)
        if self.noisy_conditions:
            noise += (distributed.draw_rows(torch.randn, actions.shape, 0, generator=generator,
                                            dtype=actions.dtype, device=actions.device),)
        return noise

    def loss(self, obs: Tensor, actions: Tensor, generator: torch.Generator | None = None,
             noise: tuple[Tensor, ...] | None = None, backend: str | None = None) -> Tensor:
        """Denoising loss (clean-action or noise error, as cfg.prediction), summed over models
        (each model's own mean over the batch).

        obs [B, n, obs_max], actions [B, n, act_max] (dataset actions); noise: explicit
        (t [m, B], z [m, B, x_dim][, u [B, n, act_max]]), else drawn from generator. u is the
        condition noise (drawn only when cfg.cond_noise > 0 in sequential mode); explicit noise
        without it conditions on the clean actions."""
        x0 = self.layout.targets(actions)
        m, batch, d = x0.shape
        obs = self._standardized(obs)
        if noise is None:
            noise = self.draw_noise(actions, generator)
        t, z = noise[:2]
        if self.noisy_conditions and len(noise) > 2:
            # Conditioning augmentation: the later agents learn to follow earlier actions that
            # are near, not exactly, the data's, as the sampler's and the actors' are.
            noisy = actions + self.cfg.cond_noise * noise[2] * self.act_mask.to(actions.dtype)
            cond = self.layout.conditions(obs, noisy)
        else:
            cond = self.layout.conditions(obs, actions)
        x_t, fourier = noise_and_embed(x0.reshape(m * batch, d), z.reshape(m * batch, d),
                                       t.reshape(-1), self.net.freqs.to(x0.dtype),
                                       beta_0=self.vp.beta_0, beta_1=self.vp.beta_1,
                                       backend=backend)
        x_t = x_t.view(m, batch, d)
        out = self.net.forward_embedded(x_t, fourier.view(m, batch, -1), cond)
        target = self.net.training_target(x0, z, x_t, t)
        err = ((out - target) ** 2 * self.x_mask.to(out.dtype)).sum(-1)
        return err.mean(dim=1).sum()

    def epsilon(self, x_t: Tensor, t: Tensor, obs: Tensor, actions: Tensor | None = None,
                backend: str | None = None) -> Tensor:
        """All models' noise predictions at once: x_t [m, B, x_dim], t [m, B] -> [m, B, x_dim].

        Sequential mode conditions model k on actions of agents order[:k] (stage 2 passes the
        current policies' actions): this is the per-agent sequential score evaluation. The
        network runs through its fused op (ScoreNet.forward's backend: as scoredec.ops; the torch
        path on CPU tensors; the kernel backends are forward only and the resnet's compute the
        eval forward). A clean-action net's output is turned into eps here."""
        return self.epsilon_given(x_t, t, self.layout.conditions(self._standardized(obs), actions),
                                  backend=backend)

    def epsilon_from_models(self, x_t: Tensor, t: Tensor, obs: Tensor, actions: Tensor | None = None,
                            backend: str | None = None) -> Tensor:
        """epsilon() on the actors' stacked layout (stage 2: no round trip through the
        agent-major one): obs [n, B, obs_max] and actions [n, B, act_max] in agent index order,
        or joint [1, B, n * w], as ScoreLayout.conditions_from_models takes them."""
        return self.epsilon_given(x_t, t, self.layout.conditions_from_models(
            self._standardized(obs, stacked=True), actions), backend=backend)

    def epsilon_given(self, x_t: Tensor, t: Tensor, cond: Tensor, backend: str | None = None) -> Tensor:
        """epsilon() at given conditions cond [m, B, cond_dim] (ScoreLayout's)."""
        out = self.net(x_t.contiguous(), t.contiguous(), cond.contiguous(), backend=backend)
        return self.net.eps_from_output(out, x_t, t)

    @torch.no_grad()
    def sample(self, obs: Tensor, steps: int | None = None, solver: str | None = None,
               noise: Tensor | None = None, generator: torch.Generator | None = None,
               spacing: str = "logSNR", *, step_noise: Tensor | None = None, eta: float = 0.0,
               backend: str | None = None, graph: bool | None = None) -> Tensor:
        """Joint actions a ~ mu(. | s): obs [B, n, obs_max] -> [B, n, act_max] in [-1, 1].

        Sequential mode samples agent order[0] first and conditions each later agent on the
        earlier agents' samples (ancestral sampling along the chain rule; sample_sequential).
        noise: [m, B, x_dim] initial noise; step_noise: [m, steps, B, x_dim] for ddim with
        eta > 0; both drawn from generator when None."""
        scheduler = sde.make_solver(self.cfg.solver if solver is None else solver,
                                    self.cfg.sample_steps if steps is None else steps, spacing, eta, self.vp)
        lay, batch = self.layout, obs.shape[0]
        noise = draw_or_check_noise("noise", noise, (lay.models, batch, lay.x_dim), obs, generator)
        if eta > 0:
            step_noise = draw_or_check_noise("step_noise", step_noise, (lay.models, scheduler.steps, batch, lay.x_dim),
                                             obs, generator)
        elif step_noise is not None:
            raise ValueError(f"step_noise is only used by ddim with eta > 0 (solver={scheduler.name!r}, eta={eta})")
        mask = self.x_mask.to(obs.dtype)
        obs = self._standardized(obs)
        with eval_mode(self):
            if lay.mode == "sequential":
                x = sample_sequential(self.net, to_stack(obs, lay.order).contiguous(), noise.contiguous(),
                                      None if step_noise is None else step_noise.contiguous(), scheduler,
                                      backend=backend, graph=graph)
                return lay.actions_from(x * mask)
            cond = lay.conditions(obs)
            x = run_solver(lambda x, t: self.net.epsilon(x, t, cond), noise, scheduler,
                           None if step_noise is None else step_noise.transpose(0, 1))
            return lay.actions_from(x.clamp(-1.0, 1.0) * mask)


def sample_sequential(net: ScoreNet, obs: Tensor, x_T: Tensor, step_noise: Tensor | None, solver: sde.Solver, *,
                      clip: float | None = 1.0, backend: str | None = None, graph: bool | None = None) -> Tensor:
    """Sequential ancestral sampling with a stack of m score models (DESIGN.md 1.6):

        for k in 0 .. m-1:  x_k = solve(eps_k(., . | [obs_k, clip(x_0), ..., clip(x_{k-1})]), x_T[k])

    net: a stack whose condition is [obs (obs_w), m-1 prefix slots of x_dim] (ScoreLayout
    "sequential"); obs: [m, B, obs_w]; x_T: [m, B, x_dim]; step_noise: [m, steps, B, x_dim] for
    ddim with eta > 0, else None; solver: sde.make_solver's. Returns [m, B, x_dim] clipped to
    [-clip, clip] (None: not clipped, also in the conditions).
    backend: the fused sampler op's (scoredec.ops.sample_sequential: compact eps-predicting Mish
    nets on the kernels); torch is sequential_torch, on CUDA tensors recorded once into a CUDA
    graph and replayed (graph None or True; under no_grad, outside torch.compile)."""
    check_sequential(net, obs, x_T, step_noise, solver, clip)
    name = op_sampler.select_backend(x_T, net.sequential_kernel_key(x_T.dtype), backend)
    if name == "torch":
        args = (net, obs, x_T, step_noise, solver, clip)
        if (x_T.device.type == "cuda" and graph is not False and not torch.is_grad_enabled()
                and not torch.compiler.is_compiling()):
            return graphed(net, sequential_torch, args)
        return sequential_torch(*args)
    freqs, *weights = net.packed_weights()
    return op_sampler.sample_sequential(obs, x_T, solver.table(x_T.device), freqs.float().contiguous(), *weights,
                                        step_noise=step_noise, clip=clip, solver=solver.name, backend=name)


def check_sequential(net: ScoreNet, obs: Tensor, x_T: Tensor, step_noise: Tensor | None, solver: sde.Solver,
                     clip: float | None) -> None:
    """sample_sequential's inputs (the solver's arguments were checked by sde.make_solver); the
    error names the argument."""
    name = "sample_sequential"
    for arg, a in (("obs", obs), ("x_T", x_T)):
        if not isinstance(a, Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(a).__name__}")
    if step_noise is not None and not isinstance(step_noise, Tensor):
        raise TypeError(f"{name}: step_noise must be a torch.Tensor or None, got {type(step_noise).__name__}")
    if clip is not None and not clip > 0:
        raise ValueError(f"{name}: clip must be > 0 or None, got {clip!r}")
    if x_T.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise TypeError(f"{name}: x_T must be float32/float16/bfloat16/float64, got {x_T.dtype}")
    if obs.dtype != x_T.dtype:
        raise TypeError(f"{name}: obs must have the dtype of x_T ({x_T.dtype}), got {obs.dtype}")
    w_dtype = next(net.parameters()).dtype
    if w_dtype != x_T.dtype:
        raise TypeError(f"{name}: net parameters are {w_dtype} but x_T is {x_T.dtype}; cast the net "
                        f"(net.to({x_T.dtype})) or the inputs")
    m, dx, dc = net.models, net.x_dim, net.cond_dim
    obs_w = dc - (m - 1) * dx
    if obs_w < 0:
        raise ValueError(f"{name}: net.cond_dim {dc} is narrower than the prefix of {m - 1} earlier samples of "
                         f"width {dx}: not a sequential stack")
    if x_T.dim() != 3 or x_T.shape[0] != m or x_T.shape[2] != dx:
        raise ValueError(f"{name}: x_T must be [m, B, x_dim] = [{m}, B, {dx}], got shape {tuple(x_T.shape)}")
    B = x_T.shape[1]
    if tuple(obs.shape) != (m, B, obs_w):
        raise ValueError(f"{name}: obs must be [m, B, cond_dim - (m-1) x_dim] = [{m}, {B}, {obs_w}], "
                         f"got shape {tuple(obs.shape)}")
    if solver.eta > 0:
        if step_noise is None:
            raise ValueError(f"{name}: step_noise [m, steps, B, x_dim] is required for ddim with eta > 0")
    elif step_noise is not None:
        raise ValueError(f"{name}: step_noise is only used by ddim with eta > 0 (solver={solver.name!r}, "
                         f"eta={solver.eta})")
    if step_noise is not None:
        if tuple(step_noise.shape) != (m, solver.steps, B, dx):
            raise ValueError(f"{name}: step_noise must be [m, steps, B, x_dim] = [{m}, {solver.steps}, {B}, {dx}], "
                             f"got shape {tuple(step_noise.shape)}")
        if step_noise.dtype != x_T.dtype:
            raise TypeError(f"{name}: step_noise must have the dtype of x_T ({x_T.dtype}), got {step_noise.dtype}")
    for arg, a in (("obs", obs), ("step_noise", step_noise)):
        if a is not None and a.device != x_T.device:
            raise ValueError(f"{name}: {arg} is on {a.device} but x_T is on {x_T.device}")
    if net.freqs.device != x_T.device:
        raise ValueError(f"{name}: net is on {net.freqs.device} but x_T is on {x_T.device}")
    for arg, a in (("obs", obs), ("x_T", x_T), ("step_noise", step_noise)):
        if a is not None and not a.is_contiguous():
            raise ValueError(f"{name}: {arg} must be contiguous (call .contiguous())")


def sequential_torch(net: ScoreNet, obs: Tensor, x_T: Tensor, step_noise: Tensor | None, solver: sde.Solver,
                     clip: float | None) -> Tensor:
    """sample_sequential on torch: model after model, the solver's loop (sampling.run_solver) with
    net.epsilon(x, t, cond, slice(k, k+1)), t in x's dtype, the condition [obs_k, prefix] with the
    earlier models' clipped samples in the prefix."""
    m, B, dx = x_T.shape
    prefix = x_T.new_zeros(B, (m - 1) * dx)
    out = torch.empty_like(x_T)
    for k in range(m):
        one = slice(k, k + 1)
        cond = torch.cat([obs[k], prefix], dim=-1)[None]
        noise_k = None if step_noise is None else step_noise[k][:, None]
        x = run_solver(lambda x, t: net.epsilon(x, t, cond, one), x_T[one], solver, noise_k)[0]
        if clip is not None:
            x = x.clamp(-clip, clip)
        out[k] = x
        if k < m - 1:
            prefix[:, k * dx:(k + 1) * dx] = x
    return out


def draw_noise(models: int, batch: int, dim: int, t_min: float, t_max: float,
               generator: torch.Generator | None, like: Tensor) -> tuple[Tensor, Tensor]:
    """t ~ U(t_min, t_max): [models, batch]; z ~ N(0, I): [models, batch, dim] (rows: dim 1)."""
    opts = {"dtype": like.dtype, "device": like.device, "generator": generator}
    t = t_min + (t_max - t_min) * distributed.draw_rows(torch.rand, (models, batch), 1, **opts)
    return t, distributed.draw_rows(torch.randn, (models, batch, dim), 1, **opts)


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Temporarily switch off dropout; restores the previous mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class BehaviorStage(Stage):
    """Stage 1a training: AdamW with a cosine schedule on all score models at once; with
    cfg.ema > 0 an average of the weights is kept (and checkpointed) and becomes the model when
    the stage finishes."""

    name = "behavior"

    def __init__(self, model: BehaviorModel, cfg: BehaviorConfig):
        self.model, self.batch_size, self.steps = model, cfg.batch_size, cfg.steps
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.modules = {"behavior": model}
        self.ema = EMA(model, cfg.ema) if cfg.ema > 0 else None
        if self.ema is not None:
            self.modules["behavior_ema"] = self.ema
        self.optimizers = {"behavior": opt}
        self.schedulers = {"behavior": cosine_schedule(opt, cfg.steps, cfg.lr_end)}

    def after_step(self) -> None:
        if self.ema is not None:
            self.ema.update(self.model)

    def finish(self) -> None:
        if self.ema is not None:
            self.ema.copy_to(self.model)

    def draw_noise(self, batch, generator):
        """The random inputs of BehaviorModel.loss (BehaviorModel.draw_noise)."""
        return self.model.draw_noise(batch.actions, generator)

    def loss(self, batch, noise):
        return self.model.loss(batch.obs, batch.actions, noise=noise), {}

    def step(self, batch, generator):
        loss, _ = self.loss(batch, self.draw_noise(batch, generator))
        optimizer_step(self.optimizers["behavior"], loss, self.schedulers["behavior"])
        return {"loss": loss.detach()}
