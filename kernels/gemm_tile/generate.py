"""Regenerate the gemm_tile PTX from gemm_tile.cu with nvcc, in parallel, and write the manifest.

The PTX is checked in so that using Chronos needs no CUDA compiler; this script is how it was
made. Each variant is compiled in a scratch copy of the family directory with a relative source
path, so the recorded command is the same on every machine and the output has no local paths.

    python -m kernels.gemm_tile.generate                  # all 64 into kernels/gemm_tile/
    python -m kernels.gemm_tile.generate --only gemm_tile_4_6_8 --out /tmp/x
    python -m kernels.gemm_tile.generate --check          # rebuild in a temp dir, compare
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kernels.gemm_tile import FAMILY, HERE, SOURCE, TARGET, variant_id, variants

NVCC_FLAGS = ("-ptx", f"-arch={TARGET}", "-O3")
GENERATOR = "python -m kernels.gemm_tile.generate"


def nvcc_path() -> str:
    """The nvcc on PATH, or a clear error naming what is missing."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        raise FileNotFoundError("nvcc not found on PATH; the checked-in PTX needs no compiler")
    return nvcc


def nvcc_version(nvcc: str) -> str:
    """The release line of `nvcc --version`, e.g. 'Cuda compilation tools, release 13.0, ...'."""
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    release = [ln for ln in lines if "release" in ln]
    return release[0] if release else lines[-1]


def command(tm: int, tn: int, tk: int) -> list[str]:
    """The nvcc command for one variant, run in the family directory."""
    vid = variant_id(tm, tn, tk)
    return [
        "nvcc",
        *NVCC_FLAGS,
        f"-DTM={tm}",
        f"-DTN={tn}",
        f"-DTK={tk}",
        SOURCE.name,
        "-o",
        f"ptx/{vid}.ptx",
    ]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compile(
    nvcc: str, stamp: dict[str, str], out_dir: Path, tm: int, tn: int, tk: int
) -> tuple[str, dict]:
    """Compile one variant into out_dir/ptx; nvcc runs in a scratch copy of the family dir."""
    cmd = command(tm, tn, tk)
    vid = variant_id(tm, tn, tk)
    with tempfile.TemporaryDirectory(prefix=f"{vid}-") as tmp:
        work = Path(tmp)
        shutil.copy2(SOURCE, work / SOURCE.name)
        (work / "ptx").mkdir()
        proc = subprocess.run([nvcc, *cmd[1:]], cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{vid}: nvcc failed ({proc.returncode}):\n{proc.stderr}")
        dest = out_dir / "ptx" / f"{vid}.ptx"
        shutil.copyfile(work / "ptx" / f"{vid}.ptx", dest)
    return vid, {
        "TM": tm,
        "TN": tn,
        "TK": tk,
        "command": " ".join(cmd),
        "ptx": f"ptx/{vid}.ptx",
        "sha256": sha256_file(dest),
        **stamp,
    }


def generate(out_dir: Path = HERE, only: list[str] | None = None, jobs: int | None = None) -> dict:
    """Compile the selected variants into out_dir and merge them into out_dir/manifest.json."""
    nvcc = nvcc_path()
    todo = [v for v in variants() if only is None or variant_id(*v) in only]
    unknown = set(only or ()) - {variant_id(*v) for v in variants()}
    if unknown:
        raise ValueError(f"unknown variants: {sorted(unknown)}")
    out_dir = Path(out_dir)
    (out_dir / "ptx").mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    # Per-kernel stamps keep a partial regeneration (--only) honest about what made each file.
    stamp = {
        "nvcc_version": nvcc_version(nvcc),
        "target": TARGET,
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    workers = jobs or min(len(todo), os.cpu_count() or 1) or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(pool.map(lambda v: _compile(nvcc, stamp, out_dir, *v), todo))
    kernels = dict(previous.get("kernels", {}))
    kernels.update(results)
    manifest = {
        "family": FAMILY,
        "generator": GENERATOR,
        "source": SOURCE.name,
        "source_sha256": sha256_file(SOURCE),
        "nvcc_flags": list(NVCC_FLAGS),
        **stamp,
        "kernels": dict(sorted(kernels.items())),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check(only: list[str] | None = None, jobs: int | None = None) -> list[str]:
    """Ids whose regenerated PTX differs from the checked-in file (empty: reproducible)."""
    with tempfile.TemporaryDirectory(prefix="gemm_tile-check-") as tmp:
        fresh = generate(Path(tmp), only=only, jobs=jobs)
        return [
            vid
            for vid, rec in fresh["kernels"].items()
            if not (HERE / rec["ptx"]).is_file() or sha256_file(HERE / rec["ptx"]) != rec["sha256"]
        ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="output dir (gets ptx/, manifest.json)")
    ap.add_argument("--only", nargs="+", metavar="ID", help="variant ids, e.g. gemm_tile_4_6_8")
    ap.add_argument("--jobs", type=int, default=None, help="parallel nvcc processes")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare")
    args = ap.parse_args(argv)
    if args.check:
        differ = check(args.only, args.jobs)
        for vid in differ:
            print(f"differs: {vid}", file=sys.stderr)
        print(f"{'FAIL' if differ else 'ok'}: {len(differ)} variant(s) differ")
        return 1 if differ else 0
    manifest = generate(args.out, args.only, args.jobs)
    print(f"wrote {len(manifest['kernels'])} kernels to {args.out} ({manifest['nvcc_version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
