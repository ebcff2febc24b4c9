"""Issue 17's GRPO goals on one training run: the room over greedy, the learning signal per
epoch, and the argmax policy against greedy per kernel.

    python benchmarks/grpo_goals.py                          # train (+exp=grpo), then measure
    python benchmarks/grpo_goals.py --run-dir outputs/D/T    # measure a finished run
    python benchmarks/grpo_goals.py --override grpo.epochs=80 --override seed=1
    python benchmarks/grpo_goals.py --run-dir DIR --width 4 --max-states 40 --json goals.json
    python benchmarks/grpo_goals.py --cold --json goals.json  # cold store: the docs' wall time

Without `--run-dir` it runs `python -m chronos.train +exp=grpo` (plus the `--override`s) into a
fresh run dir under `--runs-root` and times it. Everything is then read from that run dir or
measured over the run's own MDP, backend and measurement store (from `provenance.json`), so
the searches below get every state training measured as a store hit:

1. room: per kernel greedy, beam(`--width`), exhaustive search capped at `--max-states`
   states (a `*` marks a capped, lower-bound result; a complete one is the optimum) and random
   search (`--episodes`), and how many kernels leave more than `--min-gain` (1%) over greedy
   to find; where there is room, the best sequence is pruned of steps not worth their step
   cost, and Δreturn says whether a reward maximiser should prefer it to greedy's;
2. signal: per GRPO epoch `charts/frac_reward_zero_std` (after dynamic sampling) and `_sampled`
   (before), entropy, clip fractions and KL to BC (`metrics/train.csv`); warm-up is the
   forced-steps curriculum (epochs before `grpo.forced_steps.until_epoch`) unless `--warmup`;
3. argmax: the run's evaluated policy (`eval/summary.json`, best.pt) against greedy per kernel:
   worse, tie, better by up to / more than `--min-gain`; also the best sequence GRPO sampled
   during training (`checkpoints/last.pt`);
4. the goals: zero-spread < 50% in every epoch after warm-up; argmax never worse than greedy;
   better by > 1% on min(5, kernels with room) kernels.

Every cycle figure is labelled with the backend it came from (`emulated` = the cost model's
estimate, not GPU time).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIGNAL_KEYS = (
    "charts/frac_reward_zero_std",
    "charts/frac_reward_zero_std_sampled",
    "losses/entropy",
    "losses/clip_ratio/low_mean",
    "losses/clip_ratio/high_mean",
    "losses/kl",
    "charts/temperature",
)
ZERO_STD_GOAL = 0.5
BETTER_GOAL = 5


@dataclass
class Room:
    """One kernel's searches: cycles of greedy, beam and (capped) exhaustive."""

    kernel_id: str
    base: float
    greedy: float
    beam: float
    exhaustive: float | None
    random: float | None
    complete: bool
    states: int
    best_sequence: list[str]
    greedy_sequence: list[str]
    # the best sequence less the steps whose removal raises the episode return (`prune`)
    pruned_sequence: list[str] | None = None
    pruned_cycles: float | None = None

    @property
    def best(self) -> float:
        return min(
            c for c in (self.greedy, self.beam, self.exhaustive, self.random) if c is not None
        )

    @property
    def room(self) -> float:
        """How much faster than greedy the best search is: greedy/best - 1 (0 = none)."""
        return self.greedy / self.best - 1.0

    def net_return(self, step_cost: float) -> float:
        """The best sequence's episode return minus greedy's under the MDP's log-speed-up
        reward: log(greedy/best) less step_cost per extra step (< 0: a reward maximiser
        should prefer greedy's sequence even though it is slower)."""
        seq, cyc = self.best_sequence, self.best
        if self.pruned_sequence is not None and self.pruned_cycles is not None:
            seq, cyc = self.pruned_sequence, self.pruned_cycles
        extra = len(seq) - len(self.greedy_sequence)
        return math.log(self.greedy / cyc) - step_cost * extra


