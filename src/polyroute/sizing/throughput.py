"""Throughput figures: the one table behind every GPU-time estimate, scaled to the configured model.

`REFERENCE` holds what was measured on one H200 at the Qwen3-30B-A3B shape (../shared/gpu/README.md,
random bf16 weights, polyroute's own code paths). Update it here when a path gets faster; `polyroute
calibrate` writes the same fields measured on the user's GPU with the real model, and the config's
`cluster.throughput` (or `polyroute plan --throughput`) points at such a file.

Figures measured on one model are scaled to another: token rates (forward, extraction, scoring,
training) by active parameters per token (the compute of a token), decode steps by total parameters
(a decode step of a large batch reads nearly every expert's weights once).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from polyroute.sizing.model import ModelSize, model_size

__all__ = ["REFERENCE", "Throughput", "load_throughput", "RATE_KEYS"]

# Measured 2026-12-04 on one NVIDIA H200, torch 2.11, transformers 5.23, at commit 325d7da: before scoring
# read only the continuation positions and generation used a static cache (issue 18), so the score and
# generate rates are cautious (a longer runtime asked, never a shorter one) until bench/gpu_check.sh
# remeasures them; `polyroute calibrate` measures a user's own GPU with the code as it is.
REFERENCE: dict[str, Any] = {
    "gpu": "one NVIDIA H200, measured 2026-12-04 (../shared/gpu/README.md)",
    "model": {"id": "Qwen/Qwen3-30B-A3B", "dtype": "bfloat16"},
    "forward_tokens_per_s": 35197,  # plain decoder forward, batch_tokens 32,768
    "extract_tokens_per_s": 23452,  # extract_to_store with per-token output (rule extract_routing)
    "score_tokens_per_s": 2408,  # loglikelihoods, batch 32, ~545-token contexts
    "generate_steps_per_s": {"32": 6.1, "128": 2.8},  # generate_greedy decode steps at these batch sizes
    "train_tokens_per_s": 7443,  # row-delta training of 128 experts over 48 layers, 4 x 1024 tokens
    "load_gb_per_s": 0.5,  # reading safetensors from a shared filesystem (not measured: a cautious guess)
    "startup_s": 300,  # imports, tokenising, CUDA context: per job (not measured: a cautious allowance)
}
RATE_KEYS = ("forward_tokens_per_s", "extract_tokens_per_s", "score_tokens_per_s", "train_tokens_per_s")


@dataclass(frozen=True)
class Throughput:
    """Figures for one model on one GPU (already scaled): tokens/s per path, decode steps/s per batch."""

    source: str
    tokens_per_s: Mapping[str, float]  # forward, extract, score, train
    steps_per_s: Mapping[int, float]  # generate decode steps/s by batch size
    load_gb_per_s: float
    startup_s: float
    scaled_from: str | None = None  # the model the figures were measured on, when it is another

    def rate(self, path: str) -> float:
        return self.tokens_per_s[path]

    def step_seconds(self, batch: int) -> float:
        """Seconds per decode step at `batch`: the figure at the smallest measured batch >= `batch`;
        beyond the largest measured batch, that one's time scaled up in proportion (cautious)."""
        measured = sorted(self.steps_per_s)
        for size in measured:
            if size >= batch:
                return 1.0 / self.steps_per_s[size]
        largest = measured[-1]
        return batch / largest / self.steps_per_s[largest]

    def load_seconds(self, weights_bytes: float) -> float:
        return self.startup_s + weights_bytes / 1e9 / self.load_gb_per_s


def _check(table: Mapping[str, Any], where: str) -> None:
    missing = [key for key in (*RATE_KEYS, "generate_steps_per_s", "model") if key not in table]
    if missing:
        raise ValueError(f"{where}: throughput table lacks {', '.join(missing)}")
    bad = [key for key in RATE_KEYS if not (isinstance(table[key], (int, float)) and table[key] > 0)]
    if bad or not table["generate_steps_per_s"]:
        what = ", ".join(bad) or "generate_steps_per_s"
        raise ValueError(f"{where}: throughput figures must be positive numbers ({what})")


def load_throughput(size: ModelSize, path: str | os.PathLike | None = None) -> Throughput:
    """The figures for the model of `size`: from `path` (a `polyroute calibrate` file) or REFERENCE,
    scaled when they were measured on another model."""
    table: Mapping[str, Any] = REFERENCE
    where = "built-in reference figures"
    if path is not None:
        if not os.path.isfile(path):
            raise ValueError(f"no throughput file {path} (write one with `polyroute calibrate --out {path}`)")
        with open(path, encoding="utf-8") as handle:
            table = json.load(handle)
        where = str(path)
    _check(table, where)
    measured_on = model_size(table["model"])
    same = (measured_on.total_params, measured_on.active_params) == (size.total_params, size.active_params)
    token_scale = 1.0 if same else measured_on.active_params / size.active_params
    step_scale = 1.0 if same else measured_on.total_params / size.total_params
    return Throughput(
        source=f"{table.get('gpu', '?')} ({where})",
        tokens_per_s={key.removesuffix("_tokens_per_s"): float(table[key]) * token_scale for key in RATE_KEYS},
        steps_per_s={int(batch): float(rate) * step_scale for batch, rate in table["generate_steps_per_s"].items()},
        load_gb_per_s=float(table.get("load_gb_per_s", REFERENCE["load_gb_per_s"])),
        startup_s=float(table.get("startup_s", REFERENCE["startup_s"])),
        scaled_from=None if same else measured_on.name,
    )

