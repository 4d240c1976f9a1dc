"""Runs one simulation with a progress callback and adds the wall time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pyln import _core
from pyln.sim.params import Value

# progress(fraction done, virtual seconds, events so far, wall seconds)
Progress = Callable[[float, float, int, float], None]


def run(
    params: dict[str, Value], progress: Progress | None = None, step: float = 1.0
) -> dict[str, Any]:
    """Builds the cluster, runs it, checks it; returns the report (a dict).

    `wall_s` is the only field that differs between two runs with the same
    parameters."""
    t0 = time.monotonic()
    sim = _core.Simulation(dict(params))
    if progress is not None:
        progress(0.0, 0.0, sim.events(), time.monotonic() - t0)
    while not sim.done():
        sim.advance(step)
        if progress is not None:
            progress(sim.progress(), sim.now(), sim.events(), time.monotonic() - t0)
    report = sim.report()
    wall = time.monotonic() - t0
    report["wall_s"] = round(wall, 3)
    report["events_per_s"] = round(report["events"] / wall, 1) if wall > 0 else 0.0
    report["params"] = dict(sorted(params.items()))
    return report
