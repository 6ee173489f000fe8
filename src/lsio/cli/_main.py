"""Entry point of the ``lsio`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from lsio._errors import LsioError
from lsio.cli._demo import run_demo
from lsio.cli._info import describe, info_json, render_tree
from lsio.cli._stats import run_stats
from lsio.rechunking import rechunk
from lsio.zarr import Array, open

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsio", description="Fast Zarr v2/v3 reading and statistics."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="print the tree of groups and arrays of a store")
    info.add_argument("path", help="store, group or array (local path or file:// URL)")
    info.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    st = sub.add_parser("stats", help="min, max, mean, std, counts (and histograms) of an array")
    st.add_argument("path", help="the array (local path or file:// URL)")
    st.add_argument(
        "--dims", help="comma-separated dimensions to reduce over (default: all), e.g. time,y,x"
    )
    st.add_argument("--hist", type=int, metavar="BINS", help="also a histogram with BINS bins")
    st.add_argument("--region", help="a sub-region, e.g. time=0:100,y=0:512")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for name, text in (
        ("rechunk", "copy an array with new chunks, shards or codec, out of core and resumably"),
        ("convert", "copy an array to another Zarr format (e.g. v2 -> v3), same chunks"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("src", help="the source array")
        cmd.add_argument("dst", help="where to write the copy")
        if name == "rechunk":
            cmd.add_argument(
                "--chunks", help="chunk shape, e.g. 1,11,64,64 (default: the source's)"
            )
        cmd.add_argument("--shards", help="shard shape, e.g. 4,11,256,256 (default: unsharded)")
        cmd.add_argument(
            "--codec",
            default="zstd:3",
            help="zstd[:LEVEL], blosc[:LEVEL], blosc-lz4[:LEVEL], gzip[:LEVEL] or none",
        )
        cmd.add_argument(
            "--zarr-format", type=int, choices=(2, 3), default=3 if name == "convert" else None
        )
        cmd.add_argument("--max-mem", default="1GB", help="memory budget (default 1GB)")
        cmd.add_argument("--overwrite", action="store_true", help="replace what is at DST")
    demo = sub.add_parser("demo", help="generate a sample dataset, describe it and read it back")
    demo.add_argument(
        "--path", help="where to write the sample (default: a temporary directory, removed)"
    )
    demo.add_argument(
        "--threads", type=_positive, default=None, help="worker threads (default: all cores)"
    )
    demo.add_argument(
        "--timesteps", type=int, default=32, help="timesteps of the sample (default: 32)"
    )
    return parser


def _positive(text: str) -> int:
    """An argument that must be an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _ints(text: str | None, flag: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise LsioError(f"{flag} must be comma-separated integers, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 lsio error, 2 usage)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "info":
            node = open(args.path)
            print(info_json(node) if args.json else render_tree(describe(node), args.path))
        elif args.command == "stats":
            node = open(args.path)
            if not isinstance(node, Array):
                raise LsioError(f"{args.path} is a group; lsio stats needs an array")
            run_stats(node, args.dims, args.hist, args.region, args.json, sys.stdout)
        elif args.command in ("rechunk", "convert"):
            out = rechunk(
                args.src,
                args.dst,
                chunks=_ints(getattr(args, "chunks", None), "--chunks"),
                shards=_ints(args.shards, "--shards"),
                compressor=None if args.codec == "none" else args.codec,
                zarr_format=args.zarr_format,
                max_mem=args.max_mem,
                progress=True,
                overwrite=args.overwrite,
            )
            print(render_tree(describe(out), args.dst))
        elif args.command == "demo":
            if args.timesteps < 4:
                raise LsioError(
                    "--timesteps must be at least 4 (the demo's crops span 4 timesteps)"
                )
            run_demo(args.path, args.threads, args.timesteps, sys.stdout)
    except BrokenPipeError:
        # The reader of the output went away (e.g. `| head`): stop quietly, and
        # keep Python from reporting the pipe again when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (LsioError, OSError) as exc:
        # The library's messages name its keyword arguments; say the flag here.
        # OSError: a path the command cannot create or write (--path, DST).
        message = str(exc).replace("pass overwrite=True", "pass --overwrite")
        print(f"lsio {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
