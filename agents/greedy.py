"""Greedy v2 (docs/design.md §7 baseline) as the BC data set: the search is `agents.search.greedy`.

Greedy is the baseline the agent must beat and the teacher BC clones. At each step it
measures every unmasked transform from the current state and takes the one with the fewest
cycles; it stops (and records stop as its action) when no transform improves by more than
`min_gain`. Its states and actions are the BC data set, saved as `.npz` arrays plus a JSON
summary (per-kernel sequence and improvement) keyed by backend, its harness or cost-model
version, device, kernel PTX hashes and the source of the transforms and features (the labels
are action ids and the states are features), so the pipeline reuses it instead of re-measuring
and never reuses it across a catalogue change.

Functions only: the command is the pipeline's greedy stage,

    python -m chronos.train +exp=greedy kernels=small backend=emulated
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents import search
from agents.bc import BCData
from agents.search import GreedyTrace
from chronos.fmt import speedup
from chronos.progress import Progress
from envs.mdp import TransformMDP
from envs.spaces import LAYOUT, Layout
from kernels.spec import spec_fingerprint


@dataclass
class GreedyResult:
    """One kernel's greedy search: its sequence, cycles and the (obs, mask, action) it took."""

    kernel_id: str
    base_cycles: float
    final_cycles: float
    actions: list[str]
    measurements: int
    obs: list[np.ndarray] = field(default_factory=list, repr=False)
    masks: list[np.ndarray] = field(default_factory=list, repr=False)
    labels: list[int] = field(default_factory=list, repr=False)
    gains: list[np.ndarray] = field(default_factory=list, repr=False)  # see GreedyTrace
    invalid: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def improvement(self) -> float:
        """final/base - 1 (negative is faster), as the design's -28.1% is quoted."""
        return self.final_cycles / self.base_cycles - 1.0

    def summary(self) -> dict[str, Any]:
        return {
            "kernel_id": self.kernel_id,
            "base_cycles": self.base_cycles,
            "final_cycles": self.final_cycles,
            "improvement": self.improvement,
            "actions": self.actions,
            "first_action": self.actions[0] if self.actions else "stop",
            "measurements": self.measurements,
        }


def greedy_kernel(
    mdp: TransformMDP, spec: Any, min_gain: float = 0.0, progress: bool = True
) -> GreedyResult:
    """Greedy v2 on one kernel (`agents.search.greedy`) with its decisions kept as BC rows."""
    trace = GreedyTrace()
    r = search.greedy(mdp, spec, min_gain, trace, progress=progress)
    return GreedyResult(
        spec.id,
        r.base_cycles,
        r.best_cycles,
        r.sequence,
        r.measurements,
        trace.obs,
        trace.masks,
        trace.labels,
        trace.gains,
        trace.invalid,
    )


def run_greedy(
    mdp: TransformMDP, specs: Sequence[Any], min_gain: float = 0.0, progress: bool = True
) -> list[GreedyResult]:
    results = []
    with Progress("greedy", unit="kernel", total=len(specs), progress=progress) as bar:
        for spec in specs:
            # one bar: the per-kernel searches only log their summaries
            results.append(greedy_kernel(mdp, spec, min_gain, progress=False))
            last = results[-1].improvement
            bar.update(1, improvement=last, last=speedup(last, short=True))
    return results


def to_bcdata(results: Sequence[GreedyResult], layout: Layout = LAYOUT) -> BCData:
    """Every greedy decision (including its final stop) as a BC training row, with the gains
    of every child greedy measured there (the action-value learner's rows)."""
    rows = [(r, i) for r in results for i in range(len(r.labels))]
    n = layout.n_actions
    return BCData(
        obs=np.stack([r.obs[i] for r, i in rows]).astype(np.float32)
        if rows
        else np.zeros((0, layout.obs_size), np.float32),
        mask=np.stack([r.masks[i] for r, i in rows]).astype(bool)
        if rows
        else np.zeros((0, layout.n_actions), bool),
        action=np.asarray([r.labels[i] for r, i in rows], dtype=np.int64),
        kernel=np.asarray([r.kernel_id for r, _ in rows], dtype=str),
        step=np.asarray([i for _, i in rows], dtype=np.int64),
        gains=np.stack([r.gains[i] for r, i in rows]).astype(np.float32)
        if rows
        else np.zeros((0, n), np.float32),
        invalid=np.stack([r.invalid[i] for r, i in rows]).astype(bool)
        if rows
        else np.zeros((0, n), bool),
    )


