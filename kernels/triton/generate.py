"""Regenerate the triton family's PTX with Triton's ahead-of-time compiler and write the manifest.

python -m kernels.triton.generate                     # every variant into kernels/triton/
python -m kernels.triton.generate --only triton_add_fp32_b1024_w4 --out /tmp/x
python -m kernels.triton.generate --check             # rebuild in a temp dir, compare

Needs `pip install chronos[triton]` and no GPU: the target is given explicitly (sm_80, warp
32). Line info is off (TRITON_DISABLE_LINE_INFO=1) so that the PTX names no local paths and
is the same on every machine; FP fusion is on, Triton's default; Triton's on-disk cache is
bypassed, so `--check` really recompiles. Each variant is compiled with the argument
specialisation the JIT would choose for the family's problems (see kernels/triton/__init__.py).
Reuses kernels.build's sha256_file; the rest of that module drives nvcc.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from pathlib import Path

from kernels.build import sha256_file
from kernels.triton import FAMILY, HERE, NP_DTYPES, TARGET, VARIANTS, Variant

GENERATOR = f"python -m kernels.{FAMILY}.generate"
SOURCE = "sources.py"
ENV = {
    "TRITON_DISABLE_LINE_INFO": "1",
    "TRITON_DEFAULT_FP_FUSION": "1",
    "TRITON_ALWAYS_COMPILE": "1",
}
"""Set before triton is imported: what the PTX holds, and a real compile (not Triton's cache)."""
TRITON_TYPES = {"fp32": "*fp32", "fp16": "*fp16"}


def _arch() -> int:
    return int(TARGET.removeprefix("sm_"))


def signature(v: Variant) -> tuple[dict[str, str], dict[str, object], dict]:
    """Triton signature, constexprs and attrs (argument index -> tt.divisibility) of a variant."""
    fn = getattr(_sources(), v.kernel)
    sig: dict[str, str] = {}
    consts: dict[str, object] = {}
    attrs: dict[tuple[int, ...], list] = {}
    for i, name in enumerate(fn.arg_names):
        if name in v.constexprs:
            sig[name] = "constexpr"
            consts[name] = v.constexprs[name]
            continue
        kind = v.args[name]
        if kind == "1":
            sig[name] = "constexpr"
            consts[name] = 1
            continue
        sig[name] = TRITON_TYPES[v.dtype] if kind == "ptr" else "i32"
        if kind in ("ptr", "D"):
            attrs[(i,)] = [["tt.divisibility", 16]]
    return sig, consts, attrs


def _sources():
    os.environ.update(ENV)
    from kernels.triton import sources

    return sources


def compile_variant(v: Variant) -> tuple[str, dict]:
    """(PTX text, metadata worth recording) for one variant."""
    os.environ.update(ENV)
    import triton
    from triton.backends.compiler import GPUTarget

    sig, consts, attrs = signature(v)
    fn = getattr(_sources(), v.kernel)
    target = GPUTarget("cuda", _arch(), 32)
    backend = triton.compiler.make_backend(target)
    options = backend.parse_options({"num_warps": v.num_warps, "num_stages": v.num_stages})
    src = triton.compiler.ASTSource(fn=fn, signature=sig, constexprs=consts, attrs=attrs)
    compiled = triton.compile(src, target=target, options=options.__dict__)
    md = compiled.metadata
    if md.global_scratch_size or md.profile_scratch_size:
        raise RuntimeError(f"{v.id}: needs scratch memory, which the spec does not provide")
    return compiled.asm["ptx"], {"shared": int(md.shared), "num_warps": int(md.num_warps)}


def command(v: Variant) -> str:
    return f"{GENERATOR} --only {v.id}"


def generate(out_dir: Path = HERE, only: list[str] | None = None) -> dict:
    """Compile the selected variants into out_dir/ptx and merge them into its manifest.json."""
    os.environ.update(ENV)
    import triton

    out_dir = Path(out_dir)
    known = {v.id for v in VARIANTS}
    unknown = set(only or ()) - known
    if unknown:
        raise ValueError(f"unknown variants: {sorted(unknown)}")
    (out_dir / "ptx").mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    stamp = {
        "triton_version": triton.__version__,
        "target": TARGET,
        "date": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
    }
    kernels = {k: r for k, r in previous.get("kernels", {}).items() if k in known}
    for v in VARIANTS:
        if only is not None and v.id not in only:
            continue
        ptx, meta = compile_variant(v)
        dest = out_dir / "ptx" / f"{v.id}.ptx"
        dest.write_text(ptx, encoding="utf-8", newline="")
        kernels[v.id] = {
            "kernel": v.kernel,
            "dtype": NP_DTYPES[v.dtype],
            **{k: v.constexprs[k] for k in sorted(v.constexprs)},
            "num_warps": v.num_warps,
            "num_stages": v.num_stages,
            "specialisation": dict(v.args),
            **meta,
            "command": command(v),
            "ptx": f"ptx/{v.id}.ptx",
            "sha256": sha256_file(dest),
            **stamp,
        }
    manifest = {
        "family": FAMILY,
        "generator": GENERATOR,
        "source": SOURCE,
        "source_sha256": sha256_file(HERE / SOURCE),
        "env": ENV,
        **stamp,
        "kernels": dict(sorted(kernels.items())),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check(only: list[str] | None = None) -> list[str]:
    """Ids whose regenerated PTX differs from the checked-in file (empty: reproducible)."""
    with tempfile.TemporaryDirectory(prefix=f"{FAMILY}-check-") as tmp:
        fresh = generate(Path(tmp), only=only)
        return [
            vid
            for vid, rec in fresh["kernels"].items()
            if not (HERE / rec["ptx"]).is_file() or sha256_file(HERE / rec["ptx"]) != rec["sha256"]
        ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=GENERATOR, description="Regenerate the triton PTX.")
    ap.add_argument("--out", type=Path, default=HERE, help="output dir (ptx/, manifest.json)")
    ap.add_argument("--only", nargs="+", metavar="ID", help="variant ids")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare")
    args = ap.parse_args(argv)
    if args.check:
        differ = check(args.only)
        for vid in differ:
            print(f"differs: {vid}", file=sys.stderr)
        print(f"{'FAIL' if differ else 'ok'}: {len(differ)} variant(s) differ")
        return 1 if differ else 0
    manifest = generate(args.out, args.only)
    print(f"wrote {len(manifest['kernels'])} kernels to {args.out} ({manifest['triton_version']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
