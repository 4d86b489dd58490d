"""Train a subnetwork with DeepSpeed ZeRO: deltas on the selected experts, everything else frozen.

One code path for 1..N processes: started by the ``deepspeed`` launcher (or torchrun) it reads
RANK/WORLD_SIZE from the environment; started as a plain process it runs as a world of one.
Checkpoints (``out_dir/checkpoints``, DeepSpeed's own format, trainable state only) are written every
``checkpoint_every`` steps and a rerun resumes from the latest: the data of step ``s`` depends only
on (seed, s), so a resumed run ends where an uninterrupted one does. ``checkpoints/run.json`` records
what made them (settings, subnetwork, a digest of the texts, model, world size); a rerun with any of
these changed discards them, with a line in the log, and starts afresh.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from polyroute.atomic import MARKER_NAME, atomic_write_json, atomic_write_text, config_hash, write_marker
from polyroute.models.remote_code import allowed_remote_code
from polyroute.plots.training import plot_loss
from polyroute.train.artifacts import ADAPTER_FORMAT, base_record, save_delta
from polyroute.train.data import BatchOrder, collate, lr_factor, tokenize_texts
from polyroute.train.delta import attach_deltas, count_delta_elements, delta_parameters
from polyroute.interventions.enforce import enforce_routing
from polyroute.train.plan import build_plan, experts_by_layer
from polyroute.train.settings import TrainSettings

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
RUN_RECORD = "run.json"  # in CHECKPOINT_DIR: what made the checkpoints
# settings that do not change what training computes: checkpoints made under others still resume
_RESUME_NEUTRAL = ("checkpoint_every", "keep_checkpoints")
LOG_FIELDS = ("step", "epoch", "loss", "lr")


@dataclass
class TrainResult:
    """What a run produced (on every rank; only rank 0 writes files)."""

    out_dir: Path
    steps: int
    final_loss: float
    params_trainable: int
    resumed_from: int  # optimizer step the run resumed at (0 = fresh)
    log: list[dict[str, float]] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False)  # the trained module, deltas attached


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(use_cuda: bool) -> tuple[int, int]:
    """Join (or, for a plain process, create) the process group; return (rank, world_size)."""
    import deepspeed
    import torch.distributed as dist

    if not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        # DeepSpeed probes its optional ops by compiling test programs on first use
        log.info("starting the process group; a linker line such as 'cannot find -laio' that follows "
                 "is DeepSpeed probing for async I/O, which training does not use")
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # started by a launcher
            deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False)
        else:
            # A plain process is a group of one. Its rendezvous address is passed, not exported:
            # a MASTER_PORT/RANK left in os.environ would be inherited by child processes (a
            # Snakemake job, a test) whose own group would then collide on the same port.
            # The engine itself reads LOCAL_RANK, which is harmless to inherit.
            os.environ["LOCAL_RANK"] = "0"
            deepspeed.init_distributed(
                dist_backend=backend,
                auto_mpi_discovery=False,
                init_method=f"tcp://127.0.0.1:{_free_port()}",
                rank=0,
                world_size=1,
            )
    return dist.get_rank(), dist.get_world_size()


@contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """Deterministic kernels inside the block (when `enabled`), the caller's choice restored after.

    The MoE experts' token gather (``hidden[perm // k]``) has a backward that adds with atomics on
    CPU and GPU, so two runs differ in the last bits and a rerun's delta is not the same file.
    Ops without a deterministic version warn instead of failing (``warn_only``).
    """
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if torch.cuda.is_available():
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS' deterministic workspace
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


def resolve_dtype(name: str, use_cuda: bool) -> torch.dtype:
    """``auto`` -> bf16 on GPU, fp32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if use_cuda else torch.float32
    return getattr(torch, name)


# DeepSpeed's default ZeRO bucket (elements); reduce_bucket_size and allgather_bucket_size.
DEEPSPEED_BUCKET = 500_000_000


