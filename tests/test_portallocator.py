"""Host port allocation: libnetwork's portallocator behaviour, restated, plus the
wildcard-address conflicts pyln adds and its typed errors."""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path

import pytest

from pyln.errors import BadRequest, Forbidden, NoService
from pyln.portmapper import (
    DEFAULT_RANGE,
    AllPortsAllocated,
    InvalidPortRange,
    PortAllocator,
    PortAlreadyAllocated,
    UnknownProtocol,
    ephemeral_range,
)
from pyln.portmapper.errors import InvalidHostIP

ANY = "0.0.0.0"


@pytest.fixture
def pa() -> PortAllocator:
    return PortAllocator()


def test_default_range_is_the_kernels_ephemeral_range(pa: PortAllocator) -> None:
    fields = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    assert (pa.begin, pa.end) == (int(fields[0]), int(fields[1]))


@pytest.mark.parametrize("content", [None, "", "garbage", "5000", "6000\t5000", "0\t10", "1 2 3"])
def test_unreadable_or_invalid_range_falls_back(tmp_path: Path, content: str | None) -> None:
    f = tmp_path / "range"
    if content is not None:
        f.write_text(content)
    assert ephemeral_range(f) == DEFAULT_RANGE == (49153, 65535)


def test_ephemeral_range_parses_tab_or_spaces(tmp_path: Path) -> None:
    f = tmp_path / "range"
    f.write_text("32768\t60999\n")
    assert ephemeral_range(f) == (32768, 60999)
    f.write_text("1024   2048")
    assert ephemeral_range(f) == (1024, 2048)


def test_request_new_port_is_the_first_of_the_range(pa: PortAllocator) -> None:
    assert pa.request_port(ANY, "tcp", 0) == pa.begin
    assert pa.request_port(ANY, "tcp") == pa.begin + 1


def test_request_specific_port_even_outside_the_range(pa: PortAllocator) -> None:
    assert pa.request_port(ANY, "tcp", 5000) == 5000
    assert pa.in_use(ANY, "tcp", 5000)


def test_release_and_reuse(pa: PortAllocator) -> None:
    assert pa.request_port(ANY, "tcp", 5000) == 5000
    pa.release_port(ANY, "tcp", 5000)
    assert not pa.in_use(ANY, "tcp", 5000)
    assert pa.request_port(ANY, "tcp", 5000) == 5000


def test_releasing_what_is_not_held_does_nothing(pa: PortAllocator) -> None:
    pa.release_port("192.168.0.9", "udp", 1234)
    pa.request_port(ANY, "tcp", 5000)
    pa.release_port(ANY, "udp", 5000)
    assert pa.in_use(ANY, "tcp", 5000)


def test_double_request_is_a_typed_error_naming_the_port(pa: PortAllocator) -> None:
    pa.request_port(ANY, "tcp", 5000)
    with pytest.raises(PortAlreadyAllocated) as ei:
        pa.request_port(ANY, "tcp", 5000)
    err = ei.value
    assert isinstance(err, Forbidden)
    assert (err.ip, err.proto, err.port) == (ANY, "tcp", 5000)
    assert "0.0.0.0:5000" in str(err) and "tcp" in str(err)


@pytest.mark.parametrize("proto", ["tcpp", "TCP", "", "icmp"])
def test_unknown_protocol(pa: PortAllocator, proto: str) -> None:
    with pytest.raises(UnknownProtocol) as ei:
        pa.request_port(ANY, proto, 0)
    assert isinstance(ei.value, BadRequest)


def test_sctp_is_a_protocol(pa: PortAllocator) -> None:
    assert pa.request_port(ANY, "sctp", 0) == pa.begin


