"""ASYNC: global->shared copies through `cp.async` (sm_80+).

A copy is a set of `ld.global` whose destination registers are read by nothing but
`st.shared` stores of exactly those registers, contiguous in both spaces (a scalar pair, or
vector accesses of matching total size 4, 8 or 16 bytes) and aligned to that size in both
spaces (proved by the alignment analysis; the natural alignment of a scalar access is given;
shared arrays it relies on get `.align 16`). Bounds-checked copies (`@%p bra` around the
load and the store, nvcc's ragged-tile form) are if-converted first and become one
predicated `@!%p cp.async`: when the guard fails nothing is copied, as before (no zero fill,
which would write shared bytes the original leaves alone). The zero-fill form, where the
register was set to 0 (a literal, or nvcc's hoisted zero: a register whose only write in the
kernel is a `mov` of 0) before the predicated load and the shared store is unconditional,
becomes `selp` of the source size (n or 0) and one unpredicated `cp.async [s], [g], n,
size`, which zero-fills exactly what the original stored (the zero may reach the register
through one `mov r, z` after an unguarded `mov z, 0` in the block: nvcc's unrolled staging
loops). A loaded value counts as copied when its only reads that the load can reach are its
store (an earlier read in the block behind an unguarded write of the register does not
count). It becomes one `cp.async.ca.shared.global` at the position of its last member (or,
for one load and one store whose global address changes in between, at the load, when the
shared address is the same there), and a `cp.async.wait_all` goes before the block's next
`bar.sync`, so every thread's copies have landed before anyone reads the tile; a copy whose
block has no barrier after it (a staging loop: `for (..) tile[..] = in[..];
__syncthreads();`) waits at the end of its block instead, so the copies of one block (an
unrolled loop body) are in flight together and have landed before the thread leaves it. A
block that is its own loop keeps its copies in flight across iterations and waits on its
exit path (after the back branch) when nothing else in it touches shared memory, writes
global memory or fences, and its shared address provably moves at least the width of one
iteration's copies per iteration (a constant step, or `inv + (iv << k)` with `iv` stepped by
a constant or by `%ntid`). Two copies in flight land in no particular order, so a copy whose
shared bytes may be those of an earlier copy still in flight (the analysis cannot tell them
apart) waits for it first. Refused for a block when anything between a copy and its wait
could observe or alias the shared destination or write global memory; the reason names the
instruction.
"""

from __future__ import annotations

from collections import defaultdict

from chronos.ptx import Directive, Function, Instruction, Module, parse

from .alignment import analyze, variables
from .base import NotApplicable, Transform, TransformContext
from .deps import (
    Effect,
    access_size,
    block_effects,
    is_plain_access,
    may_alias,
    vector_regs,
)
from .predicate import if_convert
from .vectorize import raise_shared_alignment


def _holds_global_load(instrs: list[Instruction]) -> bool:
    """A bounds-checked block loading global memory (a guarded copy, or the load half of a
    zero-fill copy whose shared store follows the join); kept only if a copy results."""
    return any(i.opcode == "ld" and i.space == ".global" for i in instrs)


def _is_plain(e: Effect, opcode: str, space: str) -> bool:
    """A plain two-operand `opcode` access of `space` with a known address."""
    i = e.instr
    return (
        i.opcode == opcode
        and i.space == space
        and e.access is not None
        and is_plain_access(i)
        and len(i.operands) == 2
    )


def _is_gld(e: Effect) -> bool:
    i = e.instr
    return _is_plain(e, "ld", ".global") and i.type is not None and i.type[1] in "fbus"


def _is_sst(e: Effect) -> bool:
    return _is_plain(e, "st", ".shared")


def _uses(fn: Function) -> dict[str, int]:
    count: dict[str, int] = defaultdict(int)
    for ins in fn.instructions():
        for r in ins.registers_read():
            count[r] += 1
    return count


