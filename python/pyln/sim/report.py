"""The end-of-run table and the JSON report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _ms(v: float | None) -> str:
    if v is None:
        return "never"
    return f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _num(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.2f}"


def rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of a report, for the table."""
    e = r["entry_convergence_ms"]
    out = [
        ("scenario", f"{r['scenario']} ({r['bootstrap']} start)"),
        (
            "nodes / virtual s / seed / loss",
            f"{r['nodes']} / {r['duration_s']:g} / {r['seed']} / {r['loss']:g}",
        ),
        (
            "entry convergence p50 / p99 / max",
            f"{_ms(e['p50'])} / {_ms(e['p99'])} / {_ms(e['max'])}",
        ),
        (
            "writes converged / made (abandoned)",
            f"{r['writes_converged']} / {r['writes']} ({r['writes_abandoned']})",
        ),
        ("membership convergence", _ms(r["membership_convergence_ms"])),
    ]
    if r.get("seed_saw_all_dead") is not None:
        out.append(
            (
                "seed node believed all dead before the heal",
                "yes" if r["seed_saw_all_dead"] else "no",
            )
        )
    if r.get("failure_detection_ms") is not None:
        out.append(("failure detection", _ms(r["failure_detection_ms"])))
    out += [
        (
            "bytes sent / received per node per s",
            f"{_num(r['bytes_per_node_per_s'])} / {_num(r['bytes_received_per_node_per_s'])}",
        ),
        (
            "messages sent / received per node per s",
            f"{_num(r['msgs_per_node_per_s'])} / {_num(r['msgs_received_per_node_per_s'])}",
        ),
        (
            "false failures (longest healthy-dead)",
            f"{r['false_failures']} ({_ms(r['max_healthy_dead_ms'])}, "
            f"bound {_ms(r['suspicion_bound_ms'])})",
        ),
        (
            "peak queues: memberlist / table",
            f"{r['peak_memberlist_queue']} / {r['peak_table_queue']}",
        ),
        (
            "memory per node",
            f"{r['memory_per_node_bytes'] / 1024:,.1f} KiB (RSS {r['rss_bytes'] / 2**20:,.0f} MiB)",
        ),
        ("events (per wall s)", f"{r['events']:,} ({r.get('events_per_s', 0):,.0f})"),
        (
            "wall time (setup; threads)",
            f"{r.get('wall_s', 0):.1f} s ({r['setup_wall_s']:.1f} s; {r.get('threads', 1)})",
        ),
        (
            "checks: tables / no resurrection / healthy-dead / membership",
            " / ".join(
                "ok" if ok else "FAIL"
                for ok in (
                    r["tables_converged"],
                    r["resurrections"] == 0,
                    r["healthy_dead_violations"] == 0,
                    r["membership_converged"],
                )
            ),
        ),
        ("converged", "yes" if r["converged"] else "NO"),
    ]
    return out


def table(r: dict[str, Any]) -> str:
    lines = rows(r)
    w = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in lines)


def sweep_table(param: str, runs: list[dict[str, Any]]) -> str:
    head = (
        f"{param:>10}  {'p50 ms':>9}  {'p99 ms':>9}  {'max ms':>9}  "
        f"{'B/node/s':>10}  {'msg/node/s':>10}  conv  wall s"
    )
    out = [head]
    for r in runs:
        e = r["entry_convergence_ms"]
        out.append(
            f"{r['params'][param]!s:>10}  {e['p50']:>9.1f}  {e['p99']:>9.1f}  {e['max']:>9.1f}  "
            f"{r['bytes_per_node_per_s']:>10.0f}  {r['msgs_per_node_per_s']:>10.1f}  "
            f"{'yes' if r['converged'] else 'NO':>4}  {r['wall_s']:>6.1f}"
        )
    return "\n".join(out)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    p = Path(path)
    if p.parent != Path():
        p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
