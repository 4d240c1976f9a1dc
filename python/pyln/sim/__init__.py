"""pyln's capacity-planning simulator: thousands of networkdb nodes in one
process, each running the real protocol machine (memberlist + networkdb, the
same Rust code a real node runs), on a virtual clock and a virtual network.

`run(params)` runs one simulation and returns its report (a dict); `pyln sim`
is the command line over it (see `pyln.sim.cli`)."""

from __future__ import annotations

from pyln.sim.params import PARAMS, load_scenario_file
from pyln.sim.runner import Progress, run

__all__ = ["PARAMS", "Progress", "load_scenario_file", "run"]