class CpAsync(Transform):
    name = "cp_async"
    group = "ASYNC"
    min_sm = 80
    summary = (
        "ld.global+st.shared copies -> cp.async.ca + cp.async.wait_all before bar.sync "
        "(or the block's end)"
    )
    safety = "exact copy sets only; aligned in both spaces; nothing reads shared before the wait"

    def rewrite(self, module: Module, fn: Function, ctx: TransformContext) -> str:
        text = if_convert(module, fn, _holds_global_load)
        if text != module.text:  # bounds-checked copies, now predicated in one block
            module = parse(text)
            fn = module.entry(fn.name)
        raise_align = {
            name: 16
            for name, var in variables(module, fn).items()
            if var.space == ".shared" and not var.extern and var.align < 16
        }
        pa = analyze(module, fn, ctx, raise_align or None)
        uses = _uses(fn)
        zeros = zero_registers(fn)
        positive = positive_registers(fn)
        roots: set[str] = set()
        zero_fill = False
        ed = module.edit()
        n_total = 0
        why: list[str] = []  # why a candidate copy was refused, first one first
        for block in fn.basic_blocks():
            effs = block_effects(block, pa)
            bars = [
                i
                for i, e in enumerate(effs)
                if e.instr.opcode == "bar" and e.instr.modifiers[:1] in ((".sync",), ())
            ]
            plan = self._plan_block(effs, pa, uses, bars, zeros, why)
            if not plan:
                continue
            for members, at, text in plan[0]:
                for m in members:
                    if m.opcode == "st":
                        roots |= set(pa.address(m).roots or ())
                    if m is at:
                        *pre, last = text.split("\n")
                        if pre:
                            ed.insert_before(m, pre)
                        ed.replace(m, last)
                    else:
                        ed.delete(m)
                zero_fill |= _SIZE_REG in text
            waits = plan[1]
            if waits == [len(effs) - 1] and _loop_keeps_copies_in_flight(
                block, effs, plan[0], positive
            ):
                # a one-block staging loop: its copies stay in flight across iterations and
                # the wait goes on the exit path, after the back branch
                ed.insert_after(effs[-1].instr, ["cp.async.wait_all;"])
                waits = []
            for b in waits:
                if b == len(effs):  # the block falls through: wait after its last instruction
                    ed.insert_after(effs[-1].instr, ["cp.async.wait_all;"])
                else:
                    ed.insert_before(effs[b].instr, ["cp.async.wait_all;"])
            n_total += len(plan[0])
        if not n_total:
            raise NotApplicable(f"{self.name}: {why[0] if why else _why_not(fn)}")
        raise_shared_alignment(ed, module, fn, roots & set(raise_align))
        if zero_fill:
            last_reg = [d for d in fn.body if isinstance(d, Directive) and d.name == ".reg"][-1]
            ed.insert_after(last_reg, [f".reg .b32 \t{_SIZE_REG};"])
        return ed.text()

    def _plan_block(self, effs, pa, uses, bars, zeros=frozenset(), why=None):
        """([(members, position instr, cp.async text)], wait positions: the index of the
        instruction each wait goes before, len(effs) for after the last) or None; `why`
        collects, in one line each, the condition a candidate copy failed."""
        why = [] if why is None else why
        copies, converted = self._block_copies(effs, pa, uses, zeros, why)
        if not copies:
            return None
        end = len(effs) - (effs[-1].instr.opcode in _TERMINATORS)
        waits = _wait_positions(copies, converted, effs, bars, end, why)
        if waits is None:
            return None
        copies = _order_overlapping(copies, effs, bars, end)
        plan = [
            ([effs[i].instr for i in sorted(members_idx)], effs[at].instr, text)
            for members_idx, _pos, text, at in copies
        ]
        return plan, sorted(waits)

    def _block_copies(self, effs, pa, uses, zeros, why):
        """The block's copies, (member indices, last member, text, position) in store order,
        and the indices of every member."""
        loads = {i: vector_regs(e.instr.operands[0]) for i, e in enumerate(effs) if _is_gld(e)}
        stores = {i: vector_regs(e.instr.operands[1]) for i, e in enumerate(effs) if _is_sst(e)}
        reg_load: dict[str, int] = {}
        for i, regs in loads.items():
            for r in regs:
                reg_load[r] = i
        copies = []
        converted: set[int] = set()
        seen_loads: set[int] = set()
        for si in sorted(stores):
            if si in converted:
                continue
            comp = self._component(si, loads, stores, reg_load, uses, effs, why)
            if comp is None:
                continue
            lds, sts = comp
            if seen_loads & set(lds):
                continue
            cp = self._copy(lds, sts, loads, stores, effs, pa, zeros, why, uses)
            if cp is None:
                continue
            seen_loads |= set(lds)
            converted |= set(lds) | set(sts)
            copies.append(cp)
        return copies, converted

    @staticmethod
    def _component(si, loads, stores, reg_load, uses, effs, why):
        lds: set[int] = set()
        sts: set[int] = {si}
        frontier = [("s", si)]
        while frontier:
            kind, i = frontier.pop()
            if kind == "s":
                for r in stores[i]:
                    li = reg_load.get(r)
                    if li is None or li > i:
                        return None
                    if li not in lds:
                        lds.add(li)
                        frontier.append(("l", li))
            else:
                for r in loads[i]:
                    owner = [s for s, regs in stores.items() if r in regs]
                    if _reached_uses(r, i, effs, uses) != 1 or len(owner) != 1 or owner[0] < i:
                        why.append(
                            f"the value `{_show(effs[i].instr)}` loads into {r} has a use besides "
                            "one later st.shared in its block (not a pure copy)"
                        )
                        return None
                    if owner[0] not in sts:
                        sts.add(owner[0])
                        frontier.append(("s", owner[0]))
            if len(lds) + len(sts) > 8:
                why.append(f"`{_show(effs[si].instr)}` stores registers of more than 4 loads")
                return None
        return sorted(lds), sorted(sts)

    @staticmethod
    def _copy(lds, sts, loads, stores, effs, pa, zeros=frozenset(), why=None, uses=None):
        why = [] if why is None else why
        st0 = f"`{_show(effs[min(sts)].instr)}`"
        shape = _copy_shape(lds, sts, loads, stores, effs, pa, st0, why)
        if shape is None:
            return None
        g0, s0, gsize = shape
        members = set(lds) | set(sts)
        pos = max(members)
        guarded = _copy_guard(lds, sts, loads, effs, zeros, uses, members, st0, why)
        if guarded is None:
            return None
        guard, zeroed = guarded
        at = _copy_position(lds, sts, effs, g0, s0, pos, st0, why)
        if at is None or _member_crosses(members, pos, effs, st0, why):
            return None
        gaddr = effs[g0].instr.operands[1]
        saddr = effs[s0].instr.operands[0]
        if zeroed is not None:
            # src-size 0 copies nothing and zero-fills, exactly what the mov of 0 stored
            pred = guard.lstrip("@!")
            on, off = (0, gsize) if guard.startswith("@!") else (gsize, 0)
            text = (
                f"selp.b32 \t{_SIZE_REG}, {on}, {off}, {pred};\n"
                f"cp.async.ca.shared.global \t{saddr}, {gaddr}, {gsize}, {_SIZE_REG};"
            )
            return members | set(zeroed), pos, text, at  # the movs of 0 only the store read
        head = f"{guard} " if guard else ""
        text = f"{head}cp.async.ca.shared.global \t{saddr}, {gaddr}, {gsize};"
        return members, pos, text, at


