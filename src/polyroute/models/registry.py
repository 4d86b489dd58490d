"""Dispatch on `config.model_type` to the family adapter; config-only description of a model."""

from __future__ import annotations

from typing import Any

from torch import nn

from polyroute.models.adapter import MoEAdapter
from polyroute.models.info import ModelInfo
from polyroute.models.families import FAMILIES

_BY_MODEL_TYPE: dict[str, type[MoEAdapter]] = {t: cls for cls in FAMILIES for t in cls.model_types}
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(_BY_MODEL_TYPE))


def _as_config(config: Any) -> Any:
    """Accept a PretrainedConfig or a plain dict (config.json contents)."""
    if isinstance(config, dict):
        model_type = config.get("model_type")
        _adapter_class(model_type)  # fail on an unknown family before transformers does
        from transformers import AutoConfig

        rest = {k: v for k, v in config.items() if k != "model_type"}
        return AutoConfig.for_model(model_type, **rest)
    return config


def _adapter_class(model_type: str | None) -> type[MoEAdapter]:
    try:
        return _BY_MODEL_TYPE[model_type]
    except KeyError:
        raise ValueError(
            f"model_type {model_type!r} is not a supported MoE family; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        ) from None


def get_adapter(model_or_config: Any) -> MoEAdapter:
    """The adapter for a model (nn.Module with `.config`), a PretrainedConfig, or a config dict.

    For a model, the MoE layers the config predicts must be those the model really has."""
    is_model = isinstance(model_or_config, nn.Module)
    config = _as_config(model_or_config.config if is_model else model_or_config)
    adapter = _adapter_class(getattr(config, "model_type", None))(config)
    if is_model:
        found = adapter.model_moe_layers(model_or_config)
        if found != adapter.moe_layers:
            raise ValueError(
                f"{adapter.family}: config predicts MoE layers {adapter.moe_layers} but the model has {found} "
                "(a remote-code or modified architecture?)"
            )
    return adapter


def describe(hf_config: Any, model: str = "", revision: str | None = None) -> ModelInfo:
    """The model-info record from the config alone (no weights): layout, top-k, parameter sizes."""
    return get_adapter(hf_config).info(model, revision)
