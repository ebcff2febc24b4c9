"""Backend names -> factories, and the `Backend` interface every backend satisfies.

Every built-in backend lives in chronos.measure.backends and subclasses `BackendBase`; the
registry maps a name to a factory and imports the built-in ones lazily, so asking for
"emulated" never imports CuPy and asking for "cupy" never imports the emulator. Users add their
own with `register_backend`. `chronos.measure.make_backend` (factory.py) is the one way to build a
backend for use: it puts the measurement store in front of the bare backend made here.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from chronos.measure.measurement import Measurement


@runtime_checkable
class Backend(Protocol):
    """What `make_backend` returns and what a registered factory must build.

    `measure` never raises for a bad kernel (ptxas rejection, fault, wrong output, hang): it
    returns an invalid Measurement whose `error` says why. Only setup problems raise.
    """

    name: str

    @property
    def device(self) -> str: ...

    def measure(self, spec: Any, ptx: str) -> Measurement: ...


class BackendBase:
    """Defaults for backends written here: batch measuring, close, context manager."""

    name: str = "base"
    harness_version: str = "0"

    @property
    def device(self) -> str:
        return "unknown"

    def measure(self, spec: Any, ptx: str) -> Measurement:  # pragma: no cover - abstract
        raise NotImplementedError

    def measure_many(self, spec: Any, ptxs: Sequence[str]) -> list[Measurement]:
        return [self.measure(spec, p) for p in ptxs]

    config_fields: tuple[str, ...] = ()
    """Attributes whose values change the figures or the verdict."""

    def cache_config(self) -> dict[str, Any]:
        """Options that change the figures; part of the store key."""
        return {name: getattr(self, name) for name in self.config_fields}

    def close(self) -> None:
        pass

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


Factory = Callable[..., Any]

_BUILTIN: dict[str, str] = {
    "emulated": "chronos.measure.backends.emulated:EmulatedBackend",
    "cupy": "chronos.measure.backends.cupy:CupyBackend",
    "replay": "chronos.measure.backends.replay:ReplayBackend",
    "ray": "chronos.measure.backends.ray_pool:RayPoolBackend",
}
_registry: dict[str, Factory] = {}
_lock = threading.Lock()


def register_backend(name: str, factory: Factory) -> None:
    """Make `make_backend(name, ...)` build backends with `factory(**opts)`."""
    if not name or not callable(factory):
        raise ValueError(f"register_backend needs a name and a callable, got {name!r}")
    with _lock:
        _registry[name] = factory


def backend_names() -> list[str]:
    """Every name make_backend accepts (registered, built-in, and 'auto')."""
    return sorted(set(_registry) | set(_BUILTIN) | {"auto"})


def get_factory(name: str) -> Factory:
    """The factory for `name`, importing a built-in backend on first use."""
    with _lock:
        factory = _registry.get(name)
    if factory is not None:
        return factory
    target = _BUILTIN.get(name)
    if target is None:
        raise ValueError(f"unknown measurement backend {name!r}; known: {backend_names()}")
    module, attr = target.split(":")
    factory = getattr(importlib.import_module(module), attr)
    with _lock:
        return _registry.setdefault(name, factory)


def create_backend(name: str, **opts: Any) -> Any:
    """A bare backend (no store) by name."""
    return get_factory(name)(**opts)