_SIZE_REG = "%chr_cpsz"
_TERMINATORS = frozenset({"bra", "ret", "exit", "brx", "trap"})
_ZERO = frozenset({"0", "0x0", "0f00000000", "0d0000000000000000", "0x00000000"})


def _wait_positions(copies, converted, effs, bars, end, why) -> set[int] | None:
    """Where the block's copies wait: each before the block's next barrier or, without one,
    at `end` (before its branch); None when something between a copy and its wait could
    observe it."""
    # Every copy has landed before the thread leaves the block, so no cross-block reasoning
    # is needed (two cp.async are unordered, PTX ISA, and another block's copy could write
    # the same bytes). Between a copy and its wait nothing may touch shared memory or write
    # global memory, and no other fence (call, atomics, branch) may intervene.
    waits = set()
    for _members, pos, _, _at in copies:
        bar = next((b for b in bars if b > pos), end)
        for x in range(pos + 1, bar):
            if x in converted:
                continue
            e = effs[x]
            what = None
            if e.fence:
                what = "a fence"
            elif (e.mem_read or e.mem_write) and (
                e.access is None or e.access.space != ".global" or e.mem_write
            ):
                what = "a global store" if e.mem_write else "a non-global memory access"
                if e.access is not None and e.access.space == ".shared":
                    what = "a shared-memory access"
            if what:
                why.append(
                    f"{what} (`{_show(e.instr)}`) lies between the copy "
                    f"`{_show(effs[pos].instr)}` and its wait (the block's next barrier, "
                    "else its end)"
                )
                return None
        waits.add(bar)
    return waits


