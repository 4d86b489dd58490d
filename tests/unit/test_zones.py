"""The RISE depth zones: one definition, hand-checked bounds, the same in stats, figures and selection."""

import pytest

from polyroute.stats.zones import depth_zones
from polyroute.stats.zones import rise_zones


@pytest.mark.parametrize(("n", "bounds"), [(4, (2, 3)), (8, (3, 5)), (12, (5, 8)), (48, (18, 30)), (1, (0, 1))])
def test_bounds_by_hand(n: int, bounds: tuple[int, int]) -> None:
    shallow, middle, deep = rise_zones(n)
    assert (shallow.start, shallow.stop, middle.stop, deep.stop) == (0, bounds[0], bounds[1], n)


@pytest.mark.parametrize("n", range(1, 97))
def test_zones_partition_the_layers_and_agree_with_depth_zones(n: int) -> None:
    zones = rise_zones(n)
    assert [p for zone in zones for p in zone.positions] == list(range(n))
    assert {z.name: z.positions for z in zones} == depth_zones(n)
