"""The steps of `python -m chronos.validate`, in order (see the package docstring)."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chronos.pipeline.validate.common import (
    CV_TARGET,
    DESIGN_KERNEL,
    DESIGN_L4_CYCLES,
    DESIGN_SEQUENCE,
    REPLAY_DIR,
    REQUIRE_GPU,
    ROOT,
    SANITY_TRANSFORMS,
    Budget,
    OutOfBudget,
    Refused,
    ValidateConfig,
    cupy_options,
    device_slug,
)


def _run(cmd: Sequence[str], timeout: float) -> tuple[int | None, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        return None, f"{cmd[0]}: not found"
    except subprocess.TimeoutExpired:
        return None, f"{cmd[0]}: no answer within {timeout:g} s"
    return p.returncode, (p.stdout + p.stderr).strip()


def nvidia_smi() -> dict[str, Any]:
    """The device as nvidia-smi sees it: clocks, compute mode, other processes."""
    fields = "name,driver_version,clocks.sm,clocks.max.sm,compute_mode,temperature.gpu,power.draw"
    rc, out = _run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"], 20)
    if rc != 0:
        return {"available": False, "error": out}
    gpus = [dict(zip(fields.split(","), (x.strip() for x in line.split(",")), strict=False))
            for line in out.splitlines() if line.strip()]  # fmt: skip
    q = "--query-compute-apps=pid,process_name,used_memory"
    rc, apps = _run(["nvidia-smi", q, "--format=csv,noheader"], 20)
    procs = [line.strip() for line in apps.splitlines() if line.strip()] if rc == 0 else []
    return {"available": True, "gpus": gpus, "other_processes": procs}


def step_environment(cfg: ValidateConfig, budget: Budget, state: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from chronos.assemble import find_ptxas, ptxas_version
    from chronos.measure import make_backend
    from chronos.measure.backends.cupy import HARNESS_VERSION

    res: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "harness_version": HARNESS_VERSION,
    }
    try:
        ptxas = find_ptxas()
        res["ptxas"] = {"path": str(ptxas), "version": ptxas_version(ptxas)}
    except Exception as exc:  # noqa: BLE001 - reported; the cupy backend then refuses below
        res["ptxas"] = {"error": f"{type(exc).__name__}: {exc}"}
    res["nvidia_smi"] = nvidia_smi()
    if not cfg.dry_run:
        from chronos.measure.backends.auto import choose_backend

        name, reason = choose_backend()
        res["auto"] = reason
        if name != "cupy":
            raise Refused(f"the GPU backend is not usable, {reason}")
    with make_backend("cupy", store=False, **cupy_options(cfg, 1, 0)) as b:
        try:
            info = dict(b.inner.worker.start())
        except Exception as exc:  # noqa: BLE001 - WorkerFault: the GPU worker cannot start
            raise Refused(f"the cupy GPU worker cannot start: {exc}") from None
        res["toolchain"] = toolchain(b.inner)
    res["device"] = info
    state["device"] = str(info.get("device", "unknown GPU"))
    print(environment_summary(res), flush=True)
    return res


def toolchain(backend: Any) -> dict[str, Any]:
    """How the cupy backend gets SASS on this driver: the design kernel's PTX ISA before and
    after lowering, and the ptxas whose cubins the driver loads (or the driver JIT)."""
    from chronos.measure.harness.compat import IsaTooNewError, lower_for_driver
    from chronos.ptx.isa import declared_isa, isa_str
    from kernels import load

    ptx = load(DESIGN_KERNEL).ptx()
    try:
        lowered, _ = lower_for_driver(ptx, backend.driver_version)
    except IsaTooNewError as exc:
        raise Refused(f"{DESIGN_KERNEL}: {exc}") from None
    before, after = declared_isa(ptx), declared_isa(lowered)
    exe, why = backend.toolchain(after)
    return {
        "driver_version": backend.driver_version,
        "ptx_isa": f"{isa_str(before) if before else '?'} -> {isa_str(after) if after else '?'}",
        "load": "cubin" if exe is not None else "driver JIT",
        "sass_from": why,
        "ptxas_version": backend.ptxas_version_for(ptx),
    }


def environment_summary(res: dict[str, Any]) -> str:
    """The environment step's figures as the lines printed at the start of a run."""
    d = res.get("device") or {}
    smi = res.get("nvidia_smi") or {}
    gpu = (smi.get("gpus") or [{}])[0]
    ptxas = res.get("ptxas") or {}
    tc = res.get("toolchain") or {}
    return "\n".join(
        [
            f"device   {d.get('device')} ({d.get('arch')}, {d.get('sm_count')} SMs)",
            f"driver   {d.get('driver_version')}  CUDA runtime {d.get('runtime_version')}  "
            f"CuPy {d.get('cupy_version')}  ptxas {ptxas.get('version') or ptxas.get('error')}",
            f"SASS     {tc.get('load')}: {tc.get('sass_from')}; PTX ISA {tc.get('ptx_isa')}",
            f"SM clock {gpu.get('clocks.sm', '?')} (max {gpu.get('clocks.max.sm', '?')}; "
            f"device attribute {d.get('clock_mhz_max')} MHz)  compute mode "
            f"{gpu.get('compute_mode', '?')}",
            "other GPU processes: "
            + ("; ".join(smi.get("other_processes") or []) or "none")
            + ("" if smi.get("available") else f" (nvidia-smi: {smi.get('error')})"),
        ]
    )


