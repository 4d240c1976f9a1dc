"""PNG plots of a report (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _title(r: dict[str, Any]) -> str:
    return f"{r['scenario']}, {r['nodes']} nodes, loss {r['loss']:g}, seed {r['seed']}"


def plot_run(r: dict[str, Any], out: str | Path) -> list[Path]:
    """seen.png (fraction of nodes that have an entry vs time since its write)
    and traffic.png (bytes and messages per node per second vs time)."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4))
    seen = r["seen"]
    ax.step([0.0, *seen["t_ms"]], [0.0, *seen["fraction"]], where="post")
    e = r["entry_convergence_ms"]
    for q in ("p50", "p99"):
        if e["count"]:
            ax.axvline(e[q], ls="--", lw=0.8, color="gray")
            ax.annotate(f"{q} all nodes", (e[q], 0.05), rotation=90, fontsize=8, color="gray")
    ax.set_xlabel("time since the write (ms)")
    ax.set_ylabel("fraction of nodes that have the entry")
    ax.set_ylim(0, 1.02)
    ax.set_title(_title(r))
    ax.grid(alpha=0.3)
    p = d / "seen.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 4))
    s = r["series"]
    ax.plot(s["t_s"], s["bytes_per_node_per_s"], label="bytes sent")
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("bytes per node per second")
    ax2 = ax.twinx()
    ax2.plot(s["t_s"], s["msgs_per_node_per_s"], color="tab:orange", lw=0.8, label="messages sent")
    ax2.set_ylabel("messages per node per second")
    for ev in r["membership_events"]:
        if ev["at_s"] >= 0:
            ax.axvline(ev["at_s"], ls=":", color="gray", lw=0.8)
    ax.set_title(_title(r))
    ax.grid(alpha=0.3)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=8)
    p = d / "traffic.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    paths.append(p)
    return paths


def plot_sweep(param: str, runs: list[dict[str, Any]], out: str | Path) -> Path:
    """convergence_vs_<param>.png: entry convergence p50/p99/max against the
    swept parameter, with bytes per node per second on the second axis."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    xs = [float(r["params"][param]) for r in runs]
    fig, ax = plt.subplots(figsize=(7, 4))
    for q, style in (("p50", "o-"), ("p99", "s-"), ("max", "^:")):
        ax.plot(
            xs, [r["entry_convergence_ms"][q] for r in runs], style, label=f"entry convergence {q}"
        )
    ax.set_xlabel(param)
    ax.set_ylabel("ms until every node has the entry")
    if param == "nodes" and len(xs) > 1 and max(xs) / max(min(xs), 1) >= 10:
        ax.set_xscale("log")
    ax2 = ax.twinx()
    ax2.plot(
        xs, [r["bytes_per_node_per_s"] for r in runs], "x--", color="tab:gray", label="bytes/node/s"
    )
    ax2.set_ylabel("bytes sent per node per second")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    r0 = runs[0]
    ax.set_title(f"{r0['scenario']}: convergence against {param}")
    ax.grid(alpha=0.3)
    p = d / f"convergence_vs_{param}.png"
    fig.tight_layout()
    fig.savefig(p, dpi=100)
    plt.close(fig)
    return p
