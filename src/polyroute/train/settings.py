"""Training settings for a subnetwork run (METHODS section 6 defaults, from RISE).

Settings the config has take its schema's defaults (`polyroute.config.schema_defaults`), so a run of
`python -m polyroute.train` or the Python API with a partial mapping behaves like the workflow's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from polyroute.config import schema_defaults

_TRAINING = schema_defaults("training")
_MODEL = schema_defaults("model")


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a training run; the config's keys default as in its schema."""

    lr: float = _TRAINING["lr"]
    epochs: int = _TRAINING["epochs"]
    max_length: int = _TRAINING["max_length"]
    weight_decay: float = _TRAINING["weight_decay"]
    warmup_ratio: float = _TRAINING["warmup_ratio"]
    seed: int = _TRAINING["seed"]
    zero_stage: int = _TRAINING["zero_stage"]
    micro_batch_size: int = _TRAINING["micro_batch_size"]
    gradient_accumulation: int = _TRAINING["gradient_accumulation"]
    checkpoint_every: int = _TRAINING["checkpoint_every"]  # optimizer steps between DeepSpeed checkpoints; 0 = never
    keep_checkpoints: bool = False  # delete checkpoints/ once the artifacts are written
    dtype: str = _MODEL["dtype"]  # auto = bf16 on GPU, fp32 on CPU
    max_grad_norm: float = 1.0  # 0 = no clipping
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    enforce_routing: bool = _TRAINING["enforce_routing"]  # Khandelwal: chosen layers route only to the chosen experts
    gradient_checkpointing: bool = _TRAINING["gradient_checkpointing"]  # bounds the per-layer copy of expert weights
    deterministic: bool = _TRAINING["deterministic"]  # deterministic kernels: reruns are bit-identical
    trust_remote_code: bool = _MODEL["trust_remote_code"]
    revision: str | None = None  # the base model's revision (the config's model.revision)
    max_steps: int = 0  # > 0 stops early (smoke runs); 0 = epochs decide

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "TrainSettings":
        """Build from a config mapping; unknown keys or bad values raise a one-line ValueError."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"training settings: unknown key(s) {unknown}; known: {sorted(known)}")
        if "adam_betas" in values:
            values["adam_betas"] = tuple(float(b) for b in values["adam_betas"])
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise ValueError naming the first offending setting."""
        checks = [
            ("lr", self.lr > 0),
            ("epochs", isinstance(self.epochs, int) and self.epochs >= 1),
            ("max_length", isinstance(self.max_length, int) and self.max_length >= 2),
            ("weight_decay", self.weight_decay >= 0),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1),
            ("zero_stage", self.zero_stage in (0, 1, 2, 3)),
            ("micro_batch_size", isinstance(self.micro_batch_size, int) and self.micro_batch_size >= 1),
            ("gradient_accumulation", isinstance(self.gradient_accumulation, int) and self.gradient_accumulation >= 1),
            ("checkpoint_every", isinstance(self.checkpoint_every, int) and self.checkpoint_every >= 0),
            ("dtype", self.dtype in ("auto", "float32", "bfloat16", "float16")),
            ("max_grad_norm", self.max_grad_norm >= 0),
            ("adam_betas", len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas)),
            ("max_steps", isinstance(self.max_steps, int) and self.max_steps >= 0),
        ]
        for key, ok in checks:
            if not ok:
                raise ValueError(f"training settings: invalid {key}={getattr(self, key)!r}")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (for logs and the subnetwork copy)."""
        out = dataclasses.asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        return out
