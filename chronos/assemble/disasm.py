"""SASS of a cubin, instruction by instruction, with its control codes and PTX lines.

The cost model needs what ptxas made of the PTX: each instruction's opcode, the scheduling
control bits ptxas wrote into it, and which PTX line it came from (to take its execution count
from the emulator's trace). Everything here is read from the cubin's bytes, without running a
disassembler, because nvdisasm costs 0.3-1.5 s per call against a 0.5 s budget per measurement:

* From Volta (sm_70) on, an instruction is two little-endian 64-bit words. The low 12 bits of
  the first word are the opcode (with its operand form); `opcodes.py` names them, a table read
  off `nvdisasm -hex` over the corpus (`python benchmarks/sass_opcodes.py` regenerates it). An
  opcode missing from it is named by one nvdisasm run over that cubin (exact, just slower;
  without nvdisasm it stays `UNKNOWN` and is costed as an integer ALU instruction).
* Bits 105-125 of the instruction (bits 41-61 of the second word) are the control codes
  (Jia et al., "Dissecting the NVIDIA Volta GPU Architecture via Microbenchmarking", 2018,
  section 2.1): stall cycles (4 bits), yield (1), the write and read scoreboard a variable-latency
  result sets (3 bits each, 7 = none), the scoreboards to wait on (6-bit mask), operand reuse (4).
* PTX lines come from the DWARF line table (`.debug_line`) that `ptxas -lineinfo` writes when
  the PTX carries `.loc` directives: `with_line_info` adds `.file 1 "kernel.ptx"` and a
  `.loc 1 N 0` naming each instruction's own line N. The SASS stays identical (its `.text` hash
  is unchanged; tests/test_costmodel.py checks a sample of the corpus).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from chronos.assemble.elf import sections

LINE_FILE = "kernel.ptx"
_NO_LOC = re.compile(r"^\s*(\.loc|\.file)\b")
_INSTRUCTION = re.compile(r"^\s*(@!?%\w+\s+)?[a-z]")


def with_line_info(ptx: str) -> str:
    """`ptx` with a `.loc` before every instruction naming its own line (1-based).

    Existing `.file`/`.loc` directives are dropped (their numbering would clash); the
    returned text's `.loc` numbers refer to the lines of `ptx` itself.
    """
    out: list[str] = []
    depth = 0
    placed = False
    for n, line in enumerate(ptx.splitlines(), 1):
        if _NO_LOC.match(line):
            out.append("")
            continue
        s = line.strip()
        if depth > 0 and _INSTRUCTION.match(line) and not s.endswith(":"):
            out.append(f"\t.loc 1 {n} 0")
        out.append(line)
        if not placed and s.startswith(".address_size"):
            out.append(f'.file 1 "{LINE_FILE}"')
            placed = True
        depth += s.count("{") - s.count("}") if not s.startswith("//") else 0
    if not placed:
        raise ValueError("PTX has no .address_size directive to place the .file after")
    return "\n".join(out) + "\n"


@dataclass(frozen=True)
class Control:
    """The scheduling bits ptxas set on one instruction."""

    stall: int
    yield_: bool
    write_sb: int
    read_sb: int
    wait_mask: int
    reuse: int


def control(word1: int) -> Control:
    c = word1 >> 41
    return Control(
        stall=c & 0xF,
        yield_=bool((c >> 4) & 1),
        write_sb=(c >> 5) & 7,
        read_sb=(c >> 8) & 7,
        wait_mask=(c >> 11) & 0x3F,
        reuse=(c >> 17) & 0xF,
    )


def opcode_key(word0: int) -> int:
    return word0 & 0xFFF


SIZED_OPCODES = frozenset({"LDS", "STS", "LDG", "STG", "LD", "ST"})
"""Memory opcodes whose bits 73-75 (bits 9-11 of the second word) give the bytes per lane."""
ACCESS_BYTES = {4: 4, 5: 8, 6: 16}
"""That field's values for 32-, 64- and 128-bit accesses (`LDS`/`LDS.64`/`LDS.128`,
`LDG.E`/`.64`/`.128`, ...), read off `nvdisasm -hex` on the corpus for sm_8x and sm_90;
tests/test_costmodel.py checks them against nvdisasm. Narrower forms are left unnamed."""


@dataclass(frozen=True)
class SassInstruction:
    """One SASS instruction: offset in its `.text`, raw words, opcode name and PTX line."""

    offset: int
    word0: int
    word1: int
    opcode: str
    control: Control
    ptx_line: int | None

    @property
    def access_bytes(self) -> int | None:
        """Bytes per lane of a load or store (4, 8, 16), None for others or unknown sizes."""
        if self.opcode not in SIZED_OPCODES:
            return None
        return ACCESS_BYTES.get((self.word1 >> 9) & 7)


# --- the DWARF line table -------------------------------------------------------------------


def _leb128(b: bytes, i: int, signed: bool) -> tuple[int, int]:
    """The LEB128 number at b[i] (DWARF's variable-length integers) and the offset after it."""
    v = shift = 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        shift += 7
        if x < 0x80:
            if signed and x & 0x40:
                v -= 1 << shift
            return v, i


def _uleb(b: bytes, i: int) -> tuple[int, int]:
    return _leb128(b, i, signed=False)


def _sleb(b: bytes, i: int) -> tuple[int, int]:
    return _leb128(b, i, signed=True)


def line_rows(debug_line: bytes) -> list[list[tuple[int, int, int]]]:
    """Sequences of (address, file, line) rows of a DWARF 2-4 `.debug_line` section."""
    seqs: list[list[tuple[int, int, int]]] = []
    pos = 0
    while pos + 4 <= len(debug_line):
        (length,) = struct.unpack_from("<I", debug_line, pos)
        end = pos + 4 + length
        (version,) = struct.unpack_from("<H", debug_line, pos + 4)
        if version not in (2, 3, 4):
            raise ValueError(f".debug_line version {version} is not supported")
        (header_len,) = struct.unpack_from("<I", debug_line, pos + 6)
        prog = pos + 10 + header_len
        i = pos + 10
        min_len = debug_line[i]
        i += 2 if version < 4 else 3
        line_base = struct.unpack_from("<b", debug_line, i)[0]
        line_range = debug_line[i + 1]
        opcode_base = debug_line[i + 2]
        std_lengths = debug_line[i + 3 : i + 3 + opcode_base - 1]
        i = prog
        addr, file, line = 0, 1, 1
        rows: list[tuple[int, int, int]] = []
        while i < end:
            op = debug_line[i]
            i += 1
            if op >= opcode_base:
                adj = op - opcode_base
                addr += (adj // line_range) * min_len
                line += line_base + adj % line_range
                rows.append((addr, file, line))
            elif op == 0:
                n, i = _uleb(debug_line, i)
                sub = debug_line[i]
                if sub == 1:
                    rows.append((addr, file, line))
                    seqs.append(rows)
                    rows = []
                    addr, file, line = 0, 1, 1
                elif sub == 2:
                    addr = int.from_bytes(debug_line[i + 1 : i + n], "little")
                i += n
            elif op == 1:
                rows.append((addr, file, line))
            elif op == 2:
                v, i = _uleb(debug_line, i)
                addr += v * min_len
            elif op == 3:
                v, i = _sleb(debug_line, i)
                line += v
            elif op == 4:
                file, i = _uleb(debug_line, i)
            elif op == 8:
                addr += ((255 - opcode_base) // line_range) * min_len
            elif op == 9:
                addr += struct.unpack_from("<H", debug_line, i)[0]
                i += 2
            else:
                for _ in range(std_lengths[op - 1]):
                    _, i = _uleb(debug_line, i)
        if rows:
            seqs.append(rows)
        pos = end
    return seqs


def _line_map(cubin: bytes, function: str) -> dict[int, int]:
    """SASS offset -> PTX line for one function (sequences are matched to functions in
    `.text` order: ptxas emits one sequence per function, in section order)."""
    secs = sections(cubin)
    dbg = next((s.data for s in secs if s.name == ".debug_line"), b"")
    texts = [s.name[6:] for s in secs if s.name.startswith(".text.")]
    seqs = [s for s in line_rows(dbg) if len(s) > 1] if dbg else []
    if len(seqs) != len(texts) or function not in texts:
        return {}
    rows = seqs[texts.index(function)]
    out: dict[int, int] = {}
    for (a, _, line), (b, _, _) in zip(rows, rows[1:], strict=False):
        for off in range(a, b, 16):
            out[off] = line
    return out


# --- opcode names ---------------------------------------------------------------------------

_NVDISASM_LINE = re.compile(
    r"/\*(?P<off>[0-9a-f]{4,})\*/\s+(?P<text>.*?);\s*/\* 0x(?P<w0>[0-9a-f]{16}) \*/"
)
_NVDISASM_HI = re.compile(r"^\s*/\* 0x(?P<w1>[0-9a-f]{16}) \*/")


def mnemonic(text: str) -> str:
    """`@!P0 LDG.E.128 R4, ...` -> `LDG`."""
    t = text.strip()
    if t.startswith("@"):
        t = t.split(None, 1)[1]
    return t.split(None, 1)[0].split(".", 1)[0]


def find_nvdisasm() -> Path:
    """nvdisasm from PATH or an installed `nvidia-cuda-nvdisasm`/`nvidia-cuda-nvcc` wheel."""
    from chronos.assemble.ptxas import WHEEL_LAYOUTS

    found = shutil.which("nvdisasm")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for layout in WHEEL_LAYOUTS:
            if found := shutil.which("nvdisasm", path=str(Path(root) / layout)):
                return Path(found)
    raise FileNotFoundError(
        "nvdisasm not found on PATH or in an nvidia wheel: pip install nvidia-cuda-nvdisasm"
    )


def nvdisasm_listing(cubin: bytes) -> dict[str, list[tuple[int, str, int, int]]]:
    """Function -> [(offset, instruction text, word0, word1)] from `nvdisasm -hex`."""
    exe = find_nvdisasm()
    with tempfile.TemporaryDirectory(prefix="chronos-nvdisasm-") as tmp:
        path = Path(tmp, "k.cubin")
        path.write_bytes(cubin)
        out = subprocess.run(
            [str(exe), "-hex", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    listing: dict[str, list[tuple[int, str, int, int]]] = {}
    current: list[tuple[int, str, int, int]] | None = None
    pending: tuple[int, str, int] | None = None
    for line in out.splitlines():
        if line.startswith("\t.section\t.text."):
            name = line.split("\t")[2].split(",")[0][6:]
            current = listing.setdefault(name, [])
            continue
        m = _NVDISASM_LINE.search(line)
        if m:
            pending = (int(m["off"], 16), m["text"].strip(), int(m["w0"], 16))
            continue
        h = _NVDISASM_HI.match(line)
        if h and pending is not None and current is not None:
            current.append((*pending, int(h["w1"], 16)))
            pending = None
    return listing


# --- one function's SASS --------------------------------------------------------------------

_learned: dict[str, str] = {}
"""Opcode names nvdisasm told this process (deterministic: a function of the encoding)."""


def _family(arch: str) -> str:
    """Encoding family of the opcode table: sm_80-sm_89 and sm_90-sm_99 share encodings;
    any other arch is its own family (the table has none of it, nvdisasm names them)."""
    n = int(re.sub(r"\D", "", arch))
    return "sm_8" if 80 <= n < 90 else "sm_9" if 90 <= n < 100 else f"sm_{n}"


def _name(arch: str, word0: int) -> str | None:
    from chronos.assemble.opcodes import OPCODES

    key = f"{_family(arch)}:{opcode_key(word0):03x}"
    return OPCODES.get(key) or _learned.get(key)


def sass_function(cubin: bytes, function: str, arch: str) -> list[SassInstruction]:
    """The executable instructions of `function` (trailing NOP padding and the final
    branch-to-self left out), with opcode names, control codes and PTX lines."""
    from chronos.assemble.elf import text_sections
    from chronos.assemble.sass import NOP, SELF_BRANCHES

    text = text_sections(cubin).get(function)
    if text is None:
        raise KeyError(f"no .text section for function {function!r} in the cubin")
    words = list(struct.iter_unpack("<QQ", text))
    n = len(words)
    while n and words[n - 1][0] == NOP:
        n -= 1
    if n and words[n - 1][0] in SELF_BRANCHES:
        n -= 1
    words = words[:n]
    if any(_name(arch, w0) is None for w0, _ in words):
        fam = _family(arch)
        try:
            listing = nvdisasm_listing(cubin)
        except (FileNotFoundError, subprocess.SubprocessError):
            listing = {}  # no nvdisasm: unknown opcodes stay UNKNOWN (costed as integer ALU)
        for rows in listing.values():
            for _, txt, w0, _ in rows:
                _learned[f"{fam}:{opcode_key(w0):03x}"] = mnemonic(txt)
    lines = _line_map(cubin, function)
    return [
        SassInstruction(
            16 * i, w0, w1, _name(arch, w0) or "UNKNOWN", control(w1), lines.get(16 * i)
        )
        for i, (w0, w1) in enumerate(words)
    ]
