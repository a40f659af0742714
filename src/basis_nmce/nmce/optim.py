"""Optimisers and learning-rate schedules for NMCE training (Appendix B.3).

The toys, synthetic data and COIL use Adam; CIFAR/STL use SGD with LARS (You et al., 2017) at a
base batch size of 256 (``lr * batch / 256``). Our LARS is the authors' code's (NMCE-release
wraps SGD in the SimCLR-style ``LARSWrapper``, eta 0.02, clipping on; SEEDS.md "The authors'
own code"): for an adapted tensor ``r = eta ||p|| / (||g|| + wd ||p|| + 1e-8)``, clipped to
``min(r / lr, 1)``, then ``g <- (g + wd p) r`` (``g`` untouched when either norm is 0), then SGD
momentum at ``lr``. So an adapted tensor moves by at most ``lr`` times its gradient: the trust
ratio only ever lowers the rate. Biases and normalisation-layer parameters are excluded from
both the trust ratio and weight decay.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR

from basis_nmce.errors import ConfigError

__all__ = [
    "LARS",
    "OPTIMIZERS",
    "build_optimizer",
    "build_scheduler",
    "param_groups",
    "warmup_cosine_factor",
]

OPTIMIZERS = ("adam", "adamw", "sgd", "lars")

_NORM_TYPES = (
    nn.modules.batchnorm._BatchNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LocalResponseNorm,
)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups of ``model``'s trainable parameters: adapted ones (weights of linear/conv
    layers, with ``weight_decay``) and excluded ones (biases and normalisation-layer
    parameters: ``weight_decay`` 0 and ``lars_exclude`` True)."""
    adapted: list[Tensor] = []
    excluded: list[Tensor] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            if isinstance(module, _NORM_TYPES) or name == "bias":
                excluded.append(p)
            else:
                adapted.append(p)
    groups = []
    if adapted:
        groups.append({"params": adapted, "weight_decay": weight_decay, "lars_exclude": False})
    if excluded:
        groups.append({"params": excluded, "weight_decay": 0.0, "lars_exclude": True})
    return groups


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise trust ratios (LARS, You et al. 2017), in the form of the
    NMCE authors' code (a SimCLR-style wrapper around SGD).

    Per parameter tensor of a group with ``lars_exclude`` False, when ``||p||`` and ``||grad||``
    are > 0: ``r = trust_coefficient ||p|| / (||grad|| + wd ||p|| + eps)``, with ``clip``
    ``r = min(r / lr, 1)``, and ``g = (grad + wd p) r``; else ``g = grad``. Then
    ``buf = momentum buf + g`` (``buf = g`` at the first step) and ``p -= lr buf``. Groups with
    ``lars_exclude`` True (biases, norm layers; see :func:`param_groups`) take plain
    SGD-momentum steps without weight decay. Defaults: the authors' eta 0.02 with clipping.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        trust_coefficient: float = 0.02,
        clip: bool = True,
        eps: float = 1e-8,
    ) -> None:
        if lr < 0 or weight_decay < 0 or not 0 <= momentum < 1 or trust_coefficient <= 0:
            raise ConfigError(
                f"LARS: need lr >= 0, weight_decay >= 0, 0 <= momentum < 1, trust_coefficient > 0;"
                f" got {lr}, {weight_decay}, {momentum}, {trust_coefficient}"
            )
        defaults = {
            "lr": lr,
            "weight_decay": weight_decay,
            "momentum": momentum,
            "trust_coefficient": trust_coefficient,
            "clip": bool(clip),
            "eps": float(eps),
            "lars_exclude": False,
        }
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if not group["lars_exclude"]:
                    wd, lr = group["weight_decay"], group["lr"]
                    p_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(g)
                    ratio = (
                        group["trust_coefficient"] * p_norm / (g_norm + wd * p_norm + group["eps"])
                    )
                    if group["clip"]:
                        ratio = torch.clamp(ratio / lr, max=1.0) if lr > 0 else ratio.clamp(1, 1)
                    adapted = g.add(p, alpha=wd) if wd != 0 else g
                    g = torch.where((p_norm > 0) & (g_norm > 0), adapted * ratio, g)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def build_optimizer(
    params_or_model: nn.Module | Iterable[Any],
    name: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    trust_coefficient: float = 0.02,
    lars_clip: bool = True,
    batch_size: int | None = None,
    base_batch_size: int | None = None,
) -> torch.optim.Optimizer:
    """Optimiser ``name`` (:data:`OPTIMIZERS`) over a model's or an iterable's parameters.

    With a model, frozen parameters are skipped; for ``lars`` (and ``sgd``) the parameters are
    split by :func:`param_groups` so biases and norm layers get no weight decay (and no trust
    ratio). Adam applies ``weight_decay`` to every parameter, as the authors' code. With
    ``base_batch_size`` the learning rate is scaled linearly: ``lr * batch_size /
    base_batch_size`` (Appendix B.3: LARS with base batch size 256).
    """
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number > 0, got {lr}")
    if base_batch_size is not None:
        if batch_size is None:
            raise ConfigError("base_batch_size needs batch_size for the linear lr scaling")
        lr = lr * batch_size / base_batch_size
    if isinstance(params_or_model, nn.Module):
        if name in ("lars", "sgd"):
            params: Any = param_groups(params_or_model, weight_decay)
        else:
            params = [p for p in params_or_model.parameters() if p.requires_grad]
    else:
        params = list(params_or_model)
    if not params:
        raise ConfigError("build_optimizer: no trainable parameters")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return LARS(
        params,
        lr=lr,
        weight_decay=weight_decay,
        momentum=momentum,
        trust_coefficient=trust_coefficient,
        clip=lars_clip,
    )


def warmup_cosine_factor(
    step: int, total_steps: int, warmup_steps: int = 0, final_factor: float = 0.0
) -> float:
    """Learning-rate factor at ``step``: linear warm-up ``(step + 1) / warmup_steps`` for
    ``step < warmup_steps`` (1 at the last warm-up step), then cosine decay from 1 at
    ``warmup_steps`` to ``final_factor`` at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / span))
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _constant_factor(step: int, warmup_steps: int = 0) -> float:
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    return 1.0


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str = "constant",
    total_steps: int = 1,
    warmup_steps: int = 0,
    final_factor: float = 0.0,
) -> LambdaLR:
    """``LambdaLR`` with ``kind`` ``constant`` (after optional warm-up) or ``cosine``
    (:func:`warmup_cosine_factor`); call ``scheduler.step()`` once per training step."""
    if warmup_steps < 0 or total_steps < 1:
        raise ConfigError(
            f"need total_steps >= 1, warmup_steps >= 0: {total_steps}, {warmup_steps}"
        )
    if kind == "cosine":
        fn = partial(
            warmup_cosine_factor,
            total_steps=total_steps,
            warmup_steps=warmup_steps,
            final_factor=final_factor,
        )
    elif kind == "constant":
        fn = partial(_constant_factor, warmup_steps=warmup_steps)
    else:
        raise ConfigError(f"unknown schedule {kind!r}; choose 'constant' or 'cosine'")
    return LambdaLR(optimizer, fn)
