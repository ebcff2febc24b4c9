"""The `ray` measurement pool on a 2-CPU local cluster: same results, one store, survives a kill.

One module-scoped local cluster serves every test (starting Ray costs ~10-25 s on CI's two
cores); each test closes its pool so the next one gets both CPUs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agents.greedy import greedy_kernel
from chronos.measure import make_backend
from chronos.measure.store import MeasurementStore
from chronos.transforms import STOP
from envs.mdp import TransformMDP
from kernels import load

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.requires_ptxas

ROOT = str(Path(__file__).resolve().parents[1])
KID = "gemm_tile_2_2_2"


@pytest.fixture(scope="module", autouse=True)
def cluster():  # type: ignore[no-untyped-def]
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    yield
    ray.shutdown()


def candidates(n: int) -> tuple[object, list[str]]:
    """`n` distinct one-transform PTX texts of KID (real candidates greedy would measure)."""
    spec = load(KID)
    mdp = TransformMDP(make_backend("emulated", store=None))
    s0 = mdp.initial(spec)
    texts: list[str] = []
    for a in np.flatnonzero(mdp.mask(s0)):
        if a == STOP:
            continue
        ptx, changed, _ = mdp.apply(s0, int(a))
        if changed and ptx not in texts:
            texts.append(ptx)
    assert len(texts) >= n
    return spec, texts[:n]


def figures(m) -> tuple:  # type: ignore[no-untyped-def]
    return (m.valid, m.cycles, m.error, m.regs, m.spills, m.ptx_sha256, m.device, m.backend)


def test_pool_has_the_local_backends_identity_and_store_key() -> None:
    spec, texts = candidates(2)
    with make_backend("emulated", store=None) as local:
        want = [figures(m) for m in local.measure_many(spec, texts)]
        local_key = (local.name, local.device, local.harness_version, local.config)
    with make_backend("ray", store=None, backend="emulated", workers=2) as pool:
        assert (pool.name, pool.device, pool.harness_version, pool.config) == local_key
        assert pool.inner.workers == 2 and len(set(pool.inner.pids)) == 2
        assert [figures(m) for m in pool.measure_many(spec, texts)] == want
        assert figures(pool.measure(spec, texts[0])) == want[0]
        assert pool.stats["hits"] == 1  # the driver's store served the repeat


def test_greedy_on_one_and_two_workers_gives_the_same_run(tmp_path: Path) -> None:
    spec = load(KID)

    def run(name: str, store: Path, **opts: object) -> tuple:
        with make_backend(name, store=store, **opts) as b:
            mdp = TransformMDP(b, max_steps=2)
            r = greedy_kernel(mdp, spec)
            rows = sorted((m.ptx_sha256, m.valid, m.cycles) for m in b.store)
        return r.actions, r.base_cycles, r.final_cycles, r.labels, np.stack(r.obs), rows

    local = run("emulated", tmp_path / "local.sqlite")
    one = run("ray", tmp_path / "one.sqlite", backend="emulated", workers=1)
    two = run("ray", tmp_path / "two.sqlite", backend="emulated", workers=2)
    for other in (one, two):
        assert other[:4] == local[:4]
        np.testing.assert_array_equal(other[4], local[4])
        assert other[5] == local[5]  # the same measurements, written by the driver
    assert len(local[5]) > 10


def test_killed_worker_costs_only_its_inflight_measurement(tmp_path: Path) -> None:
    spec, texts = candidates(7)
    with make_backend("emulated", store=None) as local:
        want = [figures(m) for m in local.measure_many(spec, texts)]
    markers = tmp_path / "markers"
    markers.mkdir()
    path = tmp_path / "store.sqlite"
    pool = make_backend(
        "ray",
        store=path,
        backend="emulated_marked",
        options={"marker_dir": str(markers), "delay_s": 0.5},
        workers=2,
        modules=["tests.helpers.marked_backend"],
    )
    try:
        first = pool.measure_many(spec, texts[:3])
        victim = pool.inner.pids[0]
        for f in markers.iterdir():
            f.unlink()
        got: list = []
        worker = threading.Thread(target=lambda: got.extend(pool.measure_many(spec, texts[3:])))
        worker.start()
        deadline = time.monotonic() + 120
        while not any(f.name.startswith(f"{victim}-") for f in markers.iterdir()):
            assert time.monotonic() < deadline, "the victim never started a measurement"
            time.sleep(0.02)
        os.kill(victim, signal.SIGKILL)  # mid-measurement: it sleeps before measuring
        worker.join(timeout=300)
        assert not worker.is_alive()
        faults = pool.stats["faults"]
        # the victim's chunk (at most 2 of the 4 texts: the batch is split over 2 workers)
        assert faults["worker_deaths"] == 1 and 1 <= faults["retried"] <= 2
        assert faults["gave_up"] == 0 and pool.inner.workers == 2
        assert [figures(m) for m in first + got] == want
        # the run goes on on the replacement, served by the store for what it already has
        again = pool.measure_many(spec, texts)
        assert [figures(m) for m in again] == want and pool.stats["hits"] == len(texts)
    finally:
        pool.close()
    with MeasurementStore(path) as store:
        assert len(store) == len(texts)
        assert sorted(m.ptx_sha256 for m in store) == sorted(w[5] for w in want)


def test_bad_pool_settings_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="workers"):
        make_backend("ray", store=None, backend="emulated", workers=0)
    with pytest.raises(ValueError, match="chunk"):
        make_backend("ray", store=None, backend="emulated", chunk=0)
    with pytest.raises(ValueError, match="replay"):
        make_backend("ray", store=None, backend="replay")
    with pytest.raises(RuntimeError, match="unknown measurement backend 'no_such'"):
        make_backend("ray", store=None, backend="no_such", workers=1)


def test_pipeline_greedy_stage_on_cluster_ray_equals_local(tmp_path: Path) -> None:
    from hydra import compose, initialize_config_dir

    from chronos.pipeline.train import run, to_config

    def greedy(cluster: str) -> list:
        with initialize_config_dir(config_dir=f"{ROOT}/conf", version_base=None):
            cfg = compose(
                "config",
                overrides=[
                    "+exp=ci",
                    f"cluster={cluster}",
                    "stages=[greedy]",
                    "env.max_steps=1",
                    f"greedy.dataset_dir={tmp_path / cluster}",
                    f"run_dir={tmp_path / cluster / 'run'}",
                    "tensorboard=false",
                ],
            )
        tc = to_config(cfg)
        assert tc.cluster.name == cluster
        return run(tc)["greedy"]["kernels"]

    on_ray = greedy("ray")
    assert on_ray == greedy("local") and len(on_ray) == 2


def test_a_pool_and_another_process_writing_one_store_lose_no_rows(tmp_path: Path) -> None:
    """Issue 29, item 5: the Ray pool's driver and a second process (a plain emulated backend)
    write one SQLite store at the same time; every distinct measurement lands once."""
    import subprocess
    import sys

    spec, texts = candidates(7)
    path = tmp_path / "shared.sqlite"
    src = tmp_path / "texts"
    src.mkdir()
    for i, t in enumerate(texts[:4]):
        (src / f"{i}.ptx").write_text(t)
    code = (
        "import sys, pathlib\n"
        "from chronos.measure import make_backend\n"
        "from kernels import load\n"
        "texts = [p.read_text() for p in sorted(pathlib.Path(sys.argv[2]).glob('*.ptx'))]\n"
        "with make_backend('emulated', store=sys.argv[1]) as b:\n"
        "    assert all(m.valid for m in b.measure_many(load(sys.argv[3]), texts))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", code, str(path), str(src), KID], env=env)
    with make_backend("ray", store=path, backend="emulated", workers=2) as pool:
        got = pool.measure_many(spec, texts[2:])
    assert other.wait(timeout=300) == 0
    assert all(m.valid for m in got)
    with MeasurementStore(path) as store:
        shas = sorted(m.ptx_sha256 for m in store)
        assert len(store) == len(texts) == len(set(shas))
