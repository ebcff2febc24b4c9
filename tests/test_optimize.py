"""`python -m chronos.optimize` end to end on the emulated backend: corpus and user kernels."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from chronos.pipeline import optimize

USER_MODULE = textwrap.dedent(
    '''
    """A kernel author's module: registers `y = 2 x` (a real body, 128 threads per block)."""
    from pathlib import Path

    import numpy as np

    from kernels import BufferSpec, KernelSpec, Param, Problem, register

    PTX = """\\
    .version 8.0
    .target sm_80
    .address_size 64

    .visible .entry opt_scale(
    \t.param .u64 opt_scale_param_0,
    \t.param .u64 opt_scale_param_1,
    \t.param .u32 opt_scale_param_2
    )
    {
    \t.reg .b32 %r<5>;
    \t.reg .f32 %f<3>;
    \t.reg .b64 %rd<8>;

    \tld.param.u64 %rd1, [opt_scale_param_0];
    \tld.param.u64 %rd2, [opt_scale_param_1];
    \tcvta.to.global.u64 %rd3, %rd1;
    \tcvta.to.global.u64 %rd4, %rd2;
    \tmov.u32 %r1, %ctaid.x;
    \tmov.u32 %r2, %ntid.x;
    \tmov.u32 %r3, %tid.x;
    \tmad.lo.s32 %r4, %r1, %r2, %r3;
    \tmul.wide.s32 %rd5, %r4, 4;
    \tadd.s64 %rd6, %rd3, %rd5;
    \tld.global.f32 %f1, [%rd6];
    \tadd.f32 %f2, %f1, %f1;
    \tadd.s64 %rd7, %rd4, %rd5;
    \tst.global.f32 [%rd7], %f2;
    \tret;
    }
    """

    PATH = Path(__file__).with_name("opt_scale.ptx")
    PATH.write_text(PTX)


    def problem(n):
        return Problem(
            sizes={"n": n},
            grid=(n // 128, 1, 1),
            block=(128, 1, 1),
            scalars={"opt_scale_param_2": n},
            shapes={"x": (n,), "y": (n,)},
        )


    register(
        KernelSpec(
            id="opt_scale",
            family="user",
            entry="opt_scale",
            ptx_path=PATH,
            params=(
                Param("opt_scale_param_0", ".u64", "buffer", "x"),
                Param("opt_scale_param_1", ".u64", "buffer", "y"),
                Param("opt_scale_param_2", ".u32", "scalar"),
            ),
            buffers=(BufferSpec("x", "float32", "in"), BufferSpec("y", "float32", "out")),
            problems={"full": problem(1 << 16), "small": problem(256)},
            reference_fn=lambda prob, inp: {"y": inp["x"] * np.float32(2)},
            alignment={"opt_scale_param_0": 16, "opt_scale_param_1": 16},
            divisibility={"opt_scale_param_2": 128},
        ),
        replace=True,
    )
    '''
)


def test_optimize_corpus_kernel_writes_ptx_and_record(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "best.ptx"
    rc = optimize.main(["gemm_tile_2_2_2", "--backend", "emulated", "--out", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "emulated estimate" in text and "1. " in text and "verified bit-exact" in text
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["backend"] == "emulated" and rec["estimate"] and rec["search"] == "greedy"
    assert rec["final_cycles"] < rec["base_cycles"] and rec["sequence"]
    assert rec["steps"][0]["cycles_before"] == rec["base_cycles"]
    assert rec["steps"][-1]["cycles_after"] == rec["final_cycles"]
    assert rec["ptxas_version"] not in ("", "unknown") and rec["verified"]["ok"]
    assert rec["final_ptx_sha256"] == rec["steps"][-1]["ptx_sha256"] != rec["base_ptx_sha256"]
    assert ".entry gemm_tile_2_2_2" in out.read_text()


def test_optimize_user_kernel_module(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "opt_user_kernels.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "scale.ptx"
    argv = ["opt_scale", "--module", "opt_user_kernels", "--backend", "emulated"]
    rc = optimize.main([*argv, "--search", "beam", "--width", "2", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["kernel_id"] == "opt_scale" and rec["verified"]["ok"]
    assert rec["final_cycles"] <= rec["base_cycles"] and ".entry opt_scale" in out.read_text()
    assert rec["measurements"] >= 1 and rec["backend"] == "emulated"


def test_optimize_fails_clearly(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert optimize.main(["gemm_tile_2_2_3", "--backend", "emulated"]) == 2
    assert "unknown kernel 'gemm_tile_2_2_3'" in capsys.readouterr().err
    assert optimize.main(["gemm_tile_2_2_2", "--module", "no_such_module_xyz"]) == 2
    assert "kernels module 'no_such_module_xyz' not found" in capsys.readouterr().err
    argv = ["gemm_tile_2_2_2", "--backend", "emulated", "--search", "policy"]
    assert optimize.main(argv) == 2
    assert "needs --checkpoint" in capsys.readouterr().err


def test_optimize_exhaustive_stops_at_its_budget_and_says_so(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A budget-limited exhaustive search reports the best state so far, never silently."""
    out = tmp_path / "best.ptx"
    argv = ["gemm_tile_2_2_2", "--backend", "emulated", "--search", "exhaustive"]
    assert optimize.main([*argv, "--max-states", "3", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "stopped at its budget of 3 states: the best state found so far, not the optimum" in text
    assert "unique cubins" in text
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["complete"] is False and record["stopped"] == "its budget of 3 states"
    assert record["states"] == 3 and record["unique_cubins"] >= 1
    assert record["final_cycles"] < record["base_cycles"], "at least greedy's first steps"
    assert optimize.main([*argv, "--max-states", "0"]) == 2
    assert "max_states must be at least 1" in capsys.readouterr().err


def test_optimize_with_a_policy_checkpoint(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """--search policy replays the checkpoint's argmax rollout (biased here to cp_async first)."""
    import torch

    from agents import checkpoint as ckpt
    from agents.policy import PolicyMLP
    from chronos.transforms import ACTION_NAMES

    torch.manual_seed(0)
    policy = PolicyMLP()
    with torch.no_grad():
        policy.net[-1].bias[ACTION_NAMES.index("cp_async")] += 100.0
    path = ckpt.save(tmp_path / "p.pt", ckpt.policy_payload(policy))
    out = tmp_path / "p.ptx"
    argv = ["gemm_tile_2_2_2", "--backend", "emulated", "--search", "policy"]
    assert optimize.main([*argv, "--checkpoint", str(path), "--out", str(out)]) == 0
    rec = json.loads(out.with_suffix(".json").read_text())
    assert rec["search"] == "policy" and rec["checkpoint"] == str(path)
    assert rec["sequence"][0] == "cp_async" and rec["final_cycles"] < rec["base_cycles"]
