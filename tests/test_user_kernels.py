"""User kernels from the command line: `kernels.modules` / `--module`, import errors, and the
examples/user_kernels tutorial run end to end from its own directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import kernels
from kernels import KernelSpecError, import_modules
from tests.helpers.data import ptx_text

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "user_kernels"

MANGLED_PTX = ptx_text("vadd_mangled.ptx")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty directory as the current one, its modules forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("tmpmod_"):
            del sys.modules[name]


def _spec_module(path: Path, name: str, kernel_id: str, ptx: str, entry: str) -> None:
    (path / f"{name}.ptx").write_text(ptx)
    (path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            from pathlib import Path
            import kernels
            from kernels import BufferSpec, KernelSpec, Param, Problem
            P = "{entry}_param_"
            prob = Problem(sizes={{"n": 8}}, grid=(1, 1, 1), block=(8, 1, 1),
                           scalars={{P + "3": 8}}, shapes={{"a": (8,), "b": (8,), "c": (8,)}})
            kernels.register(KernelSpec(
                id="{kernel_id}", family="user", entry="vadd",
                ptx_path=Path(__file__).with_suffix(".ptx"),
                params=(Param(P + "0", ".u64", "buffer", "a"),
                        Param(P + "1", ".u64", "buffer", "b"),
                        Param(P + "2", ".u64", "buffer", "c"),
                        Param(P + "3", ".u32", "scalar")),
                buffers=(BufferSpec("a", "float32", "in"), BufferSpec("b", "float32", "in"),
                         BufferSpec("c", "float32", "out")),
                problems={{"full": prob, "small": prob}},
                reference_fn=lambda p, i: {{"c": i["a"] + i["b"]}},
            ))
            """
        )
    )


def test_import_modules_registers_and_is_idempotent(module_dir: Path) -> None:
    ptx = (EXAMPLE / "mykernels.ptx").read_text()
    _spec_module(module_dir, "tmpmod_ok", "tmp_vadd", ptx, "vadd")
    try:
        assert import_modules(["tmpmod_ok"]) == ["tmp_vadd"]
        assert import_modules(["tmpmod_ok"]) == ["tmp_vadd"]  # second call: no re-register
        assert kernels.load("tmp_vadd").family == "user"
    finally:
        kernels.unregister("tmp_vadd")


def test_missing_module_names_the_directory(module_dir: Path) -> None:
    with pytest.raises(KernelSpecError, match=r"'tmpmod_absent' not found .*tmpmod_absent\.py"):
        import_modules(["tmpmod_absent"])


def test_module_that_registers_nothing_is_an_error(module_dir: Path) -> None:
    (module_dir / "tmpmod_empty.py").write_text("X = 1\n")
    with pytest.raises(KernelSpecError, match="registered no kernels"):
        import_modules(["tmpmod_empty"])


def test_failed_module_leaves_nothing_registered(module_dir: Path) -> None:
    """A module that registers one kernel and then fails is rolled back, and says why."""
    ptx = (EXAMPLE / "mykernels.ptx").read_text()
    _spec_module(module_dir, "tmpmod_half", "tmp_half", ptx, "vadd")
    with (module_dir / "tmpmod_half.py").open("a") as f:
        f.write("import tmpmod_no_such_dependency\n")
    with pytest.raises(KernelSpecError, match="'tmpmod_half' failed to import: No module named"):
        import_modules(["tmpmod_half"])
    assert "tmp_half" not in kernels.list_kernels()


def test_mangled_entry_suggests_extern_c(module_dir: Path) -> None:
    _spec_module(module_dir, "tmpmod_mangled", "tmp_mangled", MANGLED_PTX, "_Z4vaddPKfS0_Pfi")
    with pytest.raises(KernelSpecError, match=r'_Z4vaddPKfS0_Pfi is a C\+\+-mangled .*extern "C"'):
        import_modules(["tmpmod_mangled"])
    assert "tmp_mangled" not in kernels.list_kernels()


def test_example_kernels_verify() -> None:
    from chronos.emulate import verify

    sys.path.insert(0, str(EXAMPLE))
    try:
        ids = import_modules(["mykernels"])
    finally:
        sys.path.remove(str(EXAMPLE))
    assert ids == ["rowsum", "vadd"]
    for kid in ids:
        spec = kernels.load(kid)
        assert verify(spec, spec.ptx(), exact=kid == "vadd").ok, kid


def test_cli_module_flags(tmp_path: Path) -> None:
    """chronos.measure and chronos.transforms take --module; a bad one exits 2 with a hint."""
    run = dict(cwd=EXAMPLE, env=_env(), capture_output=True, text=True, timeout=600)
    out = subprocess.run(
        [sys.executable, "-m", "chronos.measure", "--module", "mykernels", "vadd",
         "--backend", "emulated", "--store", "none", "--json"],
        **run,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["kernel"] == "vadd" and got["baseline"]["valid"]
    bad = subprocess.run(
        [sys.executable, "-m", "chronos.transforms", "show", "--module", "nosuchmod", "vadd",
         "ld_nc"],
        **run,
    )  # fmt: skip
    assert bad.returncode == 2 and "nosuchmod.py" in bad.stderr


@pytest.mark.slow
def test_example_trains_end_to_end_from_its_directory(tmp_path: Path) -> None:
    """The tutorial's command, CI-sized: greedy, BC, 2 GRPO epochs, eval and report."""
    cmd = [
        sys.executable, "-m", "chronos.train", "+exp=ci", "kernels.modules=[mykernels]",
        "kernels.ids=[vadd,rowsum]", f"hydra.run.dir={tmp_path / 'run'}",
        f"greedy.dataset_dir={tmp_path / 'greedy'}", "tensorboard=false",
    ]  # fmt: skip
    out = subprocess.run(cmd, cwd=EXAMPLE, env=_env(), capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "eval" / "summary.json").read_text())
    assert set(summary["per_kernel"]) == {"vadd", "rowsum"}
    assert summary["backend"] == "emulated"
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert "vadd" in (tmp_path / "run" / "report.md").read_text()
