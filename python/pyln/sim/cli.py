"""`pyln sim`: run the capacity-planning simulator from the command line.

    pyln sim --nodes N --duration SECONDS --seed S --loss FRACTION \\
             --report FILE.json [--plot DIR]

plus the protocol parameters, a scenario, a scenario file, and a sweep over
one parameter (`--sweep nodes=100,1000,5000`)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from pyln import errors
from pyln.sim import plots, report
from pyln.sim.params import PARAMS, SCENARIOS, Value, load_scenario_file
from pyln.sim.runner import Progress, run

# flag -> (parameter, type, help); the pinned flags come first.
FLAGS: list[tuple[str, str, Callable[[str], Value], str]] = [
    ("--nodes", "nodes", int, "number of nodes (default 100)"),
    ("--duration", "duration", float, "virtual seconds of the run (default 60)"),
    ("--seed", "seed", int, "seed: the same seed gives the same report (default 1)"),
    ("--loss", "loss", float, "UDP packet loss, a fraction (default 0)"),
    ("--scenario", "scenario", str, "one of " + ", ".join(SCENARIOS) + " (default steady)"),
    (
        "--bootstrap",
        "bootstrap",
        str,
        "warm (default) or join: how the cluster forms before the run",
    ),
    ("--latency-ms", "latency", float, "one-way latency, ms (default 0.2)"),
    ("--jitter-ms", "jitter", float, "uniform jitter, ms (default 0.1)"),
    ("--bandwidth", "bandwidth", float, "each node's uplink, bytes/s (default 0: unlimited)"),
    ("--profile", "profile", str, "memberlist profile: lan (default) or local"),
    (
        "--gossip-interval",
        "gossip_interval",
        float,
        "gossip interval, s (memberlist and networkdb; 0.2)",
    ),
    ("--fanout", "fanout", int, "gossip fanout (memberlist and networkdb; 3)"),
    (
        "--retransmit-mult",
        "retransmit_mult",
        int,
        "retransmit multiplier (memberlist and tables; 4)",
    ),
    ("--probe-interval", "probe_interval", float, "memberlist probe interval, s (1)"),
    ("--probe-timeout", "probe_timeout", float, "memberlist probe timeout, s (0.5)"),
    ("--suspicion-mult", "suspicion_mult", int, "memberlist suspicion multiplier (4)"),
    ("--push-pull-interval", "push_pull_interval", float, "memberlist push/pull interval, s (30)"),
    ("--bulk-sync-interval", "bulk_sync_interval", float, "networkdb bulk sync interval, s (30)"),
    ("--reap-interval", "reap_interval", float, "networkdb tombstone lifetime, s (1800)"),
    ("--networks", "networks", int, "number of networks (1)"),
    ("--networks-per-node", "networks_per_node", int, "networks per node (0: all nodes in all)"),
    ("--writes", "writes", int, "table writes during the run (1000)"),
    ("--write-rate", "write_rate", float, "table writes per second, instead of --writes"),
    ("--updates", "updates", float, "weight of updates in the write mix (0; creates weigh 1)"),
    ("--deletes", "deletes", float, "weight of deletes in the write mix (0)"),
    ("--value-size", "value_size", int, "bytes per table value (100)"),
    ("--settle", "settle", float, "final seconds without writes or faults (15)"),
    ("--churn-fraction", "churn_fraction", float, "nodes crashed by mass-churn (0.2)"),
    (
        "--threads",
        "threads",
        int,
        "threads that run the nodes (0, default: one per free core from 400 nodes;"
        " the report is the same for any number)",
    ),
]
SCALE = {"latency": 1e-3, "jitter": 1e-3}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pyln sim",
        description="Simulate a networkdb cluster: the real protocol code, a virtual network.",
    )
    for flag, _, typ, help_ in FLAGS:
        p.add_argument(flag, type=typ, default=None, help=help_)
    p.add_argument("--config", metavar="FILE", help="scenario file (TOML, or YAML with PyYAML)")
    p.add_argument("--report", metavar="FILE.json", help="write the JSON report here")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots here")
    p.add_argument(
        "--sweep",
        metavar="PARAM=V1,V2,...",
        help="run once per value of one parameter (e.g. nodes=10,100,1000; loss; fanout)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def params_from(args: argparse.Namespace) -> dict[str, Value]:
    out: dict[str, Value] = {}
    if args.config:
        out.update(load_scenario_file(args.config))
    for flag, name, _, _ in FLAGS:
        v = getattr(args, flag[2:].replace("-", "_"))
        if v is not None:
            out[name] = v * SCALE[name] if name in SCALE else v
    out.setdefault("nodes", 100)
    out.setdefault("duration", 60.0)
    out.setdefault("seed", 1)
    out.setdefault("loss", 0.0)
    return out


def parse_sweep(spec: str) -> tuple[str, list[Value]]:
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values:
        raise errors.BadRequest(f"--sweep wants PARAM=V1,V2,..., not {spec!r}")
    if name not in PARAMS:
        raise errors.BadRequest(f"--sweep: unknown parameter {name!r}")
    out: list[Value] = []
    for v in values.split(","):
        v = v.strip()
        try:
            out.append(int(v))
        except ValueError:
            try:
                out.append(float(v))
            except ValueError:
                out.append(v)
    return name, out


def progress_bar(label: str, stream: Any = None) -> Progress:
    out = stream if stream is not None else sys.stderr
    tty = out.isatty()
    last = [0.0]

    def show(frac: float, t: float, events: int, wall: float) -> None:
        now = time.monotonic()
        if not tty and frac < 1.0 and now - last[0] < 5.0:
            return
        last[0] = now
        width = 30
        done = int(frac * width)
        bar = "#" * done + "-" * (width - done)
        line = (
            f"{label} [{bar}] {frac * 100:5.1f}%  t={t:.1f}s  events={events:,}  wall={wall:.1f}s"
        )
        out.write(("\r" + line) if tty else line + "\n")
        if tty and frac >= 1.0:
            out.write("\n")
        out.flush()

    return show


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        base = params_from(args)
        if args.sweep:
            name, values = parse_sweep(args.sweep)
            runs = []
            for v in values:
                p = {**base, name: v}
                bar = None if args.quiet else progress_bar(f"{name}={v}")
                runs.append(run(p, bar))
            print(report.sweep_table(name, runs))
            if args.report:
                report.write_json(args.report, {"sweep": name, "values": values, "runs": runs})
            if args.plot:
                path = plots.plot_sweep(name, runs, args.plot)
                print(f"plot: {path}")
            return 0 if all(r["converged"] for r in runs) else 1
        bar = None if args.quiet else progress_bar(f"{base['nodes']} nodes")
        r = run(base, bar)
    except errors.PylnError as e:
        print(f"pyln sim: {e}", file=sys.stderr)
        return 2
    print(report.table(r))
    if args.report:
        report.write_json(args.report, r)
    if args.plot:
        for path in plots.plot_run(r, args.plot):
            print(f"plot: {path}")
    return 0 if r["converged"] else 1