def test_allocate_all_ports_then_wrap_around() -> None:
    pa = PortAllocator()
    size = pa.end - pa.begin + 1
    for i in range(size):
        assert pa.request_port(ANY, "tcp", 0) == pa.begin + i
    with pytest.raises(AllPortsAllocated) as ei:
        pa.request_port(ANY, "tcp", 0)
    assert isinstance(ei.value, NoService)
    # Another protocol has its own table.
    assert pa.request_port(ANY, "udp", 0) == pa.begin
    # A released port in the middle is found again.
    middle = pa.begin + 5
    pa.release_port(ANY, "tcp", middle)
    assert pa.request_port(ANY, "tcp", 0) == middle
    # The last port handed out, once it is the only free one, is found again too.
    pa.release_port(ANY, "tcp", middle)
    assert pa.request_port(ANY, "tcp", 0) == middle


def test_release_all_restarts_from_the_beginning() -> None:
    pa = PortAllocator(20000, 20009)
    for i in range(10):
        assert pa.request_port(ANY, "tcp") == 20000 + i
    pa.release_all()
    assert not pa.in_use(ANY, "tcp", 20003)
    assert pa.request_port(ANY, "tcp") == 20000


def test_round_robin_does_not_reuse_a_just_released_port() -> None:
    pa = PortAllocator(30000, 30009)
    first = pa.request_port(ANY, "tcp")
    pa.release_port(ANY, "tcp", first)
    assert pa.request_port(ANY, "tcp") == first + 1


def test_port_allocation_per_address(pa: PortAllocator) -> None:
    ip, ip2 = "192.168.0.1", ipaddress.ip_address("192.168.0.2")
    assert pa.request_port(ip, "tcp", 80) == 80
    port = pa.request_port(ip, "tcp", 0)
    assert port > 0
    with pytest.raises(PortAlreadyAllocated):
        pa.request_port(ip, "tcp", port)
    assert pa.request_port(ip, "tcp", 0) != port
    with pytest.raises(PortAlreadyAllocated):
        pa.request_port(ip, "tcp", 80)
    assert pa.request_port(ip2, "tcp", 80) == 80  # another address
    with pytest.raises(PortAlreadyAllocated):
        pa.request_port(ip2, "tcp", 80)
    pa.release_port(ip, "tcp", 80)
    assert pa.request_port(ip, "tcp", 80) == 80
    # A dynamic request never hands out a port taken explicitly.
    port = pa.request_port(ip, "tcp", 0)
    port2 = pa.request_port(ip, "tcp", port + 1)
    assert pa.request_port(ip, "tcp", 0) != port2


def test_custom_ranges(pa: PortAllocator) -> None:
    start, end = 8081, 8082
    port1 = pa.request_port_in_range(ANY, "tcp", 0, 0)
    for bad in [(0, end), (start, 0), (8081, 8080), (-1, 10), (60000, 70000)]:
        with pytest.raises(InvalidPortRange) as ei:
            pa.request_port_in_range(ANY, "tcp", *bad)
        assert isinstance(ei.value, BadRequest)
    assert pa.request_port_in_range(ANY, "tcp", 8000, 8000) == 8000
    port2 = pa.request_port_in_range(ANY, "tcp", start, end)
    assert start <= port2 <= end
    port3 = pa.request_port_in_range(ANY, "tcp", 0, 0)
    assert port3 > port1
    port4 = pa.request_port_in_range(ANY, "tcp", start, end)
    assert start <= port4 <= end and port4 != port2
    with pytest.raises(AllPortsAllocated):
        pa.request_port_in_range(ANY, "tcp", start, end)


def test_dynamic_request_skips_an_explicitly_taken_first_port(pa: PortAllocator) -> None:
    assert pa.request_port(ANY, "tcp", pa.begin) == pa.begin
    assert pa.request_port(ANY, "tcp", 0) != pa.begin


@pytest.mark.parametrize("port", [-1, 65536, 100000])
def test_specific_port_out_of_bounds(pa: PortAllocator, port: int) -> None:
    with pytest.raises(InvalidPortRange):
        pa.request_port(ANY, "tcp", port)


def test_invalid_default_range() -> None:
    with pytest.raises(InvalidPortRange):
        PortAllocator(2000, 1000)
    with pytest.raises(InvalidPortRange):
        PortAllocator(1000, None)
    with pytest.raises(InvalidPortRange):
        PortAllocator(0, 10)


