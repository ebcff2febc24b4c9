"""Kernel sets by family: `kernels.families`, `kernels.per_family`, and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import kernels
from chronos.pipeline.config import KernelsConfig, kernel_ids

CONF = Path(__file__).resolve().parent.parent / "conf"


def _family(kid: str) -> str:
    return kernels.load(kid).family


def test_families_filter_and_keep_their_order() -> None:
    ids = kernel_ids(KernelsConfig(families=["softmax", "reduce"], per_family=None))
    assert ids == kernels.list_kernels("softmax") + kernels.list_kernels("reduce")


def test_per_family_spreads_over_every_family() -> None:
    ids = kernel_ids(KernelsConfig(per_family=2))
    fams = kernels.list_families()
    assert len(fams) >= 8 and len(ids) == 2 * len(fams) and len(set(ids)) == len(ids)
    for fam in fams:
        mine = [k for k in ids if _family(k) == fam]
        members = kernels.list_kernels(fam)
        assert len(mine) == 2 and members[0] not in mine and members[-1] not in mine


def test_unknown_family_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown kernel families \\['nope'\\].*gemm_tile"):
        kernel_ids(KernelsConfig(families=["nope"]))


def test_explicit_ids_win_and_limit_applies() -> None:
    assert kernel_ids(KernelsConfig(ids=["reduce_sum_f32_b256_i4_satom"])) == [
        "reduce_sum_f32_b256_i4_satom"
    ]
    assert len(kernel_ids(KernelsConfig(families=["gemm_tile"], per_family=None, limit=5))) == 5


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        (["+exp=grpo"], "mixed"),
        (["+exp=grpo_full"], "gemm_tile"),
        (["+exp=grpo_all"], "all"),
    ],
)
def test_shipped_configs_select_the_documented_sets(overrides: list[str], want: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose(config_name="config", overrides=overrides)
    kcfg = KernelsConfig(**OmegaConf.to_container(cfg.kernels, resolve=True))  # type: ignore[arg-type]
    ids = kernel_ids(kcfg)
    fams = {_family(k) for k in ids}
    if want == "mixed":
        assert fams == set(kernels.list_families()) and len(ids) == 2 * len(fams)
    elif want == "gemm_tile":
        assert fams == {"gemm_tile"} and len(ids) == 64
    else:
        assert ids == kernel_ids(KernelsConfig(per_family=None)) and len(ids) == len(
            kernels.list_kernels()
        )
