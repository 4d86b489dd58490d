"""The training-loss figure of a subnetwork run (``loss.png`` next to the adapter)."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

from polyroute.atomic import atomic_write_bytes


def plot_loss(rows: Sequence[Mapping[str, float]], out: str | os.PathLike, title: str) -> None:
    """Loss per optimizer step (rows of the training log: ``step``, ``loss``) as a PNG at ``out``, atomically."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss (causal LM)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(out, buf.getvalue())
