"""The simulator's entry convergence agrees with real in-process clusters on
loopback (same parameters, same workload, measured the same way) within 25%
at p50 (benches/sim_agreement.py prints the comparison for 10, 20, 30 nodes)."""

from __future__ import annotations

import pytest

from pyln.sim.realcheck import Workload, compare


@pytest.mark.parametrize("n", [10, 30])
def test_sim_agrees_with_a_real_cluster(n: int) -> None:
    r = compare(Workload(nodes=n, writes=60, rate=6.0, seed=n))
    assert r["sim_writes_converged"] == r["real_writes_converged"] == 60
    assert abs(r["p50_diff"]) <= 0.25, r