@pytest.mark.parametrize("ip", ["not-an-ip", "300.1.1.1", "10.0.0.0/8"])
def test_invalid_host_address(pa: PortAllocator, ip: str) -> None:
    with pytest.raises(InvalidHostIP) as ei:
        pa.request_port(ip, "tcp", 80)
    assert isinstance(ei.value, BadRequest)


def test_none_means_the_ipv4_wildcard(pa: PortAllocator) -> None:
    pa.request_port(None, "tcp", 80)
    assert pa.in_use(ANY, "tcp", 80)
    pa.release_port(ipaddress.IPv4Address(ANY), "tcp", 80)
    assert not pa.in_use(None, "tcp", 80)


# -- departures from libnetwork: wildcard conflicts, as the kernel has them ----------


def test_wildcard_blocks_specific_addresses(pa: PortAllocator) -> None:
    pa.request_port(ANY, "tcp", 8080)
    with pytest.raises(PortAlreadyAllocated) as ei:
        pa.request_port("10.1.2.3", "tcp", 8080)
    assert ei.value.ip == "10.1.2.3" and ei.value.holder == ANY
    assert "held on 0.0.0.0" in str(ei.value)
    assert pa.in_use("127.0.0.1", "tcp", 8080)
    # Other protocols and the other family are unaffected.
    assert pa.request_port("10.1.2.3", "udp", 8080) == 8080
    assert pa.request_port("fd00::1", "tcp", 8080) == 8080
    pa.release_port(ANY, "tcp", 8080)
    assert pa.request_port("10.1.2.3", "tcp", 8080) == 8080


def test_specific_address_blocks_the_wildcard(pa: PortAllocator) -> None:
    pa.request_port("10.1.2.3", "tcp", 8080)
    pa.request_port("10.1.2.4", "tcp", 8080)
    with pytest.raises(PortAlreadyAllocated) as ei:
        pa.request_port(ANY, "tcp", 8080)
    assert ei.value.holder in {"10.1.2.3", "10.1.2.4"}
    pa.release_port("10.1.2.3", "tcp", 8080)
    assert pa.in_use(ANY, "tcp", 8080)  # 10.1.2.4 still holds it
    pa.release_port("10.1.2.4", "tcp", 8080)
    assert pa.request_port(ANY, "tcp", 8080) == 8080


def test_ipv6_wildcard_and_mapped_addresses(pa: PortAllocator) -> None:
    pa.request_port("::", "udp", 53)
    with pytest.raises(PortAlreadyAllocated):
        pa.request_port("fd00::53", "udp", 53)
    assert pa.request_port(ANY, "udp", 53) == 53  # v6-only: IPv4 is separate
    # An IPv4-mapped address is the IPv4 address.
    with pytest.raises(PortAlreadyAllocated):
        pa.request_port("::ffff:10.0.0.1", "udp", 53)


def test_dynamic_ports_avoid_wildcard_conflicts() -> None:
    pa = PortAllocator(40000, 40004)
    pa.request_port("10.0.0.1", "tcp", 40000)
    pa.request_port("10.0.0.2", "tcp", 40001)
    assert pa.request_port(ANY, "tcp") == 40002
    # The wildcard now holds 40002: a specific address gets the next one it can bind.
    assert pa.request_port("10.0.0.1", "tcp") == 40001
    assert pa.request_port("10.0.0.1", "tcp") == 40003


def test_thread_safety() -> None:
    pa = PortAllocator(41000, 41999)
    got: list[list[int]] = [[] for _ in range(8)]

    def take(i: int) -> None:
        for _ in range(125):
            got[i].append(pa.request_port(ANY, "tcp"))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ports = [p for chunk in got for p in chunk]
    assert sorted(ports) == list(range(41000, 42000))
    with pytest.raises(AllPortsAllocated):
        pa.request_port(ANY, "tcp")
