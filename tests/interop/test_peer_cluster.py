"""The harness on Go-to-Go clusters: real memberlist 0.2.2 nodes on 127.0.0.1 only.
These pin down what the peer reports, so that tests mixing it with pyln's own gossip
can rely on it. Every wait has a deadline; nothing sleeps a fixed time."""

from __future__ import annotations

import base64
import os
import time

import pytest

from .conftest import PeerFactory
from .memberlist_peer import MemberlistPeer

ABC = {"a", "b", "c"}


def three(start: PeerFactory, **kwargs: object) -> tuple[MemberlistPeer, ...]:
    """a, then b and c joining a; returns once all three see all three alive.
    The deadline leaves room for a suspicion to be refuted first: with the
    "local" timeouts a probe on a busy host can miss (a fresh-clone CI run saw b
    without c all alive for 10 s while c's messages reached it)."""
    a = start("a", **kwargs)
    b = start("b", join=[a], **kwargs)
    c = start("c", join=[a], **kwargs)
    for p in (a, b, c):
        p.wait_members(ABC, timeout=30)
    return a, b, c


def test_three_peers_join_and_all_see_three_alive(memberlist_peer_factory: PeerFactory) -> None:
    a, b, c = three(memberlist_peer_factory)
    for p in (a, b, c):
        assert p.addr.startswith("127.0.0.1:") and p.port > 0
        assert p.protocol == 2 and not p.encrypted
        # Every node sees the others at the addresses they announced.
        assert {m["name"]: m["addr"] for m in p.members()} == {q.name: q.addr for q in (a, b, c)}
        # NotifyJoin fires for every member, itself included.
        assert {ev["node"] for ev in p.events("join")} == ABC
    for p in (b, c):
        assert p.wait_event("joined")["contacted"] == 1
    # The seed merged each joiner's state once, with the join flag.
    assert sorted(s["name"] for s in a.remote_states()) == ["b", "c"]


@pytest.mark.parametrize("config", ["local", "lan"])
def test_sigkilled_peer_is_reported_as_leave(
    memberlist_peer_factory: PeerFactory, config: str
) -> None:
    """Failure detection: nobody tells the others that c is gone. memberlist suspects it
    after a failed probe and declares it dead when the suspicion timeout ends; the
    event delegate reports that as a leave."""
    a, b, c = three(memberlist_peer_factory, config=config)
    marks = {p: p.mark() for p in (a, b)}
    killed_at = time.time()
    c.kill()
    for p in (a, b):
        ev = p.wait_event("leave", timeout=15, since=marks[p], node="c")
        assert ev["addr"] == c.addr
        # Not before the suspicion timeout (3 s local, 4 s LAN, with 3 nodes) has run.
        assert 3.0 <= ev["t"] / 1000 - killed_at < 15
    for p in (a, b):
        p.wait_members({"a", "b"}, timeout=3)


def test_graceful_stop_is_seen_as_leave(memberlist_peer_factory: PeerFactory) -> None:
    a, b, c = three(memberlist_peer_factory, config="local")
    marks = {p: p.mark() for p in (a, b)}
    stopped_at = time.time()
    left = c.stop()
    assert left is not None and left["reason"] == "terminated"
    assert "leave_error" not in left, left  # the others acknowledged the leave broadcast
    assert c.returncode == 0
    for p in (a, b):
        ev = p.wait_event("leave", timeout=3, since=marks[p], node="c")
        # A leave is announced, not detected: well under any suspicion timeout.
        assert ev["t"] / 1000 - stopped_at < 2.5
        p.wait_members({"a", "b"}, timeout=3)


