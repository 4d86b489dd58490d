"""Labels come out of a store as Python strings (numpy/pandas friendly) and go back in unchanged."""

import numpy as np

from polyroute.routing.store import open_store, to_dataset, write_store
from polyroute.stats.synthetic import synthetic_store


def test_labels_are_python_strings_and_round_trip(tmp_path) -> None:
    ds = synthetic_store(n_languages=3, n_layers=2, n_experts=4, top_k=2, seqs_per_language=3)
    write_store(ds, tmp_path / "a.zarr")
    opened = open_store(tmp_path / "a.zarr")
    for name in ("language", "seq_language", "seq_parallel_id"):
        assert opened[name].dtype == object
        assert isinstance(opened[name].values[0], str)
    np.asarray(opened["language"].values).astype(str)  # what numpy code does with labels
    write_store(opened.load(), tmp_path / "b.zarr")
    again = open_store(tmp_path / "b.zarr").load()
    assert again.identical(opened.load().assign_attrs(again.attrs))
