"""What a kernel is to Chronos: its PTX, launch contract, inputs and NumPy reference.

Transforms read the contract (which buffers are only read, how pointers are aligned, what
divides the scalar sizes) to decide what is legal; measurement backends read the problems,
inputs and reference to launch and verify. The registry holds the built-in families and
kernels that users add with `register`, validated against their PTX so that a bad spec fails
at registration rather than as a wrong answer on the GPU.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from kernels.digest import code_digest, value_digest
from kernels.params import ParamEncodingError, ScalarValue, encode_scalar
from kernels.ptx_header import ptx_entries, ptx_param_decls, ptx_targets

ParamKind = Literal["buffer", "scalar"]
BufferRole = Literal["in", "out", "inout"]
SizeName = Literal["full", "small"]

InputsFn = Callable[["Problem", np.random.Generator], Mapping[str, np.ndarray]]
"""Returns the arrays of the `in`/`inout` buffers; outputs are zero-filled by the spec."""

ReferenceFn = Callable[["Problem", Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]
"""Returns the expected arrays of the `out`/`inout` buffers."""

_POINTER_TYPES = frozenset({".u64", ".b64", ".s64"})


class KernelSpecError(ValueError):
    """A spec that contradicts its PTX or itself."""


class UnknownKernelError(KeyError):
    """`load` of an id nobody registered; the message lists close matches."""

    def __str__(self) -> str:
        # KeyError would print the repr of the message, quotes and escapes included.
        return str(self.args[0]) if self.args else ""


class Tolerance(NamedTuple):
    """Verification tolerance for transforms that may change rounding (`np.allclose` terms)."""

    rtol: float
    atol: float


@dataclass(frozen=True)
class Param:
    """One PTX entry parameter, in order; pointers name the buffer they carry."""

    name: str
    ptx_type: str
    kind: ParamKind
    buffer: str | None = None


BFLOAT16 = "bfloat16"
"""The one dtype name numpy lacks: stored as its uint16 bit patterns, compared as floats."""


def storage_dtype(name: str) -> np.dtype:
    """The numpy dtype a buffer of dtype `name` is held in (bfloat16: its uint16 bits)."""
    return np.dtype(np.uint16) if name == BFLOAT16 else np.dtype(name)


def bfloat16_from_float(x: np.ndarray) -> np.ndarray:
    """float32 values -> bfloat16 bit patterns, rounded to nearest even (NaN stays NaN)."""
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = (u + (((u >> 16) & 1) + 0x7FFF)) >> 16
    nan = np.isnan(np.asarray(x, np.float32))
    return np.where(nan, (u >> 16) | 0x40, rounded).astype(np.uint16)


def bfloat16_to_float(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns -> float32 values (exact)."""
    return (np.asarray(bits, np.uint16).astype(np.uint32) << 16).view(np.float32)


@dataclass(frozen=True)
class BufferSpec:
    """A device array the kernel reads (`in`), writes (`out`) or both (`inout`).

    `dtype` is a numpy dtype name, or "bfloat16": such arrays hold uint16 bit patterns
    (`bfloat16_from_float`), and verification compares them as floats within the tolerance.
    """

    name: str
    dtype: str
    role: BufferRole

    @property
    def storage(self) -> np.dtype:
        """The numpy dtype of this buffer's arrays."""
        return storage_dtype(self.dtype)


@dataclass(frozen=True)
class Problem:
    """One launch: sizes, grid/block, scalar arguments and buffer shapes.

    `scalars` hold typed values (int, float, a NumPy scalar or raw bytes) that
    `kernels.params.encode_scalar` turns into the parameter's bytes by its PTX type: an
    `.f32` scalar 1.5 stays 1.5. `params` is filled in by the owning KernelSpec so that `args`
    can order the arguments.
    """

    sizes: Mapping[str, int]
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    scalars: Mapping[str, ScalarValue]
    shapes: Mapping[str, tuple[int, ...]]
    dynamic_shared_bytes: int = 0
    name: str = ""
    params: tuple[Param, ...] = field(default=(), repr=False, compare=False)

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.sizes.items())), self.grid, self.block))

    @property
    def threads(self) -> int:
        """Total threads launched."""
        return int(np.prod(self.grid) * np.prod(self.block))

    def args(self, inputs: Mapping[str, Any]) -> list[Any]:
        """Launch arguments in PTX parameter order: the buffer arrays and the typed scalars."""
        if not self.params:
            raise KernelSpecError("Problem has no parameter list; get it from KernelSpec.problem")
        out: list[Any] = []
        for p in self.params:
            if p.kind == "buffer":
                if p.buffer not in inputs:
                    raise KeyError(f"no array for buffer {p.buffer!r} (parameter {p.name})")
                out.append(inputs[p.buffer])
            else:
                out.append(self.scalars[p.name])
        return out


