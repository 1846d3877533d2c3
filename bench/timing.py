"""Timing two ways of doing the same work fairly on a noisy machine: they take turns (each repeat
runs both, the order alternating, so neither gains from going second), and the ratio reported is
the median of the side-by-side ratios (two runs next to each other share the machine's state)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def take_turns(runs: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, list[float]], dict[str, object]]:
    """Seconds of each run per repeat, after one warm-up each, and each run's last result."""
    results = {name: run() for name, run in runs.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(repeats):
        for name in (list(runs) if repeat % 2 == 0 else list(runs)[::-1]):
            start = time.perf_counter()
            results[name] = runs[name]()
            times[name].append(time.perf_counter() - start)
    return times, results


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median over repeats of numerator[i] / denominator[i]."""
    return statistics.median(a / b for a, b in zip(numerator, denominator))
