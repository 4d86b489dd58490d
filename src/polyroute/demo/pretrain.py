"""Pretraining the demo MoE: a small Qwen3-MoE with its own tokenizer, trained from a seed on the
demo corpus (`polyroute.demo.corpus`) and the bundle's FLORES ``dev`` text, with an imbalanced mix.

The mix says which share of each language's training text the model sees: English (the reference)
and the other high-resource languages all of it, middle ones half, Swahili (the demo's weak
target) a tenth. The rest of Swahili's ``devtest`` stays unseen for adaptation, and the corpus'
``dev`` split (parallel) and the bundle's FLORES ``devtest`` are never trained on, so held-out
losses are clean. Texts of one language are packed into blocks of ``block_length`` tokens (each
text ends with eos); batches follow `polyroute.train.data.BatchOrder`, the learning rate its
``lr_factor`` schedule. Everything runs in float32 on ``threads`` CPU threads with deterministic
kernels, so the same settings give the same numbers, step for step: a run stopped after ``n``
steps logs exactly the first ``n`` rows of the full run's ``pretrain_log.csv``.

Output directory: the model (stored in ``dtype``) and tokenizer as saved by transformers, plus
``pretraining.json`` (settings, tokens per language, final held-out losses) and
``pretrain_log.csv`` (step, lr, lm_loss, aux_loss; held-out loss at every ``eval_every`` steps).
Intermediate checkpoints, when asked for, go to ``checkpoints/step-<n>/`` inside it: the weights
after step ``n`` of the same run (so ``stop_after=n`` would save the same ones), each a loadable
model with the tokenizer and ``checkpoint.json`` (step, tokens seen, held-out loss when logged).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from polyroute import languages
from polyroute.atomic import atomic_write_bytes
from polyroute.demo.model import check_dtype, model_config, publish_dir, train_tokenizer

__all__ = ["DIMS", "MIX", "Settings", "Texts", "read_texts", "heldout_loss", "checkpoint_dir", "pretrain"]

log = logging.getLogger(__name__)

# Qwen3-MoE, every layer sparse, top-2 of 16 experts. Nothing in the pipeline may assume these.
DIMS: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 6,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "num_experts": 16,
    "num_experts_per_tok": 2,
    "norm_topk_prob": True,
    "router_aux_loss_coef": 0.01,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}

# Share of each language's training text that pretraining sees (unlisted languages: `default_share`).
MIX: dict[str, float] = {
    "eng_Latn": 1.0, "fra_Latn": 1.0, "deu_Latn": 1.0, "spa_Latn": 1.0, "zho_Hans": 1.0,
    "rus_Cyrl": 0.5, "ell_Grek": 0.5, "arb_Arab": 0.5, "hin_Deva": 0.5,
    "swh_Latn": 0.1,
}


@dataclass(frozen=True)
class Settings:
    """Everything that decides the pretrained model's numbers."""

    seed: int = 0
    vocab_size: int = 4096
    dims: Mapping[str, Any] = field(default_factory=lambda: dict(DIMS))
    mix: Mapping[str, float] = field(default_factory=lambda: dict(MIX))
    default_share: float = 0.5
    block_length: int = 128
    batch_size: int = 16
    steps: int = 400
    lr: float = 3e-3
    warmup_ratio: float = 0.05
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    eval_every: int = 50
    threads: int = 1  # on a shared 2-core machine one thread is 3-5x faster than two (no OpenMP waits)
    dtype: str = "bfloat16"

    def check(self) -> None:
        check_dtype(self.dtype)
        for name in ("vocab_size", "block_length", "batch_size", "steps", "eval_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"pretraining setting {name} must be >= 1, got {getattr(self, name)}")
        bad = {k: v for k, v in {**self.mix, "default_share": self.default_share}.items() if not 0 < v <= 1}
        if bad:
            raise ValueError(f"mix shares must be in (0, 1], got {bad}")

    def share(self, language: str) -> float:
        return self.mix.get(language, self.default_share)


@dataclass(frozen=True)
class Texts:
    """Per language: the texts pretraining sees, and held-out texts it never sees."""

    train: dict[str, list[str]]
    heldout: dict[str, dict[str, list[str]]]  # language -> held-out set name -> texts


def _jsonl_texts(path: Path) -> list[str]:
    if not path.is_file():
        raise ValueError(f"missing {path} (build the corpus: python -m polyroute.demo corpus)")
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines()]