_PTX_CACHE: dict[Path, str] = {}
_PTX_LOCK = threading.Lock()


def _read_ptx(path: Path) -> str:
    """Read once per process: transforms ask for the baseline PTX at every episode reset."""
    with _PTX_LOCK:
        text = _PTX_CACHE.get(path)
        if text is None:
            # newline="" keeps CRLF files byte-exact, as the PTX printer expects.
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
            _PTX_CACHE[path] = text
        return text


def _default_inputs(spec: KernelSpec, problem: Problem, rng: np.random.Generator) -> dict:
    """Uniform [-1, 1) floats / small integers: enough for a user kernel with no generator."""
    out: dict[str, np.ndarray] = {}
    for b in spec.buffers:
        if b.role == "out":
            continue
        dt = b.storage
        shape = problem.shapes[b.name]
        if b.dtype == BFLOAT16:
            out[b.name] = bfloat16_from_float(rng.uniform(-1.0, 1.0, size=shape))
        elif dt.kind == "f":
            out[b.name] = rng.uniform(-1.0, 1.0, size=shape).astype(dt)
        elif dt.kind in "iu":
            out[b.name] = rng.integers(0, 16, size=shape).astype(dt)
        else:
            out[b.name] = np.zeros(shape, dt)
    return out


@dataclass(frozen=True)
class KernelSpec:
    """A kernel with everything needed to transform, launch and verify it.

    `read_only` defaults to the buffers with role `in`. `inputs_fn=None` uses uniform random
    inputs. `problems` must hold "full" (GPU timing) and "small" (CPU emulator).
    """

    id: str
    family: str
    entry: str
    ptx_path: Path
    params: tuple[Param, ...]
    buffers: tuple[BufferSpec, ...]
    problems: Mapping[str, Problem]
    reference_fn: ReferenceFn
    inputs_fn: InputsFn | None = None
    read_only: frozenset[str] | None = None
    alignment: Mapping[str, int] = field(default_factory=dict)
    divisibility: Mapping[str, int] = field(default_factory=dict)
    tolerance: Tolerance = Tolerance(1e-5, 1e-5)
    target: str = "sm_80"

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__ once, at construction.
        set_ = object.__setattr__
        set_(self, "ptx_path", Path(self.ptx_path))
        set_(self, "params", tuple(self.params))
        set_(self, "buffers", tuple(self.buffers))
        set_(self, "tolerance", Tolerance(*self.tolerance))
        if self.read_only is None:
            set_(self, "read_only", frozenset(b.name for b in self.buffers if b.role == "in"))
        else:
            set_(self, "read_only", frozenset(self.read_only))
        bound = {
            k: dataclasses.replace(p, name=p.name or k, params=self.params)
            for k, p in self.problems.items()
        }
        set_(self, "problems", bound)

    def __hash__(self) -> int:
        return hash((self.id, str(self.ptx_path)))

    def ptx(self) -> str:
        """The checked-in PTX text (read once, then cached)."""
        return _read_ptx(self.ptx_path)

    @functools.cached_property
    def fingerprint(self) -> str:
        """sha256 of everything that decides whether a PTX text of this kernel is valid.

        PTX, the code of `reference_fn` and `inputs_fn`, problems, buffers, parameters and the
        contract (read_only, alignment, divisibility, tolerance, target). Every cache or store
        that remembers a verdict keys on it, so that a spec registered again with a weaker
        contract or a corrected reference is never judged by its predecessor's results.
        """
        h = hashlib.sha256()

        def put(*parts: Any) -> None:
            for part in parts:
                data = part if isinstance(part, bytes) else repr(part).encode()
                h.update(len(data).to_bytes(8, "little"))
                h.update(data)

        put("chronos-spec-v1", self.id, self.family, self.entry, self.target)
        put(self.ptx().encode("utf-8"))
        put(code_digest(self.reference_fn), code_digest(self.inputs_fn or _default_inputs))
        put([(p.name, p.ptx_type, p.kind, p.buffer) for p in self.params])
        put([(b.name, b.dtype, b.role) for b in self.buffers])
        put(sorted(self.read_only or ()), sorted(self.alignment.items()))
        put(sorted(self.divisibility.items()), tuple(self.tolerance))
        for key in sorted(self.problems):
            p = self.problems[key]
            put(key, p.name, sorted(p.sizes.items()), tuple(p.grid), tuple(p.block))
            put(sorted((k, type(v).__name__, value_digest(v)) for k, v in p.scalars.items()))
            put(sorted((k, tuple(v)) for k, v in p.shapes.items()), p.dynamic_shared_bytes)
        return h.hexdigest()

    def buffer(self, name: str) -> BufferSpec:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(f"{self.id} has no buffer {name!r}")

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the buffers the kernel writes (roles out and inout)."""
        return tuple(b.name for b in self.buffers if b.role != "in")

    @property
    def bfloat16_buffers(self) -> frozenset[str]:
        """Names of the bfloat16 buffers (verification reads their bits as floats)."""
        return frozenset(b.name for b in self.buffers if b.dtype == BFLOAT16)

    def problem(self, size: SizeName | str = "full") -> Problem:
        """The "full" problem is for GPU timing, the "small" one for the CPU emulator."""
        try:
            return self.problems[size]
        except KeyError:
            raise KeyError(
                f"{self.id} has no problem {size!r}; it has {sorted(self.problems)}"
            ) from None

    def make_inputs(self, problem: Problem, seed: int) -> dict[str, np.ndarray]:
        """Every buffer, seeded and C-contiguous; outputs zero-filled."""
        rng = np.random.default_rng(seed)
        made = (
            _default_inputs(self, problem, rng)
            if self.inputs_fn is None
            else self.inputs_fn(problem, rng)
        )
        out: dict[str, np.ndarray] = {}
        for b in self.buffers:
            shape = tuple(problem.shapes[b.name])
            if b.role == "out":
                out[b.name] = np.zeros(shape, b.storage)
                continue
            if b.name not in made:
                raise KernelSpecError(f"{self.id}: inputs_fn did not make buffer {b.name!r}")
            out[b.name] = self._checked(b, made[b.name], shape, "inputs_fn")
        return out

    def reference(
        self, problem: Problem, inputs: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Expected contents of the output buffers (roles out and inout) only."""
        # Copies: a reference that updates its inputs in place must not change the arrays
        # the kernel is then run on.
        got = self.reference_fn(problem, {k: np.array(v, copy=True) for k, v in inputs.items()})
        out: dict[str, np.ndarray] = {}
        for name in self.outputs:
            if name not in got:
                raise KernelSpecError(f"{self.id}: reference_fn did not return {name!r}")
            b = self.buffer(name)
            out[name] = self._checked(b, got[name], tuple(problem.shapes[name]), "reference_fn")
        return out

    def _checked(
        self, b: BufferSpec, arr: np.ndarray, shape: tuple[int, ...], who: str
    ) -> np.ndarray:
        """Wrong shapes or dtypes from a user function surface here, not as a GPU fault."""
        arr = np.asarray(arr)
        if arr.shape != shape or arr.dtype != b.storage:
            raise KernelSpecError(
                f"{self.id}: {who} gave {b.name} {arr.dtype}{list(arr.shape)}, "
                f"expected {b.dtype}{list(shape)}"
            )
        return np.ascontiguousarray(arr)


