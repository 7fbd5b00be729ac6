"""Summaries for side-by-side benchmarks: median of runs with min-max."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summary(values: Sequence[float], unit: str = '', digits: int = 1) -> str:
    """'median (min–max)' of ``values``."""
    med = statistics.median(values)
    return f'{med:.{digits}f}{unit} ({min(values):.{digits}f}–{max(values):.{digits}f})'


def ratios(baseline: Sequence[float], ours: Sequence[float]) -> list[float]:
    """Per-run speed-up of ours over the baseline (baseline time / our time)."""
    return [b / o for b, o in zip(baseline, ours, strict=True)]
