"""An xarray backend: ``xr.open_dataset(path, engine="lsio")``.

Opens a Zarr group (v2 or v3, sharded or not, local or on an object store)
as an :class:`xarray.Dataset` whose variables read through lsio when their
values are asked for: nothing but metadata is read at open. xarray's own CF
decoding (scale and offset, masks, times) runs on top, through the same path
as its ``zarr`` engine, with the same reading of fill values, dimension names
and attributes: the tests compare the two engines' datasets.

Differences from the ``zarr`` engine, on purpose:

- It is used only when asked for (``engine="lsio"``): it never claims a path
  xarray guesses an engine for, so installing lsio changes nothing else.
- ``chunks={}`` chunks a sharded array by its shards, not by its inner
  chunks: lsio reads a shard's chunks in one call, where a Dask task per inner
  chunk (often under 100 KB) costs more in scheduling than in reading.
- An array of one or more dimensions that names none is an error naming the
  array (the ``zarr`` engine raises a ``KeyError``); pass ``drop_variables``
  to leave it out.

Only this module imports xarray; it is loaded through the ``xarray.backends``
entry point, or by :func:`open_dataset`.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr
from xarray.backends import AbstractDataStore, BackendArray, BackendEntrypoint
from xarray.backends.store import StoreBackendEntrypoint
from xarray.core import indexing

from lsio._errors import InvalidArgumentError, MetadataError, UnsupportedError
from lsio.io import ObjectStore, path_from_url
from lsio.plan import ReadConfig
from lsio.zarr import Array, Group, reopen_array, reopen_node
from lsio.zarr import open as open_node

__all__ = ["LsioBackendEntrypoint", "open_dataset"]

_V2_DIMS = "_ARRAY_DIMENSIONS"


class LsioBackendArray(BackendArray):
    """An array as xarray indexes it lazily: ints, slices and 1-d integer arrays per dimension.

    Vectorised (pointwise) selections are split by xarray into such an outer
    selection, read here, and a NumPy selection of the result. ``array`` is
    an lsio array, or a zarr-python one for data types lsio does not read.
    """

    def __init__(self, array: Any) -> None:
        self._array: Any = array
        # Dask's distributed workers get a pickled copy: an lsio array travels
        # as where it is and is opened again on its first read there.
        self._recipe = (
            (array.store_url, array.path, array.context.config)
            if isinstance(array, Array)
            else None
        )
        self.shape = tuple(array.shape)
        dtype = array.dtype
        self.dtype = dtype if isinstance(dtype, np.dtype) else dtype.to_native_dtype()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._recipe is not None:
            state["_array"] = None
        return state

    @property
    def array(self) -> Any:
        """The array read (lsio's, or zarr-python's)."""
        if self._array is None:
            assert self._recipe is not None
            self._array = reopen_array(*self._recipe)
        return self._array

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(  # type: ignore[no-any-return]
            key, self.shape, indexing.IndexingSupport.OUTER, self._read
        )

    def _read(self, key: tuple[Any, ...]) -> np.ndarray:
        if any(isinstance(k, np.ndarray) for k in key):
            return np.asarray(self.array.oindex[key])
        return np.asarray(self.array[key])


@dataclass(frozen=True)
class _Source:
    """What a variable is made of, from lsio's metadata or zarr-python's."""

    array: Any
    attrs: dict[str, Any]
    dims: tuple[str | None, ...] | None
    chunks: tuple[int, ...]
    shards: tuple[int, ...] | None
    fill_value: Any


class LsioDataStore(AbstractDataStore):
    """The arrays of one Zarr group, as xarray variables with lazily read data.

    Arrays of data types lsio does not read (strings: labels of a coordinate,
    say) are read with zarr-python (the ``xarray`` extra installs it), from
    local files or through the object store's own connection.

    Args:
        group: The group opened with lsio.
        drop: Names of arrays to leave out (their metadata is still listed).
    """

    def __init__(self, group: Group, drop: Iterable[str] = ()) -> None:
        self.group = group
        self.drop = set(drop)

    def __getstate__(self) -> dict[str, Any]:
        # A Dataset keeps its store (to close it): a pickled one travels as
        # where the group is, and opens it again on arrival.
        g = self.group
        return {"where": (g.store_url, g.path, g.context.config), "drop": self.drop}

    def __setstate__(self, state: dict[str, Any]) -> None:
        node = reopen_node(*state["where"])
        assert isinstance(node, Group)
        self.group = node
        self.drop = state["drop"]

    def get_variables(self) -> dict[str, xr.Variable]:
        """One variable per array of the group (subgroups are left out), by name."""
        readable, unsupported = self.group.readable_members()
        sources: dict[str, _Source] = {}
        for name, node in readable:
            if isinstance(node, Array) and name not in self.drop:
                fill = None if node.metadata.fill_null else node.fill_value
                sources[name] = _Source(
                    node, dict(node.attrs), node.dims, node.chunks, node.shards, fill
                )
        for name, error in unsupported.items():
            if name not in self.drop:
                sources[name] = _zarr_source(self.group, name, error)
        return {name: self._variable(name, sources[name]) for name in sorted(sources)}

    def get_attrs(self) -> dict[str, Any]:
        """The group's attributes (NCZarr's own, ``_nc*``, left out as the zarr engine does)."""
        return {k: v for k, v in self.group.attrs.items() if not k.lower().startswith("_nc")}

    def get_dimensions(self) -> dict[str, int]:
        """Dimension lengths, from the arrays' shapes."""
        dims: dict[str, int] = {}
        for var in self.get_variables().values():
            dims.update(zip(var.dims, var.shape, strict=True))  # type: ignore[arg-type]
        return dims

    def close(self) -> None:
        """Stop the group's worker threads (they start again if the data is read later)."""
        self.group.context.close()

    def _variable(self, name: str, src: _Source) -> xr.Variable:
        group = self.group
        attrs = src.attrs
        dims = src.dims
        ndim = len(src.array.shape)
        if dims is None and ndim == 0:
            dims = ()  # xarray writes v3 scalars without dimension_names
        if dims is None or len(dims) != ndim or not all(dims):
            raise MetadataError(
                f"array {name!r} names no dimensions (v3 dimension_names, or v2 attribute "
                f"{_V2_DIMS}); xarray needs them: pass drop_variables=[{name!r}] to open the rest",
                document=group.store_url,
            )
        if group.zarr_format == 2:
            attrs.pop(_V2_DIMS, None)
        encoding: dict[str, Any] = {
            "chunks": src.chunks,
            "shards": src.shards,
            "preferred_chunks": dict(zip(dims, src.shards or src.chunks, strict=True)),
        }
        backend = LsioBackendArray(src.array)
        if group.zarr_format == 2:
            # v2's fill value stands for missing values (the CF _FillValue), as
            # xarray's zarr engine reads it (v3's does not).
            if src.fill_value is not None:
                attrs["_FillValue"] = src.fill_value
        else:
            encoding["fill_value"] = src.fill_value
            if "_FillValue" in attrs:
                attrs["_FillValue"] = _decode_fill(attrs["_FillValue"], backend.dtype, group)
        return xr.Variable(dims, indexing.LazilyIndexedArray(backend), attrs, encoding)


