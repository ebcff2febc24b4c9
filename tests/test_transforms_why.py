"""`python -m chronos.transforms why`: where each structural transform does not apply, and why,
one line per kernel (issue 31 item 5)."""

from __future__ import annotations

import pytest

from chronos.transforms.__main__ import main
from chronos.transforms.coverage import STRUCTURAL, why_not
from tests.helpers.outside_kernels import EVERYDAY, registered


def test_every_kernel_a_transform_skips_gets_one_line_naming_why() -> None:
    with registered():
        text = why_not(list(EVERYDAY))
    blocks: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith(" "):
            name = line.split(":", 1)[0]
            blocks[name] = [line]
        else:
            blocks[name].append(line)
    assert tuple(blocks) == STRUCTURAL
    ids = {s.id for s in EVERYDAY}
    for name, (head, *rows) in blocks.items():
        applies = {k for k in head.split(": ", 2)[2].split(", ") if k}
        skipped = {r.split()[0] for r in rows}
        assert applies | skipped == ids and not applies & skipped, name
        for r in rows:  # the reason is the transform's own, non-empty
            kernel, reason = r.split(None, 1)
            assert reason.startswith(f"{name}: ") and len(reason) > len(name) + 10, r


def test_why_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["why", "--kernels", "gemm_tile_4_6_8", "--transforms", "split_acc"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("split_acc: applies to ")
    assert main(["why", "--kernels", "gemm_tile_4_6_8", "--transforms", "nope"]) == 2
