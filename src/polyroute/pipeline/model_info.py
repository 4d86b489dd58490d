"""Steps `model_info` (the model's config, no weights: its layout, the run's settings checked against
it) and `download_model` (on the login node, a hub model's weights into the Hugging Face cache, so
compute nodes never need the internet)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from polyroute.atomic import atomic_write_json
from polyroute.config import ConfigError, check_against_model
from polyroute.models.checkpoint import check_local_checkpoint, local_checkpoint

log = logging.getLogger(__name__)

WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]


def check_remote_code(model: Mapping[str, Any]) -> None:
    """A checkpoint whose architecture is not in transformers needs trust_remote_code: say so in one line."""
    from transformers import CONFIG_MAPPING, PretrainedConfig

    try:
        raw, _ = PretrainedConfig.get_config_dict(model["id"], revision=model.get("revision"))
    except OSError as exc:
        raise ConfigError(f"config error: 'model.id': cannot read the config of {model['id']} (revision "
                          f"{model.get('revision')}): {str(exc).splitlines()[0]}") from None
    model_type = raw.get("model_type")
    if model_type in CONFIG_MAPPING or model["trust_remote_code"]:
        return
    if "auto_map" in raw:
        raise ConfigError(
            f"config error: 'model.trust_remote_code': {model['id']} (model_type {model_type!r}) ships its own "
            "code, which runs only with model.trust_remote_code: true; prefer a transformers-native checkpoint"
        )
    raise ConfigError(f"config error: 'model.id': {model['id']} has an unknown model_type {model_type!r}")


def model_info(model: Mapping[str, Any], out: str | os.PathLike,
               run_config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Describe the model from its config, check `run_config` against it and write `out` (JSON).

    A local checkpoint is checked first (config, weights, their headers), so a broken one fails here
    rather than in the GPU jobs."""
    from polyroute.models import describe, load_config

    local = local_checkpoint(model["id"])
    if local is not None:
        check_local_checkpoint(local)
    check_remote_code(model)
    hf_config = load_config(model["id"], revision=model.get("revision"), trust_remote_code=model["trust_remote_code"])
    try:
        info = describe(hf_config, model=model["id"], revision=model["revision"])
    except ValueError as exc:
        raise ConfigError(f"config error: 'model.id': {model['id']}: {exc}") from None
    if run_config is not None:
        check_against_model(run_config, info)
    record = info.to_record()
    log.info("model %s: %s, MoE layers %s, E=%d, k=%d", model["id"], info.model_type, info.moe_layers,
             info.num_experts, info.top_k)
    atomic_write_json(out, record)
    return record


def download_model(model: Mapping[str, Any], out: str | os.PathLike) -> dict[str, Any]:
    """Fetch a hub model's weights into the Hugging Face cache and record where they are (JSON at `out`).

    A local checkpoint directory is checked (config, weights, their headers) and recorded as it is;
    nothing is fetched."""
    local = local_checkpoint(model["id"])
    if local is not None:
        files = check_local_checkpoint(local)
        path = str(local.resolve())
        log.info("model %s is a local checkpoint (%d weight files, headers read): nothing to fetch", model["id"], len(files))
    else:
        from huggingface_hub import snapshot_download

        log.info("fetching %s (revision %s) into the Hugging Face cache", model["id"], model["revision"])
        path = snapshot_download(model["id"], revision=model["revision"], allow_patterns=WEIGHT_PATTERNS)
    record = {"model_id": model["id"], "revision": model["revision"], "path": path}
    atomic_write_json(out, record)
    return record
