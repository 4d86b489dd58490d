"""Expert selection (METHODS section 5): routing statistics -> a subnetwork file. No torch.

    from polyroute.models.params import param_counts_from_config
    info = param_counts_from_config(AutoConfig.from_pretrained(path).to_dict(), model=path)
    d = select("rise", xr.open_zarr(store), target="swh_Latn", settings={"budget": 128}, model_info=info)
    write_subnetwork(d, "results/run/selection/rise/swh_Latn.json")
"""

from polyroute.select.selectors import REGISTRY, Context, Picked, register, select
from polyroute.select.subnetwork import read_subnetwork, validate_subnetwork, write_subnetwork
from polyroute.select.zones import allocate
from polyroute.stats.zones import rise_zones

METHODS = tuple(REGISTRY)

__all__ = [
    "METHODS",
    "REGISTRY",
    "Context",
    "Picked",
    "allocate",
    "read_subnetwork",
    "register",
    "rise_zones",
    "select",
    "validate_subnetwork",
    "write_subnetwork",
]