def validate(spec: KernelSpec) -> None:
    """Raise KernelSpecError unless the spec agrees with its PTX and with itself."""
    if not spec.ptx_path.is_file():
        raise KernelSpecError(f"{spec.id}: PTX file not found: {spec.ptx_path}")
    ptx = spec.ptx()
    entries = ptx_entries(ptx)
    _check_entry(spec, entries)
    errors = _header_errors(spec, ptx, entries)
    buffers = {b.name: b for b in spec.buffers}
    errors += _buffer_errors(spec, buffers)
    pointers, param_errors = _pointer_params(spec, buffers)
    errors += param_errors
    unpassed = set(buffers) - set(pointers.values())
    if unpassed:
        errors.append(f"buffers {sorted(unpassed)} are not passed by any parameter")
    scalars = {p.name for p in spec.params if p.kind == "scalar"}
    errors += _contract_errors(spec, buffers, pointers, scalars)
    errors += _problem_errors(spec, ptx, buffers, scalars)
    if errors:
        raise KernelSpecError(f"{spec.id}: " + "; ".join(errors))


def _check_entry(spec: KernelSpec, entries: dict[str, list[tuple[str, str]]]) -> None:
    """Raise unless the PTX declares the spec's entry (with a hint for a C++-mangled one)."""
    if spec.entry in entries:
        return
    near = difflib.get_close_matches(spec.entry, list(entries), n=3)
    mangled = sorted(e for e in entries if e.startswith("_Z"))
    hint = (
        f'; {mangled[0]} is a C++-mangled name: declare the kernel extern "C" '
        '(extern "C" __global__ void ...) and regenerate the PTX'
        if mangled
        else ""
    )
    raise KernelSpecError(
        f"{spec.id}: entry {spec.entry!r} not in {spec.ptx_path.name} "
        f"(entries: {sorted(entries)}; close: {near}){hint}"
    )