def _order_overlapping(copies, effs, bars, end):
    """`copies` with a wait ahead of each copy that may write shared bytes an earlier copy
    still in flight writes: copies in flight together land in no particular order (PTX
    ISA), and the original's later store wins."""
    wait_of = [next((b for b in bars if b > pos), end) for _m, pos, *_ in copies]
    ordered = []
    for b, (mb, pb, tb, ab) in enumerate(copies):
        overlaps = any(
            wait_of[a] == wait_of[b]
            and copies[a][1] < pb
            and effs[x].instr.opcode == effs[y].instr.opcode == "st"
            and may_alias(effs[x].access, effs[y].access)
            for a in range(len(copies))
            for x in copies[a][0]
            for y in mb
        )
        ordered.append((mb, pb, f"cp.async.wait_all;\n{tb}" if overlaps else tb, ab))
    return ordered


def _contiguous(effs, idxs, regs_of):
    """(first index, bytes, registers in address order) when the accesses `idxs` are one
    contiguous run off one base; else None."""
    idxs = sorted(idxs, key=lambda i: effs[i].access.offset)
    a0 = effs[idxs[0]].access
    off = a0.offset
    regs: list[str] = []
    for i in idxs:
        a = effs[i].access
        if (a.base, a.version) != (a0.base, a0.version) or a.offset != off:
            return None
        off += access_size(effs[i].instr)
        regs += regs_of[i]
    return idxs[0], off - a0.offset, regs


def _copy_shape(lds, sts, loads, stores, effs, pa, st0, why):
    """(first load, first store, bytes) when the loads and stores are contiguous runs of the
    same registers in the same order, 4, 8 or 16 bytes, aligned to that size; else None."""
    g = _contiguous(effs, lds, loads)
    s = _contiguous(effs, sts, stores)
    if g is None or s is None:
        why.append(f"the loads or stores of the copy {st0} are not one contiguous run")
        return None
    (g0, gsize, gregs), (s0, ssize, sregs) = g, s
    if gsize != ssize or gregs != sregs:
        why.append(f"the copy {st0} stores its registers in another order or size")
        return None
    if gsize not in (4, 8, 16):
        why.append(f"the copy {st0} moves {gsize} bytes; cp.async copies 4, 8 or 16")
        return None
    for i in (g0, s0):
        if len(lds) + len(sts) > 2 or access_size(effs[i].instr) != gsize:
            if pa.alignment(effs[i].instr) < gsize:
                why.append(
                    f"`{_show(effs[i].instr)}` is not provably aligned to the copy's {gsize} bytes"
                )
                return None
    return g0, s0, gsize


def _copy_guard(lds, sts, loads, effs, zeros, uses, members, st0, why):
    """(guard, zeroing movs): a bounds-checked copy has every member under one predicate,
    which nothing redefines; the zero-fill form `mov r, 0; @p ld r, [g]; st [s], r` (the
    store unguarded) also gives the movs of 0 it may delete (else None). None when neither
    form holds."""
    ld_guards = {effs[i].instr.guard for i in lds}
    st_guards = {effs[i].instr.guard for i in sts}
    zeroed: list[int] | None = None
    if len(ld_guards) != 1 or len(st_guards) != 1:
        why.append(f"the members of the copy {st0} are under different predicates")
        return None
    guard = next(iter(ld_guards))
    if st_guards != ld_guards:
        if st_guards != {None} or guard is None:
            why.append(f"the store {st0} is guarded and its load is not")
            return None
        zeroed = _zeroing_movs(lds, loads, effs, zeros, uses)
        if zeroed is None:
            why.append(
                f"the guarded load of {st0} overwrites a register not provably 0, so "
                "the src-size zero fill would store something else when the guard fails"
            )
            return None
    if guard is not None:
        pred = guard.lstrip("@!")
        if any(pred in effs[x].writes for x in range(min(members), max(members) + 1)):
            why.append(f"the guard {pred} of the copy {st0} is redefined inside it")
            return None
    return guard, zeroed