def deepspeed_config(settings: TrainSettings, dtype: torch.dtype, trainable: int) -> dict[str, Any]:
    """The DeepSpeed config for these settings (optimizer and scheduler are ours, passed as objects).

    ZeRO's gradient buckets are sized to the `trainable` elements, up to DeepSpeed's default: it
    allocates a bucket afresh on every micro-step, and on CPU a default 2 GB bucket for a subnetwork
    of a few million weights costs more (page faults, freeing) than the step's own compute.
    """
    bucket = max(1, min(DEEPSPEED_BUCKET, trainable))
    return {
        "train_micro_batch_size_per_gpu": settings.micro_batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation,
        "gradient_clipping": settings.max_grad_norm,
        "zero_optimization": {"stage": settings.zero_stage, "reduce_bucket_size": bucket,
                              "allgather_bucket_size": bucket},
        "bf16": {"enabled": dtype == torch.bfloat16},
        "fp16": {"enabled": dtype == torch.float16},
        "zero_allow_untested_optimizer": True,  # torch AdamW over the delta tensors
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _expert_module_classes(model: nn.Module, adapter: Any, layers: list[int]) -> list[type]:
    classes = []
    for layer in layers:
        cls = type(adapter.experts(model, layer)) if hasattr(adapter, "experts") else None
        if cls is not None and cls not in classes:
            classes.append(cls)
    return classes


def _write_log_csv(path: Path, rows: list[dict[str, float]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: r[k] for k in LOG_FIELDS})
    atomic_write_text(path, buf.getvalue())


def _get_adapter(model: nn.Module) -> Any:
    from polyroute.models import get_adapter

    return get_adapter(model)


@dataclass
class _Run:
    """A set-up run: the DeepSpeed engine over the delta-carrying model, its data and its place."""

    engine: Any
    scheduler: Any
    entries: dict  # delta entries by parameter name (polyroute.train.delta)
    seqs: list  # tokenized texts
    pad_id: int
    order: BatchOrder
    total: int  # optimizer steps of the whole run
    rank: int
    world: int
    out: Path
    model_type: str
    base: dict  # the delta's record of its base model (polyroute.train.artifacts.base_record)

    @property
    def checkpoints(self) -> Path:
        return self.out / CHECKPOINT_DIR


def _setup(model_path: str | os.PathLike, subnetwork: Mapping[str, Any], texts: list[str], out: Path,
           s: TrainSettings, adapter: Any) -> _Run:
    """Join the process group, load tokenizer and model, attach the deltas and build the engine."""
    import deepspeed
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, AutoTokenizer

    allowed = experts_by_layer(subnetwork)
    use_cuda = torch.cuda.is_available()
    dtype = resolve_dtype(s.dtype, use_cuda)
    rank, world = init_distributed(use_cuda)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER_NAME).unlink(missing_ok=True)  # this directory is untrusted until we finish
    dist.barrier()

    torch.manual_seed(s.seed)
    trust = allowed_remote_code(str(model_path), s.revision, s.trust_remote_code)
    tokenizer = AutoTokenizer.from_pretrained(model_path, revision=s.revision, trust_remote_code=trust)
    seqs = tokenize_texts(tokenizer, texts, s.max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError(f"{model_path}: tokenizer has neither a pad nor an eos token")
    model = AutoModelForCausalLM.from_pretrained(model_path, revision=s.revision, dtype=dtype, use_safetensors=True,
                                                 trust_remote_code=trust)
    model.config.use_cache = False
    adapter = adapter if adapter is not None else _get_adapter(model)
    plan = build_plan(model, adapter, subnetwork)
    leaf_classes = _expert_module_classes(model, adapter, list(allowed))
    base = base_record(model, model_path, s.revision, plan)
    entries = attach_deltas(model, plan)
    if s.enforce_routing:
        enforce_routing(model, adapter, allowed).start()  # for the whole run
    if s.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if s.zero_stage == 3:
        model.enable_input_require_grads()  # gradients must flow through frozen early layers
        if leaf_classes:
            deepspeed.utils.set_z3_leaf_modules(model, leaf_classes)  # gather a layer's experts at once
    model.train()

    order = BatchOrder(len(seqs), s.micro_batch_size, world, s.gradient_accumulation, s.seed)
    total = order.steps_per_epoch * s.epochs
    if s.max_steps:
        total = min(total, s.max_steps)
    params = delta_parameters(entries)
    optimizer = torch.optim.AdamW(params, lr=s.lr, betas=s.adam_betas, eps=s.adam_eps,
                                  weight_decay=s.weight_decay, foreach=False)

    def make_scheduler(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, s.warmup_ratio))

    engine, _, _, scheduler = deepspeed.initialize(model=model, optimizer=optimizer, model_parameters=params,
                                                   lr_scheduler=make_scheduler, config=deepspeed_config(s, dtype, count_delta_elements(entries)))
    return _Run(engine, scheduler, entries, seqs, pad_id, order, total, rank, world, out, model.config.model_type,
                base)


