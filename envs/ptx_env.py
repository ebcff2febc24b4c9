"""PtxTransformEnv: the design's MDP (docs/env.md) as a Gymnasium environment.

Each episode optimises one kernel: the agent applies PTX transforms one at a time, every new
PTX is measured by a backend (real GPU cycles, the CPU emulator's estimate, or a replay), and
the reward is the log speed-up of the step minus a small step cost.
"""

from __future__ import annotations

import difflib
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from chronos.features import FEATURE_NAMES, extract

N_FEATURES = len(FEATURE_NAMES)  # 25
N_ACTIONS = 21  # 20 transforms + stop; fixed by the spec (checked against chronos.transforms)
STOP = 20
OBS_SIZE = N_FEATURES + 2 * N_ACTIONS  # 67
# Features are fractions, log1p counts and /255 scales; -1 means "ptxas figure unknown".
# log1p counts above 32 (e^32 instructions) do not occur; the bound only keeps the Box finite.
FEATURE_LOW, FEATURE_HIGH = -1.0, 32.0

KernelSelector = str | Sequence[str] | Callable[[np.random.Generator], str] | None


def _transforms() -> Any:
    """The transform catalogue, imported lazily so that tests can substitute a fake one."""
    import chronos.transforms as tx

    return tx


@lru_cache(maxsize=256)
def _load_spec(kernel_id: str) -> Any:
    from kernels import load

    return load(kernel_id)


