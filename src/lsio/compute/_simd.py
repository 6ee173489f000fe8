"""Explicit vector code for the reductions LLVM's loop vectorizer widens badly.

Compiled from a plain loop, the minimum, maximum, sum and sum of squares of
16-bit integers run on 64-bit lanes (the accumulators' width), four values per
256-bit register: ~8 GB/s per core here, a tenth of the time zstd takes to
decode the same bytes. :func:`vector_moments` writes the loop with LLVM vector
types instead: minimum and maximum on the values' own lanes, sums on 32-bit
lanes, squares summed in pairs on 32-bit lanes (both fit unsigned) before they
widen to 64 bits: ~22 GB/s per core (``BENCHMARKS.md``). Generic LLVM vector
operations, not one instruction set's intrinsics, so LLVM lowers them for
whatever the machine has (SSE2, AVX2, AVX-512, NEON).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["LANES", "MAX_VECTORS", "vector_float_sums", "vector_moments"]

LANES = 16
"""Values per vector step (16 measured fastest here; 32 ran ~10% slower)."""

MAX_VECTORS = 1 << 15
"""Most vectors per call: each 32-bit sum lane adds at most this many values of
at most 2**16, so it cannot overflow."""


def _alloca(builder: ir.IRBuilder, value: ir.Value) -> ir.Value:
    return cgutils.alloca_once_value(builder, value)  # type: ignore[no-untyped-call]


def _vectors(
    context: Any, builder: ir.IRBuilder, signature: Any, args: Any, vt: ir.VectorType
) -> tuple[ir.Value, ir.Value]:
    """A ``(row, start, count)`` call's first vector (a ``vt`` pointer) and its vector count."""
    arr = context.make_array(signature.args[0])(context, builder, args[0])
    first = context.cast(builder, args[1], signature.args[1], types.int64)
    steps = context.cast(builder, args[2], signature.args[2], types.int64)
    return builder.bitcast(builder.gep(arr.data, [first]), vt.as_pointer()), steps


def _row_args(row: Any, start: Any, count: Any) -> bool:
    """Whether the arguments are a 1-d C-contiguous array and two integers."""
    return (
        isinstance(row, types.Array)
        and row.ndim == 1
        and row.layout == "C"
        and isinstance(start, types.Integer)
        and isinstance(count, types.Integer)
    )


def _splat(vt: ir.VectorType, value: float) -> ir.Constant:
    return ir.Constant(vt, [ir.Constant(vt.element, value)] * vt.count)


def _fold(
    builder: ir.IRBuilder,
    vec: ir.Value,
    lanes: int,
    convert: Callable[[ir.Value], ir.Value],
    combine: Callable[[ir.Value, ir.Value], ir.Value],
) -> ir.Value:
    """The first ``lanes`` lanes of ``vec``, each converted, folded left by ``combine``."""
    acc = convert(builder.extract_element(vec, ir.Constant(ir.IntType(32), 0)))
    for j in range(1, lanes):
        acc = combine(acc, convert(builder.extract_element(vec, ir.Constant(ir.IntType(32), j))))
    return acc


def _smaller(builder: ir.IRBuilder, less: Callable[..., ir.Value]) -> Callable[..., ir.Value]:
    """``combine`` for :func:`_fold` keeping the lesser by ``less(op, a, b)``."""
    return lambda a, b: builder.select(less("<", b, a), b, a)


def _larger(builder: ir.IRBuilder, less: Callable[..., ir.Value]) -> Callable[..., ir.Value]:
    """``combine`` for :func:`_fold` keeping the greater by ``less(op, a, b)``."""
    return lambda a, b: builder.select(less(">", b, a), b, a)


