"""Networks: score networks (resnet, compact), critics and actors, stacked over models.

Every network here is a *stack* of m independent models of the same shape that run in one
batched matmul per layer (weights [m, in, out], inputs [m, B, in]). The n per-agent score
models, the twin Q heads and the n actors are each one stack, so the reference PyTorch path
already issues one launch per layer for all agents; the fused kernels replace those launches.

Models whose inputs are narrower than the stack's (an agent with a shorter condition prefix,
a smaller observation) get an input mask: the masked rows of the first weight are multiplied
by zero in the forward pass, so they receive no gradient and the model is exactly the narrower
network (tests compare each stack against separate float64 per-model networks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scoredec import distributed, sde
from scoredec.ops import common as op_common
from scoredec.ops import sampler as op_sampler
from scoredec.ops import score_compact as op_compact
from scoredec.ops import score_resnet as op_resnet
from scoredec.ops.activations import ACTIVATIONS, mish  # noqa: F401 (mish: part of this module's API)

# Architecture constants of the reference score network (DESIGN.md 1.3).
TIME_HIDDEN = 64        # Fourier features -> Linear 32->64 -> ReLU -> Linear 64->64
INPUT_EMBED = 32        # Linear([x_t, c] -> 32), no activation
RESNET_EXPANSION = 4    # residual block: H -> 4H -> H


class StackedLinear(nn.Module):
    """m independent affine maps: x [m, B, in] -> [m, B, out].

    in_mask: optional [m, in] bool; False entries are inputs that model does not have.
    Initialization matches nn.Linear per model, with fan-in counted over its own inputs."""

    def __init__(self, models: int, in_features: int, out_features: int,
                 in_mask: Tensor | None = None):
        super().__init__()
        self.models, self.in_features, self.out_features = models, in_features, out_features
        self.weight = nn.Parameter(torch.empty(models, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(models, 1, out_features))
        if in_mask is not None:
            in_mask = torch.as_tensor(in_mask, dtype=torch.bool)
            if in_mask.shape != (models, in_features):
                raise ValueError(f"in_mask must be [{models}, {in_features}], got {tuple(in_mask.shape)}")
            self.register_buffer("in_mask", in_mask.to(torch.float32)[:, :, None])
        else:
            self.in_mask = None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        fan_in = (torch.full((self.models,), float(self.in_features)) if self.in_mask is None
                  else self.in_mask[:, :, 0].sum(1).clamp(min=1.0))
        bound = (1.0 / fan_in.sqrt()).view(-1, 1, 1)
        self.weight.uniform_(-1.0, 1.0).mul_(bound)
        self.bias.uniform_(-1.0, 1.0).mul_(bound)
        if self.in_mask is not None:
            self.weight.mul_(self.in_mask)

    def effective_weight(self, models: slice = slice(None)) -> Tensor:
        w = self.weight[models]
        return w if self.in_mask is None else w * self.in_mask[models].to(w.dtype)

    def forward(self, x: Tensor, models: slice = slice(None)) -> Tensor:
        return torch.baddbmm(self.bias[models], x, self.effective_weight(models))

    def extra_repr(self) -> str:
        return f"models={self.models}, in={self.in_features}, out={self.out_features}"


class StackedLayerNorm(nn.Module):
    """LayerNorm over the last dim with a per-model affine: x [m, B, H]."""

    def __init__(self, models: int, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(models, 1, features))
        self.bias = nn.Parameter(torch.zeros(models, 1, features))

    def forward(self, x: Tensor, models: slice = slice(None)) -> Tensor:
        y = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        return y * self.weight[models] + self.bias[models]




class StackedMLP(nn.Module):
    """m MLPs [in, *hidden, out] with one activation between layers: x [m, B, in] -> [m, B, out]."""

    def __init__(self, models: int, in_features: int, hidden: tuple[int, ...], out_features: int,
                 activation: str = "relu", in_mask: Tensor | None = None):
        super().__init__()
        widths = (in_features, *hidden, out_features)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {tuple(ACTIVATIONS)}, got {activation!r}")
        self.layers = nn.ModuleList(
            StackedLinear(models, widths[i], widths[i + 1], in_mask=in_mask if i == 0 else None)
            for i in range(len(widths) - 1))
        self.activation_name = activation
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor, models: slice = slice(None)) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, models)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return x


class StackedBatchNorm(nn.Module):
    """torch.nn.BatchNorm1d on the input of every model of a stack: x [m, B, f] is normalized
    over B with each model's own statistics and affine (weight 1, bias 0 at the start).
    Training: the batch's statistics, and the running estimates move by `momentum`; eval: the
    running estimates. OMAR's public MLPs put one on every network's input."""

    def __init__(self, models: int, features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(models, 1, features))
        self.bias = nn.Parameter(torch.zeros(models, 1, features))
        self.register_buffer("running_mean", torch.zeros(models, 1, features))
        self.register_buffer("running_var", torch.ones(models, 1, features))

    def forward(self, x: Tensor, models: slice = slice(None)) -> Tensor:
        if self.training:
            # Several training processes: the whole batch's statistics (scoredec.distributed).
            mean, var, rows = distributed.batch_moments(x, dim=1)
            if rows < 2:  # as BatchNorm1d: one row has no batch statistics
                raise ValueError(f"StackedBatchNorm in training mode needs a batch of >= 2 rows, "
                                 f"got x of shape {list(x.shape)}; call .eval() to use the "
                                 "running estimates")
            with torch.no_grad():  # basic slices are views: the selected models' estimates move
                self.running_mean[models].lerp_(mean, self.momentum)
                self.running_var[models].lerp_(var * rows / max(rows - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean[models], self.running_var[models]
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight[models] + self.bias[models]


# ---------------------------------------------------------------------------------------------
# Score networks. Shared interface:
#   forward(x [m,B,dx], t [m,B], cond [m,B,dc], models, backend) -> the network's output [m,B,dx]:
#       eps (prediction = "eps"), the clean action x0 (prediction = "x0"), or the EDM-
#       preconditioned residual F with x0 = c_skip x_t / alpha_t + c_out F (prediction = "edm");
#       backend "torch" (default) is the modules' own forward, any other value (None: automatic)
#       runs all models through the network's fused op (scoredec.ops) on packed_weights()
#   forward_embedded(x, fourier [m,B,32], cond, models): the same with the Fourier features
#       already computed (by the fused noising op during training)
#   epsilon(x, t, cond, models) -> eps [m,B,dx] whatever the prediction (samplers, stage 2)
# ---------------------------------------------------------------------------------------------

PREDICTIONS = ("eps", "x0", "edm")
SIGMA_DATA = 0.5
"""EDM's sigma_data (Karras et al. 2022): the scale of the clean actions it assumes."""


