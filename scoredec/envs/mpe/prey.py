"""Scripted prey for tag and world (the non-learned agent that acts inside ``step()``).

The offline-MARL code drives the prey with a pretrained DDPG policy
(``datasets/<task>/pretrained_adv_model.pt`` in OMAR, loaded by MADiff's
``PretrainedPreyWrapper`` with ``explore=False``). Those weights are not public in any form
we can fetch, so this module replaces them with a documented, deterministic rule that uses
only what is in the prey's own observation (own velocity and position, positions of the
predators and landmarks relative to itself), as the learned prey did:

1. Flee: every predator k within ``sense_radius`` pushes the prey along the unit vector
   away from it with weight ``flee_gain / max(d_k, d_floor)^2``.
2. Stay in bounds (the prey's reward penalises ``|x| > 0.9`` per axis): beyond
   ``wall_start`` on an axis, a push of ``wall_gain * (|x| - wall_start)`` back inwards.
3. Do not get pinned on obstacles: each colliding landmark (radius 0.2) closer than
   ``obstacle_clearance`` (surface distance) pushes outwards, ``obstacle_gain`` per unit of
   intrusion into the clearance.
4. Rest at a home point: a PD pull ``home_gain * (home - p) - damping_gain * v``. In tag
   home is the centre (where the bound penalty is zero); in world it is the nearest food
   (the world prey earns +2 per step on food).
5. The action is the summed push with its magnitude saturated at 1:
   ``a = push / max(1, |push|)``; while any predator is sensed it is further scaled by
   ``flee_thrust`` (the prey panics at part throttle); then clipped to [-1, 1].

``PREY_PARAMS`` are the values used by the environments; they were chosen so that uniformly
random predators score near the published random references (tag -4.1, world -6.8) while
coordinated predators can still corner the faster prey (tests/test_mpe.py measures both).
The same rule, written as plain loops, lives in ``tests/mpe_reference.py`` for the parity
tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class PreyParams:
    """Constants of the scripted prey."""

    sense_radius: float = 0.17
    """Predators farther than this are ignored."""
    d_floor: float = 0.05
    """Distance floor in the 1/d^2 flee weight."""
    flee_gain: float = 1.0
    """Scale of the flee push."""
    wall_start: float = 0.6
    """Per-axis |x| where the inward push starts."""
    wall_gain: float = 20.0
    """Inward push per unit beyond ``wall_start``."""
    obstacle_radius: float = 0.2
    """Radius of a colliding landmark (tag and world: 0.2)."""
    obstacle_clearance: float = 0.1
    """Surface distance below which a landmark pushes the prey away."""
    obstacle_gain: float = 20.0
    """Strength of the landmark push."""
    home_gain: float = 0.8
    """Pull towards the home point per unit distance."""
    damping_gain: float = 1.0
    """Braking push per unit velocity."""
    flee_thrust: float = 1.0
    """Action magnitude scale while a predator is within ``sense_radius``."""


PREY_PARAMS = PreyParams()


def prey_action(
    pos: torch.Tensor,
    vel: torch.Tensor,
    predator_rel: torch.Tensor,
    obstacle_rel: torch.Tensor,
    home_rel: torch.Tensor,
    params: PreyParams = PREY_PARAMS,
) -> torch.Tensor:
    """Scripted prey action, batch-last (as the environments store their state).

    pos, vel: [2, B] own position and velocity; predator_rel: [K, 2, B] predator positions
    minus own; obstacle_rel: [L, 2, B] colliding-landmark positions minus own (L may be 0);
    home_rel: [2, B] home point minus own position. Returns [2, B] in [-1, 1].
    """
    d = torch.sqrt(predator_rel[:, 0] ** 2 + predator_rel[:, 1] ** 2)  # [K, B]
    sensed_k = d < params.sense_radius
    w = torch.where(sensed_k, params.flee_gain / torch.clamp(d, min=params.d_floor) ** 2, 0.0)
    away = -predator_rel / torch.clamp(d, min=1e-12)[:, None]
    push = (w[:, None] * away).sum(dim=0)  # [2, B]
    excess = torch.clamp(pos.abs() - params.wall_start, min=0.0)
    push = push - params.wall_gain * excess * torch.sign(pos)
    if obstacle_rel.shape[0]:
        do = torch.sqrt(obstacle_rel[:, 0] ** 2 + obstacle_rel[:, 1] ** 2)  # [L, B]
        gap = do - params.obstacle_radius
        wo = torch.where(gap < params.obstacle_clearance,
                         params.obstacle_gain * (params.obstacle_clearance - gap), 0.0)
        push = push - (wo[:, None] * obstacle_rel / torch.clamp(do, min=1e-12)[:, None]).sum(0)
    push = push + params.home_gain * home_rel - params.damping_gain * vel
    mag = torch.sqrt(push[0] ** 2 + push[1] ** 2)  # [B]
    act = push / torch.clamp(mag, min=1.0)
    sensed = sensed_k.any(dim=0)
    act = torch.where(sensed, params.flee_thrust * act, act)
    return torch.clamp(act, -1.0, 1.0)
