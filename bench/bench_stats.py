"""Time and peak memory of compute_stats on a large synthetic routing store read lazily from Zarr.

Default size: 100 languages x 48 layers x 128 experts, top-8, with per-sequence and per-token arrays.
Prints the build time (not measured work), then compute_stats wall time and peak RSS growth, and the
ratio of peak memory to the on-disk size of the per-sequence arrays (bounded memory: well below 1).

    .venv/bin/python bench/bench_stats.py [--seqs-per-language 100] [--tokens 16] [--no-per-token]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import xarray as xr

from polyroute.stats import compute_stats
from polyroute.stats.synthetic import synthetic_store


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


class PeakRSS:
    """Samples the resident set every 20 ms in a thread (ru_maxrss cannot be reset between phases)."""

    def __enter__(self):
        self.base = self.peak = rss_mib()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mib())

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_mib())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--languages", type=int, default=100)
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--experts", type=int, default=128)
    ap.add_argument("--top-k", type=int, default=8)
    ap.add_argument("--seqs-per-language", type=int, default=100)
    ap.add_argument("--tokens", type=int, default=16, help="mean tokens per sequence")
    ap.add_argument("--no-per-token", action="store_true")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_stats_"))
    try:
        t0 = time.perf_counter()
        ds = synthetic_store(args.languages, args.layers, args.experts, args.top_k, args.seqs_per_language,
                               (max(1, args.tokens // 2), args.tokens * 3 // 2), per_token=not args.no_per_token, seed=0)
        seq_vars = ("seq_count", "seq_gate_sum", "seq_prob_sum")
        enc = {v: {"chunks": (1024,) + ds[v].shape[1:]} for v in seq_vars}
        enc.update({v: {"chunks": (2**16,) + ds[v].shape[1:]} for v in ("expert_ids", "expert_weights", "token_id", "token_sequence") if v in ds})
        ds.to_zarr(tmp / "routing.zarr", zarr_format=3, encoding=enc)
        n_seq, n_tok = ds.sizes["sequence"], ds.sizes.get("token", 0)
        seq_bytes = sum(ds[v].nbytes for v in seq_vars)
        del ds
        print(f"store: {args.languages} languages x {args.layers} layers x {args.experts} experts, k={args.top_k}, "
              f"{n_seq} sequences, {n_tok} tokens; built in {time.perf_counter() - t0:.1f} s")

        lazy = xr.open_zarr(tmp / "routing.zarr")
        with PeakRSS() as mem:
            t1 = time.perf_counter()
            stats = compute_stats(lazy, reference=str(lazy["language"].values[0]))
            wall = time.perf_counter() - t1
        grow = mem.peak - mem.base
        print(f"compute_stats: {wall:.2f} s wall, peak RSS +{grow:.0f} MiB "
              f"(per-sequence arrays {seq_bytes / 2**20:.0f} MiB in memory if loaded: ratio {grow / (seq_bytes / 2**20):.2f})")
        print(f"statistics: {len(stats.data_vars)} variables, {stats.nbytes / 2**20:.0f} MiB")
        print(f"time per sequence: {wall / n_seq * 1e6:.0f} us; middle-layer divergence median "
              f"{float(np.nanmedian(stats['divergence'].values)):.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