def run_record(s: TrainSettings, subnetwork: Mapping[str, Any], texts: list[str], base: Mapping[str, str],
               world: int) -> dict[str, Any]:
    """What makes a run's checkpoints: its settings, subnetwork, texts (a digest), base model and world size."""
    settings = {k: v for k, v in s.as_dict().items() if k not in _RESUME_NEUTRAL}
    return {"settings": settings, "subnetwork": config_hash(dict(subnetwork)),
            "texts": config_hash({"texts": texts}), "base": dict(base), "world_size": world}


def _discard_foreign_checkpoints(run: _Run, record: Mapping[str, Any]) -> None:
    """Remove checkpoints that another run's settings, subnetwork or data made (a line in the log says which)."""
    import torch.distributed as dist

    path = run.checkpoints / RUN_RECORD
    if not run.checkpoints.exists():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = None
    if before != json.loads(json.dumps(record)):
        changed = "no record of what made them" if before is None else ", ".join(
            _differences(before, json.loads(json.dumps(record))))
        log.warning("discarding the checkpoints in %s: made by another run (%s); training starts afresh",
                    run.checkpoints, changed)
        dist.barrier()  # every rank has looked before rank 0 removes
        if run.rank == 0:
            shutil.rmtree(run.checkpoints, ignore_errors=True)
    dist.barrier()


def _differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict) and key == "settings":
            out += [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(f"{key} changed")
    return out


def _resume(run: _Run, record: Mapping[str, Any]) -> tuple[int, list[dict[str, float]]]:
    """(step, log rows) of the latest checkpoint in the run's directory; (0, []) for a fresh run.

    Checkpoints of another run (``record`` differs from theirs) are discarded; the record is written
    before training so that checkpoints never exist without it."""
    _discard_foreign_checkpoints(run, record)
    if run.rank == 0:
        run.checkpoints.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run.checkpoints / RUN_RECORD, dict(record))
    if (run.checkpoints / "latest").exists():
        path, client = run.engine.load_checkpoint(str(run.checkpoints), load_module_strict=False)
        if path is not None:
            torch.set_rng_state(client["rng"])
            log.info("resumed from %s at step %d", path, int(client["step"]))
            return int(client["step"]), list(client["log"])
    return 0, []


def _train_steps(run: _Run, s: TrainSettings, start: int, rows: list[dict[str, float]]) -> None:
    """Optimizer steps ``start .. total``, appending one log row each and checkpointing on schedule."""
    import torch.distributed as dist

    engine = run.engine
    for step in range(start, run.total):
        lr = run.scheduler.get_last_lr()[0]
        losses = []
        for ids in run.order.rank_micro_batches(step, run.rank):
            batch = {k: v.to(engine.device) for k, v in collate([run.seqs[i] for i in ids], run.pad_id).items()}
            loss = engine(**batch).loss
            engine.backward(loss)
            engine.step()
            losses.append(loss.detach().float())
        mean = torch.stack(losses).mean().reshape(1).to(engine.device)
        dist.all_reduce(mean)
        rows.append({"step": step + 1, "epoch": step // run.order.steps_per_epoch, "loss": mean.item() / run.world,
                     "lr": lr})
        if s.checkpoint_every and (step + 1) % s.checkpoint_every == 0 and step + 1 < run.total:
            engine.save_checkpoint(str(run.checkpoints), tag=f"step{step + 1:08d}", exclude_frozen_parameters=True,
                                   client_state={"step": step + 1, "log": rows, "rng": torch.get_rng_state()})


