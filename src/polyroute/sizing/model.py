"""A model's size without its weights: total and active parameters, bf16 bytes, GPUs and host memory.

Dimensions come from a local checkpoint's config.json, else the published shapes
(`polyroute.models.shapes`), else a config.json already in the Hugging Face cache (after `model_info`
ran); nothing is downloaded.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyroute.models.params import param_counts_from_config
from polyroute.models.shapes import published_dimensions

__all__ = ["ModelSize", "model_dimensions", "model_size", "active_parameters", "gpus_needed", "host_memory_mb"]

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


@dataclass(frozen=True)
class ModelSize:
    name: str
    total_params: int
    active_params: int  # per token: attention, dense and shared MLPs, top-k experts, routers, lm_head
    bytes_per_param: int

    @property
    def weights_bytes(self) -> int:
        return self.total_params * self.bytes_per_param


def model_dimensions(model: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture dict (config.json keys) of the config's `model` block, without a download.
    Raises FileNotFoundError when none is at hand yet (a hub model neither published nor cached)."""
    name = str(model["id"])
    local = Path(name) / "config.json"
    if local.is_file():
        return json.loads(local.read_text(encoding="utf-8"))
    published = published_dimensions(name)
    if published is not None:
        return published
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(name, revision=model.get("revision"), local_files_only=True,
                                            trust_remote_code=bool(model.get("trust_remote_code", False)))
    except OSError as e:
        raise FileNotFoundError(f"model {name}: no local config.json, no published shape, not in the "
                                f"Hugging Face cache (run the workflow's model_info first)") from e
    return config.to_dict()


def active_parameters(dims: Mapping[str, Any]) -> int:
    """Parameters one token computes with: all but the input embedding (a lookup; tied, it is the
    lm_head and counts) and the routed experts outside the top-k of each MoE layer."""
    info = param_counts_from_config(dims)
    top_k = int(dims["num_experts_per_tok"])
    embedding = 0 if dims.get("tie_word_embeddings", False) else int(dims["vocab_size"]) * int(dims["hidden_size"])
    idle_experts = len(info.moe_layers) * (info.num_experts - top_k) * info.expert_params
    return info.total_params - embedding - idle_experts


def _bytes_per_param(model: Mapping[str, Any], dims: Mapping[str, Any]) -> int:
    dtype = model.get("dtype", "auto")
    if dtype == "auto":  # what the checkpoint stores; bf16 when it does not say
        dtype = str(dims.get("dtype") or dims.get("torch_dtype") or "bfloat16").removeprefix("torch.")
    if dtype not in _DTYPE_BYTES:
        raise ValueError(f"model dtype {dtype!r} is none of {', '.join(_DTYPE_BYTES)}")
    return _DTYPE_BYTES[dtype]


def model_size(model: Mapping[str, Any]) -> ModelSize:
    """The size of the config's `model` block (id, dtype); precomputed counts (a calibration file's
    `total_params`, `active_params`, `bytes_per_param`) are taken as they are."""
    if "total_params" in model:
        return ModelSize(str(model["id"]), int(model["total_params"]), int(model["active_params"]),
                         int(model["bytes_per_param"]))
    dims = model_dimensions(model)
    return ModelSize(str(model["id"]), param_counts_from_config(dims).total_params, active_parameters(dims),
                     _bytes_per_param(model, dims))


def gpus_needed(weights_bytes: int, gpu_memory_gb: float, headroom: float) -> int:
    """GPUs whose memory, less `headroom` (a fraction kept for activations, KV cache and the CUDA
    context), holds the weights: the loader spreads the model over them (device_map="auto")."""
    if not 0 <= headroom < 1:
        raise ValueError(f"cluster.gpu_headroom must be in [0, 1), got {headroom}")
    return max(1, math.ceil(weights_bytes / (gpu_memory_gb * 1e9 * (1 - headroom))))


def host_memory_mb(weights_bytes: int, *, training: bool = False, floor_mb: int = 16000) -> int:
    """Host memory of a GPU job in MB: the weights pass through it while loading (+10%, + 8 GB for the
    process and data); training holds a second copy (DeepSpeed's initialisation, offloaded state)."""
    copies = 2 if training else 1
    mb = weights_bytes * copies * 1.1 / 1e6 + 8000
    return max(floor_mb, int(math.ceil(mb / 1000) * 1000))
