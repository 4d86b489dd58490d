"""Step `train_subnetwork`: train only the selected experts on target-language text.

Training runs in `<out>.partial/`, which Snakemake does not own, so the DeepSpeed checkpoints in it
survive a killed job (Snakemake deletes the declared output of an incomplete job before a rerun);
a rerun resumes from them when they were made by the same settings, subnetwork and data, and only
the finished adapter is renamed onto `<out>`. The job holds `<out>.lock` throughout, so a second
trainer of the same adapter fails at once instead of sharing `<out>.partial/`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from polyroute.atomic import check_replaceable, output_lock, publish_dir
from polyroute.pipeline.data import read_split, record_texts
from polyroute.select import read_subnetwork
from polyroute.train.artifacts import ADAPTER_FORMAT

log = logging.getLogger(__name__)

# config keys that are not training-loop settings (the subnetwork file or the launcher use them)
_NOT_LOOP = {"methods", "gpus", "train_routers"}


def loop_settings(training: Mapping[str, Any], model: Mapping[str, Any]) -> dict[str, Any]:
    """The training loop's settings from the config's `training` and `model` sections."""
    settings = {key: value for key, value in training.items() if key not in _NOT_LOOP}
    settings["dtype"] = model["dtype"]
    settings["trust_remote_code"] = model["trust_remote_code"]
    settings["revision"] = model.get("revision")
    return settings


def _launch(gpus: int, model_id: str, subnetwork: str | os.PathLike, texts: list[str], work: Path,
            settings: Mapping[str, Any]) -> None:
    """Several processes: the deepspeed launcher runs `python -m polyroute.train` on each GPU."""
    import json

    texts_file = work.parent / f"{work.name}.texts.jsonl"
    texts_file.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8")
    launcher = shutil.which("deepspeed") or str(Path(sys.executable).with_name("deepspeed"))
    command = [launcher, "--num_gpus", str(gpus), "--module", "polyroute.train", "--model", model_id,
               "--subnetwork", str(subnetwork), "--texts", str(texts_file), "--out", str(work),
               "--settings", json.dumps(dict(settings))]
    log.info("launching: %s", " ".join(command))
    subprocess.run(command, check=True)
    texts_file.unlink()


def train_subnetwork(*, model: Mapping[str, Any], subnetwork: str | os.PathLike, data: str | os.PathLike,
                     dataset: str, split: str | None, settings: Mapping[str, Any], out: str | os.PathLike) -> None:
    """Train the subnetwork on the target language's `split` of `dataset` and write the adapter at `out`."""
    sub = read_subnetwork(subnetwork)  # validates before any model is loaded
    texts = record_texts(read_split([data], split, dataset), dataset)
    options = loop_settings(settings, model)
    work = Path(f"{out}.partial")
    log.info("%s/%s: %d experts, %d texts, work dir %s", sub["method"], sub["target"], len(sub["experts"]),
             len(texts), work)
    with output_lock(out):
        check_replaceable(out, ADAPTER_FORMAT)
        if settings["gpus"] > 1:
            _launch(settings["gpus"], model["id"], subnetwork, texts, work, options)
        else:
            from polyroute.train.loop import train_subnetwork as run_loop

            run_loop(model["id"], sub, texts, work, options)
        publish_dir(work, out, ADAPTER_FORMAT)
    log.info("adapter written to %s", out)
