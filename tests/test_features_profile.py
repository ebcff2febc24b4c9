"""The trace-derived feature groups (`sass`, `memory`) and the ablation switch over groups.

The memory features are checked against what the physics of our microbenchmark kernels says
they must be: a coalesced stream of doubles touches 8 sectors per warp request and reuses
nothing; gpu-benches' L1 kernel reads each sector `iters` times; a one-lane pointer chase
touches about one sector per request.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from agents import checkpoint as ckpt
from agents.bc import BCConfig, forest_predict, train_forest
from agents.policy import PolicyMLP
from chronos.arch import arch_profile
from chronos.features import (
    FEATURE_GROUPS,
    FEATURE_NAMES,
    FEATURES,
    UNKNOWN,
    extract,
    group_mask,
    profile_features,
)
from chronos.measure import Measurement
from chronos.measure.backends.emulated import EmulatedBackend
from envs.mdp import TransformMDP
from envs.spaces import LAYOUT
from tests.helpers import registry
from tests.helpers.physics_kernels import chase_spec, l1_spec, stream_spec
from tests.test_agents_bc import synthetic

PROF = arch_profile("sm_90")
TRACE_GROUPS = ("sass", "memory")


def _profile(spec):  # type: ignore[no-untyped-def]
    backend = EmulatedBackend(arch="sm_90")
    with registry.registered(spec):
        m = backend.measure(spec, spec.ptx())
    assert m.valid, m.error
    names = [f.name for f in FEATURES if f.group in TRACE_GROUPS][2:]  # less ptxas's two
    return dict(zip(names, profile_features(m.extra), strict=True)), m


def test_groups_partition_the_features() -> None:
    masks = [group_mask([g]) for g in FEATURE_GROUPS]
    assert np.array_equal(np.sum(masks, axis=0), np.ones(len(FEATURES)))
    assert set(FEATURE_GROUPS) == {"ptx", "hints", "sass", "memory"}
    with pytest.raises(ValueError, match="unknown feature group"):
        group_mask(["ptx", "sass_mix"])


def test_coalesced_stream_without_reuse() -> None:
    f, m = _profile(stream_spec("read", 256, PROF))
    assert m.extra["sectors_per_request"] == pytest.approx(8.0)  # 32 lanes x 8 bytes / 32
    assert f["sectors_per_request"] == pytest.approx(8 / 32)
    assert f["log2_accesses_per_sector"] == pytest.approx(0.0)  # every sector read once
    assert f["l1_hit_rate"] == 0.0
    assert f["sass_ld_global_frac"] > 0 and f["sass_st_global_frac"] == 0.0
    assert sum(v for k, v in f.items() if k.startswith("sass_")) == pytest.approx(1.0)


def test_l1_kernel_reuses_each_sector_iters_times() -> None:
    f, _ = _profile(l1_spec(16, PROF.sms, 4))
    assert f["log2_accesses_per_sector"] == pytest.approx(2.0)  # 4 reads of each sector
    assert f["l1_hit_rate"] == pytest.approx(0.75)  # the first read of each misses
    assert f["log_dram_bytes_per_flop"] < 0.05  # it sums what it rereads


def test_pointer_chase_is_uncoalesced_latency() -> None:
    f, _ = _profile(chase_spec(1 << 20, 64))
    assert f["sectors_per_request"] < 1.5 / 32  # one lane, one sector per request
    assert f["latency_share"] > 0.99
    assert f["dram_share"] < 0.01


def test_without_a_trace_the_trace_features_are_unknown() -> None:
    cupy_like = {"phase_ms": 1.0, "regs_instrumented": 20}  # a cupy record: no cost report
    assert profile_features(None) == profile_features(cupy_like)
    assert set(profile_features(None)) == {UNKNOWN}
    spec = stream_spec("read", 256, PROF)
    ptx, entry = spec.ptx(), spec.entry
    bare = extract(ptx, entry)
    full = extract(ptx, entry, profile=_profile(spec)[1].extra)
    static = group_mask(["ptx", "hints"])
    assert np.array_equal(bare[static], full[static])
    assert np.all(bare[~static] == UNKNOWN) and np.all(full[~static][2:] != UNKNOWN)


def test_mdp_features_follow_the_measurement() -> None:
    spec = stream_spec("read", 256, PROF)
    with registry.registered(spec):
        mdp = TransformMDP(EmulatedBackend(arch="sm_90"), 6)
        s0 = mdp.initial(spec)
        known = mdp.features(s0)
        blind = mdp.features(replace(s0, measurement=_strip(s0.measurement)))
    trace = ~group_mask(["ptx", "hints"])
    assert np.all(known[trace][2:] != UNKNOWN)
    assert np.all(blind[trace][2:] == UNKNOWN)  # the cache told the two apart


def _strip(m: Measurement) -> Measurement:
    return replace(m, extra={}, backend="cupy")


def test_policy_ignores_switched_off_groups() -> None:
    torch.manual_seed(0)
    pol = PolicyMLP.for_layout(LAYOUT, feature_groups=["ptx", "hints"]).eval()
    obs = torch.randn(4, LAYOUT.obs_size)
    mask = torch.ones(4, LAYOUT.n_actions, dtype=torch.bool)
    off = np.flatnonzero(~group_mask(["ptx", "hints"]))
    moved = obs.clone()
    moved[:, off] += 100.0
    assert torch.equal(pol(obs, mask), pol(moved, mask))
    back = ckpt.load_policy(ckpt.policy_payload(pol)).eval()
    assert back.feature_groups == ("ptx", "hints")
    assert torch.equal(back(moved, mask), pol(obs, mask))
    full = PolicyMLP.for_layout(LAYOUT).eval()
    assert not torch.equal(full(obs, mask), full(moved, mask))


def test_forest_ignores_switched_off_groups() -> None:
    data = synthetic(n_kernels=10)
    cfg = BCConfig(forest_trees=10, feature_groups=["memory"])
    forest = train_forest(data, cfg, seed=0)
    moved = data.obs.copy()
    moved[:, np.flatnonzero(~group_mask(["memory"]))] = 7.0
    assert np.array_equal(
        forest_predict(forest, data.obs, data.mask), forest_predict(forest, moved, data.mask)
    )
    assert "sectors_per_request" in FEATURE_NAMES
