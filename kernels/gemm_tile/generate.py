"""Regenerate the gemm_tile PTX from gemm_tile.cu with nvcc and write the manifest.

python -m kernels.gemm_tile.generate                  # all 64 into kernels/gemm_tile/
python -m kernels.gemm_tile.generate --only gemm_tile_4_6_8 --out /tmp/x
python -m kernels.gemm_tile.generate --check          # rebuild in a temp dir, compare
"""

from __future__ import annotations

from pathlib import Path

from kernels import build
from kernels.gemm_tile import FAMILY, HERE, SOURCE, TARGET, variant_id, variants

BUILD = build.FamilyBuild(
    family=FAMILY,
    here=HERE,
    source=SOURCE.name,
    target=TARGET,
    variants=[
        build.Variant(variant_id(tm, tn, tk), {"TM": tm, "TN": tn, "TK": tk})
        for tm, tn, tk in variants()
    ],
)


def generate(out_dir: Path = HERE, only: list[str] | None = None, jobs: int | None = None) -> dict:
    """Compile the selected variants into out_dir and merge them into out_dir/manifest.json."""
    return build.generate(BUILD, out_dir, only, jobs)


def main(argv: list[str] | None = None) -> int:
    return build.main(BUILD, argv)


if __name__ == "__main__":
    raise SystemExit(main())
