"""The RISE depth zones: one definition, hand-checked bounds, the same in stats, figures and selection."""

import pytest

from polyroute.stats.zones import depth_zones
from polyroute.stats.zones import rise_zones


# Python's round, half to even, as RISE's code: 4 -> 1.5, 2.5 -> 2, 2; 12 -> 4.5, 7.5 -> 4, 8; 20 -> 7.5, 12.5 -> 8, 12
@pytest.mark.parametrize(("n", "bounds"), [(4, (2, 2)), (8, (3, 5)), (12, (4, 8)), (20, (8, 12)), (48, (18, 30)),
                                           (1, (0, 1))])
def test_bounds_by_hand(n: int, bounds: tuple[int, int]) -> None:
    shallow, middle, deep = rise_zones(n)
    assert (shallow.start, shallow.stop, middle.stop, deep.stop) == (0, bounds[0], bounds[1], n)


@pytest.mark.parametrize("n", range(1, 97))
def test_zones_partition_the_layers_and_agree_with_depth_zones(n: int) -> None:
    zones = rise_zones(n)
    assert [p for zone in zones for p in zone.positions] == list(range(n))
    assert {z.name: z.positions for z in zones} == depth_zones(n)