def _copy_position(lds, sts, effs, g0, s0, pos, st0, why) -> int | None:
    """Where the copy goes: at `pos` when the address registers still hold their values
    there; or, for a single load and store, at the load (`ld [%rd13+384]; add %rd13, %rd13,
    512; st [%r74+384]`, an unrolled staging loop) when the store's address is already
    there. None when an address changes."""
    at = pos
    gbase = effs[g0].access.base
    if len(lds) == len(sts) == 1 and any(gbase in effs[x].writes for x in range(g0 + 1, pos + 1)):
        at = g0
    for i in (g0, s0):
        base = effs[i].access.base
        if at == g0:  # the load's address is read where it was; the store's is unchanged
            span = range(g0, s0 + 1) if i == s0 else range(0)
        else:
            span = range(i + 1, pos + 1)
        if any(base in effs[x].writes for x in span):
            why.append(f"the address {base} of `{_show(effs[i].instr)}` changes before {st0}")
            return None
        # the stores' data registers were loaded by members only, so they are fine
    return at


def _member_crosses(members, pos, effs, st0, why) -> bool:
    """Does a member cross a fence or an aliasing access on its way to `pos`?"""
    for m in members:
        for x in range(m + 1, pos + 1):
            if x in members:
                continue
            e = effs[x]
            if (
                e.fence
                or (e.access is not None and e.access.space == ".shared")
                or (effs[m].instr.opcode == "ld" and e.mem_write)
            ):
                why.append(
                    f"`{_show(e.instr)}` (a fence, shared access or store) lies between "
                    f"`{_show(effs[m].instr)}` and {st0}"
                )
                return True
    return False


def _sole_movs(fn: Function, source) -> frozenset[str]:
    """Registers whose only write in the function is an unguarded `mov r, x` with
    `source(x)` true (`x` stripped)."""
    writes: dict[str, list[Instruction]] = defaultdict(list)
    for ins in fn.instructions():
        for r in ins.dests:
            writes[r].append(ins)
    return frozenset(
        r
        for r, ws in writes.items()
        if len(ws) == 1
        and ws[0].opcode == "mov"
        and ws[0].guard is None
        and len(ws[0].operands) == 2
        and source(ws[0].operands[1].strip())
    )


def zero_registers(fn: Function) -> frozenset[str]:
    """Registers that hold 0 wherever they are read: their only write in the function is an
    unguarded `mov r, 0` (nvcc hoists `0.0f` into one register and copies it, e.g.
    `mov.f32 %f14, 0f00000000; ... mov.f32 %f35, %f14` in a staging loop). A read that the
    write does not reach sees an undefined value, for which 0 is as good as any other."""
    return _sole_movs(fn, lambda x: x.lower() in _ZERO)


def _loop_keeps_copies_in_flight(block, effs, copies, positive=frozenset()) -> bool:
    """May the copies of `block` stay in flight from one iteration to the next, with one wait
    after the loop? Only for a block that is its own loop (it ends in a conditional branch to
    its own label and falls through to the exit) where nothing but the copies touches shared
    memory, writes global memory or fences anywhere in the block, and the copies' shared
    addresses are one register plus offsets that step by a constant each iteration (one
    `add b, b, K`, or nvcc's `add t, b, K; mov b, t`) at least as wide as all of one
    iteration's copies, or that are `b = inv + (iv << k)` (or `iv * c`) computed before the
    copies from a counter stepped once by a constant or by a register of `positive` (the
    block-stride loop `for (c = tid; c < n; c += blockDim.x) s[c] = in[c]`: at least
    `1 << k` bytes a step): no two copies in flight then write the same byte. (A run long enough
    for the addresses to wrap around 2^32 leaves the shared window first, which the original
    kernel faults on.)"""
    last = effs[-1].instr
    if (
        last.opcode != "bra"
        or last.guard is None
        or block.label is None
        or last.operands[-1].strip() != block.label
    ):
        return False
    members = {id(m) for ms, _at, _text in copies for m in ms}
    sts = [(i, e) for i, e in enumerate(effs) if id(e.instr) in members and e.instr.opcode == "st"]
    for e in effs[:-1]:
        if id(e.instr) in members:
            continue
        if e.fence or (
            (e.mem_read or e.mem_write)
            and (e.access is None or e.access.space != ".global" or e.mem_write)
        ):
            return False
    bases = {e.access.base for _i, e in sts}
    if len(bases) != 1 or any(e.instr.guard is not None for _i, e in sts):
        return False
    base = bases.pop()
    stepped = _constant_step(effs, base)
    width = max(e.access.offset for _i, e in sts) - min(e.access.offset for _i, e in sts)
    width += max(e.access.size for _i, e in sts)
    if stepped is None:
        strided = _strided_address(effs, base, positive)
        if strided is None:
            return False
        least, w = strided
        return all(i > w for i, _e in sts) and width <= least
    step, at = stepped
    offs = [e.access.offset + (step if i > at else 0) for i, e in sts]
    width = max(offs) - min(offs) + max(e.access.size for _i, e in sts)
    return width <= abs(step) <= 1 << 20


