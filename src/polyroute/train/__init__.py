"""Train only a chosen expert subnetwork (METHODS section 6): row deltas, DeepSpeed ZeRO, delta artifacts.

Public API:
- ``train_subnetwork(model_path, subnetwork, texts, out_dir, settings)`` -> TrainResult
- ``apply_delta(model, path)`` -> model, ``merge(base_path, delta_path, out_dir)``
- ``attach_deltas(model, plan)`` / ``detach_deltas``, ``build_plan(model, adapter, subnetwork)``
- ``TrainSettings``; routing enforcement is ``polyroute.interventions.enforce_routing``
Run as ``python -m polyroute.train ...`` or ``deepspeed --num_gpus N --module polyroute.train ...``.
"""

from polyroute.train.artifacts import apply_delta, load_delta, merge, save_delta
from polyroute.train.delta import RowDelta, attach_deltas, delta_parameters, detach_deltas
from polyroute.train.plan import build_plan, experts_by_layer
from polyroute.train.settings import TrainSettings


def train_subnetwork(*args, **kwargs):  # noqa: D103 - imported lazily: DeepSpeed is slow to import
    from polyroute.train.loop import train_subnetwork as _train

    return _train(*args, **kwargs)


train_subnetwork.__doc__ = "Train only the subnetwork's experts; see polyroute.train.loop.train_subnetwork."

__all__ = [
    "RowDelta", "TrainSettings", "apply_delta", "attach_deltas", "build_plan", "delta_parameters",
    "detach_deltas", "experts_by_layer", "load_delta", "merge", "save_delta",
    "train_subnetwork",
]
