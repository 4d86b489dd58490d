"""`polyroute inspect`: readable on routing stores, truncated on big ones, graceful on others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from polyroute.atomic import MARKER_NAME
from polyroute.cli import COMMANDS, main
from polyroute.routing.records import ShardRouting
from polyroute.routing.store import to_dataset, write_store
from polyroute.routing.synthetic import synthetic_shard


def _two_expert_store(path: Path) -> None:
    """One language, E=4, k=1, 4 tokens split 2/2 over experts 1 and 3: share 0.50, H/lnE = ln2/ln4 = 0.5."""
    count = np.array([[[0, 2, 0, 2]]])
    shard = ShardRouting(["eng_Latn"], [7], 4, 1, count, count * 1.0, count * 1.0, np.array([4]),
                         np.array(["s0"], dtype=object), np.array(["eng_Latn"], dtype=object),
                         np.array(["p0"], dtype=object), np.array([4]), count.astype(np.float32),
                         count.astype(np.float32), count.astype(np.float32))
    write_store(to_dataset(shard, {"model": "hand"}), path)


def test_inspect_routing_store_by_hand(tmp_path, capsys):
    _two_expert_store(tmp_path / "r.zarr")
    assert main(["inspect", str(tmp_path / "r.zarr")]) == 0
    out = capsys.readouterr().out
    assert "[complete]" in out and "language=1" in out and "expert=4" in out
    assert "model" in out and "hand" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("eng_Latn"))
    assert row.split()[:4] == ["eng_Latn", "4", "7", "0.500"]
    assert "1:0.50 3:0.50" in row


def test_inspect_truncates_big_stores(tmp_path, capsys):
    langs = [f"l{i:02d}_Latn" for i in range(30)]
    ds = to_dataset(synthetic_shard(languages=langs, seqs_per_language=1, layers=tuple(range(20)),
                                      per_token=False), {})
    write_store(ds, tmp_path / "r.zarr")
    assert main(["inspect", str(tmp_path / "r.zarr")]) == 0
    out = capsys.readouterr().out
    assert "showing 12 of 30 languages, 6 of 20 layers" in out
    assert len(out.splitlines()) < 120
    assert "l00_Latn" in out and "l29_Latn" in out  # first and last are always shown
    assert main(["inspect", str(tmp_path / "r.zarr"), "--languages", "l05_Latn", "--max-layers", "20"]) == 0
    out = capsys.readouterr().out
    assert "l05_Latn" in out and "l00_Latn" not in out.split("routing per language")[1]
    assert main(["inspect", str(tmp_path / "r.zarr"), "--languages", "xx_Latn"]) == 2
    assert "language(s) not in the store: ['xx_Latn']" in capsys.readouterr().err


def test_inspect_other_stores_and_errors(tmp_path, capsys):
    stats = xr.Dataset({"entropy": (("language", "layer"), np.ones((2, 3)))},
                       coords={"language": ["a", "b"], "layer": [0, 1, 2]}, attrs={"log_base": "e"})
    write_store(stats, tmp_path / "s.zarr")
    assert main(["inspect", str(tmp_path / "s.zarr")]) == 0
    out = capsys.readouterr().out
    assert "entropy" in out and "log_base" in out and "routing per language" not in out
    (tmp_path / "s.zarr" / MARKER_NAME).unlink()
    assert main(["inspect", str(tmp_path / "s.zarr")]) == 0
    assert "INCOMPLETE" in capsys.readouterr().out
    assert main(["inspect", str(tmp_path / "missing.zarr")]) == 2
    assert "no store at" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    assert main(["inspect", str(tmp_path / "plain")]) == 2
    assert "not a readable Zarr store" in capsys.readouterr().err


def test_subcommands_registry_and_console_script(tmp_path):
    assert "inspect" in COMMANDS
    with pytest.raises(SystemExit):
        main([])
    script = Path(sys.executable).parent / "polyroute"
    if not script.exists():
        pytest.skip("console script not installed in this environment")
    _two_expert_store(tmp_path / "r.zarr")
    res = subprocess.run([str(script), "inspect", str(tmp_path / "r.zarr")], capture_output=True, text=True, check=True)
    assert "eng_Latn" in res.stdout
