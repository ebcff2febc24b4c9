"""Sweeps on Hydra launchers: joblib runs LOKO folds as parallel jobs; the cluster launchers
(submitit on SLURM, Ray) and every sweep config compose without a cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def train(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chronos.train", *args],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


TARGETS = {
    "joblib": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
    "slurm": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
    "ray": "hydra_plugins.hydra_ray_launcher.ray_launcher.RayLauncher",
}


SWEEPS = {
    "seeds": {"seed": "0,1,2"},
    "loko_folds": {"loko.fold": "range(0,20)"},
    "family_folds": {"loko.fold": "range(0,10)"},
}


@pytest.mark.parametrize("sweep", sorted(SWEEPS))
@pytest.mark.parametrize("launcher", sorted(TARGETS))
def test_sweep_and_launcher_configs_compose(sweep: str, launcher: str) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir
    from omegaconf import open_dict

    from chronos.pipeline.train import to_config

    overrides = [f"+sweep={sweep}", f"+launcher={launcher}", "cluster=ray"]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == TARGETS[launcher]
    params = dict(cfg.hydra.sweeper.params)
    assert params == SWEEPS[sweep]
    with open_dict(cfg):
        del cfg["hydra"]
    tc = to_config(cfg)
    assert tc.cluster.name == "ray"
    assert tc.loko.group == ("family" if sweep == "family_folds" else "kernel")


def test_the_sweep_ranges_cover_the_default_folds() -> None:
    from hydra import compose, initialize_config_dir

    from chronos.pipeline.config import kernel_ids
    from chronos.pipeline.train import to_config
    from kernels import builtin_families, load

    # The built-in families only: other tests register user kernels in this process.
    families = sorted(m.FAMILY for m in builtin_families())
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = to_config(compose("config", overrides=[f"kernels.families=[{','.join(families)}]"]))
    ids = kernel_ids(cfg.kernels)
    assert SWEEPS["loko_folds"]["loko.fold"] == f"range(0,{len(ids)})"
    assert SWEEPS["family_folds"]["loko.fold"] == f"range(0,{len(families)})"
    assert len({load(k).family for k in ids}) == len(families)


def test_the_ray_launcher_composes_on_the_command_line() -> None:
    res = train("+sweep=seeds", "+launcher=ray", "--cfg", "hydra")
    assert res.returncode == 0, res.stderr
    assert f"_target_: {TARGETS['ray']}" in res.stdout


@pytest.mark.requires_ptxas
def test_joblib_runs_one_loko_fold_per_job(tmp_path: Path) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep_dir = tmp_path / "multirun"
    res = train(
        "-m",
        "+exp=ci",
        "+sweep=loko_folds",
        "+launcher=joblib",
        "loko.fold=0,1",
        "loko.learners=[rf]",
        "stages=[greedy,loko]",
        "env.max_steps=1",
        f"backend.store={tmp_path / 'm.sqlite'}",
        f"greedy.dataset_dir={tmp_path / 'greedy'}",
        f"hydra.sweep.dir={sweep_dir}",
        "tensorboard=false",
    )
    assert res.returncode == 0, res.stderr[-3000:]
    held_out = []
    for job in ("0", "1"):
        out = json.loads((sweep_dir / job / "loko" / "loko.json").read_text())
        assert out["folds"] == 1 and list(out["mean"]) == ["rf"]
        held_out += list(out["per_fold"])
    assert sorted(held_out) == ["gemm_tile_2_2_2", "gemm_tile_2_4_2"]


def test_a_fold_outside_the_folds_is_a_clear_error(tmp_path: Path) -> None:
    from types import SimpleNamespace

    import numpy as np

    from agents.bc import BCData
    from chronos.pipeline.config import TrainConfig
    from chronos.pipeline.eval.loko import loko

    cfg = TrainConfig()
    cfg.loko.fold = 5
    data = BCData(
        obs=np.zeros((2, 3), np.float32),
        mask=np.ones((2, 2), bool),
        action=np.zeros(2, np.int64),
        kernel=np.asarray(["a", "b"]),
        step=np.zeros(2, np.int64),
    )
    with pytest.raises(ValueError, match="loko.fold=5"):
        specs = [SimpleNamespace(id=k, family=f"family_{k}") for k in ("a", "b")]
        loko(SimpleNamespace(cfg=cfg, specs=specs), data, ["rf"])