def _header_errors(
    spec: KernelSpec, ptx: str, entries: dict[str, list[tuple[str, str]]]
) -> list[str]:
    """The PTX's `.target` and the entry's parameter list against the spec's."""
    errors: list[str] = []
    targets = ptx_targets(ptx)
    if spec.target not in targets:
        errors.append(f"target {spec.target!r} but the PTX says .target {', '.join(targets)}")
    declared = entries[spec.entry]
    mine = [(p.name, p.ptx_type) for p in spec.params]
    if mine != declared:
        errors.append(f"params {mine} do not match the PTX entry's {declared}")
    return errors


def _buffer_errors(spec: KernelSpec, buffers: dict[str, BufferSpec]) -> list[str]:
    """Unique names, known roles and storage dtypes."""
    errors: list[str] = []
    if len(buffers) != len(spec.buffers):
        errors.append("duplicate buffer names")
    for b in spec.buffers:
        if b.role not in ("in", "out", "inout"):
            errors.append(f"buffer {b.name}: role {b.role!r} not in/out/inout")
        try:
            storage_dtype(b.dtype)
        except TypeError:
            errors.append(f"buffer {b.name}: unknown dtype {b.dtype!r}")
    return errors


def _pointer_params(
    spec: KernelSpec, buffers: dict[str, BufferSpec]
) -> tuple[dict[str, str], list[str]]:
    """Pointer parameter -> the buffer it passes, and what is wrong with the parameters: an
    unknown buffer, a pointer that is not 64-bit, two pointers to one buffer, an unknown kind."""
    errors: list[str] = []
    pointers: dict[str, str] = {}
    for p in spec.params:
        if p.kind == "buffer":
            if p.buffer not in buffers:
                errors.append(f"param {p.name} carries unknown buffer {p.buffer!r}")
            if p.ptx_type not in _POINTER_TYPES:
                errors.append(f"pointer param {p.name} has type {p.ptx_type}, expected 64-bit")
            if p.buffer in pointers.values():
                other = next(k for k, v in pointers.items() if v == p.buffer)
                # The memory transforms (vec_ld/vec_st, reorder_cp, cp_async, ld_nc) reorder and
                # merge accesses of distinct pointer parameters: they assume no aliasing.
                errors.append(
                    f"params {other} and {p.name} both pass buffer {p.buffer!r}: aliasing "
                    "pointer parameters are not supported (the memory transforms assume "
                    "distinct buffers); give each pointer its own buffer"
                )
            pointers[p.name] = str(p.buffer)
        elif p.kind != "scalar":
            errors.append(f"param {p.name}: kind {p.kind!r} not buffer/scalar")
    return pointers, errors


def _contract_errors(
    spec: KernelSpec, buffers: dict[str, BufferSpec], pointers: dict[str, str], scalars: set[str]
) -> list[str]:
    """The transforms' contract: read-only buffers, pointer alignment, scalar divisibility,
    and the verification tolerance."""
    errors: list[str] = []
    assert spec.read_only is not None
    for name in spec.read_only:
        if name not in buffers:
            errors.append(f"read_only names unknown buffer {name!r}")
        elif buffers[name].role != "in":
            errors.append(f"read_only buffer {name} has role {buffers[name].role}")
    errors += _alignment_errors(spec, buffers, pointers)
    for name, div in spec.divisibility.items():
        if name not in scalars:
            errors.append(f"divisibility names {name!r}, not a scalar parameter")
        if div <= 0:
            errors.append(f"divisibility of {name} is {div}")
    if spec.tolerance.rtol < 0 or spec.tolerance.atol < 0:
        errors.append(f"negative tolerance {spec.tolerance}")
    return errors


