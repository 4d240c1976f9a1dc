"""The default IPAM allocator. The first part restates the behaviours of libnetwork's
ipam/allocator_test.go (commit 68aac7a9) through pyln's API; libnetwork's tests add
custom address spaces ("abc", "rosso", ...) that its default driver does not serve,
so here the two default spaces play those parts. Deliberate differences are noted
where they matter."""

from __future__ import annotations

import ipaddress
import random
import threading
from pathlib import Path

import pytest

from pyln import errors
from pyln.ipam import (
    ALLOC_SERIAL,
    GATEWAY,
    GLOBAL_DEFAULT,
    LOCAL_DEFAULT,
    REQUEST_ADDRESS_TYPE,
    Allocator,
    BadPool,
    InvalidAddressSpace,
    InvalidPool,
    InvalidRequest,
    InvalidSubPool,
    IPAlreadyAllocated,
    IPOutOfRange,
    NoAvailableIPs,
    NoAvailablePool,
    PoolNotFound,
    PoolOverlap,
    SubnetKey,
)
from pyln.store import SQLiteStore

L, G = LOCAL_DEFAULT, GLOBAL_DEFAULT


@pytest.fixture(params=["memory", "sqlite"])
def alloc(request: pytest.FixtureRequest, tmp_path: Path) -> Allocator:
    """An allocator in memory, and one on SQLite stores: both must behave the same."""
    if request.param == "memory":
        return Allocator(None, None)
    return Allocator(
        SQLiteStore(tmp_path / "local.db"), SQLiteStore(tmp_path / "global.db", "global")
    )


def refs(a: Allocator) -> dict[str, int]:
    return {p.pool_id: p.refs for p in a.pools()}


