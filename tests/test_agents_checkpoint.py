"""Checkpoint provenance, atomic save/load and the promotion gate for `best`."""

from __future__ import annotations

from pathlib import Path

import torch

from agents import checkpoint as ckpt
from agents.policy import PolicyMLP
from kernels import load


def test_provenance_names_everything(tmp_path: Path) -> None:
    specs = [load("gemm_tile_2_2_2")]
    prov = ckpt.provenance(
        config={"a": 1}, specs=specs, backend="emulated", device="cpu-emulator (estimate)", seed=3
    )
    assert prov["kernels"]["gemm_tile_2_2_2"] and len(prov["kernels"]["gemm_tile_2_2_2"]) == 64
    assert prov["backend"] == "emulated" and prov["seed"] == 3 and prov["config"] == {"a": 1}
    assert prov["git_revision"]
    policy = PolicyMLP()
    path = ckpt.save(tmp_path / "c.pt", ckpt.policy_payload(policy, provenance=prov))
    again = ckpt.load_policy(path)
    for a, b in zip(policy.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert ckpt.load(path)["provenance"]["device"] == "cpu-emulator (estimate)"
    assert not list(tmp_path.glob("*.tmp"))


def test_promotion_gate_only_promotes_improvements(tmp_path: Path) -> None:
    gate = ckpt.PromotionGate(tmp_path, min_delta=0.01)
    a, b, c = (ckpt.save(tmp_path / f"{n}.pt", {"n": n}) for n in "abc")
    assert gate.consider(a, 1.0, 0)
    assert not gate.consider(b, 1.005, 1)  # within min_delta
    assert not gate.consider(b, 0.5, 1)
    assert ckpt.load(gate.best_path)["n"] == "a"
    # the gate's memory survives a restart (resume)
    gate2 = ckpt.PromotionGate(tmp_path, min_delta=0.01)
    assert gate2.consider(c, 1.2, 2)
    assert ckpt.load(gate2.best_path)["n"] == "c" and gate2.best()["epoch"] == 2
