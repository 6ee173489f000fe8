"""Copies that write whole cache lines straight to memory (non-temporal stores).

A copy into a destination that is not in cache first reads every line it
writes (the core must own a line before it changes part of it), so filling a
large result reads it too, and the stores wait on memory. Stores marked
non-temporal write whole lines through write-combining buffers, without the
read and without evicting what the decoder keeps in cache: the interleaved
rows of a 92 MB block were copied ~2.8x faster here (9.6 against 27 GB/s on
one core, ``BENCHMARKS.md``). The destination is then not in cache, so this
is for results larger than the caches, never for a crop its reader touches
next.

These stores are weakly ordered: :func:`store_fence` must follow them before
another thread may read the destination. The stores are generic LLVM
(``!nontemporal`` stores), which LLVM lowers for whatever the machine has
(plain stores where it has no such stores); the fence is ``SFENCE`` on x86
and a full ``fence`` elsewhere.
"""

from __future__ import annotations

import platform
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from lsio.io import libc_extern

__all__ = ["LINE", "copy_row", "store_fence"]

LINE = 64
"""Bytes of a cache line: the unit :func:`copy_row` streams."""

_VECTOR = 32  # bytes per store: one AVX register, two SSE ones where that is all there is

_memcpy = libc_extern("memcpy", 3)

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _stream_lines(typingctx: Any, dst: Any, src: Any, lines: Any) -> Any:  # pragma: no cover
    """Copy ``lines`` whole cache lines from ``src`` (any alignment) to ``dst`` (line-aligned)."""
    if not all(isinstance(a, types.Integer) for a in (dst, src, lines)):
        return None
    sig = types.void(dst, src, lines)

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        i64 = ir.IntType(64)
        d, s, n = (
            context.cast(builder, a, t, types.int64)
            for a, t in zip(args, signature.args, strict=True)
        )
        vt = ir.VectorType(ir.IntType(8), _VECTOR)
        hint = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        steps = builder.mul(n, ir.Constant(i64, LINE // _VECTOR))
        with cgutils.for_range(builder, steps) as loop:
            off = builder.mul(loop.index, ir.Constant(i64, _VECTOR))
            v = builder.load(builder.inttoptr(builder.add(s, off), vt.as_pointer()), align=1)
            st = builder.store(
                v, builder.inttoptr(builder.add(d, off), vt.as_pointer()), align=_VECTOR
            )
            st.set_metadata("nontemporal", hint)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _fence(typingctx: Any) -> Any:  # pragma: no cover
    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        if _X86:
            # LLVM lowers a fence to a locked instruction, which x86 manuals do not
            # all promise orders streamed stores; SFENCE is the one they do.
            fn = builder.module.declare_intrinsic(
                "llvm.x86.sse.sfence", fnty=ir.FunctionType(ir.VoidType(), [])
            )
            builder.call(fn, [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


# The intrinsics typed loosely for mypy: Numba checks their arguments when it compiles a caller.
_lines: Any = _stream_lines
_fence_any: Any = _fence


@numba.njit(nogil=True, cache=True, inline="always")
def store_fence() -> None:  # pragma: no cover - compiled
    """Make every earlier streamed store visible before any later store of this thread."""
    _fence_any()


@numba.njit(nogil=True, cache=True, inline="always")
def copy_row(dst: int, src: int, nbytes: int, stream: bool) -> bool:  # pragma: no cover
    """Copy ``nbytes`` from ``src`` to ``dst``: with ``stream``, past the caches where it can.

    Returns whether the row was streamed (then :func:`store_fence` must follow).

    Only a row of whole lines (``dst`` and ``nbytes`` multiples of :data:`LINE`)
    is streamed; any other row is copied with ``memcpy``. A line that two
    copies share (a crop's row cut across two chunks) would otherwise be
    stored to in cache by one and past it by the other, which measured slower
    than ``memcpy`` alone for batches of random crops.
    """
    if stream and ((dst | nbytes) & (LINE - 1)) == 0:
        _lines(dst, src, nbytes // LINE)
        return True
    _memcpy(dst, src, nbytes)
    return False
