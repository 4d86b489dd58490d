"""Load a Hugging Face MoE checkpoint (safetensors only) and its tokenizer, ready for inference."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

log = logging.getLogger(__name__)


def _device_map(device: str) -> Any:
    if device == "auto":
        return "auto" if torch.cuda.is_available() else None
    return {"": device}


def load_config(model_id_or_path: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """Only the config (no weights): enough for `describe`."""
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(model_id_or_path, revision=revision, trust_remote_code=trust_remote_code)


def load_model(
    model_id_or_path: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    experts_implementation: str | None = None,
    device: str = "auto",
) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer with a pad token). `device="auto"` spreads over the GPUs if any, else CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype != "auto" and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"dtype {dtype!r} is neither 'auto' nor a torch dtype name (bfloat16, float16, float32)")
    kwargs: dict[str, Any] = {
        "revision": revision,
        "dtype": dtype if dtype == "auto" else getattr(torch, dtype),
        "trust_remote_code": trust_remote_code,
        "use_safetensors": True,
        "device_map": _device_map(device),
    }
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if experts_implementation is not None:
        kwargs["experts_implementation"] = experts_implementation
    log.info("loading %s (revision %s, dtype %s, device %s)", model_id_or_path, revision, dtype, device)
    model = AutoModelForCausalLM.from_pretrained(model_id_or_path, **kwargs)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(model_id_or_path, revision=revision, trust_remote_code=trust_remote_code)
    if tokenizer.pad_token_id is None:
        # batching needs a pad id; padded positions are masked out, so any id works
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.convert_ids_to_tokens(0)
    return model, tokenizer


def load_configured_model(model: Mapping[str, Any], *, device: str = "auto") -> tuple[Any, Any]:
    """`load_model` with the config's `model` block (id, revision, dtype, trust_remote_code, kernels)."""
    return load_model(
        model["id"], revision=model.get("revision"), dtype=model.get("dtype", "auto"),
        trust_remote_code=model.get("trust_remote_code", False),
        attn_implementation=model.get("attn_implementation"),
        experts_implementation=model.get("experts_implementation"), device=device,
    )
