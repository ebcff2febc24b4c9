"""Regenerate the families' checked-in PTX with nvcc, in parallel, and write their manifests.

    python -m kernels.build                           # every CUDA family
    python -m kernels.build reduce gemm_tile          # the families named
    python -m kernels.build gemm_tile --only gemm_tile_4_6_8 --out /tmp/x
    python -m kernels.build --check                   # rebuild in a temp dir and compare
    python -m kernels.build triton                    # Triton's compiler (triton/generate.py)

The PTX is checked in so that using Chronos needs no CUDA compiler. A CUDA family's package
(`kernels/<family>/__init__.py`) names its source (`SOURCE`), `TARGET` and `VARIANTS`, and
`family_build` turns them into a `FamilyBuild`: `VARIANTS` items with `id` and `defines`
attributes, or tuples that the family's `variant_id(*v)` and `defines(*v)` describe. Each
variant is compiled in a scratch copy of the family's sources with a relative path, so the
recorded command is the same on every machine and the output holds no local paths. `--check`
rebuilds into a temporary directory and names the variants whose PTX differs from the
checked-in file. A family with its own `generate` module (triton) is run by that module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from kernels.common import TARGET


@dataclass(frozen=True)
class Variant:
    """One kernel of a family: its id (also the PTX file stem) and its `-D` macro values."""

    id: str
    defines: Mapping[str, int | str]
    source: str | None = None
    """Source file name in the family dir; None: the family's default source."""