def _zarr_source(group: Group, name: str, error: UnsupportedError) -> _Source:
    """An array lsio does not read (``error`` says why), opened with zarr-python."""
    why = str(error)
    try:
        import zarr
    except ImportError:  # pragma: no cover - zarr comes with the xarray extra
        raise UnsupportedError(
            f"{why}; engine='lsio' reads such arrays with zarr-python (pip install "
            f"'lsio[xarray]'), or pass drop_variables=[{name!r}] to open the rest"
        ) from None
    path = f"{group.path}/{name}" if group.path else name
    store = group.context.store
    if isinstance(store, ObjectStore):
        # The same connection (credentials, endpoint) as lsio's reads.
        from zarr.storage import ObjectStore as ZarrObjectStore

        array = zarr.open_array(
            store=ZarrObjectStore(store.client(), read_only=True), path=path, mode="r"
        )
    else:
        try:
            local = path_from_url(group.store_url)
        except ValueError:
            raise UnsupportedError(
                f"{why}; engine='lsio' reads such arrays with zarr-python from local files and "
                f"object stores only: pass drop_variables=[{name!r}] to open the rest"
            ) from None
        array = zarr.open_array(store=str(local), path=path, mode="r")
    meta = array.metadata
    dims: Any = meta.dimension_names if meta.zarr_format == 3 else array.attrs.get(_V2_DIMS)
    shards = getattr(array, "shards", None)
    return _Source(
        array,
        dict(array.attrs),
        tuple(dims) if dims is not None else None,
        tuple(array.chunks),
        tuple(shards) if shards is not None else None,
        array.fill_value,
    )


