"""CLI: ``python -m polyroute.train`` (or ``deepspeed --num_gpus N --module polyroute.train``).

Example::

    deepspeed --num_gpus 4 --module polyroute.train --model Qwen/Qwen3-30B-A3B-local \
        --subnetwork results/r/selection/rise/swh_Latn.json \
        --texts resources/data/flores_plus/swh_Latn.parquet --out results/r/adapters/rise/swh_Latn \
        --settings '{"zero_stage": 3, "epochs": 3}'
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path


def read_texts(path: str, field: str = "text") -> list[str]:
    """Texts from .parquet / .jsonl (column ``field``) or .txt (one per line)."""
    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(p)
        if field not in table.column_names:
            raise ValueError(f"{path}: no column {field!r} (columns: {table.column_names})")
        return [str(t) for t in table.column(field).to_pylist()]
    if p.suffix == ".jsonl":
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        missing = [i for i, r in enumerate(rows) if field not in r]
        if missing:
            raise ValueError(f"{path}: line {missing[0] + 1} has no field {field!r}")
        return [str(r[field]) for r in rows]
    if p.suffix == ".txt":
        return [line for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    raise ValueError(f"{path}: unsupported text file type {p.suffix!r} (use .parquet, .jsonl or .txt)")


def _settings(value: str | None) -> dict:
    if not value:
        return {}
    if os.path.exists(value):
        text = Path(value).read_text(encoding="utf-8")
        if value.endswith((".yaml", ".yml")):
            import yaml

            return yaml.safe_load(text) or {}
        return json.loads(text)
    return json.loads(value)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run ``train_subnetwork``."""
    ap = argparse.ArgumentParser(prog="python -m polyroute.train", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="local HF checkpoint directory (safetensors)")
    ap.add_argument("--subnetwork", required=True, help="subnetwork JSON file")
    ap.add_argument("--texts", required=True, nargs="+", help=".parquet/.jsonl/.txt files of training text")
    ap.add_argument("--text-field", default="text")
    ap.add_argument("--out", required=True, help="output directory (adapter)")
    ap.add_argument("--settings", default=None, help="JSON string, or a .json/.yaml file")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from polyroute.train.loop import train_subnetwork

    subnetwork = json.loads(Path(args.subnetwork).read_text(encoding="utf-8"))
    texts = [t for f in args.texts for t in read_texts(f, args.text_field)]
    result = train_subnetwork(args.model, subnetwork, texts, args.out, _settings(args.settings))
    logging.getLogger("polyroute.train").info("done: %d steps, final loss %.4f", result.steps, result.final_loss)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
