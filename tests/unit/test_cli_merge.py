"""`polyroute merge`: base + delta as a full checkpoint; only the delta's rows differ from the base."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from polyroute.cli import main
from adapter_files import finished_adapter

MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "polyroute-tiny-qwen3moe"
NAME = "model.layers.2.mlp.experts.gate_up_proj"


def _model(path: Path):
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, use_safetensors=True)


def _params(path: Path) -> dict[str, torch.Tensor]:
    model = _model(path)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def test_merge_changes_exactly_the_delta_rows(tmp_path: Path) -> None:
    base = _params(MODEL)
    rows = torch.tensor([1, 5])
    delta = torch.full((2, *base[NAME].shape[1:]), 0.5)
    adapter = finished_adapter(tmp_path / "adapter", _model(MODEL), MODEL, {NAME: (rows, delta)})
    assert main(["merge", str(MODEL), str(adapter), str(tmp_path / "merged")]) == 0
    merged = _params(tmp_path / "merged")
    assert set(merged) == set(base)
    for name, tensor in base.items():
        if name != NAME:
            assert torch.equal(merged[name], tensor), name
    expected = base[NAME].clone()
    expected[rows] += delta
    # the checkpoint keeps the base's dtype (bfloat16): compare at that precision
    assert torch.equal(merged[NAME], expected.to(torch.bfloat16).float())
    assert not torch.equal(merged[NAME][rows], base[NAME][rows])
    assert (tmp_path / "merged" / "tokenizer.json").exists()


def test_merge_without_delta_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["merge", str(MODEL), str(tmp_path), str(tmp_path / "out")]) == 2
    assert "no trained delta at" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