def _only_write(effs, r: str) -> int | None:
    """The index of `r`'s only write in the block, when that write is unguarded."""
    ws = [i for i, e in enumerate(effs) if r in e.writes]
    return ws[0] if len(ws) == 1 and effs[ws[0]].instr.guard is None else None


def _literal(x: str) -> int | None:
    try:
        return int(x.strip(), 0)
    except ValueError:
        return None


def _strided_address(effs, reg: str, positive: frozenset[str]) -> tuple[int, int] | None:
    """(the least number of bytes `reg` moves each iteration, the index of its write) when
    its only write in the block is `add reg, inv, s` (either order) with `inv` not written in
    the block, `s` written once by `shl s, iv, k` or `mul.lo s, iv, c`, and `iv` written once
    by `add iv, iv, d` with `d` a nonzero literal or a register of `positive` not written in
    the block, and the move at most 2^20 bytes; else None. (Moves are modulo 2^32; a run
    long enough to wrap around leaves the shared window first.)"""
    w = _only_write(effs, reg)
    if w is None:
        return None
    ins = effs[w].instr
    ops = [o.strip() for o in ins.operands]
    if ins.opcode != "add" or len(ops) != 3 or ".cc" in ins.modifiers:
        return None
    written = {r for e in effs for r in e.writes}
    for inv, s in ((ops[1], ops[2]), (ops[2], ops[1])):
        if inv in written or not s.startswith("%"):
            continue
        v = _only_write(effs, s)
        if v is None or v > w:
            continue
        sins = effs[v].instr
        sops = [o.strip() for o in sins.operands]
        if len(sops) != 3 or _literal(sops[2]) is None:
            continue
        if sins.opcode == "shl" and 0 <= _literal(sops[2]) < 31:
            scale = 1 << _literal(sops[2])
        elif sins.opcode == "mul" and sins.modifiers[:1] == (".lo",) and _literal(sops[2]):
            scale = abs(_literal(sops[2]))
        else:
            continue
        iv = sops[1]
        u = _only_write(effs, iv)
        if u is None:
            continue
        iins = effs[u].instr
        iops = [o.strip() for o in iins.operands]
        if iins.opcode != "add" or len(iops) != 3 or iops[1] != iv or ".cc" in iins.modifiers:
            continue
        d = _literal(iops[2])
        if d is not None and d != 0:
            least = most = abs(d)
        elif iops[2] in positive and iops[2] not in written:
            least, most = 1, 1024  # a block has 1 to 1024 threads along any axis
        else:
            continue
        if most * scale > 1 << 20:  # far from wrapping around 2^32 in one step
            continue
        return least * scale, w
    return None


def positive_registers(fn: Function) -> frozenset[str]:
    """Registers that hold a count of at least 1 wherever they are read: their only write in
    the function is an unguarded `mov r, %ntid.{x,y,z}` (the block size)."""
    return _sole_movs(fn, lambda x: x in ("%ntid.x", "%ntid.y", "%ntid.z"))


def _constant_step(effs, reg: str) -> tuple[int, int] | None:
    """(K, index of the write) when `reg`'s only write in the block is an unguarded
    `add reg, reg, K` or `mov reg, t` whose `t` is written once, by `add t, reg, K` before
    it; else None."""
    w = _only_write(effs, reg)
    if w is None:
        return None
    ins = effs[w].instr
    if ins.opcode == "mov" and len(ins.operands) == 2:
        t = ins.operands[1].strip()
        v = _only_write(effs, t)
        if v is None or v > w:
            return None
        ins2 = effs[v].instr
        ops = [o.strip() for o in ins2.operands]
        if ins2.opcode == "add" and len(ops) == 3 and ops[1] == reg and ".cc" not in ins2.modifiers:
            k = _literal(ops[2])
            return None if k is None else (k, w)
        return None
    ops = [o.strip() for o in ins.operands]
    if ins.opcode == "add" and len(ops) == 3 and ops[1] == reg and ".cc" not in ins.modifiers:
        k = _literal(ops[2])
        return None if k is None else (k, w)
    return None