_DATASET_SOURCES = (
    "chronos/transforms",
    "chronos/features",
    "agents/search.py",
    "agents/greedy.py",
)
"""Packages (and files) whose code decides the data set's labels (action ids), states and row
format (a cache from before the children's gains were kept has another key)."""


def code_fingerprint(packages: Sequence[str] = _DATASET_SOURCES) -> str:
    """sha256 of the Python sources of `packages` (folders or files, relative to the root)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for pkg in packages:
        path = root / pkg
        for f in [path] if path.is_file() else sorted(path.glob("*.py")):
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def dataset_key(
    specs: Sequence[Any], backend: str, device: str, min_gain: float, harness_version: str = ""
) -> str:
    """Hash of what the data set depends on: kernels' spec fingerprints (PTX, problems,
    contract, reference), backend and its harness (or cost model) version, device, min_gain,
    and the code of the transforms and features."""
    h = hashlib.sha256(f"{backend}|{harness_version}|{device}|{min_gain}".encode())
    h.update(code_fingerprint().encode())
    for s in specs:
        h.update(s.id.encode())
        h.update(spec_fingerprint(s).encode())  # a resized problem changes every figure
    return h.hexdigest()[:16]


def save_dataset(path: Path, results: Sequence[GreedyResult], meta: dict[str, Any]) -> Path:
    """`<path>.npz` (BC rows) and `<path>.json` (per-kernel summary and provenance)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    d = to_bcdata(results)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **dataset_arrays(d))
    tmp.replace(path.with_suffix(".npz"))
    summary = {"meta": meta, "kernels": [r.summary() for r in results]}
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    return path


def dataset_arrays(d: BCData) -> dict[str, np.ndarray]:
    """The arrays a data set file holds (gains and invalid only when the data carries them)."""
    arrays = {"obs": d.obs, "mask": d.mask, "action": d.action, "kernel": d.kernel, "step": d.step}
    if d.gains is not None and d.invalid is not None:
        arrays.update(gains=d.gains, invalid=d.invalid)
    return arrays


def load_dataset(path: Path) -> tuple[BCData, dict[str, Any]]:
    """The data set at `path`; a file from before the children's gains were kept loads with
    `gains=None` (BC needs none; the action-value learner refuses it, agents/qvalue.py)."""
    with np.load(path.with_suffix(".npz")) as z:
        gains = z["gains"] if "gains" in z.files else None
        invalid = z["invalid"] if "invalid" in z.files else None
        data = BCData(z["obs"], z["mask"], z["action"], z["kernel"], z["step"], gains, invalid)
    return data, json.loads(path.with_suffix(".json").read_text())


def improvement_table(kernels: Sequence[dict[str, Any]]) -> str:
    """Markdown table of greedy's per-kernel result and the mean speed-up."""
    lines = [
        "| kernel | base cycles | final cycles | speed-up | sequence |",
        "|---|---:|---:|---:|---|",
    ]
    for k in kernels:
        seq = " → ".join(k["actions"]) or "(stop)"
        lines.append(
            f"| {k['kernel_id']} | {k['base_cycles']:.0f} | {k['final_cycles']:.0f} "
            f"| {speedup(k['improvement'])} | {seq} |"
        )
    if kernels:
        mean = float(np.mean([k["improvement"] for k in kernels]))
        geo = math.exp(np.mean([math.log(k["final_cycles"] / k["base_cycles"]) for k in kernels]))
        geomean = speedup(geo - 1, short=True)
        lines.append(
            f"| **mean** (n={len(kernels)}) | | | **{speedup(mean)}** (geomean {geomean}) | |"
        )
    return "\n".join(lines)
