"""Just enough ELF64 reading to pull the `.text.<function>` sections out of a cubin.

A cubin is an ordinary little-endian ELF64 file; each kernel's SASS sits in its own
`.text.<name>` section. Reading the section headers with `struct` keeps Chronos free of
pyelftools and of CUDA's binary utilities (cuobjdump, nvdisasm) at run time.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SHT_NOBITS = 8
_SHN_XINDEX = 0xFFFF
TEXT_PREFIX = ".text."


class ElfError(ValueError):
    """The bytes are not a well-formed little-endian ELF64 file."""


@dataclass(frozen=True)
class Section:
    name: str
    type: int
    flags: int
    data: bytes


def sections(blob: bytes) -> list[Section]:
    """All sections in header order; NOBITS sections (e.g. `.nv.shared.*`) have empty data."""
    if len(blob) < _EHDR.size or blob[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    ident = blob[:16]
    if ident[4] != 2 or ident[5] != 1:
        raise ElfError("not a little-endian ELF64 file")
    (_, _, _, _, _, _, shoff, _, _, _, _, shentsize, shnum, shstrndx) = _EHDR.unpack_from(blob)
    if shoff == 0:
        return []
    if shentsize != _SHDR.size:
        raise ElfError(f"unexpected section header size {shentsize}")
    headers = []
    first = _read_header(blob, shoff)
    if shnum == 0:  # extended numbering: the real count lives in section 0
        shnum = first[5]
    if shstrndx == _SHN_XINDEX:
        shstrndx = first[6]
    for i in range(shnum):
        headers.append(_read_header(blob, shoff + i * _SHDR.size))
    if not 0 <= shstrndx < shnum:
        raise ElfError(f"section name table index {shstrndx} out of range")
    names = _section_bytes(blob, headers[shstrndx])
    result = []
    for h in headers:
        name_off, sh_type, sh_flags = h[0], h[1], h[2]
        end = names.find(b"\0", name_off)
        if name_off > len(names) or end < 0:
            raise ElfError(f"section name offset {name_off} outside the name table")
        result.append(
            Section(
                names[name_off:end].decode("utf-8", "replace"),
                sh_type,
                sh_flags,
                _section_bytes(blob, h),
            )
        )
    return result


def text_sections(blob: bytes) -> dict[str, bytes]:
    """Function name -> machine code, from every `.text.<name>` section, in file order."""
    return {
        s.name[len(TEXT_PREFIX) :]: s.data for s in sections(blob) if s.name.startswith(TEXT_PREFIX)
    }


def _read_header(blob: bytes, offset: int) -> tuple[int, ...]:
    if offset + _SHDR.size > len(blob):
        raise ElfError("section header table runs past the end of the file")
    return _SHDR.unpack_from(blob, offset)


def _section_bytes(blob: bytes, header: tuple[int, ...]) -> bytes:
    sh_type, offset, size = header[1], header[4], header[5]
    if sh_type == _SHT_NOBITS:
        return b""
    if offset + size > len(blob):
        raise ElfError("section runs past the end of the file")
    return blob[offset : offset + size]
