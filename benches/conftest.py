"""Prints a table after the benchmarks: each median beside its baseline
(measured in the same run where one exists, else Go libnetwork's figure from the
issue) and their ratio. Run with `make bench` (PYLN_BENCH_BIG=1 adds the /8 fill)."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

# Go libnetwork at the seed commit on this kind of machine (Go 1.19, 2 cores).
GO = {
    "fill_16_durable": 20.4,
    "fill_8_durable": 65 * 60.0,
}
TARGETS: dict[str, tuple[str, float]] = {
    # name: (kind, bound): "abs" seconds, or "ratio" to the same-run baseline
    "fill_16_durable": ("abs", 2.0),
    "fill_8_durable": ("abs", 600.0),
    "fill_16_memory": ("ratio", 2.0),
    # "per_op": microseconds per message (extra_info["per_op_us"])
    "ndb_encode_batch": ("per_op", 0.3),
    "ndb_decode_batch": ("per_op", 0.4),
    "ndb_decode_batch_distinct_names": ("per_op", 0.4),
}
SAME_RUN_BASELINE = {
    "fill_16_memory": "build_16_interfaces",
    "fragmented_alloc_journal": "fragmented_alloc_rewrite",
    "ndb_encode_batch": "ndb_encode_batch_pure_python",
    "ndb_decode_batch": "ndb_decode_batch_pure_python",
    "ndb_decode_batch_distinct_names": "ndb_decode_batch_pure_python",
}


def _median(bench: Any) -> float:
    return statistics.median(bench.stats.data) if bench.stats.data else float("nan")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    by_name = {b.name.removeprefix("test_"): b for b in session.benchmarks}
    w = terminalreporter.write_line
    w("")
    w("| what | pyln median | baseline | baseline median | pyln / baseline | target | met |")
    w("|---|---|---|---|---|---|---|")
    for name, bench in by_name.items():
        med = _median(bench)
        extra = bench.extra_info
        base_name = SAME_RUN_BASELINE.get(name)
        if base_name and base_name in by_name:
            base, base_label = _median(by_name[base_name]), f"{base_name} (same run)"
        elif name in GO:
            base, base_label = GO[name], "Go libnetwork (issue)"
        else:
            base, base_label = float("nan"), "-"
        ratio = med / base if base == base else float("nan")
        target, met = "-", "-"
        if name in TARGETS:
            kind, bound = TARGETS[name]
            if kind == "abs":
                target, met = f"<= {bound:g} s", "yes" if med <= bound else "NO"
            elif kind == "per_op":
                per_op = extra.get("per_op_us", float("nan"))
                target, met = f"<= {bound:g} us/op", "yes" if per_op <= bound else "NO"
            else:
                target, met = f"<= {bound:g}x baseline", "yes" if ratio <= bound else "NO"
        per = f" ({extra['per_op_us']:.2f} us/op)" if "per_op_us" in extra else ""
        w(
            f"| {name} | {med:.4g} s{per} | {base_label} | {base:.4g} s | {ratio:.3g} "
            f"| {target} | {met} |"
        )
        for k, v in extra.items():
            if k != "per_op_us":
                w(f"|   {k} | {v} | | | | | |")
