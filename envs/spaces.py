"""The action and observation layout, defined once and derived from the catalogue and features.

Everything that sizes a tensor or slices an observation (the MDP, the env's spaces, the policy
network, greedy's data set, the wrappers, the tests) reads a `Layout`; nothing writes 21, 59 or
101 itself. `LAYOUT` is the layout of the built-in catalogue; `layout_of(catalogue)` gives the
layout of any other (a test adds a transform to a copy of the catalogue and everything follows).

    | slice             | what                                                        |
    |-------------------|-------------------------------------------------------------|
    | `features`        | `chronos.features.extract` of the current PTX               |
    | `mask`            | legal actions (1 = legal; stop alone once the episode ended)|
    | `history`         | 1 for every transform applied so far (stop never appears)   |
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import chronos.transforms
from chronos.features import FEATURE_NAMES

FEATURE_LOW, FEATURE_HIGH = -1.0, 32.0
"""Bounds of the feature block: fractions, log1p counts and /255 scales, -1 for "unknown"
ptxas figures; log1p counts above 32 (e^32 instructions) do not occur, the bound only keeps the
Box finite."""


@dataclass(frozen=True)
class Layout:
    """Action ids and the observation's blocks: features, then action mask, then history."""

    action_names: tuple[str, ...]
    feature_names: tuple[str, ...] = tuple(FEATURE_NAMES)

    def __post_init__(self) -> None:
        if not self.action_names or self.action_names[-1] != "stop":
            raise ValueError("the last action must be stop")
        if len(set(self.action_names)) != len(self.action_names):
            raise ValueError(f"duplicate action names in {self.action_names}")

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def stop(self) -> int:
        """The stop action's id: the last one."""
        return self.n_actions - 1

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def obs_size(self) -> int:
        return self.n_features + 2 * self.n_actions

    @property
    def features(self) -> slice:
        return slice(0, self.n_features)

    @property
    def mask(self) -> slice:
        return slice(self.n_features, self.n_features + self.n_actions)

    @property
    def history(self) -> slice:
        return slice(self.n_features + self.n_actions, self.obs_size)

    def rows(self) -> list[tuple[str, str]]:
        """(index range, meaning) rows for docs and `info` output."""

        def span(s: slice) -> str:
            return f"{s.start}-{s.stop - 1}"

        return [
            (span(self.features), f"{self.n_features} kernel features"),
            (span(self.mask), f"action mask over {self.n_actions} actions"),
            (span(self.history), "applied-transform history"),
        ]


def layout_of(catalogue: Any) -> Layout:
    """The layout of a catalogue (a module or namespace with `ACTION_NAMES`, stop last)."""
    names = tuple(catalogue.ACTION_NAMES)
    layout = Layout(names)
    for attr, want in (("N_ACTIONS", layout.n_actions), ("STOP", layout.stop)):
        got = getattr(catalogue, attr, want)
        if got != want:
            raise ValueError(f"catalogue {attr}={got} disagrees with its ACTION_NAMES ({want})")
    return layout


LAYOUT = layout_of(chronos.transforms)
N_ACTIONS = LAYOUT.n_actions
STOP = LAYOUT.stop
N_FEATURES = LAYOUT.n_features
OBS_SIZE = LAYOUT.obs_size