def _decode_fill(value: Any, dtype: np.dtype[Any], group: Group) -> Any:
    """A ``_FillValue`` attribute of a v3 array as xarray writes it (floats in base64, complex as two)."""

    def number(text: str) -> float:
        return float(struct.unpack("<d", base64.standard_b64decode(text))[0])

    try:
        if dtype.kind == "f" and isinstance(value, str):
            return number(value)
        if dtype.kind == "c" and isinstance(value, list | tuple) and len(value) == 2:
            return complex(number(value[0]), number(value[1]))
        if dtype.kind == "b":
            return bool(value)
        if dtype.kind in "iu":
            return int(value)
    except (ValueError, TypeError, struct.error) as exc:
        raise MetadataError(
            f"_FillValue {value!r} does not decode as {dtype}: {exc}", document=group.store_url
        ) from exc
    return value


def open_dataset(
    path: str | os.PathLike[str],
    *,
    group: str | None = None,
    config: ReadConfig | None = None,
    **kwargs: Any,
) -> xr.Dataset:
    """``xr.open_dataset(path, engine="lsio", ...)``: a Zarr group as a lazily read Dataset.

    Args:
        path: The store (a local path or an object-store URL) or its group.
        group: Path of a group inside the store; ``None`` (default) for the root.
        config: lsio's read settings (worker threads, IO); default ``ReadConfig()``.
        **kwargs: :func:`xarray.open_dataset`'s own options: ``chunks`` (``{}``
            for Dask arrays chunked by the store's shards, or chunks),
            ``drop_variables`` and the CF decoding options (``mask_and_scale``,
            ``decode_times``, ...), all decoding on by default.

    Raises:
        NodeNotFoundError: Nothing is stored at ``path`` (or ``group``).
        InvalidArgumentError: ``path`` (or ``group``) is an array, not a group.
        MetadataError: An array names no dimensions.
        UnsupportedError: An array of a data type lsio does not read, when
            zarr-python cannot read it instead (not installed, or a store that
            is neither local files nor an object store).
    """
    return xr.open_dataset(path, engine="lsio", group=group, config=config, **kwargs)


class LsioBackendEntrypoint(BackendEntrypoint):
    """The ``lsio`` engine of :func:`xarray.open_dataset` (see :func:`open_dataset`)."""

    description = "Open Zarr v2/v3 stores (sharded or not) with lsio's parallel reads"
    open_dataset_parameters = (
        "filename_or_obj",
        "drop_variables",
        "mask_and_scale",
        "decode_times",
        "concat_characters",
        "decode_coords",
        "use_cftime",
        "decode_timedelta",
        "group",
        "config",
    )

    def open_dataset(
        self,
        filename_or_obj: Any,
        *,
        drop_variables: str | Iterable[str] | None = None,
        mask_and_scale: bool = True,
        decode_times: bool = True,
        concat_characters: bool = True,
        decode_coords: bool = True,
        use_cftime: bool | None = None,
        decode_timedelta: bool | None = None,
        group: str | None = None,
        config: ReadConfig | None = None,
    ) -> xr.Dataset:
        if not isinstance(filename_or_obj, str | os.PathLike):
            raise InvalidArgumentError(
                "engine='lsio' opens a path or URL of a Zarr store, got "
                f"{type(filename_or_obj).__name__}"
            )
        node = open_node(filename_or_obj, config=config)
        if group and isinstance(node, Group):
            node = node[group.strip("/")]
        if not isinstance(node, Group):
            raise InvalidArgumentError(
                f"{node.store_url} is an array; open_dataset opens the group holding it"
                + (f" (group={group!r} names an array)" if group else "")
            )
        drop = [drop_variables] if isinstance(drop_variables, str) else drop_variables or ()
        store = LsioDataStore(node, drop)
        return StoreBackendEntrypoint().open_dataset(
            store,
            mask_and_scale=mask_and_scale,
            decode_times=decode_times,
            concat_characters=concat_characters,
            decode_coords=decode_coords,
            drop_variables=drop_variables,
            use_cftime=use_cftime,
            decode_timedelta=decode_timedelta,
        )

    def guess_can_open(self, filename_or_obj: Any) -> bool:
        """Never: the engine is used only when named, ``engine="lsio"``.

        xarray asks the installed engines in alphabetical order; claiming Zarr
        paths would take them from its ``zarr`` engine (and refuse its options,
        ``consolidated=`` and the like) for everyone who installs lsio.
        """
        return False
