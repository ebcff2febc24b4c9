"""LOKO (LeaveOneGroupOut over kernels) for RF, BC and GRPO on the CI config, and the report."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from chronos.pipeline.eval.report import backend_label, write_report
from chronos.pipeline.train import run, to_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chronos_eval_cache")


def test_loko_ci(cache: Path, tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "+exp=ci",
                "stages=[greedy,loko,report]",
                f"backend.store={cache / 'm.sqlite'}",
                f"greedy.dataset_dir={cache / 'greedy'}",
            ],
        )
    out = run(to_config(cfg), tmp_path)
    loko = out["loko"]
    assert loko["folds"] == 2 and set(loko["per_fold"]) == {"gemm_tile_2_2_2", "gemm_tile_2_4_2"}
    assert loko["group"] == "kernel"
    for kid, row in loko["per_fold"].items():
        learners = {"rf", "bc", "q", "bc_guided", "q_guided", "bcq_guided", "grpo"}
        assert set(row) == learners | {"kernels", "greedy"}
        assert row["kernels"] == [kid]
        assert set(row["greedy"]) == {kid} and row["greedy"][kid]["measurements"] > 1
        for learner in ("bc", "q", "bc_guided", "q_guided", "bcq_guided", "grpo"):  # never slower
            k = row[learner]["kernels"][kid]
            assert k["guarded"] <= 0.0 and k["guarded"] <= k["raw"] and k["measurements"] >= 1
        for learner, rankers in (("bc_guided", 1), ("q_guided", 1), ("bcq_guided", 2)):
            guided = row[learner]["kernels"][kid]  # it only ever moves to a measured gain
            assert guided["guarded"] == guided["raw"]
            assert guided["measurements"] <= 1 + 2 * rankers * 6
        for learner in sorted(learners):
            # one held-out kernel, one first state: the first action is right or wrong
            assert row[learner]["n_first"] == 1
            assert row[learner]["first_action_accuracy"] in (0.0, 1.0)
            hits = row[learner]["accuracy"] * row[learner]["n"]
            assert row[learner]["n"] > 1 and abs(hits - round(hits)) < 1e-9
        # One kernel and one GRPO epoch per fold: whether the held-out kernel gains is
        # luck of the cost model, not a property of LOKO; that it is measured is.
        assert math.isfinite(row["grpo"]["improvement"]) and row["grpo"]["improvement"] > -1.0
    assert set(loko["mean"]) == learners
    assert (tmp_path / "loko" / "loko.json").exists()
    table = json.loads((tmp_path / "loko" / "transfer.json").read_text())
    assert table["pooled"]["kernels"] == 2 and table["headline"] == "guarded"
    cols = ("greedy", "BC guarded", "BC raw", "Q guarded", "Q raw", "GRPO guarded", "GRPO raw")
    for col in (*cols, "BC-guided top-k", "Q-guided top-k", "BC+Q-guided top-k"):
        cell = table["pooled"]["speedup"][col]
        assert cell["n"] == 2 and cell["lo"] <= cell["geomean"] <= cell["hi"]
    assert table["pooled"]["speedup"]["GRPO guarded"]["geomean"] >= 1.0
    assert "| **pooled** | 2 |" in (tmp_path / "loko" / "transfer.md").read_text()
    assert (tmp_path / "plots" / "loko.png").stat().st_size > 1000
    text = (tmp_path / "report.md").read_text()
    assert "Leave-one-kernel-out" in text and "### Transfer: held-out speed-up" in text
    assert text.startswith("# Chronos leave-one-kernel-out report")
    assert "- LOKO: learners rf, bc, q, bc_guided, q_guided, bcq_guided, grpo; GRPO" in text
    # every LOKO rate has its n and a 95% interval; speed-ups read as ratios
    n_states = sum(r["rf"]["n"] for r in loko["per_fold"].values())
    assert f"(n={n_states}, 95% CI " in text and "x (cycles -" in text


def test_lofo_holds_out_whole_families(cache: Path, tmp_path: Path) -> None:
    ids = "[gemm_tile_2_2_2,gemm_tile_2_4_2,reduce_sum_f32_b256_i4_satom]"
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            "config",
            overrides=[
                "+exp=ci",
                "+exp@_global_=lofo",
                f"kernels.ids={ids}",
                "loko.learners=[rf,bc]",
                f"backend.store={cache / 'm.sqlite'}",
                f"greedy.dataset_dir={cache / 'greedy'}",
            ],
        )
    assert cfg.loko.group == "family"
    out = run(to_config(cfg), tmp_path)
    lofo = out["loko"]
    assert lofo["group"] == "family" and lofo["folds"] == 2
    assert lofo["per_fold"]["gemm_tile"]["kernels"] == ["gemm_tile_2_2_2", "gemm_tile_2_4_2"]
    assert lofo["per_fold"]["reduce"]["kernels"] == ["reduce_sum_f32_b256_i4_satom"]
    for row in lofo["per_fold"].values():
        assert {"rf", "bc"} <= set(row) and row["bc"]["n"] > 0
    text = (tmp_path / "report.md").read_text()
    assert text.startswith("# Chronos leave-one-family-out report")
    assert "## Leave-one-family-out" in text and "| held-out family | kernels |" in text
    assert "| gemm_tile | 2 |" in text and "| reduce | 1 |" in text


def test_report_of_empty_run_dir(tmp_path: Path) -> None:
    assert write_report(tmp_path).read_text().startswith("# Chronos training report")


def test_kernel_axis_names_the_family() -> None:
    from chronos.pipeline.eval.report import kernel_axis

    assert kernel_axis(["gemm_tile_2_2_2"], {}) == ("gemm_tile kernel", ["2_2_2"])
    assert kernel_axis(["saxpy_1", "saxpy_2"], {"saxpy_1": "saxpy", "saxpy_2": "saxpy"}) == (
        "saxpy kernel",
        ["1", "2"],
    )
    label, ticks = kernel_axis(["a_k", "gemm_tile_2_2_2"], {"a_k": "mine"})
    assert label == "kernel (gemm_tile, mine)" and ticks == ["a_k", "gemm_tile_2_2_2"]


def test_backend_label_names_estimates() -> None:
    assert backend_label("emulated", "cpu") == "emulated estimate (cpu)"
    assert backend_label("cupy", "NVIDIA H100") == "cupy (NVIDIA H100)"


def test_eval_cli_runs_loko_under_hydra(cache: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    cmd = [
        sys.executable,
        "-m",
        "chronos.eval",
        "+exp=ci",
        "stages=[greedy,loko,report]",
        "loko.learners=[rf,bc]",
        f"hydra.run.dir={tmp_path}",
        f"backend.store={cache / 'm.sqlite'}",
        f"greedy.dataset_dir={cache / 'greedy'}",
    ]
    subprocess.run(cmd, check=True, cwd=ROOT, timeout=600)
    assert (tmp_path / "loko" / "loko.json").exists() and (tmp_path / "report.md").exists()


def test_report_optimum_column_and_headline(tmp_path: Path) -> None:
    from chronos.pipeline.stages import optimum_share

    pk = {
        "k1": {"greedy": -0.5, "bc": -0.5, "grpo": -0.75, "optimum": -0.75},
        "k2": {"greedy": -0.2, "bc": 0.0, "grpo": -0.2, "optimum": -0.3, "optimum_complete": False},
    }
    share = optimum_share(pk)
    best = math.log(4) + math.log(1 / 0.7)
    assert share["grpo"] == pytest.approx((math.log(4) + math.log(1 / 0.8)) / best)
    assert share["greedy"] == pytest.approx((math.log(2) + math.log(1 / 0.8)) / best)
    (tmp_path / "eval").mkdir()
    summary = {"backend": "emulated", "per_kernel": pk, "optimum_share": share}
    (tmp_path / "eval" / "summary.json").write_text(json.dumps(summary))
    text = write_report(tmp_path).read_text()
    assert f"GRPO reaches {share['grpo']:.1%} of the optimum's log-gain, greedy" in text
    assert "| optimum |" in text and "(cycles -30.0%)*" in text and "on 2 of 2 kernels" in text


def test_geomean_ci_is_a_bootstrap_over_kernels() -> None:
    from chronos.pipeline.eval.transfer import geomean_ci

    one = geomean_ci([-0.5])
    assert one == {"n": 1, "geomean": pytest.approx(2.0), "lo": None, "hi": None}
    two = geomean_ci([-0.5, 0.0])  # 2x and 1x: geomean sqrt(2)
    assert two["geomean"] == pytest.approx(math.sqrt(2))
    assert 1.0 <= two["lo"] < two["geomean"] < two["hi"] <= 2.0
    assert geomean_ci([-0.5, 0.0]) == two  # fixed seed
    same = geomean_ci([-0.2] * 5)  # no spread between kernels: a point interval
    assert same["lo"] == pytest.approx(1.25) and same["hi"] == pytest.approx(1.25)


def test_transfer_table_pools_folds_and_counts_measurements() -> None:
    from chronos.pipeline.eval.transfer import transfer_markdown, transfer_table

    def fold(kid: str, greedy: float, guarded: float, raw: float) -> dict:
        roll = {kid: {"guarded": guarded, "raw": raw, "measurements": 4}}
        return {
            "kernels": [kid],
            "greedy": {kid: {"improvement": greedy, "measurements": 40}},
            "rf": {"first_action_accuracy": 1.0, "n_first": 1},
            "bc": {"first_action_accuracy": 0.0, "n_first": 1, "kernels": roll},
        }

    loko = {"group": "kernel", "per_fold": {"k1": fold("k1", -0.5, -0.5, -0.5),
                                            "k2": fold("k2", -0.2, 0.0, 0.25)}}  # fmt: skip
    table = transfer_table(loko)
    pooled = table["pooled"]
    assert pooled["kernels"] == 2
    assert pooled["speedup"]["greedy"]["geomean"] == pytest.approx(math.sqrt(2 * 1.25))
    assert pooled["speedup"]["BC guarded"]["geomean"] == pytest.approx(math.sqrt(2))
    assert pooled["speedup"]["BC raw"]["geomean"] == pytest.approx(math.sqrt(2 / 1.25))
    assert pooled["speedup"]["greedy"]["measurements"] == 40
    assert pooled["speedup"]["BC guarded"]["measurements"] == 4
    assert "GRPO guarded" not in pooled["speedup"]  # not run: no column value
    assert pooled["first_action_accuracy"]["rf"] == {"value": 1.0, "n": 2}
    assert pooled["first_action_accuracy"]["bc"] == {"value": 0.0, "n": 2}
    assert pooled["first_action_accuracy"]["q"] == {"value": None, "n": 0}  # not run
    assert "Q guarded" not in pooled["speedup"]
    assert table["per_fold"]["k2"]["speedup"]["BC raw"]["lo"] is None  # one kernel: no CI
    text = "\n".join(transfer_markdown(table, "emulated estimate"))
    assert "| k2 | 1 | 1.25x, 40 meas. | 1.00x, 4 meas. | 0.80x, 4 meas. |" in text
    assert "| **pooled** | 2 |" in text and "bootstrap" in text