class ScoreNet(nn.Module):
    x_dim: int
    cond_dim: int
    models: int
    prediction: str        # set by _init_prediction
    vp: sde.VPSDE
    sigma_data: float

    def _init_time(self, models: int, generator: torch.Generator | None,
                   fourier_scale: float = sde.FOURIER_SCALE) -> None:
        # One set of fixed frequencies shared by the stack, so the time features of all
        # models come from one fused op launch.
        self.register_buffer("freqs", sde.make_fourier_frequencies(generator, scale=fourier_scale))

    def _init_prediction(self, prediction: str, vp: sde.VPSDE, sigma_data: float = SIGMA_DATA) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data}")
        self.prediction, self.vp, self.sigma_data = prediction, vp, sigma_data

    def edm_coefficients(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """(c_skip / alpha_t, c_out) at t [...]: EDM's preconditioning (Karras et al. 2022, eq. 7)
        in the VP process, whose noise level is s = sigma_t / alpha_t on x_t / alpha_t = x0 + s z:
        c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2). At small t the clean
        action is x_t / alpha_t plus a correction of size s: precise where the score pulls hardest."""
        alpha, sigma = self.vp.alpha_sigma(t)
        s2, sd = (sigma / alpha) ** 2, self.sigma_data
        return sd ** 2 / (s2 + sd ** 2) / alpha, (sigma / alpha) * sd / torch.sqrt(s2 + sd ** 2)

    def fourier(self, t: Tensor) -> Tensor:
        return sde.fourier_features(t, self.freqs.to(t.dtype))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor, models: slice = slice(None), *,
                backend: str | None = "torch") -> Tensor:
        """The network's output [m, B, dx] at x [m, B, dx], t [m, B], cond [m, B, dc].

        backend "torch": the modules' own forward (the specification; differentiable, any
        models slice, dropout as the mode says); the Fourier features in t's dtype, cast to x's.
        "triton" | "cuda" | None (SCOREDEC_BACKEND, else automatic, scoredec.ops.registry): the
        inputs are checked (the error names the argument) and all models run through the
        network's fused op on its packed weights when that backend is chosen; the kernels are
        forward only."""
        if backend != "torch":
            if models != slice(None):
                raise ValueError(f"{type(self).__name__}: a models slice runs on backend='torch' only, "
                                 f"got backend={backend!r}")
            p = next(self.parameters())
            op_common.validate_score_inputs(type(self).__name__, x, t, cond, self.models, self.x_dim,
                                            self.cond_dim, p.dtype, self.freqs.device)
            name = self._select_backend(x, t, backend)
            if name != "torch":
                return self._fused(x, t, cond, name)
        return self.forward_embedded(x, self.fourier(t).to(x.dtype), cond, models)

    def _select_backend(self, x: Tensor, t: Tensor, backend: str | None) -> str:
        raise NotImplementedError

    def _fused(self, x: Tensor, t: Tensor, cond: Tensor, backend: str) -> Tensor:
        raise NotImplementedError

    def packed_weights(self) -> tuple:
        """The weights in the layout of this network's fused op (scoredec.ops)."""
        raise NotImplementedError

    def sequential_kernel_key(self, dtype: torch.dtype) -> tuple:
        """The fused sequential sampler's dispatch key for this net (ops.sampler.kernel_key): the
        kernels compute the compact eps-predicting Mish net only."""
        return op_sampler.kernel_key(dtype, -1, "relu", refusal=(
            f"the kernel backends take a CompactScoreNet, got a {type(self).__name__} (its sampler runs on "
            f"backend='torch', captured in one CUDA graph on a GPU)"))

    def training_target(self, x0: Tensor, z: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """What the output regresses on at x_t = alpha_t x0 + sigma_t z (x0, z, x [..., dx],
        t [...]): z (eps), x0 (x0, weight 1 at every t), or for EDM (x0 - c_skip x_t / alpha) /
        c_out, so that ||F - target||^2 = ||x0_hat - x0||^2 / c_out^2: F's target has unit scale
        at every t (EDM's loss weight lambda = 1 / c_out^2)."""
        if self.prediction == "eps":
            return z
        if self.prediction == "x0":
            return x0
        skip, c_out = self.edm_coefficients(t)
        return (x0 - skip[..., None] * x) / c_out[..., None]

    def x0_from_output(self, out: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """The clean action the network's output at (x [..., dx], t [...]) stands for."""
        if self.prediction == "x0":
            return out
        if self.prediction == "edm":
            skip, c_out = self.edm_coefficients(t)
            return skip[..., None] * x + c_out[..., None] * out
        alpha, sigma = self.vp.alpha_sigma(t)
        return (x - sigma[..., None] * out) / alpha[..., None]

    def eps_from_output(self, out: Tensor, x: Tensor, t: Tensor) -> Tensor:
        """The network's output at (x [..., dx], t [...]) as eps: itself, or, for a clean-action
        net, eps = (x_t - alpha_t x0) / sigma_t (x_t = alpha_t x0 + sigma_t eps, DESIGN.md 1.2)."""
        if self.prediction == "eps":
            return out
        alpha, sigma = self.vp.alpha_sigma(t)
        return (x - alpha[..., None] * self.x0_from_output(out, x, t)) / sigma[..., None]

    def epsilon(self, x: Tensor, t: Tensor, cond: Tensor, models: slice = slice(None), *,
                backend: str | None = "torch") -> Tensor:
        """eps(x_t, t | c) [m, B, dx] whatever the network predicts (backend: as forward)."""
        return self.eps_from_output(self(x, t, cond, models, backend=backend), x, t)

    def forward_embedded(self, x: Tensor, fourier: Tensor, cond: Tensor,
                         models: slice = slice(None)) -> Tensor:
        raise NotImplementedError


class ResNetScoreNet(ScoreNet):
    """The authors' reference score net (DESIGN.md 1.3): about 4.3M parameters per model at H=512."""

    def __init__(self, models: int, x_dim: int, cond_dim: int, in_mask: Tensor | None = None,
                 hidden: int = 512, blocks: int = 2, dropout: float = 0.1,
                 generator: torch.Generator | None = None, *, prediction: str = "eps",
                 fourier_scale: float = sde.FOURIER_SCALE, vp: sde.VPSDE = sde.VPSDE(),
                 sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.models, self.x_dim, self.cond_dim = models, x_dim, cond_dim
        self._init_prediction(prediction, vp, sigma_data)
        self._init_time(models, generator, fourier_scale)
        fourier_dim = 2 * sde.FOURIER_FREQUENCIES
        self.time1 = StackedLinear(models, fourier_dim, TIME_HIDDEN)
        self.time2 = StackedLinear(models, TIME_HIDDEN, TIME_HIDDEN)
        self.embed = StackedLinear(models, x_dim + cond_dim, INPUT_EMBED, in_mask=in_mask)
        self.trunk_in = StackedLinear(models, TIME_HIDDEN + INPUT_EMBED, hidden)
        self.norms = nn.ModuleList(StackedLayerNorm(models, hidden) for _ in range(blocks))
        self.up = nn.ModuleList(StackedLinear(models, hidden, RESNET_EXPANSION * hidden)
                                for _ in range(blocks))
        self.down = nn.ModuleList(StackedLinear(models, RESNET_EXPANSION * hidden, hidden)
                                  for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)
        self.head = StackedLinear(models, hidden, x_dim)

    def forward_embedded(self, x, fourier, cond, models=slice(None)):
        temb = self.time2(F.relu(self.time1(fourier, models)), models)
        h = self.embed(torch.cat([x, cond], dim=-1), models)
        h = self.trunk_in(torch.cat([temb, h], dim=-1), models)
        for norm, up, down in zip(self.norms, self.up, self.down):
            h = h + down(F.relu(up(norm(distributed.dropout_rows(self.dropout, h), models), models)),
                         models)
        return self.head(F.relu(h), models)

    def _select_backend(self, x, t, backend):
        dropout_active = self.training and self.dropout.p > 0
        return op_resnet.select_backend(x, t, self.freqs, dropout_active, backend)

    def _fused(self, x, t, cond, backend):
        ln_eps = float(self.norms[0].eps) if len(self.norms) else 1e-5
        return op_resnet.score_eval_resnet(x, t, cond, *self.packed_weights(), ln_eps=ln_eps, backend=backend)

    def _masked_embed(self) -> Tensor:
        """The embed weight with in_mask applied, cached per parameter state (ops.common.cached_pack)."""
        layer = self.embed
        if layer.in_mask is None:
            return layer.weight
        return op_common.cached_pack(layer, (layer.weight, layer.in_mask),
                                     lambda: layer.effective_weight().contiguous())

    def packed_weights(self) -> tuple:
        """(freqs [F], wt1 [m, 2F, 64], bt1 [m, 1, 64], wt2 [m, 64, 64], bt2 [m, 1, 64],
        we [m, dx + dc, 32], be [m, 1, 32], wtr [m, 96, H], btr [m, 1, H],
        ln_w, ln_b: blocks x [m, 1, H], w1: blocks x [m, H, 4H], b1: blocks x [m, 1, 4H],
        w2: blocks x [m, 4H, H], b2: blocks x [m, 1, H], wh [m, H, dx], bh [m, 1, dx]): the
        layout of scoredec.ops.score_eval_resnet. The parameters themselves, except we (the embed
        weight with in_mask applied, cached; recomputed when autograd records, so that a backward
        through a kernel op reaches it and raises)."""
        return (self.freqs, self.time1.weight, self.time1.bias, self.time2.weight, self.time2.bias,
                self._masked_embed(), self.embed.bias, self.trunk_in.weight, self.trunk_in.bias,
                [n.weight for n in self.norms], [n.bias for n in self.norms],
                [u.weight for u in self.up], [u.bias for u in self.up],
                [w.weight for w in self.down], [w.bias for w in self.down],
                self.head.weight, self.head.bias)


class CompactScoreNet(ScoreNet):
    """Plain MLP [x_t, c, fourier] -> width x layers -> d (Mish or ReLU): ~150K parameters at 256."""

    def __init__(self, models: int, x_dim: int, cond_dim: int, in_mask: Tensor | None = None,
                 width: int = 256, layers: int = 3, generator: torch.Generator | None = None, *,
                 activation: str = "mish", prediction: str = "eps",
                 fourier_scale: float = sde.FOURIER_SCALE, vp: sde.VPSDE = sde.VPSDE(),
                 sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.models, self.x_dim, self.cond_dim = models, x_dim, cond_dim
        self._init_prediction(prediction, vp, sigma_data)
        self._init_time(models, generator, fourier_scale)
        fourier_dim = 2 * sde.FOURIER_FREQUENCIES
        if in_mask is not None:
            ones = torch.ones(models, fourier_dim, dtype=torch.bool)
            in_mask = torch.cat([torch.as_tensor(in_mask, dtype=torch.bool), ones], dim=1)
        self.mlp = StackedMLP(models, x_dim + cond_dim + fourier_dim, (width,) * layers, x_dim,
                              activation=activation, in_mask=in_mask)

    def forward_embedded(self, x, fourier, cond, models=slice(None)):
        return self.mlp(torch.cat([x, cond, fourier], dim=-1), models)

    @property
    def width(self) -> int:
        return self.mlp.layers[0].out_features

    def sequential_kernel_key(self, dtype: torch.dtype) -> tuple:
        activation, refusal = self.mlp.activation_name, None
        if self.prediction != "eps" or activation != "mish":
            refusal = (f"the fused sampler kernels implement an eps-predicting Mish net; this net predicts "
                       f"{self.prediction!r} with {activation!r} (the default behaviour recipe): use backend='torch' "
                       f"(captured in one CUDA graph on a GPU)")
        return op_sampler.kernel_key(dtype, self.width, activation, refusal)

    def _select_backend(self, x, t, backend):
        return op_compact.select_backend(x, t, self.freqs, self.width, self.mlp.activation_name, backend)

    def _fused(self, x, t, cond, backend):
        return op_compact.score_eval_compact(x, t, cond, *self.packed_weights(),
                                             activation=self.mlp.activation_name, backend=backend)

    def packed_weights(self) -> tuple[Tensor, ...]:
        """(freqs [F], w0 [m, K0, W], b0 [m, 1, W], wh [m, layers-1, W, W], bh [m, layers-1, W],
        wo [m, W, dx], bo [m, 1, dx]): the layout of scoredec.ops.score_eval_compact, the
        effective weights (in_mask applied) in the parameters' dtype; packed once per parameter
        state (ops.common.cached_pack)."""
        sources = (self.freqs, *self.mlp.parameters(), *self.mlp.buffers())
        return op_common.cached_pack(self.mlp, sources, self._pack)

    def _pack(self) -> tuple[Tensor, ...]:
        layers = self.mlp.layers
        w0 = layers[0].effective_weight().contiguous()
        hidden = layers[1:-1]
        if hidden:
            wh = torch.stack([layer.weight for layer in hidden], dim=1)
            bh = torch.cat([layer.bias for layer in hidden], dim=1)
        else:
            wh = w0.new_empty((self.models, 0, self.width, self.width))
            bh = w0.new_empty((self.models, 0, self.width))
        return (self.freqs, w0, layers[0].bias.contiguous(), wh, bh, layers[-1].weight.contiguous(),
                layers[-1].bias.contiguous())


def make_score_net(arch: str, models: int, x_dim: int, cond_dim: int, in_mask: Tensor | None,
                   *, hidden: int, blocks: int, dropout: float, compact_layers: int,
                   activation: str | None = None, prediction: str = "eps",
                   fourier_scale: float = sde.FOURIER_SCALE, vp: sde.VPSDE = sde.VPSDE(),
                   sigma_data: float = SIGMA_DATA, generator: torch.Generator | None = None) -> ScoreNet:
    """arch: 'resnet' (hidden = H, blocks = B; ReLU) or 'compact' (hidden = width; activation,
    default Mish). prediction: what the network outputs (PREDICTIONS: eps, the clean action x0, or
the EDM-preconditioned residual)."""
    common = {"prediction": prediction, "fourier_scale": fourier_scale, "vp": vp,
              "sigma_data": sigma_data}
    if arch == "resnet":
        if activation not in (None, "relu"):
            raise ValueError(f"the resnet score net is ReLU throughout (DESIGN.md 1.3), got "
                             f"activation={activation!r}")
        return ResNetScoreNet(models, x_dim, cond_dim, in_mask, hidden=hidden, blocks=blocks,
                              dropout=dropout, generator=generator, **common)
    if arch == "compact":
        return CompactScoreNet(models, x_dim, cond_dim, in_mask, width=hidden,
                               layers=compact_layers, generator=generator,
                               activation=activation or "mish", **common)
    raise ValueError(f"arch must be 'resnet' or 'compact', got {arch!r}")


def parameter_count(module: nn.Module, per_model: bool = True) -> int:
    """Trainable parameters; per_model divides a stack's count by its number of models.

    Masked input rows are counted, as they are allocated (they are a handful per model)."""
    total = sum(p.numel() for p in module.parameters() if p.requires_grad)
    models = getattr(module, "models", 1)
    return total // models if per_model else total
