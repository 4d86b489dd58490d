"""Load Hugging Face MoE models and describe each architecture family through one adapter contract."""

from polyroute.models.adapter import ModelInfo, MoEAdapter
from polyroute.models.families import FAMILIES
from polyroute.models.loading import load_config, load_model
from polyroute.models.registry import SUPPORTED_MODEL_TYPES, describe, get_adapter

__all__ = [
    "FAMILIES",
    "ModelInfo",
    "MoEAdapter",
    "SUPPORTED_MODEL_TYPES",
    "describe",
    "get_adapter",
    "load_config",
    "load_model",
]
