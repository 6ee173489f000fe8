"""Level 5: copying arrays into new layouts (:func:`rechunk`, :func:`convert`)."""

from lsio.rechunking._rechunk import convert, parse_size, rechunk

__all__ = ["convert", "parse_size", "rechunk"]
