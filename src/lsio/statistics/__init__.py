"""Level 5: out-of-core summary statistics (:func:`stats`)."""

from lsio.statistics._stats import Histogram, Stats, stats

__all__ = ["Histogram", "Stats", "stats"]