def _save(run: _Run, s: TrainSettings, model_path: str | os.PathLike, subnetwork: Mapping[str, Any],
          rows: list[dict[str, float]], start: int, elapsed: float) -> int:
    """Gather the deltas and (rank 0) write the artifacts, marker last; returns the trained element count."""
    import deepspeed

    deltas = {}
    for name, e in run.entries.items():
        full = deepspeed.utils.safe_get_full_fp32_param(e.param.delta)  # collective under ZeRO-3
        deltas[name] = (e.param.rows, (full if full is not None else e.param.delta).detach().float().cpu())
    n_train = count_delta_elements(run.entries) if s.zero_stage < 3 else sum(d.numel() for _, d in deltas.values())
    if run.rank == 0:
        out = run.out
        meta = {"model": str(model_path), "model_type": run.model_type, "steps": run.total, "settings": s.as_dict(),
                **run.base}
        save_delta(out / "delta.safetensors", deltas, metadata=meta)
        atomic_write_json(out / "subnetwork.json", dict(subnetwork))
        atomic_write_json(out / "settings.json", s.as_dict())
        _write_log_csv(out / "train_log.csv", rows)
        plot_loss(rows, out / "loss.png", f"{subnetwork.get('method', '?')} -> {subnetwork.get('target', '?')}")
        if not s.keep_checkpoints:
            shutil.rmtree(run.checkpoints, ignore_errors=True)
        write_marker(out, {"format": ADAPTER_FORMAT, "steps": run.total, "final_loss": rows[-1]["loss"] if rows else None,
                           "params_trainable": n_train, "world_size": run.world, "resumed_from": start,
                           "train_seconds": round(elapsed, 3), "zero_stage": s.zero_stage})
    return n_train


def train_subnetwork(model_path: str | os.PathLike, subnetwork: Mapping[str, Any], texts: list[str],
                     out_dir: str | os.PathLike, settings: Mapping[str, Any] | TrainSettings | None = None,
                     *, adapter: Any = None, return_model: bool = False) -> TrainResult:
    """Train only ``subnetwork``'s experts of the model at ``model_path`` on ``texts``; write the delta.

    Writes to ``out_dir``: ``delta.safetensors``, ``subnetwork.json``, ``train_log.csv``, ``loss.png``,
    ``settings.json`` and, last, the completion marker ``.complete``. ``adapter`` defaults to
    ``polyroute.models.get_adapter(model)``. Bad settings, subnetwork or texts raise ValueError
    before the model is loaded (except checks that need the model's shapes).
    """
    import torch.distributed as dist

    s = settings if isinstance(settings, TrainSettings) else TrainSettings.from_dict(settings)
    experts_by_layer(subnetwork)  # a malformed subnetwork fails before any model work
    if not texts:
        raise ValueError("texts: empty; nothing to train on")
    with deterministic_kernels(s.deterministic):
        run = _setup(model_path, subnetwork, texts, Path(out_dir), s, adapter)
        start, rows = _resume(run, run_record(s, subnetwork, texts, run.base, run.world))
        t0 = time.perf_counter()
        _train_steps(run, s, start, rows)
        elapsed = time.perf_counter() - t0
        n_train = _save(run, s, model_path, subnetwork, rows, start, elapsed)
    dist.barrier()
    return TrainResult(run.out, run.total, rows[-1]["loss"] if rows else float("nan"), n_train, start, rows,
                       run.engine.module if return_model else None)