def vs_greedy(cycles: float, greedy: float) -> float:
    """greedy/cycles - 1: > 0 is faster than greedy (by that fraction of the kernel's time)."""
    return greedy / cycles - 1.0


def episode_return(improvement: float, n_steps: int, step_cost: float) -> float:
    """log(base/final) - step_cost * transforms: the MDP's return, its stop step aside."""
    return -math.log1p(improvement) - step_cost * n_steps


def classify(cycles: float, greedy: float, min_gain: float, tol: float = 1e-9) -> str:
    """worse | tie | better (<= min_gain) | better>min_gain, against greedy's cycles."""
    if cycles > greedy * (1.0 + tol):
        return "worse"
    if cycles >= greedy * (1.0 - tol):
        return "tie"
    return f"better>{min_gain:.0%}" if cycles < greedy * (1.0 - min_gain) else "better"


def read_train_csv(path: Path) -> list[dict[str, float]]:
    with path.open() as f:
        return [
            {k: float(v) for k, v in row.items() if v not in ("", None)}
            for row in csv.DictReader(f)
        ]


def signal_goal(rows: list[dict[str, float]], warmup: int) -> dict[str, Any]:
    """Zero-spread after warm-up: the worst epoch and whether every one is below 50%."""
    after = [r for r in rows if r["epoch"] >= warmup]
    zs = [r["charts/frac_reward_zero_std"] for r in after]
    worst = max(zs) if zs else math.nan
    return {
        "warmup": warmup,
        "epochs_after": len(after),
        "max_frac_reward_zero_std": worst,
        "epochs_at_or_above_goal": sum(z >= ZERO_STD_GOAL for z in zs),
        "met": bool(zs) and worst < ZERO_STD_GOAL,
    }


def argmax_goal(
    per_kernel: dict[str, dict[str, Any]],
    rooms: dict[str, Room],
    min_gain: float,
    step_cost: float | None = None,
) -> dict[str, Any]:
    """GRPO's argmax against greedy per kernel (cycles relative to each kernel's base): the
    rollout's final state (`grpo_raw`; runs before the guarded result called it `grpo`).

    With `step_cost`, also the kernels where the argmax earns a lower return than greedy's
    sequence (the MDP's objective: a step that gains less than its cost is worth dropping,
    though the kernel is then slower than greedy's), and the largest cycles gap where worse.
    """
    classes: dict[str, str] = {}
    lower: list[str] = []
    gaps: list[float] = []
    for kid, row in per_kernel.items():
        raw = row.get("grpo_raw", row["grpo"])
        classes[kid] = classify(1.0 + raw, 1.0 + row["greedy"], min_gain)
        if classes[kid] == "worse":
            gaps.append((1.0 + raw) / (1.0 + row["greedy"]) - 1.0)
        if step_cost is not None:
            seq = row.get("grpo_raw_actions", row.get("grpo_actions", []))
            mine = episode_return(raw, len(seq), step_cost)
            theirs = episode_return(row["greedy"], len(row.get("greedy_actions", [])), step_cost)
            if mine < theirs - 1e-12:
                lower.append(kid)
    with_room = sum(r.room > min_gain for r in rooms.values())
    need = min(BETTER_GOAL, with_room)
    better = sum(c.startswith("better>") for c in classes.values())
    worse = sum(c == "worse" for c in classes.values())
    return {
        "classes": classes,
        "worse": worse,
        "max_worse": max(gaps, default=0.0),
        "lower_return": None if step_cost is None else len(lower),
        "lower_return_kernels": lower,
        "ties": sum(c == "tie" for c in classes.values()),
        "better_small": sum(c == "better" for c in classes.values()),
        "better_gt_min_gain": better,
        "kernels_with_room": with_room,
        "better_needed": need,
        "never_worse_met": worse == 0,
        "never_lower_return_met": None if step_cost is None else not lower,
        "better_met": better >= need,
    }


