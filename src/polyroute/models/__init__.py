"""Load Hugging Face MoE models and describe each architecture family through one adapter contract.

`polyroute.models.info` (the model-info record) and `polyroute.models.params` (parameter counts from a
config dict) need no torch; the adapters do, so the names below are imported on first use and those
two modules stay torch-free.
"""

import importlib

_WHERE = {
    "ModelInfo": "polyroute.models.info",
    "read_model_info": "polyroute.models.info",
    "MoEAdapter": "polyroute.models.adapter",
    "FAMILIES": "polyroute.models.families",
    "load_config": "polyroute.models.loading",
    "load_model": "polyroute.models.loading",
    "SUPPORTED_MODEL_TYPES": "polyroute.models.registry",
    "describe": "polyroute.models.registry",
    "get_adapter": "polyroute.models.registry",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'polyroute.models' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
