"""The split of an expert budget over the RISE depth zones (METHODS section 5); the zones themselves
are defined once, in `polyroute.stats.zones`.

Two roundings of the budget K into zone quotas (setting `selection.methods.rise.budget_rounding`):
- "floor" (default, RISE's own code): shallow floor(0.35 K), middle floor(0.25 K), deep the rest; at
  the paper's K = 128 that is 44 / 32 / 52. A small budget may leave a zone without an expert
  (K = 3: 1 / 0 / 2), as it does in their code.
- "largest-remainder": quotas proportional to the shares by largest remainders (ties to the earlier
  zone), at least one expert per zone with a positive share when the budget allows (K = 128:
  45 / 32 / 51; K = 3: 1 / 1 / 1).
Either way a quota larger than its zone's candidates spills to the other zones with room.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from polyroute.stats.zones import round_half_up

DEFAULT_SPLIT = (0.35, 0.25, 0.40)
DEFAULT_BUDGET_FRACTION = 0.02
ROUNDINGS = ("floor", "largest-remainder")


def normalise_split(split: Sequence[float]) -> tuple[float, float, float]:
    """(shallow, middle, deep) shares from 2 values (deep = the rest) or 3 values summing to 1."""
    values = [float(x) for x in split]
    if len(values) == 2:
        values.append(1.0 - sum(values))
    if len(values) != 3 or any(not math.isfinite(v) or v < -1e-12 for v in values) or abs(sum(values) - 1) > 1e-9:
        raise ValueError(f"split={list(split)} must be 2 shares (deep gets the rest) or 3 summing to 1, all >= 0")
    return tuple(max(v, 0.0) for v in values)  # type: ignore[return-value]


def default_budget(total_experts: int, n_zones: int, fraction: float = DEFAULT_BUDGET_FRACTION) -> int:
    """About `fraction` of all experts, at least one per zone."""
    return max(round_half_up(fraction * total_experts), n_zones)


def _largest_remainder(total: int, weights: Sequence[float]) -> list[int]:
    """Integers proportional to weights summing to total; ties for the leftovers go to earlier zones."""
    wsum = sum(weights)
    exact = [total * w / wsum for w in weights]
    out = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda z: (-(exact[z] - out[z]), z))
    for z in order[: total - sum(out)]:
        out[z] += 1
    return out


def _floor_quotas(budget: int, shares: Sequence[float]) -> list[int]:
    """RISE's code: floor of the shallow and middle shares, the rest to the deep zone."""
    shallow, middle = math.floor(budget * shares[0]), math.floor(budget * shares[1])
    return [shallow, middle, budget - shallow - middle]


def allocate(budget: int, split: Sequence[float], capacity: Sequence[int], rounding: str = "floor") -> list[int]:
    """Experts per zone: budget split by shares with `rounding` (see the module docstring), capped at
    each zone's capacity, the excess spilled to other zones with a positive share and room (in
    proportion to their shares). The result may sum to less than the budget only when those zones
    are full."""
    shares = normalise_split(split)
    if budget < 0:
        raise ValueError(f"budget={budget!r} must be >= 0")
    if rounding not in ROUNDINGS:
        raise ValueError(f"budget_rounding={rounding!r} must be one of {', '.join(ROUNDINGS)}")
    active = [z for z in range(3) if shares[z] > 0 and capacity[z] > 0]
    if budget == 0 or not active:
        return [0, 0, 0]
    if rounding == "floor":
        counts = _floor_quotas(budget, shares)
    else:
        counts = _largest_remainder(budget, shares)
        if budget >= len(active):  # at least one per active zone, taken from the largest allotment
            for z in active:
                if counts[z] == 0:
                    donor = max(range(3), key=lambda y: (counts[y], y))
                    counts[donor] -= 1
                    counts[z] += 1
    counts = [c if z in active else 0 for z, c in enumerate(counts)]
    while True:
        excess = sum(max(c - capacity[z], 0) for z, c in enumerate(counts)) + budget - sum(counts)
        counts = [min(c, capacity[z]) for z, c in enumerate(counts)]
        room = [z for z in active if counts[z] < capacity[z]]
        if excess <= 0 or not room:
            return counts
        extra = _largest_remainder(excess, [shares[z] for z in room])
        for z, e in zip(room, extra):
            counts[z] += e
