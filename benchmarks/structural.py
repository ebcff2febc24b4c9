"""Issue 31's targets: do the structural transforms apply to kernels as people write them?

    python benchmarks/structural.py [--arch sm_90] [--per-family 0] [--smoke]

On the seven everyday forms of tests/data/outside/everyday.cu (written outside the corpus,
never tuned against) and on the corpus:

1. applicability: for each structural transform (vec_ld, vec_st, cp_async, split_acc,
   reorder_cp), the forms it changes the SASS of (target: >= 3 of 7) and the corpus families
   it changes the SASS of on at least one kernel (target: >= 3);
2. actions: per form, how many of the 20 actions change its SASS (target: mean >= 11);
3. greedy: greedy v2 on each form with the `emulated` backend (figures are ESTIMATES of the
   cost model, never cycles): its speed-up and sequence (target: >= 1% on at least 5 of 7
   with a sequence that holds a structural transform).

`--per-family N` samples N kernels per corpus family for part 1 (0: every kernel).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels  # noqa: E402
from agents.search import greedy  # noqa: E402
from chronos.assemble import PtxasError, assemble  # noqa: E402
from chronos.measure.backends.emulated import EmulatedBackend  # noqa: E402
from chronos.measure.costmodel import MODEL_VERSION  # noqa: E402
from chronos.progress import Progress  # noqa: E402
from chronos.transforms import ACTION_NAMES, STOP, apply_action  # noqa: E402
from chronos.transforms.coverage import STRUCTURAL  # noqa: E402
from envs.mdp import TransformMDP  # noqa: E402
from tests.helpers.outside_kernels import EVERYDAY, registered  # noqa: E402


def sass_changing(spec: kernels.KernelSpec, arch: str) -> list[str]:
    """The actions whose PTX assembles to other SASS than the untransformed kernel's."""
    base = assemble(spec.ptx(), arch).module_text_sha256
    out = []
    for a, name in enumerate(ACTION_NAMES):
        if a == STOP:
            continue
        res = apply_action(spec, spec.ptx(), a)
        if not res.changed:
            continue
        try:
            if assemble(res.ptx, arch).module_text_sha256 != base:
                out.append(name)
        except PtxasError:
            continue
    return out


def corpus_families(per_family: int, arch: str) -> dict[str, set[str]]:
    """Per structural transform: the corpus families where it changes some kernel's SASS."""
    fams: dict[str, list[str]] = {}
    for k in kernels.list_kernels():
        fams.setdefault(kernels.load(k).family, []).append(k)
    chosen = []
    for ks in fams.values():
        step = max(1, len(ks) // per_family) if per_family else 1
        chosen += ks[::step][: per_family or None]
    hit: dict[str, set[str]] = {n: set() for n in STRUCTURAL}
    with Progress("corpus kernels", unit="kernel", total=len(chosen)) as bar:
        for k in chosen:
            spec = kernels.load(k)
            for name in set(sass_changing(spec, arch)) & set(STRUCTURAL):
                hit[name].add(spec.family)
            bar.update(1)
    return hit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="sm_90", help="ptxas target and cost-model profile")
    ap.add_argument("--per-family", type=int, default=0, help="corpus kernels per family (0: all)")
    ap.add_argument("--smoke", action="store_true", help="two forms, one kernel per family (CI)")
    args = ap.parse_args(argv)
    forms = EVERYDAY[:2] if args.smoke else EVERYDAY
    per_family = 1 if args.smoke else args.per_family
    print(f"structural transforms on issue 31's everyday forms, ptxas {args.arch}")
    fams = corpus_families(per_family, args.arch)  # the corpus alone, before the forms join it
    with registered():
        changing = {s.id: sass_changing(s, args.arch) for s in forms}
        print("\n1. applicability (SASS-changing)")
        for name in STRUCTURAL:
            on = [k for k, acts in changing.items() if name in acts]
            print(
                f"   {name:<11} {len(on)} of {len(forms)} forms ({', '.join(on) or '-'}); "
                f"{len(fams[name])} corpus families ({', '.join(sorted(fams[name])) or '-'})"
            )
        print("\n2. SASS-changing actions per form")
        for k, acts in changing.items():
            print(f"   {k:<28} {len(acts):>2}  {' '.join(acts)}")
        mean = sum(len(a) for a in changing.values()) / len(changing)
        print(f"   mean {mean:.1f} (target >= 11)")
        print(f"\n3. greedy, emulated backend ({MODEL_VERSION}: estimates, not cycles)")
        mdp = TransformMDP(EmulatedBackend(arch=args.arch))
        wins = 0
        for spec in forms:
            res = greedy(mdp, spec, progress=False)
            names = [ACTION_NAMES[a] for a in res.actions]
            structural = any(n in STRUCTURAL for n in names)
            gain = res.base_cycles / res.best_cycles - 1.0
            wins += gain >= 0.01 and structural
            speedup = res.base_cycles / res.best_cycles
            print(f"   {spec.id:<28} {speedup:.3f}x  {' -> '.join(names) or '(none)'}")
        print(f"   {wins} of {len(forms)} gain >= 1% with a structural action (target >= 5 of 7)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
