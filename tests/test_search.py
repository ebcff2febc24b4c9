"""Search baselines: exhaustive >= beam >= greedy, memoised transpositions, the state budget."""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest

from agents.search import SearchBudgetExceeded, beam, exhaustive, greedy, random_search, search
from chronos.transforms import ACTION_NAMES as NAMES  # what episodes name actions by
from envs.mdp import TransformMDP

# A synthetic catalogue where greedy is myopic: `a` gains most at once but excludes `c`,
# and `c` (only after `b`) gains more than `a`. `d` breaks the kernel; `e` is a no-op.
A, B, C, D, E = range(5)
FACTOR = {"a": 0.7, "b": 0.9, "c": 0.5}


@dataclass
class _Res:
    ptx: str
    changed: bool
    reason: str = ""


def _apply(spec, ptx, action):  # type: ignore[no-untyped-def]
    tokens = set(ptx.split(":")[1])
    name = "abcde"[action]
    if name == "e":
        return _Res(ptx, False, "nothing to do")
    return _Res("k:" + "".join(sorted(tokens | {name})), True)


def _mask(spec, ptx, applied):  # type: ignore[no-untyped-def]
    m = np.zeros(21, dtype=bool)
    m[[A, B, D, E]] = True
    m[C] = B in applied and A not in applied
    m[list(applied)] = False
    m[A] &= C not in applied
    m[20] = True
    return m


FAKE_TX = SimpleNamespace(
    N_ACTIONS=21,
    STOP=20,
    ACTION_NAMES=[*"abcde", *(f"x{i}" for i in range(15)), "stop"],
    apply_action=_apply,
    action_mask=_mask,
)


class FakeBackend:
    name = "fake"
    device = "cpu"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def measure(self, spec, ptx):  # type: ignore[no-untyped-def]
        self.calls.append(ptx)
        tokens = ptx.split(":")[1]
        if "d" in tokens:
            return SimpleNamespace(valid=False, cycles=None, error="wrong output", estimate=False)
        cycles = 1000.0
        for t in tokens:
            cycles *= FACTOR[t]
        return SimpleNamespace(valid=True, cycles=cycles, error=None, estimate=False)


SPEC = SimpleNamespace(id="fake", ptx=lambda: "k:")


@pytest.fixture
def mdp() -> TransformMDP:
    return TransformMDP(FakeBackend(), max_steps=3, transforms=FAKE_TX)


def test_exhaustive_beats_myopic_greedy_and_beam_is_between(mdp: TransformMDP) -> None:
    g, b1, b2, ex = greedy(mdp, SPEC), beam(mdp, SPEC, 1), beam(mdp, SPEC, 2), exhaustive(mdp, SPEC)
    assert g.sequence == ["a", "b"] and g.best_cycles == pytest.approx(630.0)
    assert ex.sequence == ["b", "c"] and ex.best_cycles == pytest.approx(450.0)
    assert b1.best_cycles == pytest.approx(630.0)  # width 1 is greedy's lane
    assert b2.best_cycles == pytest.approx(450.0)
    assert ex.log_gain >= b2.log_gain >= b1.log_gain >= g.log_gain
    assert ex.complete and ex.backend == "fake" and not ex.estimate


def test_exhaustive_memoises_transpositions(mdp: TransformMDP) -> None:
    ex = exhaustive(mdp, SPEC)
    # states (PTX, applied set, steps left): the root; a, b; {a,b} (reached as a→b and b→a,
    # expanded once) and {b,c}: 5, not the 6 nodes of the search tree
    assert ex.states == 5
    # distinct PTX measured: k:, k:a, k:b, k:d, k:ab, k:ad, k:bd, k:bc, k:bcd, k:abd
    assert ex.measurements == len(set(mdp.backend.calls)) == 10
    assert ex.cache_hits == 1  # k:ab requested from both parents; the second is a repeat


def test_exhaustive_budget_raises_or_flags(mdp: TransformMDP) -> None:
    with pytest.raises(SearchBudgetExceeded, match="budget of 2 states"):
        exhaustive(mdp, SPEC, max_states=2)
    part = exhaustive(mdp, SPEC, max_states=2, partial_ok=True)
    # best child first: the cut-off search has still followed greedy's path a → b
    assert not part.complete and part.best_cycles == pytest.approx(630.0)


class SassFakeBackend(FakeBackend):
    """`a` changes the PTX but not the machine code: the SASS hash (and the cycles) ignore it."""

    def measure(self, spec, ptx):  # type: ignore[no-untyped-def]
        self.calls.append(ptx)
        code = "".join(t for t in ptx.split(":")[1] if t != "a")
        if "d" in code:
            return SimpleNamespace(valid=False, cycles=None, error="wrong output", estimate=False)
        cycles = 1000.0
        for t in code:
            cycles *= FACTOR[t]
        return SimpleNamespace(
            valid=True,
            cycles=cycles,
            error=None,
            estimate=False,
            extra={"sass_sha256": f"sass-{code}"},
        )


