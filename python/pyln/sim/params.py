"""The simulator's parameters: names, meaning, and scenario files.

A scenario file is TOML (or YAML, when PyYAML is installed) holding any of the
names below, at the top level or in tables (`[workload]`, `[memberlist]`,
`[networkdb]`, `[network]`: the table name is only for readability, the keys are
the same). Durations are seconds. Command-line flags win over the file."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pyln import errors

Value = float | int | str

# name -> what it is (the Rust runner validates the values).
PARAMS: dict[str, str] = {
    "nodes": "number of nodes",
    "duration": "virtual seconds of the measured run",
    "seed": "seed of every random choice (same seed, same report)",
    "loss": "probability that a UDP packet is lost",
    "latency": "one-way latency, seconds",
    "jitter": "uniform jitter added to the latency, seconds",
    "bandwidth": "each node's uplink, bytes per second (0: unlimited)",
    "scenario": "steady, seed, split-brain, asymmetric, rolling-restart or mass-churn",
    "bootstrap": "warm (nodes start with the cluster's state) or join (over the protocol)",
    "profile": "memberlist profile: lan (DefaultLANConfig) or local",
    "gossip_interval": "gossip interval of memberlist and networkdb, seconds",
    "fanout": "gossip fanout of memberlist and networkdb",
    "retransmit_mult": "retransmit multiplier of memberlist and of networkdb's table queues",
    "memberlist_gossip_interval": "memberlist's gossip interval alone",
    "memberlist_fanout": "memberlist's gossip fanout alone",
    "memberlist_retransmit_mult": "memberlist's retransmit multiplier alone",
    "networkdb_gossip_interval": "networkdb's table gossip interval alone",
    "networkdb_fanout": "networkdb's table gossip fanout alone",
    "table_retransmit_mult": "networkdb's table retransmit multiplier alone",
    "probe_interval": "memberlist probe interval, seconds",
    "probe_timeout": "memberlist probe timeout, seconds",
    "suspicion_mult": "memberlist suspicion multiplier",
    "push_pull_interval": "memberlist push/pull interval, seconds",
    "bulk_sync_interval": "networkdb bulk sync interval, seconds",
    "reap_interval": "how long networkdb keeps tombstones, seconds",
    "reap_period": "how often networkdb's reaper runs, seconds",
    "eager_delay": "networkdb sends a queued table event after this, not at the next tick"
    " (seconds; 0: tick only, as libnetwork)",
    "retry_interval": "networkdb's join retry and reconnect period, seconds",
    "rejoin_interval": "networkdb's rejoin through the bootstrap nodes, seconds",
    "networks": "number of networks",
    "networks_per_node": "networks each node is in (0: every node in every network)",
    "writes": "table writes during the run (spread evenly before the settle period)",
    "write_rate": "table writes per second before the settle period (instead of writes)",
    "creates": "weight of creates in the write mix",
    "updates": "weight of updates in the write mix",
    "deletes": "weight of deletes in the write mix (creates + deletes: container churn)",
    "value_size": "bytes of each table value",
    "settle": "final seconds without writes or faults, before the checks",
    "churn_fraction": "fraction of nodes the mass-churn scenario crashes",
    "downtime": "seconds a restarted node stays down",
    "threads": "threads that run the nodes (0: one per free core from 400 nodes);"
    " the report is the same for any number",
    "sample_interval": "seconds between traffic samples",
}

SCENARIOS = ("steady", "seed", "split-brain", "asymmetric", "rolling-restart", "mass-churn")


def _flatten(data: dict[str, Any], where: str) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for k, v in data.items():
        key = k.replace("-", "_")
        if isinstance(v, dict):
            out.update(_flatten(v, f"{where}.{k}"))
        elif isinstance(v, bool) or not isinstance(v, int | float | str):
            raise errors.BadRequest(f"{where}: {k} must be a number or a name, not {v!r}")
        elif key not in PARAMS:
            raise errors.BadRequest(f"{where}: unknown parameter {k!r}")
        else:
            out[key] = v
    return out


def load_scenario_file(path: str | Path) -> dict[str, Value]:
    """Parameters from a TOML (or YAML) scenario file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise errors.BadRequest(f"cannot read scenario file {p}: {e}") from e
    if p.suffix in (".yaml", ".yml"):
        try:
            import yaml  # type: ignore[import-untyped]
        except ImportError:
            raise errors.BadRequest("YAML scenario files need PyYAML; use TOML") from None
        data = yaml.safe_load(text) or {}
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise errors.BadRequest(f"{p}: {e}") from e
    if not isinstance(data, dict):
        raise errors.BadRequest(f"{p}: a scenario file is a table of parameters")
    return _flatten(data, str(p))