def _alignment_errors(
    spec: KernelSpec, buffers: dict[str, BufferSpec], pointers: dict[str, str]
) -> list[str]:
    """Each alignment names a pointer, is a power of two and covers one element."""
    errors: list[str] = []
    for name, align in spec.alignment.items():
        if name not in pointers:
            errors.append(f"alignment names {name!r}, not a pointer parameter")
        if align <= 0 or align & (align - 1):
            errors.append(f"alignment of {name} is {align}, not a power of two")
        elif name in pointers and pointers[name] in buffers:
            try:
                item = np.dtype(buffers[pointers[name]].dtype).itemsize
            except TypeError:
                continue
            if align < item:
                errors.append(
                    f"alignment of {name} is {align} bytes, less than its "
                    f"{buffers[pointers[name]].dtype} elements ({item} bytes): every element "
                    "access would be misaligned"
                )
    return errors


def _problem_errors(
    spec: KernelSpec, ptx: str, buffers: dict[str, BufferSpec], scalars: set[str]
) -> list[str]:
    """Both problem sizes exist, and each one's scalars, shapes and launch shape are whole."""
    errors: list[str] = []
    for size in ("full", "small"):
        if size not in spec.problems:
            errors.append(f"no {size!r} problem")
    decl_bytes = {name: n for name, _, n in ptx_param_decls(ptx)[spec.entry]}
    for size, prob in spec.problems.items():
        where = f"problem {size!r}"
        if set(prob.scalars) != scalars:
            errors.append(f"{where}: scalars {sorted(prob.scalars)} != {sorted(scalars)}")
        for p in spec.params:
            if p.kind == "scalar" and p.name in prob.scalars:
                try:
                    encode_scalar(prob.scalars[p.name], p.ptx_type, decl_bytes.get(p.name), p.name)
                except ParamEncodingError as exc:
                    errors.append(f"{where}: {exc}")
        if set(prob.shapes) != set(buffers):
            errors.append(f"{where}: shapes for {sorted(prob.shapes)} != {sorted(buffers)}")
        errors += [f"{where}: {e}" for e in _launch_shape_errors(prob)]
        for name, div in spec.divisibility.items():
            value = prob.scalars.get(name)
            if value is not None and not isinstance(value, int | np.integer):
                errors.append(f"{where}: {name}={value!r} has a divisibility but is not an int")
            elif value is not None and div > 0 and value % div:
                errors.append(f"{where}: {name}={value} is not divisible by {div}")
    return errors


def _launch_shape_errors(prob: Problem) -> list[str]:
    """Grid and block are three positive ints; a block has at most 1024 threads."""
    errors: list[str] = []
    for dims, what in ((prob.grid, "grid"), (prob.block, "block")):
        if len(dims) != 3 or any(int(d) < 1 for d in dims):
            errors.append(f"{what} {dims} is not three positive ints")
    if int(np.prod(prob.block)) > 1024:
        errors.append(f"block {prob.block} exceeds 1024 threads")
    return errors


# --- registry ---------------------------------------------------------------------------------

_REGISTRY: dict[str, KernelSpec] = {}
_BUILTINS_LOADED = False
_REGISTRY_LOCK = threading.RLock()
_GENERATION = 0


def registry_generation() -> int:
    """A counter that every register/unregister bumps: a memo of `load` results keyed on it
    never serves a replaced spec."""
    return _GENERATION


def spec_fingerprint(spec: Any) -> str:
    """`spec.fingerprint` for a KernelSpec; for a stand-in without one (test fakes), its id."""
    fp = getattr(spec, "fingerprint", None)
    return str(fp) if isinstance(fp, str) else f"id:{spec.id}"