def train(overrides: list[str], runs_root: Path, cold: bool = False) -> tuple[Path, float]:
    """`python -m chronos.train +exp=grpo` into a fresh run dir; returns it and its wall time.

    `cold`: an empty measurement store and greedy cache (in a new temporary folder), so the
    wall time is the cold one the docs quote; the room searches then use that store too.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%d/%H-%M-%S")
    run_dir = (runs_root / stamp).resolve()
    cmd = [sys.executable, "-m", "chronos.train", "+exp=grpo", "progress=false", *overrides]
    cmd.append(f"hydra.run.dir={run_dir}")
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if cold:
        tmp = Path(tempfile.mkdtemp(prefix="grpo_goals_cold_"))
        env["CHRONOS_STORE"] = str(tmp / "measurements.sqlite")
        cmd.insert(-1, f"greedy.dataset_dir={tmp / 'greedy'}")
        print(f"$ export CHRONOS_STORE={env['CHRONOS_STORE']}")
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    return run_dir, time.perf_counter() - t0


@contextmanager
def open_mdp(run_dir: Path) -> Iterator[tuple[Any, Any, str]]:
    """The run's MDP over its backend and measurement store (provenance.json), its
    TrainConfig and the backend label."""
    from omegaconf import OmegaConf

    from chronos.fmt import backend_label
    from chronos.measure import make_backend
    from chronos.pipeline.config import to_config
    from envs.mdp import TransformMDP

    prov = json.loads((run_dir / "provenance.json").read_text())
    tc = to_config(OmegaConf.create(prov["config"]))
    store = prov.get("store")
    name, options = tc.cluster.backend_args(tc.backend)
    if name == "auto":  # the backend auto chose for the run, not a fresh choice
        name = prov["backend"]
    with make_backend(name, store=None if store == "memory" else store, **options) as backend:
        mdp = TransformMDP(backend, tc.env.max_steps, reward=tc.env.make_reward())
        label = backend_label(
            str(getattr(backend, "name", name)), str(getattr(backend, "device", ""))
        )
        yield mdp, tc, label


def measure_room(
    run_dir: Path, width: int, max_states: int, episodes: int
) -> tuple[dict[str, Room], str]:
    """greedy, beam(width), capped exhaustive and random(episodes) per kernel over the run's
    MDP and measurement store."""
    from agents.search import beam, exhaustive, greedy, random_search
    from chronos.pipeline.config import kernel_ids
    from kernels import load

    rooms: dict[str, Room] = {}
    with open_mdp(run_dir) as (mdp, tc, label):
        for kid in kernel_ids(tc.kernels):
            spec = load(kid)
            t0 = time.perf_counter()
            g = greedy(mdp, spec, tc.greedy.min_gain)
            b = beam(mdp, spec, width)
            e = (
                exhaustive(mdp, spec, max_states=max_states, partial_ok=True)
                if max_states
                else None
            )
            rnd = random_search(mdp, spec, episodes, seed=tc.seed) if episodes else None
            found = [r for r in (g, b, e, rnd) if r is not None]
            best = min(found, key=lambda r: (r.best_cycles, len(r.sequence)))
            rooms[kid] = Room(
                kid,
                g.base_cycles,
                g.best_cycles,
                b.best_cycles,
                None if e is None else e.best_cycles,
                None if rnd is None else rnd.best_cycles,
                bool(e and e.complete),
                0 if e is None else e.states,
                best.sequence,
                g.sequence,
            )
            print(
                f"  {kid}: greedy {g.best_cycles:.0f}, beam{width} {b.best_cycles:.0f}, "
                f"exhaustive {'-' if e is None else f'{e.best_cycles:.0f}'}"
                f"{'' if e is None or e.complete else '*'}, random "
                f"{'-' if rnd is None else f'{rnd.best_cycles:.0f}'} "
                f"({time.perf_counter() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
    return rooms, label


def replay(mdp: Any, spec: Any, names: list[str]) -> float | None:
    """Cycles after applying `names` in order (None: a step was invalid or a no-op)."""
    from chronos.transforms import ACTION_NAMES

    state = mdp.initial(spec)
    for name in names:
        out = mdp.step(state, ACTION_NAMES.index(name))
        if out.invalid or out.info.get("reason") != "applied":
            return None
        state = out.state
    return float(state.cycles)


def prune(
    mdp: Any, spec: Any, names: list[str], cycles: float, step_cost: float
) -> tuple[list[str], float]:
    """Drop steps while dropping one raises the return log(base/cycles) - step_cost * len.

    The searches rank by cycles, so their best sequence can carry steps that gain less than
    the step cost (or nothing, in the order they were taken); the pruned sequence is what a
    reward maximiser is after.
    """
    seq, cyc = list(names), cycles
    while seq:
        best: tuple[float, list[str], float] | None = None
        for i in range(len(seq)):
            cand = seq[:i] + seq[i + 1 :]
            c = replay(mdp, spec, cand)
            if c is None:
                continue
            gain = math.log(cyc / c) + step_cost  # return of cand minus return of seq
            if gain > 1e-12 and (best is None or gain > best[0]):
                best = (gain, cand, c)
        if best is None:
            break
        _, seq, cyc = best
    return seq, cyc


def prune_rooms(run_dir: Path, rooms: dict[str, Room], min_gain: float) -> None:
    """`prune` the best sequence of every kernel with room, over the run's MDP and store."""
    todo = [r for r in rooms.values() if r.room > min_gain]
    if not todo:
        return
    with open_mdp(run_dir) as (mdp, tc, _):
        from kernels import load

        for r in todo:
            r.pruned_sequence, r.pruned_cycles = prune(
                mdp, load(r.kernel_id), r.best_sequence, r.best, tc.env.step_cost
            )


