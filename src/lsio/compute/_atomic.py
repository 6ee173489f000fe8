"""An atomic fetch-and-add for compiled code, so threads can share one work counter."""

from __future__ import annotations

from typing import Any

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["fetch_add"]


@intrinsic
def fetch_add(typingctx: Any, array: Any, index: Any, value: Any) -> Any:  # pragma: no cover
    """``array[index] += value`` atomically (sequentially consistent); returns the old value.

    For 1-d C-contiguous ``int64`` arrays, from compiled code only: several
    threads running compiled loops without the GIL take work items by calling
    it on one shared counter, each getting a distinct number.
    """
    if not (
        isinstance(array, types.Array)
        and array.dtype == types.int64
        and isinstance(index, types.Integer)
        and isinstance(value, types.Integer)
    ):
        return None
    sig = types.int64(array, index, value)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        array_type = signature.args[0]
        arr, i, v = args
        view = context.make_array(array_type)(context, builder, arr)
        ptr = cgutils.get_item_pointer(  # type: ignore[no-untyped-call]
            context, builder, array_type, view, [i]
        )
        v = context.cast(builder, v, signature.args[2], types.int64)
        return builder.atomic_rmw("add", ptr, v, "seq_cst")

    return sig, codegen
