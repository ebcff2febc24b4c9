"""Chronos kernel corpus: specs of PTX kernels (launch contract, inputs, reference) and a registry.

    from kernels import load, list_kernels
    spec = load("gemm_tile_4_6_8")

Built-in families are registered on first use; users add their own PTX with `register`,
from modules named on the command line with `import_modules` (see docs/kernels.md).
"""

from kernels.ptx_header import ptx_entries, ptx_param_decls
from kernels.spec import (
    BFLOAT16,
    BufferSpec,
    KernelSpec,
    KernelSpecError,
    Param,
    Problem,
    Tolerance,
    UnknownKernelError,
    bfloat16_from_float,
    bfloat16_to_float,
    builtin_families,
    import_modules,
    list_families,
    list_kernels,
    load,
    register,
    registry_generation,
    spec_fingerprint,
    storage_dtype,
    unregister,
    validate,
)

__all__ = [
    "BFLOAT16",
    "BufferSpec",
    "KernelSpec",
    "KernelSpecError",
    "Param",
    "Problem",
    "Tolerance",
    "UnknownKernelError",
    "builtin_families",
    "import_modules",
    "list_families",
    "list_kernels",
    "load",
    "ptx_entries",
    "ptx_param_decls",
    "register",
    "registry_generation",
    "spec_fingerprint",
    "unregister",
    "bfloat16_from_float",
    "bfloat16_to_float",
    "storage_dtype",
    "validate",
]
