"""PtxTransformEnv: the design's MDP (docs/env.md) as a Gymnasium environment.

Each episode optimises one kernel: the agent applies PTX transforms one at a time, every new
PTX is measured by a backend (real GPU cycles, the CPU emulator's estimate, or a replay), and
the reward is the log speed-up of the step minus a small step cost.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.constants import INVALID_PENALTY, MAX_STEPS, STEP_COST
from envs.mdp import State, TransformMDP
from envs.reward import Reward, make_reward
from envs.spaces import FEATURE_HIGH, FEATURE_LOW, N_ACTIONS, N_FEATURES, OBS_SIZE, STOP

__all__ = ["N_ACTIONS", "N_FEATURES", "OBS_SIZE", "STOP", "KernelSelector", "PtxTransformEnv"]

KernelSelector = str | Sequence[str] | Callable[[np.random.Generator], str] | None


def _transforms() -> Any:
    """The transform catalogue, imported lazily so that tests can substitute a fake one."""
    import chronos.transforms as tx

    return tx


def _load_spec(kernel_id: str) -> Any:
    """The spec registered now (a dict lookup, not memoized: after `register(spec,
    replace=True)` a memo would hand out the old contract and reward what it allowed)."""
    from kernels import load

    return load(kernel_id)


def _all_kernels() -> list[str]:
    from kernels import list_kernels

    return list(list_kernels())


class PtxTransformEnv(gym.Env[np.ndarray, np.int64]):
    """Optimise one GPU kernel's PTX with a short sequence of transforms.

    ## Action space
    `Discrete(21)` with the default catalogue (sizes come from `self.layout`, envs.spaces):
    actions 0-19 are the transforms of `chronos.transforms.ACTION_NAMES`
    (e.g. `maxnreg_128`, `vec_ld`, `reorder_cp`), action 20 is stop. Each transform may be
    applied at most once per episode and some exclude each other; `action_masks()` (bool, for
    sb3-contrib's MaskablePPO) and `info["action_mask"]` (int8, Gymnasium's convention) say
    which actions are legal now. Stop is always legal.

    ## Observation space
    `Box((101,), float32)`: features bounded to [-1, 32], mask and history to [0, 1].

    | index  | content |
    |--------|---------|
    | 0-58   | `chronos.features.extract` of the current PTX in four groups: ptx, hints, sass
    |        | (23-24: ptxas registers/255 and log1p spill bytes; the SASS mix) and memory
    |        | (occupancy, bytes/FLOP, coalescing, reuse, bound shares). The sass and memory
    |        | figures come from the last valid measurement, -1 when it has none (cupy) |
    | 59-79  | action mask (1 = legal; stop alone once the episode has ended) |
    | 80-100 | action history: 1 for every transform applied so far (stop never appears) |

    ## Rewards
    An `envs.reward.Reward` object (`reward="log_speedup"`, the design's, by default; see
    docs/env.md). With `c_t` the measured cycles after step t (`c_0`: the original PTX,
    measured at the first reset that draws the kernel and kept, so all episodes on it share one
    baseline), `log_speedup` gives:
    - applied transform: `log(c_{t-1} / c_t) - step_cost` (step_cost 0.005), so the episode
      return is `log(c_0 / c_T) - 0.005 * n_steps`;
    - stop: `-step_cost`;
    - a transform that leaves the PTX unchanged: `-step_cost`;
    - invalid step (ptxas rejection, launch fault, wrong output, timeout): `invalid_penalty`
      (default -1.0, no step cost added); `info["invalid"]` says why;
    - masked (illegal) action: treated as an invalid step with reason `"masked action"`, because
      an agent that ignores the mask would otherwise learn from transforms whose
      preconditions do not hold (and may produce kernels that crash the GPU context).

    ## Episode end
    Terminated on stop, on a no-op transform, on an invalid or masked step (the kernel stays at
    its last valid PTX). Truncated after `max_steps` (default 6) steps.

    ## Arguments
    - `kernels`: a kernel id, a list of ids (sampled uniformly with `self.np_random`), a callable
      `sampler(np_random) -> id`, or None for the whole corpus. `reset(options={"kernel": id})`
      overrides it for one episode.
    - `backend`: a backend name for `chronos.measure.make_backend` ("emulated", "cupy",
      "replay", "auto"; the env creates and closes it) or a backend instance (shared; the env
      never closes it), e.g. `envs.shared_backend.SharedMeasurementService().client()`.
    - `backend_options`: keyword arguments for the backend's constructor (name only).
    - `store`: the measurement store for a named backend (path, "default", None = in memory).
    - `max_steps`, `step_cost`, `invalid_penalty`: the MDP constants above.
    - `reward`: a reward name from `envs.reward.REWARDS` ("log_speedup", "linear_speedup") or a
      `Reward` instance (which then carries step_cost and invalid_penalty itself).
    - `transforms`: the action catalogue (default `chronos.transforms`); the action and
      observation spaces are sized from it (`self.layout`, envs.spaces).
    - `render_mode`: None or "ansi" (kernel, applied transforms, unified diff of the PTX).

    Timing is hardware measurement: the same state can give different cycles, so the env is
    registered with `nondeterministic=True`. With the emulated backend it is deterministic.
    The transition itself is `envs.mdp.TransformMDP` (`self.mdp`), shared with the agents.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        kernels: KernelSelector = None,
        backend: str | Any = "emulated",
        backend_options: dict[str, Any] | None = None,
        store: Any = None,
        max_steps: int = MAX_STEPS,
        step_cost: float = STEP_COST,
        invalid_penalty: float = INVALID_PENALTY,
        render_mode: str | None = None,
        reward: str | Reward = "log_speedup",
        transforms: Any = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        tx = transforms if transforms is not None else _transforms()
        if isinstance(reward, str):
            reward = make_reward(reward, step_cost=step_cost, invalid_penalty=invalid_penalty)
        self.action_names: tuple[str, ...] = tuple(tx.ACTION_NAMES)
        self.render_mode = render_mode
        self._kernels = self._kernel_selector(kernels)

        if isinstance(backend, str):
            from chronos.measure import make_backend

            self.backend = make_backend(backend, store=store, **(backend_options or {}))
            self._owns_backend = True
        else:
            if backend_options:
                raise ValueError("backend_options apply only when backend is a name")
            self.backend = backend
            self._owns_backend = False
        self.mdp = TransformMDP(self.backend, max_steps, transforms=tx, reward=reward)
        self.layout = self.mdp.layout

        self.action_space = spaces.Discrete(self.layout.n_actions)
        low = np.zeros(self.layout.obs_size, dtype=np.float32)
        high = np.ones(self.layout.obs_size, dtype=np.float32)
        low[self.layout.features], high[self.layout.features] = FEATURE_LOW, FEATURE_HIGH
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)

        self.state: State | None = None  # the episode's MDP state (set by reset)
        self._initial: State | None = None
        self._last_measurement: Any = None

    # -- the MDP constants and the episode, read from the MDP state ----------------------------

    @property
    def max_steps(self) -> int:
        return self.mdp.max_steps

    @property
    def step_cost(self) -> float:
        return self.mdp.step_cost

    @property
    def invalid_penalty(self) -> float:
        return self.mdp.invalid_penalty

    @property
    def kernel_spec(self) -> Any:
        """The episode's KernelSpec (`spec` is Gymnasium's EnvSpec)."""
        return self.state.spec if self.state else None

    @property
    def kernel_id(self) -> str:
        return self.state.kernel_id if self.state else ""

    @property
    def ptx(self) -> str:
        """The current PTX (the last valid one)."""
        return self.state.ptx if self.state else ""

    @property
    def original_ptx(self) -> str:
        return self._initial.ptx if self._initial else ""

    @property
    def applied(self) -> list[int]:
        return list(self.state.applied) if self.state else []

    @property
    def cycles(self) -> float:
        return self.state.cycles if self.state else math.nan

    @property
    def cycles0(self) -> float:
        return self._initial.cycles if self._initial else math.nan

    # -- kernel selection -------------------------------------------------------------------

    @staticmethod
    def _kernel_selector(kernels: KernelSelector) -> Callable[[np.random.Generator], str]:
        """Normalise the `kernels` argument to a sampler so reset has one code path."""
        if callable(kernels):
            return kernels
        if kernels is None:
            ids = _all_kernels()
        elif isinstance(kernels, str):
            ids = [kernels]
        else:
            ids = list(kernels)
        if not ids:
            raise ValueError("kernels is empty")
        for k in ids:
            _load_spec(k)  # fail at construction, not in the middle of training
        if len(ids) == 1:
            return lambda _rng: ids[0]
        return lambda rng: ids[int(rng.integers(len(ids)))]

    # -- Gymnasium API ----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if self.backend is None:
            raise RuntimeError("the env is closed")
        options = options or {}
        kernel_id = options.get("kernel") or self._kernels(self.np_random)
        spec = _load_spec(str(kernel_id))
        try:
            self.state = self._initial = self.mdp.initial(spec)
        except RuntimeError as exc:
            backend = getattr(self.backend, "name", "?")
            raise RuntimeError(f"{exc} (backend {backend})") from None
        self._last_measurement = self.state.measurement
        info = self._info(action=None, valid=True, reason="reset", cycles_before=self.cycles)
        return self.mdp.observe(self.state), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.state is None:
            raise RuntimeError("call reset() before step()")
        if self.state.done:
            raise RuntimeError("the episode has ended; call reset()")
        if self.backend is None:
            raise RuntimeError("the env is closed")
        a = int(action)
        if not 0 <= a < self.layout.n_actions:
            raise ValueError(f"action {action!r} is outside Discrete({self.layout.n_actions})")
        before = self.cycles
        out = self.mdp.step(self.state, a)
        self.state = out.state
        if out.measurement is not None:
            self._last_measurement = out.measurement
        info = self._info(
            action=a, valid=not out.invalid, reason=out.info["reason"], cycles_before=before
        )
        info["invalid"] = out.info["invalid"]
        obs = self.mdp.observe(self.state)
        return obs, float(out.reward), bool(out.terminated), bool(out.truncated), info

    def action_masks(self) -> np.ndarray:
        """Legal actions now as bool (n_actions,): the hook sb3-contrib's MaskablePPO calls."""
        if self.state is None:
            return np.ones(self.layout.n_actions, dtype=np.bool_)
        return self.mdp.mask(self.state)

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        names = [self.action_names[a] for a in self.applied] or ["(none)"]
        speedup = self.cycles0 / self.cycles if self.cycles > 0 else math.nan
        steps = self.state.steps if self.state else 0
        lines = [
            f"kernel {self.kernel_id}  step {steps}/{self.max_steps}",
            f"applied: {' -> '.join(names)}",
            f"cycles: {self.cycles0:.0f} -> {self.cycles:.0f} (x{speedup:.3f})",
        ]
        diff = difflib.unified_diff(
            self.original_ptx.splitlines(keepends=True),
            self.ptx.splitlines(keepends=True),
            fromfile=f"{self.kernel_id}.ptx (original)",
            tofile=f"{self.kernel_id}.ptx (current)",
        )
        return "\n".join(lines) + "\n" + "".join(diff)

    def close(self) -> None:
        if self._owns_backend and self.backend is not None:
            self.backend.close()
        self.backend = None
        super().close()

    # -- helpers ----------------------------------------------------------------------------

    def _info(
        self, action: int | None, valid: bool, reason: str, cycles_before: float
    ) -> dict[str, Any]:
        m = self._last_measurement
        return {
            "kernel_id": self.kernel_id,
            "action": -1 if action is None else int(action),
            "action_name": "" if action is None else self.action_names[action],
            "cycles_before": float(cycles_before),
            "cycles_after": float(self.cycles),
            "cycles_original": float(self.cycles0),
            "applied": [self.action_names[a] for a in self.applied],
            "applied_ids": self.applied,
            "valid": bool(valid),
            "reason": reason,
            "invalid": "",
            "backend": str(getattr(m, "backend", "")),
            "device": str(getattr(m, "device", "")),
            "estimate": bool(getattr(m, "estimate", False)),
            "step": int(self.state.steps if self.state else 0),
            "action_mask": self.action_masks().astype(np.int8),
        }
