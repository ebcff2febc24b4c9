"""Regenerate the layernorm PTX from layernorm.cu with nvcc and write the manifest.

python -m kernels.layernorm.generate            # all variants into kernels/layernorm/
python -m kernels.layernorm.generate --check    # rebuild in a temp dir, compare
"""

from __future__ import annotations

from kernels import build
from kernels.layernorm import FAMILY, HERE, SOURCE, TARGET, VARIANTS

BUILD = build.FamilyBuild(
    family=FAMILY,
    here=HERE,
    source=SOURCE.name,
    target=TARGET,
    variants=[build.Variant(v.id, v.defines) for v in VARIANTS],
)


def main(argv: list[str] | None = None) -> int:
    return build.main(BUILD, argv)


if __name__ == "__main__":
    raise SystemExit(main())
