"""RISE depth zones over MoE layer positions 0..L-1 (callers map them to model layer indices):
shallow [0, round(0.375 L)), middle [.., round(0.625 L)), deep [.., L), with Python's `round` (half to
even), as the RISE authors' code computes them (METHODS section 5). Half to even differs from half up
for L = 4 mod 8 (L = 12: shallow [0, 4), not [0, 5)), and leaves a 4-layer model without a middle zone
(1.5 -> 2, 2.5 -> 2), as it does in their code. The one definition that statistics, figures and the
RISE selector share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ZONE_NAMES = ("shallow", "middle", "deep")
ZONE_BOUNDS = (0.375, 0.625)


def round_half_up(x: float) -> int:
    """Round to the nearest integer, halves up (2.5 -> 3)."""
    return int(math.floor(x + 0.5))


@dataclass(frozen=True)
class Zone:
    name: str
    start: int  # first MoE layer position
    stop: int  # one past the last position

    @property
    def positions(self) -> range:
        return range(self.start, self.stop)


def rise_zones(n_layers: int, bounds: Sequence[float] = ZONE_BOUNDS) -> list[Zone]:
    """The three RISE zones of a model with `n_layers` MoE layers (a zone may be empty for tiny models)."""
    if n_layers < 1:
        raise ValueError(f"n_layers={n_layers!r} must be >= 1")
    b1, b2 = round(bounds[0] * n_layers), round(bounds[1] * n_layers)  # half to even, as RISE's code
    if not (0 <= b1 <= b2 <= n_layers):
        raise ValueError(f"zone bounds {list(bounds)} must satisfy 0 <= shallow <= middle <= 1")
    return [Zone("shallow", 0, b1), Zone("middle", b1, b2), Zone("deep", b2, n_layers)]


def depth_zones(n_layers: int) -> dict[str, range]:
    """The RISE zones as name -> range of MoE layer positions."""
    return {zone.name: zone.positions for zone in rise_zones(n_layers)}