def _sample(texts: list[str], share: float, key: str) -> list[str]:
    n = max(1, round(share * len(texts)))
    return random.Random(key).sample(texts, n)


def read_texts(corpus_dir: str | os.PathLike, bundle_dir: str | os.PathLike, langs: Sequence[str],
               settings: Settings) -> Texts:
    """The mixed pretraining texts (corpus ``devtest`` and bundle FLORES ``dev``, each sampled at the
    language's share) and the held-out sets (corpus ``dev``, bundle FLORES ``devtest``)."""
    train, heldout = {}, {}
    for code in langs:
        config = languages.to_dataset_code(code, "flores_plus")
        corpus = _jsonl_texts(Path(corpus_dir) / "flores_plus" / config / "devtest.jsonl")
        flores = _jsonl_texts(Path(bundle_dir) / "flores_plus" / config / "dev.jsonl")
        share = settings.share(code)
        train[code] = (_sample(corpus, share, f"{settings.seed}:corpus:{code}")
                       + _sample(flores, share, f"{settings.seed}:flores:{code}"))
        heldout[code] = {
            "corpus_dev": _jsonl_texts(Path(corpus_dir) / "flores_plus" / config / "dev.jsonl"),
            "flores_devtest": _jsonl_texts(Path(bundle_dir) / "flores_plus" / config / "devtest.jsonl"),
        }
    return Texts(train, heldout)


def _blocks(tokenizer, texts: Sequence[str], length: int, key: str) -> list[list[int]]:
    """`texts` in a seeded order, each followed by eos, concatenated and cut into full blocks."""
    order = list(texts)
    random.Random(key).shuffle(order)
    stream: list[int] = []
    for ids in tokenizer(order, add_special_tokens=False)["input_ids"]:
        stream += ids + [tokenizer.eos_token_id]
    blocks = [stream[i:i + length] for i in range(0, len(stream) - length + 1, length)]
    if not blocks:  # a language with less than one block still trains on what it has
        blocks = [stream]
    return blocks


def heldout_loss(model, tokenizer, texts: Sequence[str], batch_size: int = 64) -> float:
    """Mean next-token loss (nats per predicted token) over `texts`, each scored alone (text + eos)."""
    import torch

    from polyroute.train.data import collate

    seqs = [ids + [tokenizer.eos_token_id] for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            batch = collate(seqs[i:i + batch_size], tokenizer.pad_token_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            labels = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels.flatten(),
                                                    ignore_index=-100, reduction="sum")
            total += float(nll)
            count += int((labels != -100).sum())
    return total / count


def _deterministic(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def _train(model, blocks: list[list[int]], settings: Settings, stop_after: int, evaluate,
           after_step: Callable[[dict, int], None] = lambda row, tokens: None) -> list[dict]:
    import torch

    from polyroute.train.data import BatchOrder, lr_factor

    order = BatchOrder(len(blocks), settings.batch_size, 1, 1, settings.seed)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "norm" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.95))
    rows, tokens, start = [], 0, time.perf_counter()
    model.train()
    for step in range(min(stop_after, settings.steps)):
        lr = settings.lr * lr_factor(step, settings.steps, settings.warmup_ratio)
        for group in opt.param_groups:
            group["lr"] = lr
        batch = [blocks[i] for i in order.step_micro_batches(step)[0]]
        width = max(len(b) for b in batch)
        ids = torch.tensor([b + [model.config.pad_token_id] * (width - len(b)) for b in batch])
        labels = torch.tensor([b + [-100] * (width - len(b)) for b in batch])
        out = model(input_ids=ids, labels=labels, output_router_logits=True)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        opt.step()
        tokens += int((labels != -100).sum())
        aux = float(out.aux_loss.detach())
        row = {"step": step + 1, "lr": lr, "lm_loss": float(out.loss.detach()) - model.config.router_aux_loss_coef * aux,
               "aux_loss": aux, "heldout_loss": ""}
        if (step + 1) % settings.eval_every == 0 or step + 1 == settings.steps:
            row["heldout_loss"] = evaluate()
            model.train()
            elapsed = time.perf_counter() - start
            log.info("step %d: lm %.3f held-out %.3f (%.0f tokens/s)", step + 1, row["lm_loss"],
                     row["heldout_loss"], tokens / elapsed)
        rows.append(row)
        after_step(row, tokens)
    if rows:
        log.info("%d steps, %d tokens in %.0f s: %.0f tokens/s", len(rows), tokens,
                 time.perf_counter() - start, tokens / (time.perf_counter() - start))
    return rows


