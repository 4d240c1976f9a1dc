"""pyln sim: the command line, the report, determinism, the scenarios and
their correctness checks (small clusters, short virtual runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyln import errors
from pyln.cli import main as pyln_main
from pyln.sim import load_scenario_file, run
from pyln.sim.cli import parse_sweep

PINNED = (
    "entry_convergence_ms",
    "membership_convergence_ms",
    "bytes_per_node_per_s",
    "msgs_per_node_per_s",
    "false_failures",
    "converged",
    "wall_s",
)


def test_pinned_command_line_writes_the_report_and_plots(tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    rc = pyln_main(
        [
            "sim",
            "--nodes",
            "20",
            "--duration",
            "30",
            "--seed",
            "3",
            "--loss",
            "0.01",
            "--report",
            str(out),
            "--plot",
            str(tmp_path / "plots"),
            "--writes",
            "50",
        ]
    )
    assert rc == 0
    r = json.loads(out.read_text())
    for k in PINNED:
        assert k in r, k
    assert set(r["entry_convergence_ms"]) >= {"p50", "p99", "max"}
    assert r["converged"] is True
    assert r["nodes"] == 20 and r["seed"] == 3 and r["loss"] == 0.01
    assert (
        0
        < r["entry_convergence_ms"]["p50"]
        <= r["entry_convergence_ms"]["p99"]
        <= r["entry_convergence_ms"]["max"]
    )
    assert r["bytes_per_node_per_s"] > 0 and r["msgs_per_node_per_s"] > 0
    assert r["writes"] == r["writes_converged"] == 50
    for png in ("seen.png", "traffic.png"):
        data = (tmp_path / "plots" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    table = capsys.readouterr().out
    assert "entry convergence p50 / p99 / max" in table and "converged" in table


def without_wall_figures(r: dict[str, Any]) -> dict[str, Any]:
    """The report without what depends on the machine (time, memory)."""
    machine = {
        "wall_s", "events_per_s", "setup_wall_s", "run_wall_s", "rss_bytes",
        "memory_per_node_bytes", "threads",
    }  # fmt: skip
    return {k: v for k, v in r.items() if k not in machine}


def test_same_seed_same_report_except_wall_time() -> None:
    p = {"nodes": 15, "duration": 20.0, "seed": 7, "loss": 0.02, "writes": 40}
    a, b = without_wall_figures(run(p)), without_wall_figures(run(p))
    assert a == b
    c = run({**p, "seed": 8})
    assert c["entry_convergence_ms"] != a["entry_convergence_ms"]


def test_same_seed_same_report_with_faults() -> None:
    # Suspicions expiring together, refutations, rejoins: their order must
    # not depend on hash-map iteration.
    p = {
        "nodes": 30,
        "duration": 60.0,
        "seed": 9,
        "loss": 0.05,
        "writes": 60,
        "scenario": "split-brain",
        "probe_interval": 0.3,
    }
    a, b = without_wall_figures(run(p)), without_wall_figures(run(p))
    assert a == b


def test_threads_change_the_wall_time_only(tmp_path: Path) -> None:
    # The nodes split over threads (--threads) run the very same simulation:
    # a faulty scenario with loss, on 1, 2 and 3 threads, gives one report.
    reports = []
    for threads in ("1", "2", "3"):
        out = tmp_path / f"r{threads}.json"
        args = ["sim", "--nodes", "40", "--duration", "20", "--seed", "5", "--loss", "0.02"]
        args += ["--scenario", "rolling-restart", "--writes", "40", "--threads", threads]
        assert pyln_main([*args, "--report", str(out), "--quiet"]) == 0
        full = json.loads(out.read_text())
        assert full["threads"] == int(threads)
        r = without_wall_figures(full)
        assert r["params"].pop("threads") == int(threads)
        reports.append(r)
    assert reports[0]["writes"] >= 40  # and the keys restarted nodes re-create
    assert reports[0] == reports[1] == reports[2]
    assert pyln_main(["sim", "--nodes", "10", "--threads", "-1", "--quiet"]) == 2


def test_loss_slows_convergence_and_protocol_flags_matter() -> None:
    base = {"nodes": 30, "duration": 30.0, "writes": 60, "seed": 2}
    clean = run(base)
    lossy = run({**base, "loss": 0.3})
    assert lossy["entry_convergence_ms"]["p50"] > clean["entry_convergence_ms"]["p50"]
    slow = run({**base, "gossip_interval": 1.0})
    assert slow["entry_convergence_ms"]["p50"] > 2 * clean["entry_convergence_ms"]["p50"]
    assert slow["bytes_per_node_per_s"] < clean["bytes_per_node_per_s"]


@pytest.mark.parametrize(
    ("scenario", "extra"),
    [
        ("seed", {"probe_interval": 0.2, "suspicion_mult": 2}),
        ("split-brain", {}),
        ("asymmetric", {}),
        ("rolling-restart", {"push_pull_interval": 5.0}),
        ("mass-churn", {}),
    ],
)
def test_scenarios_recover_and_pass_their_checks(scenario: str, extra: dict) -> None:
    r = run({"nodes": 16, "duration": 90.0, "writes": 80, "seed": 5, "scenario": scenario, **extra})
    assert r["scenario"] == scenario
    assert r["tables_converged"], r["mismatched_nodes"]
    assert r["resurrections"] == 0
    assert r["healthy_dead_violations"] == 0
    assert r["membership_converged"]
    assert r["converged"]
    kinds = {e["kind"] for e in r["membership_events"]}
    want = {
        "seed": {"heal"},
        "split-brain": {"heal"},
        "asymmetric": {"heal"},
        "rolling-restart": {"leave", "restart"},
        "mass-churn": {"crash", "restart"},
    }[scenario]
    assert kinds == want
    assert all(e["converged_ms"] is not None for e in r["membership_events"])
    if scenario == "mass-churn":
        assert r["failure_detection_ms"] > 0


def test_seed_scenario_node_rejoins_by_itself() -> None:
    # The isolated node comes to believe every member dead, then, with
    # nobody calling join, is back in the cluster after the heal.
    r = run(
        {
            "nodes": 10,
            "duration": 80.0,
            "writes": 20,
            "seed": 4,
            "scenario": "seed",
            "probe_interval": 0.2,
            "suspicion_mult": 2,
        }
    )
    assert r["seed_saw_all_dead"] is True
    heal = next(e for e in r["membership_events"] if e["kind"] == "heal")
    assert heal["converged_ms"] is not None and heal["converged_ms"] < 20_000
    assert r["converged"]


def test_bandwidth_limit_queues_bursts() -> None:
    base = {"nodes": 20, "duration": 30.0, "writes": 60, "seed": 2}
    fast = run(base)
    slow = run({**base, "bandwidth": 4000.0})
    assert slow["entry_convergence_ms"]["p50"] > fast["entry_convergence_ms"]["p50"]


def test_k_networks_per_node_and_churn_workload() -> None:
    assert run({"nodes": 10, "duration": 20.0, "settle": 10.0, "write_rate": 3.0})["writes"] == 30
    r = run(
        {
            "nodes": 30,
            "duration": 40.0,
            "writes": 300,
            "seed": 6,
            "networks": 6,
            "networks_per_node": 2,
            "creates": 1,
            "updates": 1,
            "deletes": 1,
        }
    )
    assert r["converged"], r
    assert r["writes"] == 300


def test_checks_catch_a_run_that_did_not_converge() -> None:
    # Half the packets lost and no time to settle: the tables cannot agree.
    r = run({"nodes": 20, "duration": 4.0, "writes": 200, "seed": 1, "loss": 0.5, "settle": 0.0})
    assert r["converged"] is False
    assert not r["tables_converged"] and r["mismatched_nodes"] > 0
    assert r["writes_converged"] < r["writes"]


def test_join_bootstrap_reports_formation() -> None:
    r = run({"nodes": 12, "duration": 20.0, "writes": 20, "bootstrap": "join"})
    assert r["membership_events"][0]["kind"] == "formation"
    assert r["membership_convergence_ms"] > 0
    assert r["converged"]


def test_scenario_file_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text(
        'scenario = "split-brain"\n[workload]\nwrites = 30\nnetworks = 2\n'
        "[memberlist]\nprobe_interval = 0.5\n"
    )
    assert load_scenario_file(f) == {
        "scenario": "split-brain",
        "writes": 30,
        "networks": 2,
        "probe_interval": 0.5,
    }
    out = tmp_path / "r.json"
    rc = pyln_main(
        [
            "sim",
            "--config",
            str(f),
            "--nodes",
            "10",
            "--duration",
            "40",
            "--report",
            str(out),
            "--quiet",
        ]
    )
    r = json.loads(out.read_text())
    assert rc == 0 and r["scenario"] == "split-brain" and r["writes"] == 30 and r["nodes"] == 10
    bad = tmp_path / "bad.toml"
    bad.write_text("nodez = 3\n")
    with pytest.raises(errors.BadRequest, match="nodez"):
        load_scenario_file(bad)
    assert pyln_main(["sim", "--config", str(bad)]) == 2
    assert pyln_main(["sim", "--nodes", "1", "--quiet"]) == 2
    with pytest.raises(errors.BadRequest):
        run({"nodes": 10, "scenario": "meteor"})


def test_sweep_mode(tmp_path: Path) -> None:
    assert parse_sweep("loss=0,0.1") == ("loss", [0, 0.1])
    out = tmp_path / "sweep.json"
    rc = pyln_main(
        [
            "sim",
            "--nodes",
            "10",
            "--duration",
            "15",
            "--writes",
            "20",
            "--quiet",
            "--sweep",
            "fanout=1,3",
            "--report",
            str(out),
            "--plot",
            str(tmp_path),
        ]
    )
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["sweep"] == "fanout" and [r["params"]["fanout"] for r in s["runs"]] == [1, 3]
    assert (tmp_path / "convergence_vs_fanout.png").read_bytes()[:4] == b"\x89PNG"