def test_user_broadcasts_reach_the_others(memberlist_peer_factory: PeerFactory) -> None:
    peers = three(memberlist_peer_factory, config="local", broadcast_every=0.2)
    # Broadcasts queued once everybody is in reach both others (NotifyMsg). With the
    # local profile each one is sent only twice, to randomly picked nodes, so one
    # broadcast may miss a node: wait for any of the sender's later ones.
    for sender in peers:
        marks = {p: p.mark() for p in peers}
        msg = sender.wait_event("broadcast", since=marks[sender], timeout=3)["msg"]
        assert msg.startswith(f"{sender.name}:")
        for p in peers:
            if p is not sender:
                p.wait_for(
                    lambda e, who=sender.name: (
                        e["event"] == "user_msg"
                        and bytes.fromhex(e["from_bytes"]).decode().startswith(f"{who}:")
                    ),
                    timeout=5,
                    since=marks[p],
                    what=f"a broadcast of {sender.name}",
                )
    for p in peers:
        got = p.user_msgs()
        assert got and all(m.decode().split(":")[0] in ABC - {p.name} for m in got)
        # Payloads arrive as sent. (memberlist does not deduplicate user messages: a
        # retransmission may deliver one twice, so no assertion on counts.)
        sent = {s.encode() for q in peers for s in q.broadcasts()}
        assert set(got) <= sent


def test_push_pull_exchanges_local_state(memberlist_peer_factory: PeerFactory) -> None:
    """A join is a TCP push/pull: both sides merge the other's delegate state, the
    JSON {"name", "seq"} of the peer's LocalState."""
    a = memberlist_peer_factory("a", config="local", broadcast_every=0.05)
    a.wait_event("broadcast", msg="a:3", timeout=5)
    b = memberlist_peer_factory("b", config="local", join=[a])
    got = b.wait_event("remote_state", timeout=5)
    assert got["join"] is True
    assert got["data"]["name"] == "a" and got["data"]["seq"] >= 3
    sent = a.wait_event("remote_state", timeout=5)
    assert sent["join"] is True and sent["data"] == {"name": "b", "seq": 0}


def _key(n: int = 32) -> str:
    return base64.b64encode(os.urandom(n)).decode()


@pytest.mark.parametrize("key_len", [16, 32])
def test_encrypted_cluster(memberlist_peer_factory: PeerFactory, key_len: int) -> None:
    secret = _key(key_len)
    peers = three(memberlist_peer_factory, config="local", secret=secret, broadcast_every=0.2)
    for p in peers:
        assert p.encrypted
    msg = peers[0].wait_event("broadcast", since=peers[0].mark(), timeout=3)["msg"]
    prefix = msg.split(":")[0] + ":"

    # Any of a's broadcasts (one every 0.2 s) reaching b and c through the
    # encrypted cluster: a given one is sent a limited number of times, and a
    # UDP datagram dropped on a busy host is not resent (CI once missed one).
    def from_a(ev: dict) -> bool:
        return ev.get("event") == "user_msg" and bytes.fromhex(ev["from_bytes"]).decode(
            errors="replace"
        ).startswith(prefix)

    for p in peers[1:]:
        p.wait_for(from_a, timeout=10, what="a user message broadcast by a")


@pytest.mark.parametrize(
    ("cluster_key", "joiner_key", "error"),
    [
        (_key(), None, "encryption is not configured"),
        (_key(), _key(), "No installed keys could decrypt the message"),
        (None, _key(), "Encryption is configured but remote state is not encrypted"),
    ],
    ids=["joiner-without-key", "joiner-with-other-key", "keyed-joiner-plain-cluster"],
)
def test_peer_without_the_key_cannot_join(
    memberlist_peer_factory: PeerFactory,
    cluster_key: str | None,
    joiner_key: str | None,
    error: str,
) -> None:
    a = memberlist_peer_factory("a", config="local", secret=cluster_key)
    memberlist_peer_factory("b", config="local", secret=cluster_key, join=[a])
    a.wait_members({"a", "b"})
    d = memberlist_peer_factory("d", config="local", secret=joiner_key, join=[a], join_retry=0.5)
    failed = d.wait_event("join_failed", timeout=5)
    assert error in failed["error"], failed
    mark = a.mark()
    # A snapshot taken after the failure: d is in nobody's member list.
    a.wait_for(lambda ev: ev["event"] == "members", since=mark, what="members event")
    assert a.alive() == {"a", "b"}
    d.wait_members({"d"})
    assert not d.events("remote_state")