@intrinsic
def _vector_moments(typingctx: Any, row: Any, start: Any, count: Any) -> Any:  # pragma: no cover
    """``(min, max, sum, sum of squares)`` (int64) of ``count`` vectors of :data:`LANES` values.

    The values are ``row[start : start + count * LANES]`` of a 1-d C-contiguous
    array of 8- or 16-bit integers; ``count`` at most :data:`MAX_VECTORS` (not
    checked: the caller cuts longer rows). With ``count == 0`` the minimum and
    maximum are the dtype's largest and smallest values (identities of the
    merge). From compiled code only.
    """
    if not (
        _row_args(row, start, count)
        and isinstance(row.dtype, types.Integer)
        and row.dtype.bitwidth in (8, 16)  # type: ignore[attr-defined]
    ):
        return None
    dtype: Any = row.dtype
    bits: int = dtype.bitwidth
    signed: bool = dtype.signed
    # Two squares of a signed 16-bit value or of any 8-bit value sum below 2**32;
    # two squares of uint16 may not, so those widen one by one.
    paired = signed or bits == 8
    sig = types.UniTuple(types.int64, 4)(row, start, count)  # type: ignore[no-untyped-call]

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vt = ir.VectorType(ir.IntType(bits), LANES)
        base, steps = _vectors(context, builder, signature, args, vt)
        v32 = ir.VectorType(i32, LANES)
        sq_lanes = LANES // 2 if paired else LANES
        v64 = ir.VectorType(i64, sq_lanes)
        lowest = -(1 << (bits - 1)) if signed else 0
        highest = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
        vmin = _alloca(builder, _splat(vt, highest))
        vmax = _alloca(builder, _splat(vt, lowest))
        vsum = _alloca(builder, _splat(v32, 0))
        vsq = _alloca(builder, _splat(v64, 0))
        compare = builder.icmp_signed if signed else builder.icmp_unsigned
        widen = builder.sext if signed else builder.zext
        even = ir.Constant(ir.VectorType(i32, LANES // 2), list(range(0, LANES, 2)))
        odd = ir.Constant(ir.VectorType(i32, LANES // 2), list(range(1, LANES, 2)))
        with cgutils.for_range(builder, steps) as loop:
            v = builder.load(builder.gep(base, [loop.index]), align=bits // 8)
            lo = builder.load(vmin)
            builder.store(builder.select(compare("<", v, lo), v, lo), vmin)
            hi = builder.load(vmax)
            builder.store(builder.select(compare(">", v, hi), v, hi), vmax)
            w = widen(v, v32)
            builder.store(builder.add(builder.load(vsum), w), vsum)
            # Wrapping 32-bit arithmetic: the square (pair) is exact read as unsigned.
            sq = builder.mul(w, w)
            if paired:
                sq = builder.add(
                    builder.shuffle_vector(sq, sq, even), builder.shuffle_vector(sq, sq, odd)
                )
            builder.store(builder.add(builder.load(vsq), builder.zext(sq, v64)), vsq)
        lo, hi, sums, squares = (builder.load(p) for p in (vmin, vmax, vsum, vsq))

        def to_i64(x: ir.Value) -> ir.Value:
            return widen(x, i64)

        mn = _fold(builder, lo, LANES, to_i64, _smaller(builder, builder.icmp_signed))
        mx = _fold(builder, hi, LANES, to_i64, _larger(builder, builder.icmp_signed))
        total = _fold(builder, sums, LANES, lambda x: builder.sext(x, i64), builder.add)
        sumsq = _fold(builder, squares, sq_lanes, lambda x: x, builder.add)
        return context.make_tuple(builder, signature.return_type, [mn, mx, total, sumsq])

    return sig, codegen


@intrinsic
def _vector_float_sums(typingctx: Any, row: Any, start: Any, count: Any) -> Any:  # pragma: no cover
    """``(count, sum, min, max)`` of the values that are not NaN among ``count`` vectors.

    The values are ``row[start : start + count * LANES]`` of a 1-d C-contiguous
    float32 or float64 array; ``count`` at most :data:`MAX_VECTORS`. The count
    is an int64, the others float64: the sum accumulated in float64 lanes (so
    in another order than a sequential sum), the minimum and maximum ``inf``
    and ``-inf`` when every value is NaN. From compiled code only.
    """
    if not (_row_args(row, start, count) and row.dtype in (types.float32, types.float64)):
        return None
    sig = types.Tuple((types.int64, types.float64, types.float64, types.float64))(  # type: ignore[no-untyped-call]
        row, start, count
    )
    single = row.dtype == types.float32

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        i32, f64 = ir.IntType(32), ir.DoubleType()
        vt = ir.VectorType(ir.FloatType() if single else f64, LANES)
        v64 = ir.VectorType(f64, LANES)
        v32 = ir.VectorType(i32, LANES)
        base, steps = _vectors(context, builder, signature, args, vt)
        zero = _splat(v64, 0.0)
        vn = _alloca(builder, _splat(v32, 0))
        vs = _alloca(builder, zero)
        vmin = _alloca(builder, _splat(vt, float("inf")))
        vmax = _alloca(builder, _splat(vt, float("-inf")))
        with cgutils.for_range(builder, steps) as loop:
            v = builder.load(builder.gep(base, [loop.index]), align=4 if single else 8)
            ok = builder.fcmp_ordered("ord", v, v)  # not NaN
            builder.store(builder.add(builder.load(vn), builder.zext(ok, v32)), vn)
            wide = builder.fpext(v, v64) if single else v
            builder.store(builder.fadd(builder.load(vs), builder.select(ok, wide, zero)), vs)
            # NaN replaced by the identity, the comparisons see no NaN.
            lo = builder.load(vmin)
            w = builder.select(ok, v, lo)
            builder.store(builder.select(builder.fcmp_ordered("<", w, lo), w, lo), vmin)
            hi = builder.load(vmax)
            w = builder.select(ok, v, hi)
            builder.store(builder.select(builder.fcmp_ordered(">", w, hi), w, hi), vmax)
        n, total, lo, hi = (builder.load(p) for p in (vn, vs, vmin, vmax))
        to_f64 = (lambda x: builder.fpext(x, f64)) if single else (lambda x: x)
        count_ = _fold(builder, n, LANES, lambda x: builder.zext(x, ir.IntType(64)), builder.add)
        acc = _fold(builder, total, LANES, lambda x: x, builder.fadd)
        mn = _fold(builder, lo, LANES, to_f64, _smaller(builder, builder.fcmp_ordered))
        mx = _fold(builder, hi, LANES, to_f64, _larger(builder, builder.fcmp_ordered))
        return context.make_tuple(builder, signature.return_type, [count_, acc, mn, mx])

    return sig, codegen


vector_moments: Any = _vector_moments
"""The intrinsic, typed loosely for mypy: Numba checks its arguments when it compiles a caller."""

vector_float_sums: Any = _vector_float_sums
"""The float intrinsic, typed loosely for mypy like :data:`vector_moments`."""
