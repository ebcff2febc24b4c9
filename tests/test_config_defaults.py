"""Defaults are defined once: conf/ holds the values, the dataclasses are the schema.

Every field's dataclass default (chronos.pipeline.config.TrainConfig and the agents' configs it
nests) must equal the value the base `conf/config.yaml` composes to, and every `+exp=` must
compose onto the schema changing only what its file (or a config group it selects) sets. The
MDP constants come from envs/constants.py, and the YAML's `env:` block must hold them.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from chronos.pipeline.config import TrainConfig, to_config
from envs import constants

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPS = sorted(p.stem for p in (CONF / "exp").glob("*.yaml"))
GROUPS = ("backend", "cluster", "kernels")


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"grpo.temperature.start": 1.5, ...}: the leaves of a nested dict (lists are leaves)."""
    if not isinstance(d, dict) or not d:
        return {prefix.rstrip("."): d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}."))
    return out


def _compose(*overrides: str) -> dict[str, Any]:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("config", overrides=list(overrides))
    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    raw.pop("hydra", None)
    return _leaves(raw)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def mismatches(schema: dict[str, Any], yaml: dict[str, Any], skip: tuple[str, ...] = ()) -> list:
    """The leaves where the YAML and the dataclass defaults disagree (skip: key prefixes)."""
    return [
        f"{k}: dataclass {schema[k]!r} != yaml {yaml[k]!r}"
        for k in sorted(schema.keys() & yaml.keys())
        if not k.startswith(skip) and schema[k] != yaml[k]
    ]


SCHEMA = _leaves(asdict(TrainConfig()))


def test_every_dataclass_default_equals_the_base_yaml() -> None:
    base = _compose()
    assert not base.keys() - SCHEMA.keys(), "YAML keys outside the schema"
    assert mismatches(SCHEMA, base) == []
    # A field the base YAML leaves out must be set by an option of its config group
    # (cluster=ray's options), with the same value as the dataclass default.
    missing = SCHEMA.keys() - base.keys()
    for key in sorted(missing):
        group = key.split(".")[0]
        assert group in GROUPS, f"{key}: not in conf/config.yaml"
        found = [opt for opt in _options(group) if key in _compose(f"{group}={opt}")]
        assert found, f"{key}: in no conf/{group}/*.yaml"
        for opt in found:
            assert mismatches(SCHEMA, _compose(f"{group}={opt}"), skip=(f"{group}.name",)) == []


def test_a_changed_default_is_found() -> None:
    """The check above can fail: a dataclass default off the YAML's value is reported."""
    cfg = TrainConfig()
    cfg.grpo.epochs += 440
    cfg.env.step_cost *= 2
    found = mismatches(_leaves(asdict(cfg)), _compose())
    assert [m.split(":")[0] for m in found] == ["env.step_cost", "grpo.epochs"]


def _set_by(exp: str) -> tuple[str, ...]:
    """Key prefixes an experiment file sets: its keys and the config groups it selects."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "exp" / f"{exp}.yaml"))
    assert isinstance(raw, dict)
    groups = [next(iter(d)).removeprefix("override /") for d in raw.pop("defaults", []) or []]
    return (*_leaves(raw).keys(), *groups)


@pytest.mark.parametrize("exp", EXPS)
def test_every_exp_changes_only_what_it_sets(exp: str) -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        to_config(compose("config", overrides=[f"+exp={exp}"]))  # it fits the schema
    composed = _compose(f"+exp={exp}")
    assert mismatches(SCHEMA, composed, skip=_set_by(exp)) == []


def test_the_mdp_constants_are_defined_once() -> None:
    from chronos.pipeline.optimize import parse_args
    from envs.mdp import TransformMDP
    from envs.ptx_env import PtxTransformEnv
    from envs.reward import Reward

    want = {
        "max_steps": constants.MAX_STEPS,
        "step_cost": constants.STEP_COST,
        "invalid_penalty": constants.INVALID_PENALTY,
    }
    base = _compose()
    assert {k: base[f"env.{k}"] for k in want} == want
    assert {k: SCHEMA[f"env.{k}"] for k in want} == want
    env = inspect.signature(PtxTransformEnv).parameters
    assert {k: env[k].default for k in want} == want
    assert inspect.signature(TransformMDP).parameters["max_steps"].default == constants.MAX_STEPS
    mdp = TransformMDP(backend=None)
    assert (mdp.max_steps, mdp.step_cost, mdp.invalid_penalty) == tuple(want.values())
    assert (Reward().step_cost, Reward().invalid_penalty) == (
        constants.STEP_COST,
        constants.INVALID_PENALTY,
    )
    assert parse_args(["k"]).max_steps == constants.MAX_STEPS
