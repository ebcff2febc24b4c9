"""Counting SASS instructions in a `.text` section without a disassembler.

From Volta (sm_70) on, every SASS instruction is 16 bytes: a little-endian 64-bit word with the
opcode, guard predicate and operands, then a 64-bit word with more operand bits and the
scheduling control bits. ptxas ends every function with a branch-to-self trap and pads the
section with NOPs to its 128-byte alignment; neither is ever executed, so both are left out of
the count (otherwise a one-instruction change could move the count by 8).

The encodings were read off `nvdisasm -hex` (CUDA 13.5) for sm_75 ... sm_121 and checked on
every test kernel; only the first 64-bit word is compared, so the control bits may vary:

    NOP                    0x0000000000007918    (all archs)
    BRA self (PT guard)    0xfffffff000007947    sm_70 .. sm_89: byte offset -16
                           0xfffffffc00fc7947    sm_90 and newer: word offset -4
"""

from __future__ import annotations

import struct

INSTRUCTION_BYTES = 16
NOP = 0x0000000000007918
SELF_BRANCHES = frozenset({0xFFFFFFF000007947, 0xFFFFFFFC00FC7947})


def instruction_words(text: bytes) -> list[int]:
    """First (opcode) 64-bit word of each 16-byte instruction."""
    if len(text) % INSTRUCTION_BYTES:
        raise ValueError(
            f".text size {len(text)} is not a multiple of {INSTRUCTION_BYTES} bytes; "
            "only sm_70 and newer encodings are supported"
        )
    return [w for (w, _) in struct.iter_unpack("<QQ", text)]


def count_instructions(text: bytes) -> int:
    """Instructions of a function, less the trailing NOP padding and branch-to-self trap."""
    words = instruction_words(text)
    n = len(words)
    while n and words[n - 1] == NOP:
        n -= 1
    if n and words[n - 1] in SELF_BRANCHES:
        n -= 1
    return n
