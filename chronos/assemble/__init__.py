"""ptxas wrapper: PTX -> cubin, with registers, spills, SASS count and a `.text` hash.

    from chronos.assemble import assemble, assemble_many
    asm = assemble(ptx, arch="sm_90")
    asm.resources["vadd"].registers, asm.sass_instructions["vadd"], asm.module_text_sha256

ptxas comes from $CHRONOS_PTXAS, PATH, $CUDA_HOME/bin, /usr/local/cuda/bin or the
`nvidia-cuda-nvcc` wheel (`pip install 'chronos[ptxas]'`); no CUDA driver or GPU is needed.
"""

from chronos.assemble.assembly import (
    DEFAULT_ARCH,
    Assembly,
    assemble,
    assemble_many,
    cache_clear,
    cache_info,
    ptxas_version_for,
)
from chronos.assemble.elf import ElfError, text_sections
from chronos.assemble.errors import (
    PtxasError,
    PtxasNotFoundError,
    PtxasTimeoutError,
    parse_errors,
)
from chronos.assemble.ptxas import (
    PtxasIsaError,
    find_ptxas,
    find_ptxas_for,
    max_ptx_isa,
    ptx_isa,
    ptxas_available,
    ptxas_version,
)
from chronos.assemble.resources import Resources, parse_resources
from chronos.assemble.sass import count_instructions
from chronos.caching import CacheInfo

__all__ = [
    "DEFAULT_ARCH",
    "Assembly",
    "CacheInfo",
    "ElfError",
    "PtxasError",
    "PtxasIsaError",
    "PtxasNotFoundError",
    "PtxasTimeoutError",
    "Resources",
    "assemble",
    "assemble_many",
    "cache_clear",
    "cache_info",
    "count_instructions",
    "find_ptxas",
    "find_ptxas_for",
    "max_ptx_isa",
    "parse_errors",
    "parse_resources",
    "ptxas_available",
    "ptx_isa",
    "ptxas_version",
    "ptxas_version_for",
    "text_sections",
]
