"""Level 2, compute: codecs that decode into caller buffers, and a batch executor."""

from lsio.compute._affine import affine_into
from lsio.compute._atomic import fetch_add
from lsio.compute._cdecode import CDecoder, c_decoder, decoded_at
from lsio.compute._codecs import (
    ArrayArrayCodec,
    ArrayBytesCodec,
    BytesBytesCodec,
    BytesCodec,
    CodecPipeline,
    Crc32cCodec,
    DecodeError,
    NumcodecsCodec,
    TransposeCodec,
    check_order,
    numcodecs_codec,
)
from lsio.compute._encode import GridCompression, GridEncoder, load_grid_encoder
from lsio.compute._executor import run_all
from lsio.compute._histogram import histogram_block
from lsio.compute._kernels import as_akb
from lsio.compute._moments import SMALL_INT, Moments, fill_moments, moments_kind, reduce_block
from lsio.compute._running import RunningMoments, has_running_moments, running_moments
from lsio.compute._scatter import (
    SEGMENT_COLUMNS,
    ScatterKernel,
    ScatterTables,
    copy_interleaved,
    groupable,
    load_scatter_kernel,
    plan_pieces_compiled,
    scatter_chunk,
)
from lsio.compute._scratch import OutputPool, ScratchPool
from lsio.compute._zstd import RawDecoder, zstd_content_size

__all__ = [
    "ArrayArrayCodec",
    "ArrayBytesCodec",
    "BytesBytesCodec",
    "BytesCodec",
    "CDecoder",
    "CodecPipeline",
    "Crc32cCodec",
    "DecodeError",
    "GridCompression",
    "GridEncoder",
    "Moments",
    "NumcodecsCodec",
    "OutputPool",
    "RawDecoder",
    "ScatterKernel",
    "RunningMoments",
    "SMALL_INT",
    "ScatterTables",
    "ScratchPool",
    "TransposeCodec",
    "affine_into",
    "as_akb",
    "c_decoder",
    "copy_interleaved",
    "decoded_at",
    "fetch_add",
    "check_order",
    "fill_moments",
    "groupable",
    "has_running_moments",
    "histogram_block",
    "load_grid_encoder",
    "load_scatter_kernel",
    "scatter_chunk",
    "moments_kind",
    "numcodecs_codec",
    "SEGMENT_COLUMNS",
    "plan_pieces_compiled",
    "reduce_block",
    "running_moments",
    "run_all",
    "zstd_content_size",
]
