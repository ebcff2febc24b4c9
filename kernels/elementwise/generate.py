"""Regenerate the elementwise PTX from elementwise.cu with nvcc and write the manifest.

python -m kernels.elementwise.generate                # every variant into kernels/elementwise/
python -m kernels.elementwise.generate --check        # rebuild in a temp dir, compare
"""

from __future__ import annotations

from kernels import build
from kernels.elementwise import FAMILY, HERE, SOURCE, TARGET, VARIANTS, defines, variant_id

BUILD = build.FamilyBuild(
    family=FAMILY,
    here=HERE,
    source=SOURCE.name,
    target=TARGET,
    variants=[build.Variant(variant_id(*v), defines(*v)) for v in VARIANTS],
)


def main(argv: list[str] | None = None) -> int:
    return build.main(BUILD, argv)


if __name__ == "__main__":
    raise SystemExit(main())