class _LruCache(OrderedDict[Any, Any]):
    """A bounded cache shared by the envs of one process.

    Transforms and masks are deterministic functions of (kernel, PTX, applied) and cost tens of
    milliseconds (alignment analysis, re-parsing), as much as an emulated measurement; episodes
    revisit the same states constantly, so remembering them roughly halves a step's cost.
    """

    def __init__(self, maxsize: int) -> None:
        super().__init__()
        self.maxsize = maxsize

    def get_or(self, key: Any, compute: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = compute()
        if len(self) > self.maxsize:
            self.popitem(last=False)
        return value


_APPLY_CACHE = _LruCache(2048)
_MASK_CACHE = _LruCache(8192)


def _digest(ptx: str) -> str:
    return hashlib.blake2b(ptx.encode(), digest_size=16).hexdigest()


def _all_kernels() -> list[str]:
    from kernels import list_kernels

    return list(list_kernels())


class PtxTransformEnv(gym.Env[np.ndarray, np.int64]):
    """Optimise one GPU kernel's PTX with a short sequence of transforms.

    ## Action space
    `Discrete(21)`: actions 0-19 are the transforms of `chronos.transforms.ACTION_NAMES`
    (e.g. `maxnreg_128`, `vec_ld`, `reorder_cp`), action 20 is stop. Each transform may be
    applied at most once per episode and some exclude each other; `action_masks()` (bool, for
    sb3-contrib's MaskablePPO) and `info["action_mask"]` (int8, Gymnasium's convention) say
    which actions are legal now. Stop is always legal.

    ## Observation space
    `Box((67,), float32)`: features bounded to [-1, 32], mask and history to [0, 1].

    | index  | content |
    |--------|---------|
    | 0-24   | `chronos.features.extract` of the current PTX (fractions, log1p counts, /255
    |        | scales; 23 = ptxas registers/255 and 24 = log1p spill bytes from the last valid
    |        | measurement, -1 when the backend reports none) |
    | 25-45  | action mask (1 = legal) |
    | 46-66  | action history: 1 for every transform applied so far (stop never appears) |

    ## Rewards
    With `c_t` the measured cycles after step t (`c_0`: the original PTX, measured at reset):
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
    - `render_mode`: None or "ansi" (kernel, applied transforms, unified diff of the PTX).

    Timing is hardware measurement: the same state can give different cycles, so the env is
    registered with `nondeterministic=True`. With the emulated backend it is deterministic.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        kernels: KernelSelector = None,
        backend: str | Any = "emulated",
        backend_options: dict[str, Any] | None = None,
        store: Any = None,
        max_steps: int = 6,
        step_cost: float = 0.005,
        invalid_penalty: float = -1.0,
        render_mode: str | None = None,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or 'ansi', not {render_mode!r}")
        if max_steps < 1:
            raise ValueError("max_steps must be at least 1")
        tx = _transforms()
        if tx.N_ACTIONS != N_ACTIONS or tx.STOP != STOP:
            raise RuntimeError(
                f"chronos.transforms has {tx.N_ACTIONS} actions (stop={tx.STOP}); "
                f"the env's spaces are built for {N_ACTIONS} (stop={STOP})"
            )
        self.action_names: tuple[str, ...] = tuple(tx.ACTION_NAMES)
        self.render_mode = render_mode
        self.max_steps = int(max_steps)
        self.step_cost = float(step_cost)
        self.invalid_penalty = float(invalid_penalty)
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

        self.action_space = spaces.Discrete(N_ACTIONS)
        low = np.zeros(OBS_SIZE, dtype=np.float32)
        high = np.ones(OBS_SIZE, dtype=np.float32)
        low[:N_FEATURES], high[:N_FEATURES] = FEATURE_LOW, FEATURE_HIGH
        self.observation_space = spaces.Box(low=low, high=high, dtype=np.float32)

        # Episode state (set by reset).
        self.kernel_spec: Any = None  # KernelSpec; `spec` is Gymnasium's EnvSpec
        self.kernel_id = ""
        self.original_ptx = ""
        self.ptx = ""
        self.applied: list[int] = []
        self.cycles0 = math.nan
        self.cycles = math.nan
        self._regs: int | None = None
        self._spills: int | None = None
        self._mask = np.ones(N_ACTIONS, dtype=np.bool_)
        self._steps = 0
        self._done = False
        self._last_measurement: Any = None

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
        options = options or {}
        kernel_id = options.get("kernel") or self._kernels(self.np_random)
        self.kernel_spec = _load_spec(str(kernel_id))
        self.kernel_id = str(self.kernel_spec.id)
        self.original_ptx = self.ptx = self.kernel_spec.ptx()
        self.applied = []
        self._steps = 0
        self._done = False
        m = self._measure(self.ptx)
        if not m.valid or m.cycles is None:
            raise RuntimeError(
                f"the original PTX of {self.kernel_id} does not measure on "
                f"{getattr(m, 'backend', '?')}: {m.error}"
            )
        self.cycles0 = self.cycles = float(m.cycles)
        self._regs, self._spills = m.regs, m.spills
        self._last_measurement = m
        self._mask = self._compute_mask()
        info = self._info(action=None, valid=True, reason="reset", cycles_before=self.cycles)
        return self._obs(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        if self.kernel_spec is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode has ended; call reset()")
        a = int(action)
        if not 0 <= a < N_ACTIONS:
            raise ValueError(f"action {action!r} is outside Discrete({N_ACTIONS})")
        self._steps += 1
        before = self.cycles
        invalid = ""
        valid = True
        if not self._mask[a]:
            reward, terminated, valid = self.invalid_penalty, True, False
            invalid = reason = "masked action"
        elif a == STOP:
            reward, terminated, reason = -self.step_cost, True, "stop"
        else:
            new_ptx, changed, why = self._apply(a)
            if not changed or new_ptx == self.ptx:
                reward, terminated = -self.step_cost, True
                reason = f"no-op: {why}" if why else "no-op"
            else:
                m = self._measure(new_ptx)
                self._last_measurement = m
                if not m.valid or m.cycles is None or not m.cycles > 0:
                    reward, terminated, valid = self.invalid_penalty, True, False
                    invalid = reason = str(m.error or "invalid measurement")
                else:
                    self.ptx = new_ptx
                    self.applied.append(a)
                    self.cycles = float(m.cycles)
                    self._regs, self._spills = m.regs, m.spills
                    reward = math.log(before / self.cycles) - self.step_cost
                    terminated = False
                    reason = "applied"
                    self._mask = self._compute_mask()
        truncated = (not terminated) and self._steps >= self.max_steps
        self._done = terminated or truncated
        info = self._info(action=a, valid=valid, reason=reason, cycles_before=before)
        info["invalid"] = invalid
        return self._obs(), float(reward), bool(terminated), bool(truncated), info

    def action_masks(self) -> np.ndarray:
        """Legal actions now as bool (21,): the hook sb3-contrib's MaskablePPO calls."""
        return self._mask.copy()

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        names = [self.action_names[a] for a in self.applied] or ["(none)"]
        speedup = self.cycles0 / self.cycles if self.cycles > 0 else math.nan
        lines = [
            f"kernel {self.kernel_id}  step {self._steps}/{self.max_steps}",
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

    def _measure(self, ptx: str) -> Any:
        if self.backend is None:
            raise RuntimeError("the env is closed")
        return self.backend.measure(self.kernel_spec, ptx)

    def _apply(self, action: int) -> tuple[str, bool, str]:
        """(new PTX, changed, reason) of a transform, memoised per (kernel, PTX, action)."""
        tx = _transforms()

        def compute() -> tuple[str, bool, str]:
            res = tx.apply_action(self.kernel_spec, self.ptx, action)
            return str(res.ptx), bool(res.changed), str(res.reason or "")

        key = (id(tx), self.kernel_id, _digest(self.ptx), action)
        return _APPLY_CACHE.get_or(key, compute)

    def _compute_mask(self) -> np.ndarray:
        tx = _transforms()
        applied = tuple(self.applied)

        def compute() -> np.ndarray:
            mask = np.asarray(tx.action_mask(self.kernel_spec, self.ptx, applied), dtype=np.bool_)
            mask = mask.copy()
            mask[STOP] = True
            return mask

        key = (id(tx), self.kernel_id, _digest(self.ptx), applied)
        return _MASK_CACHE.get_or(key, compute).copy()

    def _obs(self) -> np.ndarray:
        obs = np.zeros(OBS_SIZE, dtype=np.float32)
        obs[:N_FEATURES] = extract(
            self.ptx, entry=self.kernel_spec.entry, registers=self._regs, spill_bytes=self._spills
        )
        obs[N_FEATURES : N_FEATURES + N_ACTIONS] = self._mask
        obs[N_FEATURES + N_ACTIONS + np.asarray(self.applied, dtype=np.int64)] = 1.0
        np.clip(obs[:N_FEATURES], FEATURE_LOW, FEATURE_HIGH, out=obs[:N_FEATURES])
        return obs

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
            "applied_ids": list(self.applied),
            "valid": bool(valid),
            "reason": reason,
            "invalid": "",
            "backend": str(getattr(m, "backend", "")),
            "device": str(getattr(m, "device", "")),
            "estimate": bool(getattr(m, "estimate", False)),
            "step": int(self._steps),
            "action_mask": self._mask.astype(np.int8),
        }
