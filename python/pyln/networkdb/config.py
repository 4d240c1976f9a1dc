"""NetworkDB's configuration (libnetwork's networkdb.Config, with durations in
seconds)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pyln import errors


@dataclass
class Config:
    """Settings of one NetworkDB node. Durations are seconds."""

    node_name: str
    bind_addr: str = "127.0.0.1"
    bind_port: int = 7946
    # memberlist encryption keys (16, 24 or 32 bytes); the first is primary.
    keys: list[bytes] = field(default_factory=list)
    # memberlist profile: "lan" (DefaultLANConfig) or "local".
    profile: str = "lan"
    packet_buffer_size: int = 1400
    # networkdb's own gossip of table events to network peers.
    gossip_interval: float = 0.2
    # Periodic bulk sync of each network with one random peer.
    bulk_sync_interval: float = 30.0
    # How long deleted entries are kept (libnetwork: 30 minutes).
    reap_entry_interval: float = 1800.0
    # A queued table event is gossiped after this instead of at the next gossip tick
    # (0: tick only, as libnetwork; faster convergence costs more packets under load).
    eager_delay: float = 0.005
    # Retry of join and of reconnecting to failed nodes.
    retry_interval: float = 1.0
    # Periodic rejoin through the bootstrap nodes (heals a split cluster).
    rejoin_interval: float = 60.0
    # Overrides of memberlist settings by name, durations in seconds, e.g.
    # {"probe_interval": 0.5, "gossip_nodes": 4}.
    memberlist: dict[str, float | int | bool] = field(default_factory=dict)
    # Seed of the node's randomness (None: from the clock).
    seed: int | None = None

    def validate(self) -> None:
        if not self.node_name:
            raise errors.BadRequest("Config.node_name must not be empty")
        if self.profile not in ("lan", "local"):
            raise errors.BadRequest(
                f"Config.profile must be 'lan' or 'local', not {self.profile!r}"
            )
        for k in self.keys:
            if len(k) not in (16, 24, 32):
                raise errors.BadRequest(f"encryption keys must be 16, 24 or 32 bytes, not {len(k)}")
        if not 0 <= self.bind_port <= 65535:
            raise errors.BadRequest(f"Config.bind_port out of range: {self.bind_port}")
        for name in (
            "gossip_interval",
            "bulk_sync_interval",
            "reap_entry_interval",
            "retry_interval",
            "rejoin_interval",
        ):
            if getattr(self, name) <= 0:
                raise errors.BadRequest(f"Config.{name} must be positive")

    def machine_overrides(self) -> dict[str, int | bool]:
        """The memberlist overrides as the machine takes them (microseconds)."""
        durations = {
            "probe_interval",
            "probe_timeout",
            "gossip_interval",
            "gossip_to_the_dead_time",
            "push_pull_interval",
            "tcp_timeout",
        }
        out: dict[str, int | bool] = {"udp_buffer_size": self.packet_buffer_size}
        for k, v in self.memberlist.items():
            if isinstance(v, bool):
                out[k] = v
            elif k in durations:
                out[k] = int(v * 1_000_000)
            else:
                out[k] = int(v)
        return out

    def db_settings(self) -> dict[str, int]:
        """networkdb's own periods for the machine (microseconds)."""
        us = 1_000_000
        return {
            "gossip_interval": int(self.gossip_interval * us),
            "bulk_sync_interval": int(self.bulk_sync_interval * us),
            "reap_entry_interval": int(self.reap_entry_interval * us),
            "retry_interval": int(self.retry_interval * us),
            "rejoin_interval": int(self.rejoin_interval * us),
            "eager_delay": int(self.eager_delay * us),
        }