def ip(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(text)


# -- allocator_test.go, restated --------------------------------------------------


def test_key_string() -> None:
    k = SubnetKey.parse("LocalDefault/172.27.0.0/16")
    assert (k.space, k.subnet, k.child) == ("LocalDefault", "172.27.0.0/16", "")
    k = SubnetKey.parse("LocalDefault/172.27.0.0/16/172.27.3.0/24")
    assert k.child == "172.27.3.0/24"
    assert str(k) == "LocalDefault/172.27.0.0/16/172.27.3.0/24"
    assert k.parent == SubnetKey("LocalDefault", "172.27.0.0/16")
    for bad in ["", "LocalDefault", "LocalDefault/172.27.0.0", "a/b/c/d", "a//16", None]:
        with pytest.raises(InvalidPool):
            SubnetKey.parse(bad)


def test_add_subnets(alloc: Allocator) -> None:
    pid0, _, _ = alloc.request_pool(L, "10.0.0.0/8")
    pid1, _, _ = alloc.request_pool(G, "10.0.0.0/8")
    assert pid0 != pid1, "same subnet in two address spaces must get two ids"
    assert alloc.request_pool(G, "10.0.0.0/8")[0] == pid1
    with pytest.raises(PoolOverlap):
        alloc.request_pool(G, "10.128.0.0/9")
    pid2, _, _ = alloc.request_pool(G, "10.0.0.0/8", "10.128.0.0/9")
    assert alloc.request_pool(G, "10.0.0.0/8", "10.128.0.0/9")[0] == pid2
    with pytest.raises(PoolOverlap):
        alloc.request_pool(L, "10.20.2.0/24")
    with pytest.raises(PoolOverlap):
        alloc.request_pool(L, "10.128.0.0/9")
    alloc.request_pool(L, "1003:1:2:3:4:5:6::/112", v6=True)
    with pytest.raises(PoolOverlap):
        alloc.request_pool(L, "1003:1:2:3::/64", v6=True)


def test_add_release_pool_id(alloc: Allocator) -> None:
    pid0, _, _ = alloc.request_pool(L, "10.0.0.0/8")
    assert refs(alloc) == {pid0: 1}
    pid1, _, _ = alloc.request_pool(L, "10.0.0.0/8", "10.0.0.0/16")
    pid2, _, _ = alloc.request_pool(L, "10.0.0.0/8", "10.0.0.0/16")
    assert pid0 != pid1 and pid1 == pid2
    assert refs(alloc) == {pid0: 3, pid1: 2}
    alloc.release_pool(pid1)
    assert refs(alloc) == {pid0: 2, pid1: 1}
    alloc.release_pool(pid0)
    assert refs(alloc) == {pid0: 1, pid1: 1}
    pid00, _, _ = alloc.request_pool(L, "10.0.0.0/8")
    assert pid00 == pid0, "the master pool must still exist"
    assert refs(alloc)[pid0] == 2
    alloc.release_pool(pid2)
    assert refs(alloc) == {pid0: 1}
    alloc.release_pool(pid00)
    assert refs(alloc) == {}
    alloc.request_pool(L, "10.0.0.0/8")
    assert refs(alloc) == {pid0: 1}


def test_predefined_pool(alloc: Allocator) -> None:
    with pytest.raises(InvalidAddressSpace):
        alloc.request_pool("blue")
    pid, nw, meta = alloc.request_pool(L)
    assert (pid, nw, meta) == (
        "LocalDefault/172.17.0.0/16",
        ipaddress.ip_network("172.17.0.0/16"),
        {},
    )
    assert alloc.request_pool(L)[1] == ipaddress.ip_network("172.18.0.0/16")
    alloc.release_pool(pid)
    assert alloc.request_pool(L)[1] == ipaddress.ip_network("172.17.0.0/16")


def test_predefined_pools_skip_overlaps_and_run_out(alloc: Allocator) -> None:
    alloc.request_pool(L, "172.19.128.0/17")
    alloc.request_pool(L, "192.168.16.0/24")
    got = [str(alloc.request_pool(L)[1]) for _ in range(29)]
    assert got[:3] == ["172.17.0.0/16", "172.18.0.0/16", "172.20.0.0/16"]
    assert got[13] == "172.31.0.0/16"
    assert got[14:17] == ["192.168.0.0/20", "192.168.32.0/20", "192.168.48.0/20"]
    assert got[-1] == "192.168.240.0/20"
    with pytest.raises(NoAvailablePool):
        alloc.request_pool(L)
    with pytest.raises(NoAvailablePool, match="IPv6"):
        alloc.request_pool(L, v6=True)
    assert [str(alloc.request_pool(G)[1]) for _ in range(3)] == [
        "10.0.0.0/24",
        "10.0.1.0/24",
        "10.0.2.0/24",
    ]


def test_configured_default_pools() -> None:
    a = Allocator(local_pools=[("10.99.0.0/16", 24), ("fd00:1::/48", 64)])
    assert str(a.request_pool(L)[1]) == "10.99.0.0/24"
    assert str(a.request_pool(L, v6=True)[1]) == "fd00:1::/64"
    assert str(a.request_pool(L, v6=True)[1]) == "fd00:1:0:1::/64"
    with pytest.raises(InvalidPool, match="size"):
        Allocator(local_pools=[("10.0.0.0/16", 8)])


def test_remove_subnet(alloc: Allocator) -> None:
    requests = [
        (L, "192.168.0.0/16", False),
        (L, "172.17.0.0/16", False),
        (L, "10.0.0.0/8", False),
        (L, "2001:db8:1:2:3:4:ffff::/112", False),  # an explicit pool's family wins
        (G, "172.17.0.0/16", False),
        (G, "10.0.0.0/8", False),
        (G, "2001:db8:1:2:3:4:5::/112", True),
        (G, "2001:db8:1:2:3:4:ffff::/112", True),
    ]
    ids = [alloc.request_pool(space, pool, v6=v6)[0] for space, pool, v6 in requests]
    assert len(set(ids)) == len(ids)
    for pid in ids:
        alloc.release_pool(pid)
    assert alloc.pools() == []


def test_get_same_address(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "192.168.100.0/24")
    assert alloc.request_address(pid, "192.168.100.250")[0] == ip("192.168.100.250/24")
    with pytest.raises(IPAlreadyAllocated, match=r"192\.168\.100\.250"):
        alloc.request_address(pid, "192.168.100.250")


def test_sub_pool_equal_to_pool(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "172.18.0.0/16", "172.18.0.0/16")
    assert alloc.request_address(pid)[0] == ip("172.18.0.1/16")


def drain(a: Allocator, pid: str) -> list:
    out = []
    while True:
        try:
            out.append(a.request_address(pid)[0])
        except NoAvailableIPs:
            return out


def test_request_release_address_from_sub_pool(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "172.28.0.0/16", "172.28.30.0/24")
    got = drain(alloc, pid)
    # As in libnetwork, a range hands out its own network and broadcast addresses
    # (they are ordinary hosts of the /16).
    assert got[0] == ip("172.28.30.0/16")
    assert got[-1] == ip("172.28.30.255/16")
    assert len(got) == 256
    alloc.release_address(pid, "172.28.30.97")
    assert alloc.request_address(pid)[0] == ip("172.28.30.97/16")

    # libnetwork then requests 10.0.0.0/16 beside a 10.0.0.0/8 parent in the same
    # space and gets it: two bitmasks over the same addresses. pyln refuses the
    # overlap, so the second half uses the other address space.
    alloc.request_pool(L, "10.0.0.0/8", "10.0.0.0/16")
    with pytest.raises(PoolOverlap):
        alloc.request_pool(L, "10.0.0.0/16", "10.0.0.0/24")
    pid, _, _ = alloc.request_pool(G, "10.0.0.0/16", "10.0.0.0/24")
    got = drain(alloc, pid)
    assert got[-1] == ip("10.0.0.255/16")
    alloc.release_address(pid, "10.0.0.79")
    assert alloc.request_address(pid)[0] == ip("10.0.0.79/16")

    pid, _, _ = alloc.request_pool(G, "10.2.0.0/16", "10.2.2.0/24")
    tre = alloc.request_address(pid, "10.2.2.1")[0]
    uno = alloc.request_address(pid)[0]
    due = alloc.request_address(pid)[0]
    assert (tre, uno, due) == (ip("10.2.2.1/16"), ip("10.2.2.0/16"), ip("10.2.2.2/16"))
    alloc.release_address(pid, uno.ip)
    assert alloc.request_address(pid)[0] == uno
    alloc.release_address(pid, tre)
    assert alloc.request_address(pid)[0] == tre


@pytest.mark.parametrize("prefix", range(16, 32))
def test_get_address_fills_pool(prefix: int) -> None:
    a = Allocator()
    pid, nw, _ = a.request_pool(L, f"10.0.0.0/{prefix}")
    got = drain(a, pid)
    usable = max(nw.num_addresses - 2, 0)
    assert len(got) == len(set(got)) == usable
    assert all(g.ip not in (nw.network_address, nw.broadcast_address) for g in got)
    assert a.pools()[0].free == 0


def test_request_syntax_check(alloc: Allocator) -> None:
    with pytest.raises(InvalidAddressSpace):
        alloc.request_pool("", "192.168.0.0/16")
    with pytest.raises(InvalidAddressSpace):
        alloc.request_pool("", "192.168.0.0/16", "192.168.0.0/24")
    with pytest.raises(InvalidSubPool):
        alloc.request_pool(L, "", "192.168.0.0/24")
    pid, _, _ = alloc.request_pool(L, "192.168.0.0/16", "192.168.0.0/24")
    with pytest.raises(InvalidPool):
        alloc.request_address("")
    with pytest.raises(IPOutOfRange):
        alloc.request_address(pid, "172.17.0.23")
    alloc.request_address(pid, "192.168.0.50")
    with pytest.raises(InvalidPool):
        alloc.release_address("", "192.168.0.50")
    with pytest.raises(InvalidRequest):
        alloc.release_address(pid, None)
    alloc.release_address(pid, "192.168.0.50")


@pytest.mark.parametrize(
    ("subnet", "count", "last"),
    [
        ("192.168.59.0/24", 254, "192.168.59.254"),
        ("192.168.240.0/20", 255, "192.168.240.255"),
        ("192.168.0.0/16", 255, "192.168.0.255"),
        ("192.168.0.0/16", 256, "192.168.1.0"),
        ("10.16.0.0/16", 255, "10.16.0.255"),
        ("10.128.0.0/12", 255, "10.128.0.255"),
        ("10.0.0.0/8", 256, "10.0.1.0"),
        ("192.168.128.0/18", 4 * 256 - 1, "192.168.131.255"),
    ],
)
def test_n_requests_last_address(subnet: str, count: int, last: str) -> None:
    a = Allocator()
    pid, _, _ = a.request_pool(L, subnet)
    got = [a.request_address(pid)[0] for _ in range(count)]
    assert str(got[-1].ip) == last


def test_release_then_request_gives_same_address(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "192.168.0.0/23")
    drain(alloc, pid)
    for addr in ["192.168.0.1", "192.168.0.10", "192.168.0.31", "192.168.1.32",
                 "192.168.0.254", "192.168.1.1", "192.168.1.253", "192.168.1.254"]:  # fmt: skip
        alloc.release_address(pid, addr)
        assert alloc.pools()[0].free == 1
        assert str(alloc.request_address(pid)[0].ip) == addr


@pytest.mark.parametrize("sub_pool", ["", "172.25.252.0/22"])
def test_allocate_random_deallocate(tmp_path: Path, sub_pool: str) -> None:
    a = Allocator(SQLiteStore(tmp_path / "kv.db"))
    pid, _, _ = a.request_pool(L, "172.25.0.0/16", sub_pool)
    got = [a.request_address(pid)[0] for _ in range(384)]
    assert len(set(got)) == 384
    rng = random.Random(7)
    freed = rng.sample(got, 192)
    for addr in freed:
        a.release_address(pid, addr)
    again = [a.request_address(pid)[0] for _ in range(192)]
    assert set(again) == set(freed)
    b = Allocator(SQLiteStore(tmp_path / "kv.db"))
    assert b.bitmask(pid) == a.bitmask(pid)
    assert all(b.in_use(pid, x) for x in got)


def test_retrieve_from_store(tmp_path: Path) -> None:
    a = Allocator(SQLiteStore(tmp_path / "l.db"), SQLiteStore(tmp_path / "g.db", "global"))
    ids = [
        a.request_pool(L)[0],
        a.request_pool(L, "172.25.0.0/16", "172.25.3.0/24")[0],
        a.request_pool(G)[0],
        a.request_pool(L, "2001:db8::/64", v6=True)[0],
    ]
    for pid in ids:
        for _ in range(40):
            a.request_address(pid)
        a.release_address(pid, a.request_address(pid)[0])
    b = Allocator(SQLiteStore(tmp_path / "l.db"), SQLiteStore(tmp_path / "g.db", "global"))
    assert b.pools() == a.pools()
    for pid in ids:
        assert b.bitmask(pid) == a.bitmask(pid)
    # and both continue from the same state
    assert b.request_address(ids[0])[0] == ip("172.17.0.41/16")
    with pytest.raises(IPAlreadyAllocated):
        a.request_address(ids[0], "172.17.0.41")


def test_parallel_predefined_requests() -> None:
    a = Allocator()
    got: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            nw = a.request_pool(L)[1]
            with lock:
                got.append(str(nw))

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == len(set(got)) == 20


# -- beyond the Go tests ------------------------------------------------------------


def test_serial_allocation(alloc: Allocator) -> None:
    serial = {ALLOC_SERIAL: "true"}
    pid, _, _ = alloc.request_pool(L, "10.1.0.0/24")
    first = [alloc.request_address(pid, options=serial)[0] for _ in range(3)]
    assert [str(x.ip) for x in first] == ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    alloc.release_address(pid, "10.1.0.2")
    assert str(alloc.request_address(pid, options=serial)[0].ip) == "10.1.0.4"
    # A gateway request takes the lowest free address even in serial mode.
    gw = {ALLOC_SERIAL: "true", REQUEST_ADDRESS_TYPE: GATEWAY}
    assert str(alloc.request_address(pid, options=gw)[0].ip) == "10.1.0.2"
    # Without the option, the lowest free address.
    alloc.release_address(pid, "10.1.0.1")
    assert str(alloc.request_address(pid)[0].ip) == "10.1.0.1"


def test_serial_wraps_around() -> None:
    a = Allocator()
    serial = {ALLOC_SERIAL: "true"}
    pid, _, _ = a.request_pool(L, "10.1.0.0/29")
    got = [str(a.request_address(pid, options=serial)[0].ip) for _ in range(6)]
    assert got == [f"10.1.0.{i}" for i in range(1, 7)]
    a.release_address(pid, "10.1.0.3")
    assert str(a.request_address(pid, options=serial)[0].ip) == "10.1.0.3"


def test_serial_cursor_survives_reopen(tmp_path: Path) -> None:
    serial = {ALLOC_SERIAL: "true"}
    a = Allocator(SQLiteStore(tmp_path / "kv.db"))
    pid, _, _ = a.request_pool(L, "10.1.0.0/24")
    for _ in range(5):
        a.request_address(pid, options=serial)
    a.release_address(pid, "10.1.0.2")
    b = Allocator(SQLiteStore(tmp_path / "kv.db"))
    assert str(b.request_address(pid, options=serial)[0].ip) == "10.1.0.6"


def test_ipv6_slash_64_is_exact(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "2001:db8:5::/64", v6=True)
    assert alloc.bitmask(pid).bits == 2**64
    assert alloc.request_address(pid)[0] == ip("2001:db8:5::1/64")
    top = "2001:db8:5:0:ffff:ffff:ffff:ffff"
    assert alloc.request_address(pid, top)[0] == ip(top + "/64")
    with pytest.raises(IPAlreadyAllocated):
        alloc.request_address(pid, top)
    alloc.release_address(pid, top)
    assert not alloc.in_use(pid, top)
    # no IPv6 broadcast: the last address is an ordinary host; ::0 stays reserved
    with pytest.raises(IPAlreadyAllocated):
        alloc.request_address(pid, "2001:db8:5::")


def test_pools_above_two_to_the_64_are_refused(alloc: Allocator) -> None:
    with pytest.raises(InvalidPool, match="2\\^64"):
        alloc.request_pool(L, "2001:db8::/48", v6=True)
    with pytest.raises(InvalidPool):
        alloc.request_pool(L, "2001:db8::/63", "2001:db8::/64", v6=True)
    assert alloc.pools() == []


def test_reserved_addresses(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "10.9.0.0/24")
    for reserved in ("10.9.0.0", "10.9.0.255"):
        with pytest.raises(IPAlreadyAllocated):
            alloc.request_address(pid, reserved)
        with pytest.raises(InvalidRequest, match="reserved"):
            alloc.release_address(pid, reserved)
        assert alloc.in_use(pid, reserved)


@pytest.mark.parametrize("prefix", [31, 32])
def test_tiny_pools_have_no_addresses(prefix: int) -> None:
    a = Allocator()
    pid, _, _ = a.request_pool(L, f"10.9.0.0/{prefix}")
    with pytest.raises(NoAvailableIPs):
        a.request_address(pid)


def test_errors_are_typed(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "10.9.0.0/24")
    cases = [
        (lambda: alloc.request_pool(L, "not-a-cidr"), InvalidPool, errors.BadRequest),
        (lambda: alloc.request_pool(L, "10.9.0.0"), InvalidPool, errors.BadRequest),
        (lambda: alloc.request_pool(L, "10.8.0.0/16", "10.9.1.0/24"), InvalidSubPool, None),
        (lambda: alloc.request_pool(L, "10.9.0.0/16"), PoolOverlap, errors.Forbidden),
        (lambda: alloc.request_address("LocalDefault/10.7.0.0/16"), PoolNotFound, errors.NotFound),
        (lambda: alloc.request_address("Nowhere/10.7.0.0/16"), PoolNotFound, errors.NotFound),
        (lambda: alloc.request_address(pid, "10.9.1.1"), IPOutOfRange, errors.BadRequest),
        (lambda: alloc.request_address(pid, "2001:db8::1"), IPOutOfRange, None),
        (lambda: alloc.request_address(pid, "bogus"), InvalidRequest, None),
        (lambda: alloc.release_address(pid, "10.9.1.1"), IPOutOfRange, None),
        (lambda: alloc.release_pool("LocalDefault/10.7.0.0/16"), BadPool, errors.BadRequest),
        (lambda: alloc.release_pool("garbage"), InvalidPool, None),
    ]
    for call, exc, family in cases:
        with pytest.raises(exc) as info:
            call()
        if family is not None:
            assert isinstance(info.value, family)
    # nothing was stored by the failed calls
    assert [p.pool_id for p in alloc.pools()] == [pid]
    assert alloc.pools()[0].free == 254


def test_full_pool_errors(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "10.9.0.0/30")
    drain(alloc, pid)
    with pytest.raises(NoAvailableIPs) as info:
        alloc.request_address(pid)
    assert isinstance(info.value, errors.NoService)
    assert alloc.get_default_address_spaces() == ("LocalDefault", "GlobalDefault")


def test_release_of_free_address_is_a_noop(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "10.9.0.0/24")
    alloc.release_address(pid, "10.9.0.7")
    assert alloc.pools()[0].free == 254


def test_released_pool_is_gone(alloc: Allocator) -> None:
    pid, _, _ = alloc.request_pool(L, "10.9.0.0/24")
    alloc.request_address(pid)
    alloc.release_pool(pid)
    with pytest.raises(PoolNotFound):
        alloc.request_address(pid)
    pid2, _, _ = alloc.request_pool(L, "10.9.0.0/24")
    assert pid2 == pid
    assert str(alloc.request_address(pid)[0].ip) == "10.9.0.1", "a new pool starts empty"


def test_master_cannot_be_released_from_under_its_sub_pools(alloc: Allocator) -> None:
    sub, _, _ = alloc.request_pool(L, "10.5.0.0/16", "10.5.1.0/24")
    master = str(SubnetKey.parse(sub).parent)
    with pytest.raises(InvalidRequest, match="sub-pools"):
        alloc.release_pool(master)  # never requested directly: the sub-pool holds it
    assert alloc.request_address(sub)[0] == ip("10.5.1.0/16")
    alloc.release_pool(sub)
    assert alloc.pools() == []
