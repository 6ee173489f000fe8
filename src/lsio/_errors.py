"""The exceptions lsio raises.

Every exception derives from :class:`LsioError`; each leaf also derives from the
builtin that fits, so ``except FileNotFoundError`` or ``except IndexError`` work
as a caller would expect::

    LsioError
    ├── NodeNotFoundError        (FileNotFoundError)  no array or group at a path
    ├── MetadataError            (ValueError)         malformed or incomplete metadata
    ├── UnsupportedError         (ValueError)         a codec, dtype or feature lsio cannot read
    ├── ChunkError               (ValueError)         a stored chunk or shard is corrupt or truncated
    ├── ReadError                (OSError)            the storage failed to deliver a byte range
    ├── SelectionError           (IndexError)         a selection is out of bounds or malformed
    ├── InvalidArgumentError     (ValueError)         an argument is unusable (e.g. ``out`` of the wrong shape)
    └── NotReadyError            (RuntimeError)       a batch result asked for before the batch ran
"""

from __future__ import annotations

__all__ = [
    "ChunkError",
    "InvalidArgumentError",
    "LsioError",
    "MetadataError",
    "NodeNotFoundError",
    "NotReadyError",
    "ReadError",
    "SelectionError",
    "UnsupportedError",
]


class LsioError(Exception):
    """Root of all lsio errors."""


class NodeNotFoundError(LsioError, FileNotFoundError):
    """No Zarr array or group exists at the given location."""


class MetadataError(LsioError, ValueError):
    """Metadata is malformed, or misses a required field.

    The message names the metadata document and the offending field.
    """

    def __init__(self, message: str, *, document: str, field: str | None = None) -> None:
        where = f"{document}" if field is None else f"{document}, field {field!r}"
        super().__init__(f"{where}: {message}")
        self.document = document
        self.field = field


class UnsupportedError(LsioError, ValueError):
    """The data uses a codec, data type or feature that lsio does not support."""


class ChunkError(LsioError, ValueError):
    """A stored chunk, shard or shard index is corrupt, truncated or fails its checksum.

    The message names the storage key of the chunk.
    """

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(f"chunk {key!r}: {message}")
        self.key = key


class ReadError(LsioError, OSError):
    """Reading a byte range failed; the message names the key and the range."""

    def __init__(self, message: str, *, key: str, byte_range: str) -> None:
        super().__init__(f"reading {key!r} {byte_range}: {message}")
        self.key = key
        self.byte_range = byte_range


class WriteError(LsioError, OSError):
    """Writing or deleting an object failed; the message names the key."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(f"writing {key!r}: {message}")
        self.key = key


class NodeExistsError(LsioError, FileExistsError):
    """Creating a node where one exists, without ``overwrite=True``."""


class ReadOnlyError(LsioError, PermissionError):
    """A write to an array or store opened read-only."""


class SelectionError(LsioError, IndexError):
    """A selection is out of bounds or not a valid index for the array."""


class InvalidArgumentError(LsioError, ValueError):
    """An argument cannot be used, e.g. an ``out`` buffer of the wrong shape or dtype."""


class NotReadyError(LsioError, RuntimeError):
    """A result of a :class:`lsio.Batch` was asked for before the batch was submitted."""