def _csv(rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "lr", "lm_loss", "aux_loss", "heldout_loss"],
                            lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})
    return buf.getvalue().encode()


def checkpoint_dir(step: int) -> str:
    """Where the checkpoint after `step` lies inside the output directory."""
    return f"checkpoints/step-{step:04d}"


def pretrain(out_dir: str | os.PathLike, corpus_dir: str | os.PathLike = "resources/demo/corpus",
             bundle_dir: str | os.PathLike = "resources/demo", langs: Sequence[str] | None = None,
             settings: Settings = Settings(), stop_after: int | None = None,
             checkpoints: Sequence[int] = ()) -> Path:
    """Train the tokenizer and the MoE on the mixed texts; save model, tokenizer, log and summary.

    `langs` defaults to every language of the corpus. `stop_after` ends the run early (the
    schedule is still that of ``settings.steps``); 0 saves the initialised, untrained model.
    `checkpoints` are steps whose weights are kept too (``checkpoint_dir(step)``), for the
    routing's training dynamics; keeping them changes nothing in the run.
    """
    import torch
    from transformers import AutoModelForCausalLM

    settings.check()
    last = settings.steps if stop_after is None else min(stop_after, settings.steps)
    bad = [step for step in checkpoints if not 1 <= step <= last]
    if bad:
        raise ValueError(f"checkpoint steps must lie in 1..{last}, got {bad}")
    if langs is None:
        langs = [languages.from_dataset_code(p.name, "flores_plus") for p in (Path(corpus_dir) / "flores_plus").iterdir()]
    langs = sorted(langs)  # the order never changes the model
    texts = read_texts(corpus_dir, bundle_dir, langs, settings)
    _deterministic(settings.threads)
    tokenizer = train_tokenizer([t for code in langs for t in texts.train[code]], settings.vocab_size,
                                max_length=settings.dims.get("max_position_embeddings", DIMS["max_position_embeddings"]))
    config = model_config(tokenizer, settings.dims, defaults=DIMS)
    blocks, seen = [], {}
    for code in langs:
        lang_blocks = _blocks(tokenizer, texts.train[code], settings.block_length, f"{settings.seed}:pack:{code}")
        blocks += lang_blocks
        seen[code] = {"texts": len(texts.train[code]), "tokens": sum(map(len, lang_blocks))}

    torch.manual_seed(settings.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    every = [t for code in langs for t in texts.heldout[code]["corpus_dev"]]
    kept: dict[int, tuple[dict, dict]] = {}  # step -> (weights in the stored dtype, checkpoint.json)

    def keep(row: dict, tokens: int) -> None:
        if row["step"] in checkpoints:
            weights = {k: v.detach().to(getattr(torch, settings.dtype)).clone() for k, v in model.state_dict().items()}
            kept[row["step"]] = weights, {"step": row["step"], "tokens": tokens, "of_steps": settings.steps,
                                          "heldout_loss": row["heldout_loss"] if row["heldout_loss"] != "" else None}

    rows = _train(model, blocks, settings, settings.steps if stop_after is None else stop_after,
                  lambda: heldout_loss(model, tokenizer, every), keep)
    model.to(getattr(torch, settings.dtype)).float()  # score the weights as they are stored
    final = {code: {name: heldout_loss(model, tokenizer, t) for name, t in sets.items()}
             for code, sets in texts.heldout.items()}
    summary = {"settings": asdict(settings), "steps_run": len(rows), "languages": seen,
               "heldout_loss": final, "params": sum(p.numel() for p in model.parameters()),
               "checkpoints": {checkpoint_dir(step): meta for step, (_, meta) in sorted(kept.items())}}

    def write(tmp: Path) -> None:
        model.to(getattr(torch, settings.dtype)).eval()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_bytes(tmp / "pretraining.json", (json.dumps(summary, indent=1) + "\n").encode())
        atomic_write_bytes(tmp / "pretrain_log.csv", _csv(rows))
        for step, (weights, meta) in sorted(kept.items()):
            where = tmp / checkpoint_dir(step)
            model.save_pretrained(where, state_dict=weights)  # same config, the step's weights
            tokenizer.save_pretrained(where)
            atomic_write_bytes(where / "checkpoint.json", (json.dumps(meta, indent=1) + "\n").encode())

    return publish_dir(out_dir, write)

