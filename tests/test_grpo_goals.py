"""benchmarks/grpo_goals.py: the goal arithmetic on hand-made figures, and the script on a
CI-sized run (room searches ordered, figures read back from the run dir)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers.scripts import load_script

ROOT = Path(__file__).resolve().parents[1]


def _goals() -> Any:
    return load_script("benchmarks/grpo_goals.py", "bench_grpo_goals")


G = _goals()


def _room(kid: str, greedy: float, beam: float, ex: float | None = None) -> Any:
    return G.Room(kid, 100.0, greedy, beam, ex, None, ex is not None, 5, [], [])


def test_classify_against_greedy() -> None:
    assert G.classify(90.0, 90.0, 0.01) == "tie"
    assert G.classify(90.5, 90.0, 0.01) == "worse"
    assert G.classify(89.5, 90.0, 0.01) == "better"  # faster, but by under 1%
    assert G.classify(85.0, 90.0, 0.01) == "better>1%"
    assert abs(G.vs_greedy(80.0, 88.0) - 0.1) < 1e-12


def test_room_is_the_best_search_over_greedy() -> None:
    r = _room("k", greedy=90.0, beam=88.0, ex=80.0)
    assert r.best == 80.0 and abs(r.room - 0.125) < 1e-12
    assert _room("k", 90.0, 90.0).room == 0.0  # no exhaustive: beam only


def test_signal_goal_ignores_warmup_and_needs_every_epoch_below_half() -> None:
    key = "charts/frac_reward_zero_std"
    rows = [{"epoch": e, key: z} for e, z in enumerate([1.0, 1.0, 0.25, 0.375, 0.0])]
    ok = G.signal_goal(rows, warmup=2)
    assert ok["met"] and ok["max_frac_reward_zero_std"] == 0.375 and ok["epochs_after"] == 3
    bad = G.signal_goal(rows + [{"epoch": 5, key: 0.5}], warmup=2)
    assert not bad["met"] and bad["epochs_at_or_above_goal"] == 1
    assert not G.signal_goal(rows, warmup=10)["met"]  # no epoch after warm-up: not shown met


def test_argmax_goal_needs_min_of_five_and_the_room() -> None:
    # improvements are final/base - 1: -0.2 is 20% fewer cycles than the base
    per_kernel = {
        "a": {"greedy": -0.10, "grpo": -0.20},  # better by > 1%
        "b": {"greedy": -0.10, "grpo": -0.10},  # tie
        "c": {"greedy": -0.10, "grpo": -0.05},  # worse
    }
    rooms = {"a": _room("a", 90, 80), "b": _room("b", 90, 85), "c": _room("c", 90, 90)}
    g = G.argmax_goal(per_kernel, rooms, 0.01)
    assert g["classes"] == {"a": "better>1%", "b": "tie", "c": "worse"}
    assert g["kernels_with_room"] == 2 and g["better_needed"] == 2
    assert g["better_gt_min_gain"] == 1 and not g["better_met"] and not g["never_worse_met"]
    assert g["lower_return"] is None and abs(g["max_worse"] - (0.95 / 0.90 - 1)) < 1e-12
    # by return: "d" drops a step that gains 0.2% (under the 0.5% step cost), "e" a 2% one
    per_kernel |= {
        "d": {"greedy": -0.102, "grpo": -0.10, "greedy_actions": ["x", "y"], "grpo_actions": ["x"]},
        "e": {"greedy": -0.12, "grpo": -0.10, "greedy_actions": ["x", "y"], "grpo_actions": ["x"]},
    }
    rooms |= {"d": _room("d", 90, 90), "e": _room("e", 90, 90)}
    g = G.argmax_goal(per_kernel, rooms, 0.01, step_cost=0.005)
    assert g["classes"]["d"] == "worse" and g["classes"]["e"] == "worse"
    assert g["lower_return_kernels"] == ["c", "e"] and not g["never_lower_return_met"]
    # no room anywhere: zero better kernels are needed
    flat = {k: _room(k, 90, 90) for k in per_kernel}
    assert G.argmax_goal(per_kernel, flat, 0.01)["better_needed"] == 0


@pytest.mark.slow
def test_script_on_a_ci_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hydra import compose, initialize_config_dir

    from chronos.pipeline.train import run, to_config

    store = tmp_path / "m.sqlite"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "+exp=ci",
                f"backend.store={store}",
                f"greedy.dataset_dir={tmp_path / 'greedy'}",
                "tensorboard=false",
                "stages=[greedy,bc,grpo,eval]",
                "kernels.ids=[gemm_tile_2_2_2]",
            ],
        )
    run_dir = tmp_path / "run"
    run(to_config(cfg), run_dir)
    out = G.main(
        ["--run-dir", str(run_dir), "--width", "2", "--max-states", "4", "--episodes", "2"]
        + ["--json", str(tmp_path / "g.json")]
    )
    text = capsys.readouterr().out
    assert "emulated estimate" in text and "| gemm_tile_2_2_2 |" in text
    room = out["rooms"]["gemm_tile_2_2_2"]
    # by construction: beam (lane 0 = greedy) and exhaustive (greedy's path first) never lose
    assert room["beam"] <= room["greedy"] and room["exhaustive"] <= room["greedy"]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    greedy_impr = summary["per_kernel"]["gemm_tile_2_2_2"]["greedy"]
    assert abs(room["greedy"] / room["base"] - 1 - greedy_impr) < 1e-9  # same MDP, same greedy
    assert [r["epoch"] for r in out["epochs"]] == [0, 1]
    assert json.loads((tmp_path / "g.json").read_text())["argmax"] == out["argmax"]
    assert room["random"] is not None and room["random"] <= room["base"]  # s0 is visited


def test_net_return_charges_the_extra_steps() -> None:
    r = G.Room("k", 100.0, 90.0, 88.0, None, None, False, 0, ["a", "b", "c"], ["a"])
    assert abs(r.net_return(0.005) - (G.math.log(90 / 88) - 0.01)) < 1e-12
    assert r.net_return(0.02) < 0  # 2.2% faster, not worth two more steps at 2% each


class _FakeMDP:
    """Cycles = 100 times a factor per applied transform: the MDP surface `prune` uses."""

    FACTOR = {"vec_ld": 0.5, "ld_nc": 0.999, "reorder_cp": 1.0}

    def initial(self, spec: Any) -> Any:
        return SimpleNamespace(cycles=100.0)

    def step(self, state: Any, action: int) -> Any:
        from chronos.transforms import ACTION_NAMES

        cycles = state.cycles * self.FACTOR[ACTION_NAMES[action]]
        return SimpleNamespace(
            invalid=False, info={"reason": "applied"}, state=SimpleNamespace(cycles=cycles)
        )


def test_prune_drops_steps_not_worth_their_cost() -> None:
    seq, cycles = G.prune(_FakeMDP(), None, ["vec_ld", "ld_nc", "reorder_cp"], 49.95, 0.005)
    assert seq == ["vec_ld"] and cycles == 50.0  # ld_nc gains 0.1% < the 0.5% step cost
    seq, _ = G.prune(_FakeMDP(), None, ["vec_ld", "ld_nc"], 49.95, 0.0005)
    assert seq == ["vec_ld", "ld_nc"]  # now worth its cost
    r = G.Room(
        "k", 100.0, 60.0, 60.0, 49.95, None, False, 9, ["vec_ld", "ld_nc"], [], ["vec_ld"], 50.0
    )
    assert abs(r.net_return(0.005) - (G.math.log(60 / 50) - 0.005)) < 1e-12