@dataclass(frozen=True)
class FamilyBuild:
    """How a family's PTX is made: sources, target, flags and the variants."""

    family: str
    here: Path
    source: str
    variants: Sequence[Variant]
    target: str = "sm_80"
    flags: Sequence[str] = ("-O3",)
    extra_files: Sequence[str] = ()
    """Other files the sources include (headers), copied into the scratch dir."""

    @property
    def generator(self) -> str:
        return f"python -m kernels.build {self.family}"

    def nvcc_flags(self) -> list[str]:
        return ["-ptx", f"-arch={self.target}", *self.flags]

    def command(self, v: Variant) -> list[str]:
        """The nvcc command for one variant, run in the family directory."""
        defines = [f"-D{k}={val}" for k, val in v.defines.items()]
        return [
            "nvcc",
            *self.nvcc_flags(),
            *defines,
            v.source or self.source,
            "-o",
            f"ptx/{v.id}.ptx",
        ]


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


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _compile(
    build: FamilyBuild, nvcc: str, stamp: dict[str, str], out_dir: Path, v: Variant
) -> tuple[str, dict]:
    """Compile one variant into out_dir/ptx; nvcc runs in a scratch copy of the sources."""
    cmd = build.command(v)
    with tempfile.TemporaryDirectory(prefix=f"{v.id}-") as tmp:
        work = Path(tmp)
        for name in {v.source or build.source, *build.extra_files}:
            shutil.copy2(build.here / name, work / name)
        (work / "ptx").mkdir()
        proc = subprocess.run([nvcc, *cmd[1:]], cwd=work, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{v.id}: nvcc failed ({proc.returncode}):\n{proc.stderr}")
        dest = out_dir / "ptx" / f"{v.id}.ptx"
        shutil.copyfile(work / "ptx" / f"{v.id}.ptx", dest)
    return v.id, {
        **dict(v.defines),
        "command": " ".join(cmd),
        "ptx": f"ptx/{v.id}.ptx",
        "sha256": sha256_file(dest),
        **stamp,
    }


def generate(
    build: FamilyBuild,
    out_dir: Path | None = None,
    only: list[str] | None = None,
    jobs: int | None = None,
) -> dict:
    """Compile the selected variants into out_dir and merge them into out_dir/manifest.json."""
    nvcc = nvcc_path()
    out_dir = Path(out_dir or build.here)
    known = {v.id for v in build.variants}
    unknown = set(only or ()) - known
    if unknown:
        raise ValueError(f"unknown variants: {sorted(unknown)}")
    todo = [v for v in build.variants if only is None or v.id in only]
    (out_dir / "ptx").mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    # Per-kernel stamps keep a partial regeneration (--only) honest about what made each file.
    stamp = {
        "nvcc_version": nvcc_version(nvcc),
        "target": build.target,
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    workers = jobs or min(len(todo), os.cpu_count() or 1) or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(pool.map(lambda v: _compile(build, nvcc, stamp, out_dir, v), todo))
    kernels = {k: r for k, r in previous.get("kernels", {}).items() if k in known}
    kernels.update(results)
    sources = sorted({v.source or build.source for v in build.variants} | set(build.extra_files))
    manifest = {
        "family": build.family,
        "generator": build.generator,
        "source": build.source,
        "source_sha256": sha256_file(build.here / build.source),
        "sources_sha256": {name: sha256_file(build.here / name) for name in sources},
        "nvcc_flags": build.nvcc_flags(),
        **stamp,
        "kernels": dict(sorted(kernels.items())),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check(build: FamilyBuild, only: list[str] | None = None, jobs: int | None = None) -> list[str]:
    """Ids whose regenerated PTX differs from the checked-in file (empty: reproducible)."""
    with tempfile.TemporaryDirectory(prefix=f"{build.family}-check-") as tmp:
        fresh = generate(build, Path(tmp), only=only, jobs=jobs)
        here = build.here
        return [
            vid
            for vid, rec in fresh["kernels"].items()
            if not (here / rec["ptx"]).is_file() or sha256_file(here / rec["ptx"]) != rec["sha256"]
        ]


def family_build(family: str) -> FamilyBuild:
    """The nvcc build of a CUDA family, from its package's SOURCE, TARGET and VARIANTS."""
    module = importlib.import_module(f"kernels.{family}")
    if hasattr(module, "defines"):
        variants = [Variant(module.variant_id(*v), module.defines(*v)) for v in module.VARIANTS]
    else:
        variants = [Variant(v.id, v.defines) for v in module.VARIANTS]
    return FamilyBuild(
        family=module.FAMILY,
        here=module.HERE,
        source=module.SOURCE.name,
        target=getattr(module, "TARGET", TARGET),
        variants=variants,
    )


def own_generator(family: str) -> str | None:
    """The module of a family built by other means than nvcc (kernels.triton.generate), or None."""
    name = f"kernels.{family}.generate"
    try:
        return name if importlib.util.find_spec(name) is not None else None
    except ModuleNotFoundError:  # no such family
        return None


def cuda_families() -> list[str]:
    """The families under kernels/ that are built from a CUDA source with nvcc."""
    here = Path(__file__).resolve().parent
    return sorted(
        d.name
        for d in here.iterdir()
        if (d / "__init__.py").is_file() and any(d.glob("*.cu")) and own_generator(d.name) is None
    )


def _run(build: FamilyBuild, args: argparse.Namespace, out: Path, only: list[str] | None) -> int:
    if args.check:
        differ = check(build, only, args.jobs)
        for vid in differ:
            print(f"differs: {vid}", file=sys.stderr)
        print(f"{build.family}: {'FAIL' if differ else 'ok'}: {len(differ)} variant(s) differ")
        return 1 if differ else 0
    manifest = generate(build, out, only, args.jobs)
    print(f"wrote {len(manifest['kernels'])} kernels to {out} ({manifest['nvcc_version']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m kernels.build [FAMILY ...] [--only ID ...] [--out DIR] [--jobs N] [--check]`."""
    ap = argparse.ArgumentParser(
        prog="python -m kernels.build", description="Regenerate the families' PTX."
    )
    ap.add_argument("families", nargs="*", metavar="FAMILY", help="default: every CUDA family")
    ap.add_argument("--out", type=Path, help="output dir (ptx/, manifest.json); several "
                    "families: DIR/<family>; default: the family's own directory")  # fmt: skip
    ap.add_argument("--only", nargs="+", metavar="ID", help="variant ids")
    ap.add_argument("--jobs", type=int, default=None, help="parallel nvcc processes")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare")
    args = ap.parse_args(argv)
    families = args.families or cuda_families()
    strange = [f for f in families if f not in cuda_families() and own_generator(f) is None]
    if strange:
        ap.error(f"unknown families: {strange} (known: {cuda_families()} and triton)")
    builds = {f: None if own_generator(f) else family_build(f) for f in families}
    ids = {
        f: {v.id for v in (b.variants if b else importlib.import_module(f"kernels.{f}").VARIANTS)}
        for f, b in builds.items()
    }
    unknown = set(args.only or ()).difference(*ids.values())
    if unknown:
        ap.error(f"unknown variants: {sorted(unknown)}")
    status = 0
    for family, build in builds.items():
        only = None if args.only is None else [i for i in args.only if i in ids[family]]
        if only == []:
            continue
        out = args.out if args.out is None or len(families) == 1 else args.out / family
        if build is None:  # a family with its own generator (triton)
            own = importlib.import_module(str(own_generator(family)))
            extra = [*(["--out", str(out)] if out else []), *(["--check"] if args.check else [])]
            status |= own.main([*extra, *(["--only", *only] if only else [])])
        else:
            status |= _run(build, args, out or build.here, only)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