def _reached_uses(r: str, i: int, effs, uses) -> int:
    """How many reads of `r` in the function may see the write of `r` at `effs[i]`: all of
    them, less those earlier in the block that an unguarded write earlier in the block
    hides (`mov %f37, 0; mov %f36, %f37; ...; @%p ld %f37`: the mov reads the zero, never the
    load, even when the block is a loop)."""
    hidden = 0
    written = False
    for e in effs[:i]:
        if written:  # the reads `_uses` counted (a guarded write's keep-read is not one)
            hidden += sum(x == r for x in e.instr.registers_read())
        if r in e.writes and e.instr.guard is None:
            written = True
    return uses.get(r, 0) - hidden


def _is_zero_mov(ins: Instruction, zeros: frozenset[str]) -> bool:
    """An unguarded `mov r, 0` (or `mov r, z` with `z` in `zeros`)."""
    return (
        ins.opcode == "mov"
        and ins.guard is None
        and len(ins.operands) == 2
        and (ins.operands[1].strip().lower() in _ZERO or ins.operands[1].strip() in zeros)
    )


def _zeroing_movs(
    lds, loads, effs, zeros: frozenset[str] = frozenset(), uses=None
) -> list[int] | None:
    """None unless each register a predicated load fills holds 0 before it: its last writer
    before the load, in this block, is an unguarded `mov r, 0` (or `mov r, z` with `z` in
    `zeros`), or an unguarded `mov r, z` where the last writer of `z` before it, in this
    block, is such a mov of 0 (nvcc's `mov.f32 %f37, 0f00000000; mov.f32 %f36, %f37`).
    Otherwise the indices of those movs of `r` that the copy may delete: the ones whose
    register nothing but the copy's store reads."""
    out = []
    for i in lds:
        for r in loads[i]:
            j = next((x for x in range(i - 1, -1, -1) if r in effs[x].writes), None)
            if j is None:
                return None
            ins = effs[j].instr
            if not _is_zero_mov(ins, zeros):
                src = ins.operands[1].strip() if len(ins.operands) == 2 else ""
                if ins.opcode != "mov" or ins.guard is not None or not src.startswith("%"):
                    return None
                k = next((x for x in range(j - 1, -1, -1) if src in effs[x].writes), None)
                if k is None or not _is_zero_mov(effs[k].instr, frozenset()):
                    return None
            if uses is None or uses.get(r, 0) == 1:
                out.append(j)
    return out


TRANSFORMS = [CpAsync()]


def _show(ins: Instruction) -> str:
    """An instruction on one line, for a reason: its text, spaces for tabs."""
    return " ".join(ins.render().split())


def _why_not(fn: Function) -> str:
    """Why no copy qualifies, in words a user can act on."""
    instrs = fn.instructions()
    sts = [i for i in instrs if i.opcode == "st" and i.space == ".shared"]
    if not sts:
        return "no st.shared in the kernel (nothing is staged through shared memory)"
    loaded = {r for i in instrs if i.opcode == "ld" and i.space == ".global" for r in i.dests}
    copies = [i for i in sts if set(vector_regs(i.operands[1])) <= loaded]
    if not copies:
        first = sts[0]
        src = set(vector_regs(first.operands[1])) - loaded
        writers = [i for i in instrs if src & set(i.dests)]
        made = f", written by `{_show(writers[0])}`" if len(writers) == 1 else ""
        return (
            "the shared stores hold computed values, not registers loaded from global memory "
            f"(e.g. `{_show(first)}`{made})"
        )
    sizes = sorted({access_size(i) for i in copies})
    if all(s < 4 for s in sizes):
        return f"the copies move {sizes} bytes; cp.async copies 4, 8 or 16 (pair them first)"
    return (
        "the loaded registers are also used elsewhere, or shared memory / a global store / a "
        "fence lies between a copy and its wait (the block's next barrier, else its end)"
    )