def step_pytest_gpu(cfg: ValidateConfig, budget: Budget, state: dict[str, Any]) -> dict[str, Any]:
    """`pytest -m gpu`: a dry run only collects (there is no GPU to run them on)."""
    budget.check(20)
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rfEs"]
    env = child_env()
    files = gpu_test_files()
    if cfg.dry_run:
        cmd += ["--collect-only", *files]
    else:
        cmd += files
        env[REQUIRE_GPU] = "1"
    timeout = min(cfg.pytest_timeout_s, budget.left())
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        rc = None
        text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        text += f"\n(timed out after {timeout:.0f} s)"
    (cfg.out / "pytest-gpu.log").write_text(text)
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return {
        "command": " ".join(cmd[1:]),
        "collect_only": cfg.dry_run,
        "returncode": rc,
        "ok": rc == 0,
        "summary": lines[-1] if lines else "",
        "seconds": round(time.monotonic() - t0, 1),
        "log": "pytest-gpu.log",
    }


def child_env() -> dict[str, str]:
    """The environment of a child process: this checkout first on PYTHONPATH."""
    path = [str(ROOT), *([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def gpu_test_files() -> list[str]:
    """The test modules holding `gpu` tests (collecting only those saves device time)."""
    return sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "mark.gpu" in p.read_text(errors="replace")
    )


def _specs(ids: Sequence[str]) -> list[Any]:
    from kernels import load

    return [load(k) for k in ids]


def step_latency(cfg: ValidateConfig, budget: Budget, state: dict[str, Any]) -> dict[str, Any]:
    budget.check(10)
    from chronos.assemble import cache_clear
    from chronos.measure import make_backend
    from kernels import list_kernels

    ids = [k if isinstance(k, str) else k.id for k in list_kernels()]
    gemm = [k for k in ids if k.startswith("gemm_tile_")]
    picks = gemm[:: max(1, len(gemm) // cfg.latency_kernels)][: cfg.latency_kernels]
    rows = []
    store = cfg.out / "latency.sqlite"
    store.unlink(missing_ok=True)
    cache_clear()
    with make_backend("cupy", store=store, **cupy_options(cfg, cfg.repeats, cfg.warmup)) as b:
        for spec in _specs(picks):
            budget.check(2)
            ptx = spec.ptx()
            t0 = time.perf_counter()
            m = b.measure(spec, ptx)
            total = time.perf_counter() - t0
            hits = 20
            t1 = time.perf_counter()
            for _ in range(hits):
                b.measure(spec, ptx)
            hit_us = (time.perf_counter() - t1) / hits * 1e6
            phases = {k: round(v * 1e3, 2) for k, v in (m.extra.get("phases") or {}).items()}
            rows.append(
                {
                    "kernel": spec.id,
                    "valid": m.valid,
                    "error": m.error,
                    "phases_ms": phases,
                    "total_ms": round(total * 1e3, 1),
                    "hit_us": round(hit_us, 1),
                }
            )
    med = {
        k: _median([r["phases_ms"].get(k) for r in rows])
        for k in ("assemble", "load", "verify", "time")
    }
    med["total"] = _median([r["total_ms"] for r in rows])
    return {"kernels": rows, "median_ms": med, "hit_us": _median([r["hit_us"] for r in rows])}


def _median(xs: Sequence[Any]) -> float | None:
    vals = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    return round(statistics.median(vals), 3) if vals else None


def child_repeat(kernels_csv: str, dry_run: bool, repeats: int, warmup: int) -> int:
    """One fresh process of the repeatability step: measure each kernel once, print JSON."""
    from chronos.measure import make_backend

    cfg = ValidateConfig.for_mode(Path("."), 0, dry_run)
    out = []
    with make_backend("cupy", store=False, **cupy_options(cfg, repeats, warmup)) as b:
        for spec in _specs(kernels_csv.split(",")):
            m = b.measure(spec, spec.ptx())
            out.append(
                {
                    "kernel": spec.id,
                    "valid": m.valid,
                    "error": m.error,
                    "cycles": m.cycles,
                    "iqr": m.iqr,
                    "time_ns": m.time_ns,
                    "clock_mhz": m.clock_mhz,
                    "wall_ns": m.extra.get("wall_ns_median"),
                    "throttled_samples": m.extra.get("throttled_samples"),
                    "n": m.n,
                }
            )
    print(json.dumps(out))
    return 0


def step_repeatability(
    cfg: ValidateConfig, budget: Budget, state: dict[str, Any]
) -> dict[str, Any]:
    budget.check(15)
    runs: list[list[dict[str, Any]]] = []
    errors = []
    kernels = ",".join(cfg.repeat_kernels)
    for i in range(cfg.processes):
        budget.check(5)
        cmd = [sys.executable, "-m", "chronos.validate", "--child-repeat", kernels]
        cmd += ["--child-repeats", str(cfg.repeats), "--child-warmup", str(cfg.warmup)]
        if cfg.dry_run:
            cmd.append("--dry-run")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        try:
            p = subprocess.run(
                cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=budget.left(),
                check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise OutOfBudget(f"process {i + 1} of {cfg.processes} ran past the budget") from None
        if p.returncode != 0:
            errors.append(f"process {i + 1}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
            continue
        runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
    rows = []
    for k in cfg.repeat_kernels:
        ms = [r for run in runs for r in run if r["kernel"] == k and r["valid"]]
        cyc = [r["cycles"] for r in ms]
        mean = statistics.fmean(cyc) if cyc else None
        cv = statistics.stdev(cyc) / mean if len(cyc) >= 2 and mean else None
        clock = _median([r["clock_mhz"] for r in ms])
        clock_ns = mean / clock * 1e3 if mean and clock else None
        rows.append(
            {
                "kernel": k,
                "processes": len(ms),
                "cycles_mean": mean,
                "cycles_medians": cyc,
                "cv": cv,
                "cv_ok": cv is not None and cv <= CV_TARGET,
                "clock_mhz": clock,
                "cycles_as_ns": clock_ns,
                "wall_ns": _median([r["wall_ns"] for r in ms]),
                "event_ns": _median([r["time_ns"] for r in ms]),
                "throttled_samples": sum(int(r["throttled_samples"] or 0) for r in ms),
                "samples": sum(int(r["n"] or 0) for r in ms),
                "errors": [
                    r["error"] for run in runs for r in run if r["kernel"] == k and not r["valid"]
                ],
            }
        )
    return {"kernels": rows, "process_errors": errors, "cv_target": CV_TARGET}


def _transformed(spec: Any, names: Sequence[str]) -> tuple[str | None, str]:
    """The PTX after `names` in order, or (None, why) when one does not apply."""
    from chronos.transforms import ACTION_NAMES, apply_action

    ptx = spec.ptx()
    for name in names:
        res = apply_action(spec, ptx, list(ACTION_NAMES).index(name))
        if not res.changed:
            return None, f"{name}: {res.reason or 'not applicable'}"
        ptx = str(res.ptx)
    return ptx, ""


def step_sanity(cfg: ValidateConfig, budget: Budget, state: dict[str, Any]) -> dict[str, Any]:
    budget.check(10)
    from chronos.measure import make_backend

    variants: list[tuple[str, tuple[str, ...]]] = [("baseline", ())]
    variants += [(t, (t,)) for t in SANITY_TRANSFORMS]
    variants += [
        ("+".join(DESIGN_SEQUENCE[: i + 1]), DESIGN_SEQUENCE[: i + 1])
        for i in range(1, len(DESIGN_SEQUENCE))
    ]
    rows = []
    with make_backend("cupy", store=None, **cupy_options(cfg, cfg.repeats, cfg.warmup)) as b:
        for spec in _specs(cfg.sanity_kernels):
            budget.check(3)
            texts = {name: _transformed(spec, names) for name, names in variants}
            todo = [t[0] for t in texts.values() if t[0] is not None]
            measured = dict(
                zip([n for n, t in texts.items() if t[0]], b.measure_many(spec, todo), strict=True)
            )
            base = measured.get("baseline")
            cells = {}
            for name, (_, why) in texts.items():
                m = measured.get(name)
                if m is None:
                    cells[name] = {"applied": False, "why": why}
                    continue
                speedup = (
                    base.cycles / m.cycles if m.valid and base is not None and base.valid else None
                )
                cells[name] = {
                    "applied": True,
                    "valid": m.valid,
                    "error": m.error,
                    "cycles": m.cycles,
                    "speedup": speedup,
                    "regs": m.regs,
                    "spills": m.spills,
                    "instrumented_spills_more": m.extra.get("instrumented_spills_more"),
                }
            rows.append({"kernel": spec.id, "variants": cells})
    seq = [v[0] for v in variants if v[0] == "baseline" or v[0].startswith(DESIGN_SEQUENCE[0])]
    design = {
        "kernel": DESIGN_KERNEL,
        "sequence": ["baseline", *seq[1:]] if seq else [],
        "l4_cycles": list(DESIGN_L4_CYCLES),
        "l4_speedup": [DESIGN_L4_CYCLES[0] / c for c in DESIGN_L4_CYCLES],
    }
    return {"kernels": rows, "design": design, "columns": [v[0] for v in variants]}  # fmt: skip


def greedy_kernel_ids(cfg: ValidateConfig) -> list[str]:
    """One kernel of every other family, the gemm_tile kernels (up to cfg.gemm_kernels), then
    the rest of the `per_family` sample of each other family (spread over its ids): a budget
    cut still leaves every family measured."""
    from kernels import list_kernels, load

    ids = [k if isinstance(k, str) else k.id for k in list_kernels()]
    fams: dict[str, list[str]] = {}
    for k in ids:
        fams.setdefault(load(k).family, []).append(k)
    gemm = fams.pop("gemm_tile", [])[: cfg.gemm_kernels]
    samples = [
        ks[:: max(1, len(ks) // cfg.per_family)][: cfg.per_family] if cfg.per_family > 0 else []
        for _, ks in sorted(fams.items())
    ]
    return [s[0] for s in samples if s] + gemm + [k for s in samples for k in s[1:]]


def step_greedy(cfg: ValidateConfig, budget: Budget, state: dict[str, Any]) -> dict[str, Any]:
    budget.check(10)
    from agents.greedy import greedy_kernel
    from chronos.measure import make_backend
    from envs.mdp import TransformMDP

    device = state.get("device", "unknown GPU")
    store = cfg.out / REPLAY_DIR / f"{device_slug(device)}.sqlite"
    store.parent.mkdir(parents=True, exist_ok=True)
    ids = greedy_kernel_ids(cfg)
    rows: list[dict[str, Any]] = []
    stopped = None
    opts = cupy_options(cfg, cfg.greedy_repeats, cfg.greedy_warmup)
    with make_backend("cupy", store=store, **opts) as b:
        mdp = TransformMDP(b, max_steps=cfg.greedy_max_steps)
        per_kernel: list[float] = []
        for spec in _specs(ids):
            need = max(per_kernel) if per_kernel else 1.0
            try:
                budget.check(need)
            except OutOfBudget as exc:
                stopped = f"stopped before {spec.id}: {exc}"
                break
            t0 = time.monotonic()
            before = mdp.measurements
            try:
                r = greedy_kernel(mdp, spec)
                row = {**r.summary(), "family": spec.family}
            except Exception as exc:  # noqa: BLE001 - one kernel's failure is data, not the end
                row = {
                    "kernel_id": spec.id,
                    "family": spec.family,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            row["seconds"] = round(time.monotonic() - t0, 2)
            row["steps_measured"] = mdp.measurements - before
            rows.append(row)
            per_kernel.append(time.monotonic() - t0)
            state["partial"] = {"kernels": rows}
        stats = b.stats
    compact(store)
    done = [r for r in rows if "error" not in r]
    gemm = [r for r in done if r["family"] == "gemm_tile"]
    return {
        "store": str(store.relative_to(cfg.out)),
        "store_bytes": store.stat().st_size if store.exists() else 0,
        "repeats": cfg.greedy_repeats,
        "max_steps": cfg.greedy_max_steps,
        "kernels_planned": len(ids),
        "kernels": rows,
        "stopped": stopped,
        "gemm_mean_improvement": statistics.fmean(r["improvement"] for r in gemm) if gemm else None,
        "store_stats": {k: v for k, v in stats.items() if k != "faults"},
        "faults": stats.get("faults", {}),
    }  # fmt: skip


def compact(path: Path) -> None:
    """Fold the WAL into the file and VACUUM it: the store is committed, keep it small."""
    import sqlite3

    if path.exists():
        con = sqlite3.connect(path)
        try:
            con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            con.execute("VACUUM")
        finally:
            con.close()


FIDELITY_COMMAND = (sys.executable, "-m", "chronos.pipeline.validate.fidelity")
"""The cost model's fidelity check (also `python benchmarks/fidelity.py`), in a child process
so that the step can be cut at its timeout."""


def step_fidelity(cfg: ValidateConfig, budget: Budget, state: dict[str, Any]) -> dict[str, Any]:
    """chronos.pipeline.validate.fidelity on the recorded store: CPU work, so it gets at most
    `fidelity_timeout_s` of the device's time; the same command (`python benchmarks/fidelity.py`)
    reruns on any CPU machine from the committed store."""
    greedy = state.get("results", {}).get("greedy") or {}
    store = greedy.get("store")
    if not store:
        return {"skipped": "no replay store was recorded (the greedy step did not run)"}
    budget.check(10)
    arch = ((state.get("results", {}).get("environment") or {}).get("device") or {}).get("arch")
    cmd = [*FIDELITY_COMMAND, "--store", str(cfg.out / store)]
    cmd += ["--backend", "cupy", "--depth", str(cfg.fidelity_depth)]
    if arch:
        cmd += ["--arch", str(arch)]
    timeout = min(cfg.fidelity_timeout_s, budget.left())
    t0 = time.monotonic()
    try:
        p = subprocess.run(
            cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired:
        rc, text = None, f"(no result within {timeout:.0f} s: rerun the command on a CPU machine)"
    (cfg.out / "fidelity.log").write_text(text)
    return {
        "command": " ".join(["python", *(str(c) for c in cmd[1:])]).replace(str(cfg.out) + "/", ""),
        "returncode": rc,
        "ok": rc == 0,
        "output": text.strip().splitlines()[-40:],
        "seconds": round(time.monotonic() - t0, 1),
        "log": "fidelity.log",
    }


STEP_FUNCTIONS: dict[str, Callable[[ValidateConfig, Budget, dict[str, Any]], dict[str, Any]]] = {
    "environment": step_environment,
    "pytest_gpu": step_pytest_gpu,
    "latency": step_latency,
    "repeatability": step_repeatability,
    "sanity": step_sanity,
    "greedy": step_greedy,
    "fidelity": step_fidelity,
}


# --- the run ----------------------------------------------------------------------------------
