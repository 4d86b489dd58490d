"""The demo's model side: a byte-level BPE tokenizer, a Qwen3-MoE config, and saving a model
directory atomically.

``build_model(out_dir, bundle_dir)`` trains the tokenizer on the bundle's training text (FLORES
``dev`` of every language) and builds a randomly initialised Qwen3-MoE from a fixed seed: the
untrained tiny model of the tests. The pretrained demo model (`polyroute.demo.pretrain`) uses the
same tokenizer trainer, config builder and directory writer. Both load with ``AutoTokenizer`` /
``AutoModelForCausalLM.from_pretrained`` without remote code.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "SPECIAL_TOKENS",
    "MODEL_DEFAULTS",
    "training_texts",
    "train_tokenizer",
    "model_config",
    "publish_dir",
    "check_dtype",
    "build_model",
]

SPECIAL_TOKENS = {"pad_token": "<|pad|>", "eos_token": "<|endoftext|>", "bos_token": "<|bos|>"}

# The tiny random model: Qwen3-MoE with every layer sparse. Nothing in the pipeline may assume these.
MODEL_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "moe_intermediate_size": 64,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_experts": 16,
    "num_experts_per_tok": 4,
    "norm_topk_prob": True,
    "max_position_embeddings": 1024,
    "tie_word_embeddings": False,
}


def training_texts(bundle_dir: str | os.PathLike) -> list[str]:
    """The bundle's training text: every FLORES+ ``dev`` sentence, languages in sorted order."""
    files = sorted(Path(bundle_dir).glob("flores_plus/*/dev.jsonl"))
    if not files:
        raise ValueError(f"bundle_dir {str(bundle_dir)!r} has no flores_plus/<config>/dev.jsonl")
    texts = []
    for f in files:
        texts += [json.loads(line)["text"] for line in f.read_text(encoding="utf-8").splitlines()]
    return texts


def train_tokenizer(texts: Sequence[str], vocab_size: int = 4096, *,
                    max_length: int = MODEL_DEFAULTS["max_position_embeddings"]):
    """A byte-level BPE tokenizer trained on `texts`, as a `PreTrainedTokenizerFast`.

    Byte-level: every string of any script encodes without unknown tokens. Special tokens
    ``<|pad|>`` (id 0), ``<|endoftext|>`` (eos), ``<|bos|>``; padding on the left (generation).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + specials + merges), got {vocab_size}")
    if not texts:
        raise ValueError("no training texts for the tokenizer")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, show_progress=False,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, padding_side="left", model_max_length=max_length,
                                   clean_up_tokenization_spaces=False, **SPECIAL_TOKENS)


def model_config(tokenizer, dims: Mapping[str, Any], defaults: Mapping[str, Any] = MODEL_DEFAULTS):
    """A `Qwen3MoeConfig` of `defaults` updated by `dims`, with the tokenizer's vocabulary and ids."""
    from transformers import Qwen3MoeConfig

    unknown = sorted(set(dims) - set(defaults))
    if unknown:
        raise ValueError(f"unknown model setting(s) {unknown} (known: {sorted(defaults)})")
    merged = {**defaults, **dims}
    if merged["num_experts_per_tok"] > merged["num_experts"]:
        raise ValueError(f"num_experts_per_tok={merged['num_experts_per_tok']} exceeds "
                         f"num_experts={merged['num_experts']}")
    return Qwen3MoeConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          **merged)


def _publish_modes(directory: Path) -> None:
    # mkdtemp (and some writers) create owner-only entries; give the usual umask-based modes.
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for f in directory.iterdir():
        if f.is_dir():  # e.g. the pretrained model's checkpoints/
            _publish_modes(f)
        else:
            f.chmod(0o666 & ~umask)


def publish_dir(out_dir: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a fresh directory next to `out_dir`, then swap it in whole.

    A killed or failing writer leaves the previous `out_dir` intact and no temporary behind.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write(tmp)
        _publish_modes(tmp)
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def check_dtype(dtype: str) -> None:
    if dtype not in {"float32", "bfloat16", "float16"}:
        raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")


def build_model(out_dir: str | os.PathLike, bundle_dir: str | os.PathLike = "resources/demo", *,
                seed: int = 0, vocab_size: int = 4096, dtype: str = "bfloat16",
                **overrides: Any) -> Path:
    """Train the tokenizer, build the tiny Qwen3-MoE with `seed`, save both into `out_dir`.

    The model is initialised in float32 (the same numbers on every machine) and stored in
    `dtype`; bfloat16 keeps the default model under 10 MB. `overrides` change `MODEL_DEFAULTS`.
    Rebuilding gives byte-identical files.
    """
    import torch
    from transformers import AutoModelForCausalLM

    check_dtype(dtype)
    tokenizer = train_tokenizer(training_texts(bundle_dir), vocab_size)
    config = model_config(tokenizer, overrides)

    def write(tmp: Path) -> None:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.to(getattr(torch, dtype)).eval()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    return publish_dir(out_dir, write)
