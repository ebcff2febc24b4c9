"""Novel sequences are re-measured in a fresh process before they count (issue 27 item 4)."""

from __future__ import annotations

import pytest

from chronos.measure import make_backend
from chronos.pipeline.eval.remeasure import Remeasured, confirm_novel, remeasure
from envs.mdp import TransformMDP
from kernels import load

KERNEL = "gemm_tile_2_2_2"


def test_a_fresh_process_measures_what_this_one_does() -> None:
    jobs = [(KERNEL, ("vec_ld",)), (KERNEL, ()), (KERNEL, ("vec_ld", "vec_ld"))]
    fresh = remeasure("emulated", {}, [], jobs)
    with make_backend("emulated", store=None) as be:
        mdp = TransformMDP(be, 6)
        s0 = mdp.initial(load(KERNEL))
        s1 = mdp.step(s0, mdp.layout.action_names.index("vec_ld")).state
    assert [r.actions for r in fresh] == [j[1] for j in jobs]
    assert fresh[0].base_cycles == s0.cycles and fresh[0].final_cycles == s1.cycles
    assert fresh[1].final_cycles == s0.cycles and s1.cycles < s0.cycles
    # vec_ld twice: the second finds nothing left to widen, so the replay says why it stopped
    assert fresh[2].final_cycles is None and fresh[2].error.startswith("vec_ld")


def _r(seq: tuple[str, ...], final: float | None, error: str = "") -> Remeasured:
    return Remeasured(KERNEL, seq, 100.0, final, error)


def test_only_reproduced_gains_count() -> None:
    greedy = {KERNEL: ("vec_ld",)}
    candidates = {
        (KERNEL, ("ld_cs",)): -0.10,  # the run claimed 10% better than greedy
        (KERNEL, ("cp_async",)): -0.05,
        (KERNEL, ("vec_st",)): -0.20,
    }
    fresh = [
        _r(("vec_ld",), 80.0),
        _r(("ld_cs",), 72.0),  # 10% better again: counts
        _r(("cp_async",), 80.0),  # a tie when measured again: the claim does not hold
        _r(("vec_st",), None, "vec_st: invalid"),
    ]
    confirmed, rejected = confirm_novel(candidates, greedy, fresh, min_gain=0.01)
    assert [c["actions"] for c in confirmed] == [["ld_cs"]]
    assert confirmed[0]["fresh_vs_greedy"] == pytest.approx(-0.10)
    why = {tuple(r["actions"]): r["why"] for r in rejected}
    assert why == {
        ("cp_async",): "not better than greedy when measured again",
        ("vec_st",): "vec_st: invalid",
    }
    assert confirm_novel(candidates, greedy, [], 0.01)[0] == []  # nothing measured: none


def test_a_kernel_the_fresh_process_cannot_load_is_not_confirmed() -> None:
    """A kernel registered only in this process (no module to import) cannot be replayed:
    the candidate is rejected with the reason, and the run goes on."""
    fresh = remeasure("emulated", {}, [], [("no_such_kernel_xyz", ("vec_ld",))])
    assert fresh[0].final_cycles is None and "no_such_kernel_xyz" in fresh[0].error
    confirmed, rejected = confirm_novel(
        {("no_such_kernel_xyz", ("vec_ld",)): -0.5}, {"no_such_kernel_xyz": ()}, fresh, 0.01
    )
    assert confirmed == [] and "no_such_kernel_xyz" in rejected[0]["why"]
