"""Best speed-up found against the number of measurements, on kernels the learners never saw.

    python benchmarks/budget.py                          # default kernel set, 4 kernel folds
    python benchmarks/budget.py --folds 20 --grpo-epochs 10 --out budget/   # leave one out
    python benchmarks/budget.py --smoke                  # 2 CI kernels, tiny (CI)

Issue 27: a learned policy is worth having only where it beats running search on the new
kernel. The kernels are split into `--folds` groups (GroupKFold over kernel ids: `--folds` =
the number of kernels is leave-one-kernel-out); per fold BC is trained on greedy's decisions
on the other kernels and GRPO warm-started from it for `--grpo-epochs` on them, as
`python -m chronos.eval +exp=loko` does. On each held-out kernel every method runs over the
same MDP and measurement store: random search (`--episodes`), greedy, beam(`--width`), and
BC's and GRPO's single argmax rollout (guarded: the best verified state it measured). Each
method's cost is the number of distinct PTX texts it had measured (the base included): what it
costs on an empty store. The table gives, per budget, the geometric mean over the held-out
kernels of the best speed-up each method had found within that many measurements (a method
that finished earlier keeps its final best), and the plot draws the same curves.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from sklearn.model_selection import GroupKFold  # noqa: E402

from agents.bc import train_mlp  # noqa: E402
from agents.grpo import evaluate  # noqa: E402
from agents.search import beam, greedy, random_search  # noqa: E402
from chronos.fmt import backend_label  # noqa: E402
from chronos.measure.costmodel import MODEL_VERSION  # noqa: E402
from chronos.pipeline.config import CONF_DIR, to_config  # noqa: E402
from chronos.pipeline.eval.loko import grpo_fold  # noqa: E402
from chronos.pipeline.stages import open_context, stage_greedy  # noqa: E402
from chronos.ptx import ptx_sha256  # noqa: E402

METHODS = ("random", "greedy", "beam", "bc", "grpo")
OUT = Path("outputs/budget")


class Trace:
    """Best cycles found against distinct PTX texts measured, while active (watches the MDP's
    `measure_many`, alongside the searches' own meter)."""

    def __init__(self, mdp: Any, base_ptx: str, base_cycles: float) -> None:
        self.seen = {ptx_sha256(base_ptx)}
        self.points = [(1, base_cycles)]  # (measurements, best cycles so far)
        self._watch = mdp.watching(self._on_batch)

    def __enter__(self) -> Trace:
        self._watch.__enter__()
        return self

    def _on_batch(self, spec: Any, ptxs: Sequence[str], ms: list[Any]) -> None:
        for p, m in zip(ptxs, ms, strict=True):
            sha = ptx_sha256(p)
            if sha in self.seen:
                continue
            self.seen.add(sha)
            best = self.points[-1][1]
            if getattr(m, "valid", False) and m.cycles and m.cycles < best:
                best = float(m.cycles)
            self.points.append((len(self.seen), best))

    def __exit__(self, *exc: Any) -> None:
        self._watch.__exit__(*exc)

    def best_within(self, budget: int) -> float:
        return min(c for n, c in self.points if n <= budget)


def trace(mdp: Any, spec: Any, run: Callable[[], Any]) -> Trace:
    s0 = mdp.initial(spec)
    with Trace(mdp, s0.ptx, s0.cycles) as t:
        run()
    return t


def fold_traces(ctx: Any, data: Any, held: list[Any], args: argparse.Namespace) -> dict:
    """kernel -> method -> Trace on one fold's held-out kernels."""
    mdp = ctx.mdp
    train = data.subset(np.flatnonzero(~np.isin(data.kernel, [s.id for s in held])))
    bc = train_mlp(train, ctx.cfg.bc, ctx.cfg.seed)
    grpo = grpo_fold(ctx, "_".join(s.id for s in held)[:80], held, bc, train)
    runs: dict[str, Callable[[Any], Any]] = {
        "random": lambda s: random_search(mdp, s, args.episodes, ctx.cfg.seed, progress=False),
        "greedy": lambda s: greedy(mdp, s, progress=False),
        "beam": lambda s: beam(mdp, s, args.width, progress=False),
        "bc": lambda s: evaluate(mdp, [s], bc, epoch=-1),
        "grpo": lambda s: evaluate(mdp, [s], grpo, epoch=-1),
    }
    return {s.id: {m: trace(mdp, s, lambda f=f, s=s: f(s)) for m, f in runs.items()} for s in held}


def table(traces: dict[str, dict[str, Trace]], budgets: list[int]) -> dict[str, Any]:
    """Per method: geomean speed-up within each budget, and mean measurements used."""
    out: dict[str, Any] = {}
    for m in METHODS:
        rows = [(k[m].points[0][1], k[m]) for k in traces.values()]
        out[m] = {
            "speedup": [
                float(np.exp(np.mean([math.log(b / t.best_within(n)) for b, t in rows])))
                for n in budgets
            ],
            "final": float(np.exp(np.mean([math.log(b / t.points[-1][1]) for b, t in rows]))),
            "measurements": float(np.mean([t.points[-1][0] for _, t in rows])),
        }
    return out


def markdown(res: dict[str, Any], budgets: list[int], label: str, n: int) -> list[str]:
    lines = [
        f"Best speed-up found within N measurements, geometric mean over {n} held-out "
        f"kernels ({label}); `used` is the mean distinct states a method measured.",
        "",
        "| method | " + " | ".join(f"N={b}" for b in budgets) + " | final | used |",
        "|---|" + "---:|" * (len(budgets) + 2),
    ]
    for m, r in res.items():
        cells = [f"{x:.3f}x" for x in r["speedup"]] + [f"{r['final']:.3f}x"]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {r['measurements']:.0f} |")
    return lines


def plot(res: dict[str, Any], budgets: list[int], label: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for m, r in res.items():
        ax.plot(budgets, r["speedup"], "o-", label=f"{m} (uses {r['measurements']:.0f})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("measurements (distinct PTX texts, base included)")
    ax.set_ylabel("best speed-up found (geomean, x)")
    ax.set_title(f"Held-out kernels: speed-up vs measurements; {label}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def setup(args: argparse.Namespace) -> Any:
    """The pipeline's context (MDP, backend, kernels) and greedy data set for the run."""
    overrides = ["+exp=ci" if args.smoke else "+exp=grpo", f"backend={args.backend}"]
    overrides += ["progress=false", f"loko.grpo_epochs={args.grpo_epochs}", *args.override]
    if args.store:
        overrides.append(f"backend.store={args.store}")
    if args.smoke:  # nothing outside its own run dir
        overrides.append(f"greedy.dataset_dir={args.out.resolve() / 'greedy_cache'}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base=None):
        cfg = to_config(compose("config", overrides=overrides))
    return open_context(cfg, args.out.resolve())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folds", type=int, default=4, help="kernel folds (n kernels: LOKO)")
    p.add_argument("--budgets", default="1,2,4,8,16,32,64,128,256")
    p.add_argument("--episodes", type=int, default=32, help="random-search episodes")
    p.add_argument("--width", type=int, default=4, help="beam width")
    p.add_argument("--grpo-epochs", type=int, default=10, help="GRPO epochs per fold")
    p.add_argument("--backend", default="emulated")
    p.add_argument("--store", default=None, help="measurement store (default: the default)")
    p.add_argument("--out", type=Path, default=OUT, help="run dir (json, md, png, folds)")
    p.add_argument("--override", action="append", default=[], help="a Hydra override")
    p.add_argument("--smoke", action="store_true", help="2 CI kernels, 2 folds, tiny (CI)")
    args = p.parse_args()
    if args.smoke:
        args.folds, args.episodes, args.width, args.grpo_epochs = 2, 2, 2, 1
        args.budgets, args.store = "1,4,16", args.store or "null"
        if args.out == OUT:
            args.out = Path(tempfile.mkdtemp(prefix="budget_smoke_"))
    budgets = [int(b) for b in args.budgets.split(",")]
    ctx = setup(args)
    try:
        data, _ = stage_greedy(ctx)
        specs = {s.id: s for s in ctx.specs}
        ids = np.asarray(list(specs))
        traces: dict[str, dict[str, Trace]] = {}
        for _, held in GroupKFold(n_splits=min(args.folds, len(ids))).split(ids, groups=ids):
            traces.update(fold_traces(ctx, data, [specs[k] for k in ids[held]], args))
    finally:
        ctx.mdp.backend.close()
    label = backend_label(ctx.backend, ctx.device)
    res = table(traces, budgets)
    lines = markdown(res, budgets, label, len(traces))
    lines += ["", f"cost model {MODEL_VERSION}, git {ctx.provenance.get('git_revision')}"]
    print("\n".join(lines))
    out = args.out.resolve()
    (out / "budget.md").write_text("\n".join(lines) + "\n")
    (out / "budget.json").write_text(
        json.dumps({"backend": label, "budgets": budgets, "methods": res}, indent=2)
    )
    plot(res, budgets, label, out / "budget.png")
    print(f"wrote {out / 'budget.md'}, budget.json, budget.png")


if __name__ == "__main__":
    main()