def test_exhaustive_dedupes_by_sass_and_prunes_machine_code_noops() -> None:
    sass = TransformMDP(SassFakeBackend(), max_steps=3, transforms=FAKE_TX)
    ex = exhaustive(sass, SPEC, progress=False)
    # `a` leaves the SASS as it is and allows nothing new: measured, never expanded. States:
    # the root, b, {b,c}; machine codes: "", "b", "bc".
    assert ex.sequence == ["b", "c"] and ex.best_cycles == pytest.approx(450.0)
    assert (ex.states, ex.unique_cubins, ex.complete, ex.stopped) == (3, 3, True, "")
    exact = exhaustive(
        TransformMDP(SassFakeBackend(), max_steps=3, transforms=FAKE_TX), SPEC, dedupe="ptx"
    )
    assert exact.best_cycles == ex.best_cycles and (exact.states, exact.unique_cubins) == (5, 5)
    # `b` is a SASS no-op too here but unlocks `c`: it must still be expanded
    assert exhaustive(sass, SPEC, dedupe="sass").best_cycles == pytest.approx(450.0)
    with pytest.raises(ValueError, match="dedupe"):
        exhaustive(sass, SPEC, dedupe="cubin")


def test_exhaustive_time_budget_raises_or_flags(mdp: TransformMDP) -> None:
    with pytest.raises(SearchBudgetExceeded, match="time budget of 1e-09 s"):
        exhaustive(mdp, SPEC, max_seconds=1e-9)
    part = exhaustive(mdp, SPEC, max_seconds=1e-9, partial_ok=True)
    assert not part.complete and part.stopped == "its time budget of 1e-09 s"
    assert part.states <= 1 and part.best_cycles <= part.base_cycles
    with pytest.raises(ValueError, match="max_seconds"):
        exhaustive(mdp, SPEC, max_seconds=0)