def best_sampled(run_dir: Path) -> dict[str, float]:
    """Per kernel the fewest cycles GRPO sampled in training, relative to base (last.pt)."""
    from agents import checkpoint as ckpt

    last = run_dir / "checkpoints" / "last.pt"
    if not last.exists():
        return {}
    found = ckpt.load(last)["grpo_state"].get("best_found", {})
    return {k: v["final_cycles"] / v["base_cycles"] for k, v in found.items()}


def pruned_note(r: Room) -> str:
    if r.pruned_sequence is None or r.pruned_cycles is None:
        return ""
    vs = fmt_pct(vs_greedy(r.pruned_cycles, r.greedy))
    return f" (pruned: {' → '.join(r.pruned_sequence) or '(none)'}, {vs})"


def fmt_pct(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:+.2%}"


def report(
    run_dir: Path, rooms: dict[str, Room], label: str, args: argparse.Namespace, wall: float | None
) -> dict[str, Any]:
    prov = json.loads((run_dir / "provenance.json").read_text())
    cfg = prov["config"]
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    per_kernel = summary["per_kernel"]
    sampled = best_sampled(run_dir)
    rows = read_train_csv(run_dir / "metrics" / "train.csv")
    warmup = args.warmup if args.warmup is not None else cfg["grpo"]["forced_steps"]["until_epoch"]
    mg = args.min_gain
    fam = prov.get("families", {})
    print(f"\n# GRPO goals (issue 17): {label}\n")
    print(f"run dir {run_dir}, git {prov.get('git_revision')}, seed {prov.get('seed')}")
    if wall is not None:
        print(f"training wall time {wall:.0f} s ({wall / 60:.1f} min)")
    print(
        f"\n## Room over greedy ({label}; beam width {args.width}, exhaustive capped at "
        f"{args.max_states} states, * = capped lower bound; random: {args.episodes} episodes)\n"
    )
    print(
        "| kernel | family | greedy vs base | beam vs greedy | exhaustive vs greedy | states "
        "| random vs greedy "
        "| room > 1% | Δreturn | GRPO argmax vs greedy | GRPO best sampled vs greedy "
        "| best sequence |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|")
    step_cost = float(cfg["env"]["step_cost"])
    goal = argmax_goal(per_kernel, rooms, mg, step_cost)
    for kid, r in rooms.items():
        pk = per_kernel[kid]
        argmax = vs_greedy(1.0 + pk.get("grpo_raw", pk["grpo"]), 1.0 + pk["greedy"])
        samp = sampled.get(kid)
        samp_vs = None if samp is None else vs_greedy(samp, r.greedy / r.base)
        ex = None if r.exhaustive is None else vs_greedy(r.exhaustive, r.greedy)
        rnd = None if r.random is None else vs_greedy(r.random, r.greedy)
        star = "" if r.complete or r.exhaustive is None else "*"
        print(
            f"| {kid} | {fam.get(kid, '')} | {fmt_pct(r.greedy / r.base - 1)} "
            f"| {fmt_pct(vs_greedy(r.beam, r.greedy))} | {fmt_pct(ex)}{star} | {r.states} "
            f"| {fmt_pct(rnd)} "
            f"| {'yes' if r.room > mg else 'no'} | {r.net_return(step_cost):+.4f} "
            f"| {fmt_pct(argmax)} ({goal['classes'][kid]}) "
            f"| {fmt_pct(samp_vs)} | {' → '.join(r.best_sequence) or '(none)'}"
            + pruned_note(r)
            + " |"
        )
    n_complete = sum(r.complete for r in rooms.values())
    print(
        f"\n{goal['kernels_with_room']} of {len(rooms)} kernels leave > {mg:.0%} room over "
        f"greedy (exhaustive complete on {n_complete}); room per kernel: "
        + ", ".join(f"{k} {r.room:+.2%}" for k, r in rooms.items() if r.room > mg)
    )
    print(
        f"Δreturn: the (pruned) best sequence's episode return minus greedy's (log-gain less "
        f"step_cost {step_cost} per extra step, stop steps aside); of the kernels with room, "
        f"{sum(r.room > mg and r.net_return(step_cost) > 0 for r in rooms.values())} are worth "
        f"taking under the reward."
    )
    print(f"\n## Learning signal per epoch (metrics/train.csv; warm-up = epochs < {warmup})\n")
    print("| epoch | T | zero_std | zero_std sampled | entropy | clip low | clip high | KL(BC) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        vals = [r.get(k, math.nan) for k in SIGNAL_KEYS]
        print(
            f"| {int(r['epoch'])}{'' if r['epoch'] >= warmup else ' (warm-up)'} | {vals[6]:.2f} | "
            + " | ".join(f"{v:.3f}" for v in vals[:3])
            + " | "
            + " | ".join(f"{v:.4f}" for v in vals[3:6])
            + " |"
        )
    print(
        f"\n## Argmax vs greedy at every evaluation (eval/summary.json; the goals use "
        f"{summary.get('checkpoint')}, the promotion gate's pick)\n"
    )
    print(
        "| eval epoch | score | worse | tie | better ≤ 1% | better > 1% "
        "| lower return than greedy |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for ev in summary.get("evals", []):
        pk = {
            k: {"grpo": v["improvement"], "greedy": per_kernel[k]["greedy"]}
            for k, v in ev["kernels"].items()
            if k in per_kernel
        }
        g = argmax_goal(pk, rooms, mg)
        lower = sum(
            episode_return(v["improvement"], len(v["actions"]), step_cost)
            < episode_return(
                per_kernel[k]["greedy"], len(per_kernel[k]["greedy_actions"]), step_cost
            )
            - 1e-12
            for k, v in ev["kernels"].items()
            if k in per_kernel
        )
        print(
            f"| {ev['epoch']} | {ev['score']:.4f} | {g['worse']} | {g['ties']} "
            f"| {g['better_small']} | {g['better_gt_min_gain']} | {lower} |"
        )
    print(
        "\n(worse/tie/better compare cycles; the return is log(base/final) less step_cost per "
        "transform, so dropping a step that gains under the step cost is slower but better.)"
    )
    sig = signal_goal(rows, warmup)
    print("\n## Goals\n")
    print("| goal | measured | met |")
    print("|---|---|---|")
    print(
        f"| frac_reward_zero_std < 50% in every epoch after warm-up | max "
        f"{sig['max_frac_reward_zero_std']:.3f} over {sig['epochs_after']} epochs "
        f"({sig['epochs_at_or_above_goal']} at or above 50%) | {'yes' if sig['met'] else 'NO'} |"
    )
    print(
        f"| argmax never worse than greedy (cycles) | {goal['worse']} worse (at most "
        f"{goal['max_worse']:.2%} slower), {goal['ties']} ties, "
        f"{goal['better_small'] + goal['better_gt_min_gain']} better | "
        f"{'yes' if goal['never_worse_met'] else 'NO'} |"
    )
    print(
        f"| argmax never a lower return than greedy (step_cost {step_cost}) | "
        f"{goal['lower_return']} lower | {'yes' if goal['never_lower_return_met'] else 'NO'} |"
    )
    print(
        f"| argmax better than greedy by > {mg:.0%} on min(5, kernels with room) = "
        f"{goal['better_needed']} | {goal['better_gt_min_gain']} | "
        f"{'yes' if goal['better_met'] else 'NO'} |"
    )
    out = {
        "backend": label,
        "run_dir": str(run_dir),
        "git_revision": prov.get("git_revision"),
        "train_wall_s": wall,
        "width": args.width,
        "max_states": args.max_states,
        "episodes": args.episodes,
        "rooms": {
            k: {**vars(r), "room": r.room, "net_return": r.net_return(step_cost)}
            for k, r in rooms.items()
        },
        "signal": sig,
        "argmax": goal,
        "epochs": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, help="a finished chronos.train run (default: train)")
    p.add_argument("--override", action="append", default=[], help="chronos.train override")
    p.add_argument("--cold", action="store_true", help="train on an empty store and cache")
    p.add_argument(
        "--runs-root", type=Path, default=ROOT / "outputs" / "grpo_goals", help="where runs go"
    )
    p.add_argument("--width", type=int, default=4, help="beam width")
    p.add_argument("--max-states", type=int, default=40, help="exhaustive cap (0: skip)")
    p.add_argument("--episodes", type=int, default=32, help="random-search episodes (0: skip)")
    p.add_argument("--min-gain", type=float, default=0.01, help="'better' threshold (design: 1%%)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up epochs (default: forced)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument(
        "--room", type=Path, help="reuse the room of an earlier --json (same corpus and backend)"
    )
    args = p.parse_args(argv)
    wall = None
    run_dir = args.run_dir
    if run_dir is None:
        run_dir, wall = train(args.override, args.runs_root, args.cold)
    elif args.override or args.cold:
        p.error("--override and --cold train a new run; they cannot be combined with --run-dir")
    if args.room is not None:
        old = json.loads(args.room.read_text())
        rooms = {
            k: Room(**{f: v for f, v in r.items() if f not in ("room", "net_return")})
            for k, r in old["rooms"].items()
        }
        label, args.width, args.max_states = old["backend"], old["width"], old["max_states"]
        args.episodes = old["episodes"]
        summary = json.loads((run_dir / "eval" / "summary.json").read_text())
        if set(rooms) != set(summary["per_kernel"]):
            p.error(f"--room {args.room} holds other kernels than {run_dir}")
    else:
        rooms, label = measure_room(run_dir.resolve(), args.width, args.max_states, args.episodes)
    if any(r.pruned_sequence is None for r in rooms.values() if r.room > args.min_gain):
        prune_rooms(run_dir.resolve(), rooms, args.min_gain)
    return report(run_dir.resolve(), rooms, label, args, wall)


if __name__ == "__main__":
    main()
