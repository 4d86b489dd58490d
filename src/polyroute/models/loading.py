"""Load a Hugging Face MoE checkpoint (safetensors only) and its tokenizer, ready for inference."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from polyroute.models.checkpoint import local_checkpoint
from polyroute.models.remote_code import allowed_remote_code

log = logging.getLogger(__name__)


def _device_map(device: str) -> Any:
    if device == "auto":
        return "auto" if torch.cuda.is_available() else None
    return {"": device}


def load_config(model_id_or_path: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """Only the config (no weights): enough for `describe`."""
    from transformers import AutoConfig

    local_checkpoint(model_id_or_path)  # a mistyped path: one line, not a hub lookup
    trust = allowed_remote_code(model_id_or_path, revision, trust_remote_code)
    return AutoConfig.from_pretrained(model_id_or_path, revision=revision, trust_remote_code=trust)


def load_model(
    model_id_or_path: str,
    *,
    revision: str | None = None,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    experts_implementation: str | None = None,
    device: str = "auto",
    untrained_seed: int | None = None,
) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer with a pad token). `device="auto"` spreads over the GPUs if any, else CPU.

    `untrained_seed` builds the architecture from the checkpoint's config with fresh weights (the
    family's own initialisation under that torch seed) instead of loading them: the noise floor of
    the routing statistics. Such a model is built on one device (the first GPU, or the CPU).
    """
    from transformers import AutoModelForCausalLM

    if dtype != "auto" and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"dtype {dtype!r} is neither 'auto' nor a torch dtype name (bfloat16, float16, float32)")
    local_checkpoint(model_id_or_path)  # a mistyped path: one line, not a hub lookup
    trust_remote_code = allowed_remote_code(model_id_or_path, revision, trust_remote_code)
    if untrained_seed is not None:
        model = _untrained_model(model_id_or_path, revision=revision, dtype=dtype, trust_remote_code=trust_remote_code,
                                 attn_implementation=attn_implementation,
                                 experts_implementation=experts_implementation, device=device, seed=untrained_seed)
        return model, load_tokenizer(model_id_or_path, revision=revision, trust_remote_code=trust_remote_code)
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
    return model, load_tokenizer(model_id_or_path, revision=revision, trust_remote_code=trust_remote_code)


def load_tokenizer(model_id_or_path: str, *, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    """The checkpoint's tokenizer, with a pad token for batching."""
    from transformers import AutoTokenizer

    trust = allowed_remote_code(model_id_or_path, revision, trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(model_id_or_path, revision=revision, trust_remote_code=trust)
    if tokenizer.pad_token_id is None:
        # batching needs a pad id; padded positions are masked out, so any id works
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.convert_ids_to_tokens(0)
    return tokenizer


def _untrained_model(model_id_or_path: str, *, revision: str | None, dtype: str, trust_remote_code: bool,
                     attn_implementation: str | None, experts_implementation: str | None, device: str,
                     seed: int) -> Any:
    """The checkpoint's architecture with weights initialised afresh under torch seed `seed`, in eval mode."""
    from transformers import AutoModelForCausalLM

    config = load_config(model_id_or_path, revision=revision, trust_remote_code=trust_remote_code)
    if device == "auto":
        device = "cuda:0" if torch.cuda.is_available() else "cpu"
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    wanted = getattr(config, "dtype", None) if dtype == "auto" else dtype  # auto: what the checkpoint stores
    if wanted is not None:
        kwargs["dtype"] = getattr(torch, wanted) if isinstance(wanted, str) else wanted
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if experts_implementation is not None:
        kwargs["experts_implementation"] = experts_implementation
    log.info("building %s untrained (torch seed %d, dtype %s, device %s)", model_id_or_path, seed, dtype, device)
    torch.manual_seed(seed)
    with torch.device(device):  # initialised where it runs: a large model never sits in host memory
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    model.eval()
    return model


def load_configured_model(model: Mapping[str, Any], *, device: str = "auto",
                          untrained_seed: int | None = None) -> tuple[Any, Any]:
    """`load_model` with the config's `model` block (id, revision, dtype, trust_remote_code, kernels)."""
    return load_model(
        model["id"], revision=model.get("revision"), dtype=model.get("dtype", "auto"),
        trust_remote_code=model.get("trust_remote_code", False),
        attn_implementation=model.get("attn_implementation"),
        experts_implementation=model.get("experts_implementation"), device=device, untrained_seed=untrained_seed,
    )