def test_searches_show_progress_and_log_a_summary(
    mdp: TransformMDP,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
    caplog,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("CHRONOS_PROGRESS", "1")
    with caplog.at_level("INFO", logger="chronos.progress"):
        ex = exhaustive(mdp, SPEC)
        greedy(mdp, SPEC)
        random_search(mdp, SPEC, 3)
        beam(mdp, SPEC, 2, progress=False)
    err = capsys.readouterr().err
    assert "exhaustive fake:" in err and "/20000" in err and "state/s" in err, err
    assert "greedy fake:" in err and "random fake:" in err and "beam2" not in err
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith(f"exhaustive fake: {ex.states} states, ")
    assert f"measured {ex.measurements}, cubins {ex.unique_cubins}" in lines[0]
    assert "best 2.22x (cycles -55.0%) [fake], complete" in lines[0], lines[0]
    assert lines[1].startswith("greedy fake: 2 steps") and "best 1.59x" in lines[1]
    assert lines[2].startswith("random fake: 3 episodes")
    assert lines[3].startswith("beam2 fake: 3 depths"), "no bar, still a summary"
    monkeypatch.setenv("CHRONOS_PROGRESS", "0")
    greedy(mdp, SPEC)
    assert "greedy fake" not in capsys.readouterr().err


def test_random_search_is_seeded_and_never_keeps_invalid_steps(mdp: TransformMDP) -> None:
    r1, r2 = random_search(mdp, SPEC, 20, seed=3), random_search(mdp, SPEC, 20, seed=3)
    assert r1.sequence == r2.sequence and "d" not in r1.sequence
    assert r1.best_cycles <= 1000.0
    with pytest.raises(ValueError, match="unknown search"):
        search(mdp, SPEC, "anneal")


@pytest.mark.slow
def test_exhaustive_ge_beam_ge_greedy_on_a_real_kernel() -> None:
    """gemm_tile_2_2_2 on the emulated backend, two steps deep (about 400 measurements)."""
    from chronos.measure import make_backend
    from kernels import load

    spec = load("gemm_tile_2_2_2")
    with make_backend("emulated", store=None) as backend:
        mdp = TransformMDP(backend, max_steps=2)
        g, b, ex = greedy(mdp, spec), beam(mdp, spec, 4), exhaustive(mdp, spec)
    assert ex.complete and ex.backend == "emulated" and ex.estimate
    assert ex.log_gain >= b.log_gain >= g.log_gain > 0
    assert len(ex.sequence) <= 2 and ex.cache_hits > 0


def test_emulated_measurements_carry_the_sass_hash_dedupe_uses() -> None:
    """One machine code, one hash: a comment changes the PTX's hash, not the SASS's."""
    import chronos.transforms as tx
    from chronos.measure import make_backend
    from kernels import load

    spec = load("gemm_tile_2_2_2")
    ptx = spec.ptx()
    with make_backend("emulated", store=None) as backend:
        base = backend.measure(spec, ptx)
        commented = backend.measure(spec, ptx + "\n// a comment\n")
        vec = backend.measure(spec, tx.apply_action(spec, ptx, "vec_ld").ptx)
    assert base.ptx_sha256 != commented.ptx_sha256
    assert base.extra["sass_sha256"] == commented.extra["sass_sha256"]
    assert len(base.extra["sass_sha256"]) == 64
    assert vec.valid and vec.extra["sass_sha256"] != base.extra["sass_sha256"]


def test_the_reports_optimum_column_is_the_bounded_search(mdp: TransformMDP) -> None:
    from chronos.pipeline.stages import add_optimum

    ctx = SimpleNamespace(specs=[SPEC], mdp=mdp, cfg=SimpleNamespace(progress=False))
    summary: dict = {"per_kernel": {"fake": {"greedy": 630.0 / 1000.0 - 1, "grpo": -0.37}}}
    add_optimum(ctx, summary, 2, width=0)
    row = summary["per_kernel"]["fake"]
    assert row["optimum_complete"] is False and row["optimum_states"] == 2
    assert row["optimum_method"] == "lower bound: budget hit"
    assert row["optimum"] == pytest.approx(-0.37)  # the budget stops it on greedy's path
    # Past the budget beam(4) runs too and finds b -> c, the optimum (still labelled beam).
    add_optimum(ctx, summary, 2, width=4)
    assert row["optimum_method"] == "beam w=4" and row["optimum"] == pytest.approx(-0.55)
    add_optimum(ctx, summary, 100, width=4)
    assert row["optimum_complete"] is True and row["optimum"] == pytest.approx(-0.55)
    assert row["optimum_method"] == "exhaustive"
    assert summary["optimum_share"]["greedy"] == pytest.approx(
        math.log(1 / 0.63) / math.log(1 / 0.45)
    )
    assert row["grpo_of_optimum"] == pytest.approx(math.log(1 / 0.63) / math.log(1 / 0.45))
    assert summary["optimum_share_mean"]["grpo"] == row["grpo_of_optimum"]
    # A second search of the same kernel measures nothing new on the MDP's backend.
    calls = len(mdp.backend.calls)
    add_optimum(ctx, summary, 100, width=4)
    assert len(set(mdp.backend.calls[calls:])) <= len(set(mdp.backend.calls[:calls]))


class ScriptedPolicy:
    """Plays a fixed list of actions by step (stop after it): what an argmax rollout of a
    policy that made exactly these choices does."""

    training = False

    def __init__(self, actions: list[int]) -> None:
        self.actions, self.t = actions, 0

    def eval(self) -> None:
        pass

    def act(self, obs, mask, temperature, generator):  # type: ignore[no-untyped-def]
        a = self.actions[self.t] if self.t < len(self.actions) else 20
        self.t += 1
        return np.full(len(obs), a), np.zeros(len(obs))


def _scripted_rollout(factor: dict[str, float], actions: list[int]):  # type: ignore[no-untyped-def]
    from agents.grpo import evaluate

    class Backend(FakeBackend):
        def measure(self, spec, ptx):  # type: ignore[no-untyped-def]
            m = super().measure(spec, ptx)
            m.cycles_q1 = m.cycles_q3 = None
            if m.valid:
                m.cycles = 1000.0 * math.prod(factor[t] for t in ptx.split(":")[1])
            return m

    mdp = TransformMDP(Backend(), max_steps=3, transforms=FAKE_TX)
    mdp.observe = lambda s: np.zeros(mdp.layout.obs_size, np.float32)  # type: ignore[method-assign]
    return evaluate(mdp, [SPEC], ScriptedPolicy(actions), epoch=-1)  # type: ignore[arg-type]


def test_guarded_result_is_never_slower_than_the_input() -> None:
    # Every transform slows the kernel and the policy takes two of them: raw < 1x, guarded 1x.
    ev = _scripted_rollout({"a": 1.2, "b": 1.1, "c": 1.5}, [A, B])
    (ep,) = ev.episodes
    assert ep.actions == (NAMES[A], NAMES[B]) and ep.improvement == pytest.approx(1.32 - 1)
    assert ep.guarded_improvement == 0.0 and ep.guarded_actions == ()
    assert ev.mean_guarded_improvement == 0.0 and ev.mean_improvement > 0
    assert ep.measurements == 3  # k:, k:a, k:ab
    row = ev.summary()["kernels"]["fake"]
    assert row["guarded_improvement"] == 0.0 and row["measurements"] == 3


def test_guarded_equals_raw_when_every_step_improves() -> None:
    ev = _scripted_rollout({"a": 0.7, "b": 0.9, "c": 0.5}, [A, B])
    (ep,) = ev.episodes
    assert ep.guarded_improvement == ep.improvement == pytest.approx(0.63 - 1)
    assert ep.guarded_actions == ep.actions == (NAMES[A], NAMES[B])


def test_guarded_keeps_the_best_prefix_and_counts_invalid_measurements() -> None:
    # `a` gains, `b` then loses more than that, `d` breaks the kernel (measured, invalid).
    ev = _scripted_rollout({"a": 0.8, "b": 1.5, "c": 0.5}, [A, B, D])
    (ep,) = ev.episodes
    assert ep.improvement == pytest.approx(1.2 - 1) and ep.steps[-1].invalid
    assert ep.guarded_improvement == pytest.approx(0.8 - 1) and ep.guarded_actions == (NAMES[A],)
    assert ep.measurements == 4  # k:, k:a, k:ab and the invalid k:abd


def test_budget_trace_counts_distinct_measurements_and_keeps_the_best(mdp: TransformMDP) -> None:
    from tests.helpers.scripts import load_script

    budget = load_script("benchmarks/budget.py", "budget_script")
    t = budget.trace(mdp, SPEC, lambda: greedy(mdp, SPEC, progress=False))
    # greedy measures k:, then a, b, d (invalid), then ab, ad (invalid), then abd (invalid)
    assert [n for n, _ in t.points] == list(range(1, 8))  # one point per distinct PTX text
    assert t.best_within(1) == 1000.0 and t.best_within(10**6) == pytest.approx(630.0)
    best = [c for _, c in t.points]
    assert best == sorted(best, reverse=True)  # best so far never gets worse
    again = budget.trace(mdp, SPEC, lambda: greedy(mdp, SPEC, progress=False))
    assert again.points == t.points  # store hits still count: cost on an empty store


def test_guided_search_measures_only_the_ranked_top_k() -> None:
    """Greedy over a ranking's top-k: k=all legal is greedy itself; k=1 follows the ranking's
    first choice while it improves, and costs at most 1 + k per step taken (plus the last)."""
    from agents.search import guided
    from chronos.measure import make_backend
    from kernels import load

    mdp = TransformMDP(make_backend("emulated", store=None), 6)
    spec = load("gemm_tile_2_2_2")
    full = greedy(mdp, spec, progress=False)
    n = mdp.layout.n_actions

    def uniform(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.zeros(n)

    same = guided(mdp, spec, uniform, k=n, progress=False)
    assert same.sequence == full.sequence and same.best_cycles == full.best_cycles

    first = mdp.layout.action_names.index(full.sequence[0])

    def prefers_greedys_first(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        scores = -np.arange(n, dtype=float)
        scores[first] = 100.0
        return scores

    one = guided(mdp, spec, prefers_greedys_first, k=1, progress=False)
    assert one.sequence[0] == full.sequence[0] and one.best_cycles < one.base_cycles
    assert one.measurements <= 1 + (len(one.sequence) + 1)
    with pytest.raises(ValueError, match="k >= 1"):
        guided(mdp, spec, uniform, k=0)


def test_guided_search_over_several_rankers_measures_the_union_of_their_top_k() -> None:
    """One ranker that never proposes greedy's first move and one that does: the union finds
    it whichever comes first, and pays at most k per ranker per step."""
    from agents.search import guided
    from chronos.measure import make_backend
    from kernels import load

    mdp = TransformMDP(make_backend("emulated", store=None), 6)
    spec = load("gemm_tile_2_2_2")
    full = greedy(mdp, spec, progress=False)
    n = mdp.layout.n_actions
    first = mdp.layout.action_names.index(full.sequence[0])

    def never_first(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        scores = np.arange(n, dtype=float)
        scores[first] = -100.0
        return scores

    def prefers_first(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        scores = -np.arange(n, dtype=float)
        scores[first] = 100.0
        return scores

    alone = guided(mdp, spec, never_first, k=1, progress=False)
    assert not alone.sequence or alone.sequence[0] != full.sequence[0]
    for ranks in ([never_first, prefers_first], [prefers_first, never_first]):
        both = guided(mdp, spec, ranks, k=1, progress=False)
        assert both.sequence[0] == full.sequence[0]
        assert both.measurements <= 1 + 2 * (len(both.sequence) + 1)
    with pytest.raises(ValueError, match="at least one ranker"):
        guided(mdp, spec, [], k=1)
