"""The branchable MDP agrees with PtxTransformEnv; greedy v2 on a real kernel (emulated)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.greedy import greedy_kernel, improvement_table, to_bcdata
from chronos.transforms import STOP
from envs import PtxTransformEnv
from envs.mdp import TransformMDP
from envs.spaces import OBS_SIZE
from kernels import load

KID = "gemm_tile_2_2_2"


@pytest.fixture(scope="module")
def backend(emulated_backend):  # type: ignore[no-untyped-def]
    return emulated_backend


def test_mdp_matches_env_step_for_step(backend) -> None:  # type: ignore[no-untyped-def]
    env = PtxTransformEnv(kernels=KID, backend=backend)
    mdp = TransformMDP(backend)
    obs, _ = env.reset(seed=0)
    state = mdp.initial(load(KID))
    np.testing.assert_allclose(obs, mdp.observe(state), atol=1e-6)
    rng = np.random.default_rng(0)
    done = False
    while not done:
        legal = np.flatnonzero(env.action_masks())
        a = int(rng.choice(legal[legal != STOP])) if (legal != STOP).any() else STOP
        obs, r, term, trunc, info = env.step(a)
        out = mdp.step(state, a)
        state = out.state
        assert r == pytest.approx(out.reward)
        assert (term, trunc) == (out.terminated, out.truncated)
        np.testing.assert_allclose(obs, mdp.observe(state), atol=1e-6)
        done = term or trunc
    env.close()


def test_mdp_branches_without_mutation(backend) -> None:  # type: ignore[no-untyped-def]
    mdp = TransformMDP(backend)
    s0 = mdp.initial(load(KID))
    legal = [a for a in np.flatnonzero(mdp.mask(s0)) if a != STOP][:3]
    outs = [mdp.step(s0, int(a)) for a in legal]
    assert s0.applied == () and s0.steps == 0
    assert all(o.state.steps == 1 for o in outs)
    # After one transform its exclusive group is masked: stepping a masked action is invalid.
    s1 = outs[0].state
    assert not outs[0].invalid and not s1.done
    masked = np.flatnonzero(~mdp.mask(s1))
    assert masked.size, "the applied transform's conflict group must be masked"
    bad = mdp.step(s1, int(masked[0]))
    assert bad.invalid and bad.terminated and bad.reward == mdp.invalid_penalty
    assert bad.info["invalid"] == "masked action" and s1.steps == 1


def test_greedy_improves_and_labels_end_with_stop(backend) -> None:  # type: ignore[no-untyped-def]
    mdp = TransformMDP(backend)
    res = greedy_kernel(mdp, load(KID))
    assert res.final_cycles < res.base_cycles
    assert len(res.labels) == len(res.obs) == len(res.actions) + (res.labels[-1] == STOP)
    data = to_bcdata([res])
    assert data.obs.shape == (len(res.labels), OBS_SIZE) and data.step[0] == 0
    # every greedy decision was legal where it was taken
    assert all(data.mask[i, a] for i, a in enumerate(data.action))
    table = improvement_table([res.summary()])
    assert KID in table and "mean" in table


def test_greedy_dataset_key_tracks_what_the_labels_depend_on(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A cached greedy data set is never reused across a harness, catalogue or feature change."""
    import agents.greedy as greedy

    specs = [load(KID)]
    key = greedy.dataset_key(specs, "emulated", "cpu", 0.0, "emulated-cost-1")
    assert key == greedy.dataset_key(specs, "emulated", "cpu", 0.0, "emulated-cost-1")
    assert key != greedy.dataset_key(specs, "emulated", "cpu", 0.0, "emulated-cost-2")
    assert key != greedy.dataset_key(specs, "emulated", "gpu0", 0.0, "emulated-cost-1")
    assert key != greedy.dataset_key(
        [load("gemm_tile_2_2_4")], "emulated", "cpu", 0.0, "emulated-cost-1"
    )
    assert len(greedy.code_fingerprint()) == 64
    assert greedy.code_fingerprint() != greedy.code_fingerprint(("chronos/transforms",))
    monkeypatch.setattr(greedy, "code_fingerprint", lambda: "edited transforms")
    assert key != greedy.dataset_key(specs, "emulated", "cpu", 0.0, "emulated-cost-1")


class _Counting:
    """A stand-in backend: cycles = PTX length; counts single and batched calls."""

    name, device, harness_version = "counting", "cpu", "1"

    def __init__(self) -> None:
        self.single = 0
        self.batches: list[int] = []

    def _m(self, spec, ptx: str):  # type: ignore[no-untyped-def]
        from chronos.measure import Measurement, ptx_sha256

        return Measurement(
            cycles=float(len(ptx)), cycles_q1=None, cycles_q3=None, time_ns=None, n=1,
            valid=True, error=None, backend="counting", device="cpu", clock_mhz=None,
            regs=None, spills=None, harness_version="1", ptx_sha256=ptx_sha256(ptx),
            kernel_id=spec.id,
        )  # fmt: skip

    def measure(self, spec, ptx: str):  # type: ignore[no-untyped-def]
        self.single += 1
        return self._m(spec, ptx)

    def measure_many(self, spec, ptxs):  # type: ignore[no-untyped-def]
        self.batches.append(len(ptxs))
        return [self._m(spec, p) for p in ptxs]


def test_greedy_measures_each_state_s_children_in_one_batch() -> None:
    """Greedy measures a state's children with one measure_many (cupy overlaps ptxas with GPU
    timing there, a Ray pool fans it out); nothing is measured twice."""
    from chronos.measure.backends.cached import CachedBackend
    from chronos.measure.store import MEMORY, MeasurementStore

    inner = _Counting()
    b = CachedBackend(inner, MeasurementStore(MEMORY))
    mdp = TransformMDP(b, max_steps=1)
    res = greedy_kernel(mdp, load("gemm_tile_2_2_2"))
    # The initial state, then every child of it in one batch.
    assert inner.single == 0 and len(inner.batches) == 2
    first, children = inner.batches
    assert first == 1 and children > 1
    assert b.stats["misses"] == 1 + children and res.measurements >= children


def test_step_many_equals_step_per_action_in_one_backend_call(backend) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    class Counting:
        """The emulated backend, counting measure_many calls and their sizes."""

        name, device = backend.name, backend.device

        def measure(self, spec, ptx):  # type: ignore[no-untyped-def]
            raise AssertionError("step_many must batch")

        def measure_many(self, spec, ptxs):  # type: ignore[no-untyped-def]
            calls.append(len(ptxs))
            return backend.measure_many(spec, ptxs)

    spec = load(KID)
    one, many = TransformMDP(backend), TransformMDP(Counting())
    s0 = one.initial(spec)
    assert many.initial(spec).cycles == s0.cycles
    calls.clear()
    actions = [int(a) for a in range(one.layout.n_actions)]  # legal, masked and stop
    want = [one.step(s0, a) for a in actions]
    got = many.step_many(s0, actions)
    assert calls == [sum(o.measurement is not None for o in want)]
    for w, g in zip(want, got, strict=True):
        assert (w.reward, w.terminated, w.truncated, w.invalid, w.info) == (
            g.reward,
            g.terminated,
            g.truncated,
            g.invalid,
            g.info,
        )
        assert (w.state.ptx, w.state.applied, w.state.cycles) == (
            g.state.ptx,
            g.state.applied,
            g.state.cycles,
        )