def builtin_families() -> list[Any]:
    """The family packages under kernels/ (each a subpackage with `FAMILY` and `specs()`).

    Found by walking the package, so that adding a family is adding its folder.
    """
    import importlib
    import pkgutil

    import kernels

    found = []
    for info in sorted(pkgutil.iter_modules(kernels.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"kernels.{info.name}")
        if hasattr(module, "specs") and hasattr(module, "FAMILY"):
            found.append(module)
    return found


def _ensure_builtins() -> None:
    """Import the built-in families on first use, so `import kernels` stays cheap."""
    global _BUILTINS_LOADED
    with _REGISTRY_LOCK:
        if _BUILTINS_LOADED:
            return
        _BUILTINS_LOADED = True  # set first: register() below calls back in here
        try:
            for module in builtin_families():
                for spec in module.specs():
                    register(spec)
        except BaseException:
            _BUILTINS_LOADED = False
            _REGISTRY.clear()
            raise


def register(spec: KernelSpec, *, replace: bool = False) -> KernelSpec:
    """Validate `spec` against its PTX and add it; an existing id needs `replace=True`."""
    global _GENERATION
    _ensure_builtins()
    if replace:
        with _PTX_LOCK:  # the file may have been rewritten: read it again
            _PTX_CACHE.pop(Path(spec.ptx_path), None)
    validate(spec)
    with _REGISTRY_LOCK:
        if spec.id in _REGISTRY and not replace:
            raise KernelSpecError(f"kernel id {spec.id!r} is already registered")
        _REGISTRY[spec.id] = spec
        _GENERATION += 1
    return spec


def unregister(kernel_id: str) -> None:
    """Remove a kernel (tests and notebooks that register temporary kernels)."""
    global _GENERATION
    _ensure_builtins()
    with _REGISTRY_LOCK:
        _REGISTRY.pop(kernel_id, None)
        _GENERATION += 1


def load(kernel_id: str) -> KernelSpec:
    """The registered spec for `kernel_id`; an unknown id names the closest ones."""
    _ensure_builtins()
    try:
        return _REGISTRY[kernel_id]
    except KeyError:
        near = difflib.get_close_matches(kernel_id, list(_REGISTRY), n=5, cutoff=0.6)
        hint = f"did you mean {', '.join(near)}?" if near else "see kernels.list_kernels()"
        raise UnknownKernelError(
            f"unknown kernel {kernel_id!r} ({len(_REGISTRY)} registered); {hint}"
        ) from None


def list_families() -> list[str]:
    """Sorted names of the families that have at least one registered kernel."""
    _ensure_builtins()
    return sorted({s.family for s in _REGISTRY.values()})


def list_kernels(family: str | None = None) -> list[str]:
    """Sorted ids, optionally of one family."""
    _ensure_builtins()
    return sorted(k for k, s in _REGISTRY.items() if family is None or s.family == family)


_IMPORTED: dict[str, tuple[str, ...]] = {}
"""Module name -> the ids it registered when `import_modules` first imported it."""


def import_modules(names: Sequence[str]) -> list[str]:
    """Import user modules that call `register` (config `kernels.modules`, CLI `--module`).

    The current directory is importable, so `kernels.modules=[mykernels]` finds ./mykernels.py.
    Returns the ids the modules registered. A module that cannot be found, fails to import or
    registers no kernel raises KernelSpecError naming it (and unregisters what it had added);
    importing one twice is a no-op.
    """
    import importlib
    import os
    import sys

    _ensure_builtins()
    cwd = os.getcwd()
    if names and cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    added: list[str] = []
    for name in names:
        if name in _IMPORTED:
            added.extend(_IMPORTED[name])
            continue
        preloaded = name in sys.modules
        before = set(_REGISTRY)
        try:
            importlib.import_module(name)
        except BaseException as exc:
            # A half-run module must not leave its first kernels behind for the next try.
            with _REGISTRY_LOCK:
                for kid in set(_REGISTRY) - before:
                    del _REGISTRY[kid]
            missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
            if missing and (name == missing or name.startswith(missing + ".")):
                raise KernelSpecError(
                    f"kernels module {name!r} not found (looked in {cwd} and on sys.path): run "
                    f"from the directory holding {name.split('.')[0]}.py, or add it to PYTHONPATH"
                ) from exc
            if isinstance(exc, Exception):
                raise KernelSpecError(f"kernels module {name!r} failed to import: {exc}") from exc
            raise
        new = tuple(sorted(set(_REGISTRY) - before))
        if not new and not preloaded:
            raise KernelSpecError(
                f"kernels module {name!r} registered no kernels: it must call "
                "kernels.register(KernelSpec(...)) when imported"
            )
        _IMPORTED[name] = new
        added.extend(new)
    return added
