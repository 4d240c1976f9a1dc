"""/etc/resolv.conf handling, restating libnetwork's resolvconf tests (the same
tables of inputs and expected outputs) plus in-place writes and typed errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyln.errors import NotFound
from pyln.osl import resolvconf
from pyln.osl.resolvconf import IP, IPV4, IPV6, ResolvConfNotFound


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            "\nnameserver 1.2.3.4\nnameserver 40.3.200.10\nsearch example.com",
            ["1.2.3.4", "40.3.200.10"],
        ),
        ("search example.com", []),
        (
            "nameserver 1.2.3.4\nsearch example.com\nnameserver 4.30.20.100",
            ["1.2.3.4", "4.30.20.100"],
        ),
        ("", []),
        ("  nameserver 1.2.3.4   ", ["1.2.3.4"]),
        ("search example.com\nnameserver 1.2.3.4\n#nameserver 4.3.2.1", ["1.2.3.4"]),
        ("search example.com\nnameserver 1.2.3.4 # not 4.3.2.1", ["1.2.3.4"]),
    ],
)
def test_get_nameservers(content: str, expected: list[str]) -> None:
    assert resolvconf.get_nameservers(content, IP) == expected
    assert resolvconf.get_nameservers_as_cidr(content) == [f"{ns}/32" for ns in expected]


def test_get_nameservers_by_family() -> None:
    content = "nameserver 10.210.0.53\nnameserver fd10:210::53\nnameserver 2001:db8::1\n"
    assert resolvconf.get_nameservers(content) == ["10.210.0.53", "fd10:210::53", "2001:db8::1"]
    assert resolvconf.get_nameservers(content, IPV4) == ["10.210.0.53"]
    assert resolvconf.get_nameservers(content, IPV6) == ["fd10:210::53", "2001:db8::1"]
    assert resolvconf.get_nameservers_as_cidr(content) == [
        "10.210.0.53/32",
        "fd10:210::53/128",
        "2001:db8::1/128",
    ]
    with pytest.raises(ValueError, match="kind"):
        resolvconf.get_nameservers(content, 7)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("search example.com", ["example.com"]),
        ("search example.com # ignored", ["example.com"]),
        ("\t  search\t example.com\t  ", ["example.com"]),
        ("\t  search\t example.com\t  # ignored", ["example.com"]),
        ("search foo.example.com example.com", ["foo.example.com", "example.com"]),
        ("\t   search\t   foo.example.com\t example.com\t", ["foo.example.com", "example.com"]),
        (
            "\t   search\t   foo.example.com\t example.com\t# ignored",
            ["foo.example.com", "example.com"],
        ),
        ("", []),
        ("# ignored", []),
        (
            "nameserver 1.2.3.4\nsearch foo.example.com example.com",
            ["foo.example.com", "example.com"],
        ),
        (
            "nameserver 1.2.3.4\nsearch dup1.example.com dup2.example.com\n"
            "search foo.example.com example.com",
            ["foo.example.com", "example.com"],
        ),
        (
            "nameserver 1.2.3.4\nsearch foo.example.com example.com\nnameserver 4.30.20.100",
            ["foo.example.com", "example.com"],
        ),
    ],
)
def test_get_search_domains(content: str, expected: list[str]) -> None:
    assert resolvconf.get_search_domains(content) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("options opt1", ["opt1"]),
        ("options opt1 # ignored", ["opt1"]),
        ("\t  options\t opt1\t  ", ["opt1"]),
        ("\t  options\t opt1\t  # ignored", ["opt1"]),
        ("options opt1 opt2 opt3", ["opt1", "opt2", "opt3"]),
        ("options opt1 opt2 opt3 # ignored", ["opt1", "opt2", "opt3"]),
        ("\t   options\t opt1\t opt2\t opt3\t", ["opt1", "opt2", "opt3"]),
        ("\t   options\t opt1\t opt2\t opt3\t# ignored", ["opt1", "opt2", "opt3"]),
        ("", []),
        ("# ignored", []),
        ("nameserver 1.2.3.4", []),
        ("nameserver 1.2.3.4\noptions opt1 opt2 opt3", ["opt1", "opt2", "opt3"]),
        ("nameserver 1.2.3.4\noptions opt1 opt2\noptions opt3 opt4", ["opt3", "opt4"]),
    ],
)
def test_get_options(content: str, expected: list[str]) -> None:
    assert resolvconf.get_options(content) == expected


def test_build(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    resolvconf.build(path, ["ns1", "ns2", "ns3"], ["search1"], ["opt1"])
    assert path.read_text() == (
        "search search1\nnameserver ns1\nnameserver ns2\nnameserver ns3\noptions opt1\n"
    )
    assert path.stat().st_mode & 0o777 == 0o644


def test_build_with_zero_length_domain_search(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    resolvconf.build(path, ["ns1", "ns2", "ns3"], ["."], ["opt1"])
    assert path.read_text() == "nameserver ns1\nnameserver ns2\nnameserver ns3\noptions opt1\n"


def test_build_with_no_options(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    resolvconf.build(path, ["ns1", "ns2", "ns3"], ["search1"], [])
    assert path.read_text() == "search search1\nnameserver ns1\nnameserver ns2\nnameserver ns3\n"


def test_build_rewrites_in_place(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    resolvconf.build(path, ["10.210.0.53"], [], [])
    inode = path.stat().st_ino
    resolvconf.build(path, ["10.210.0.54"], ["example.com"], ["ndots:0"])
    assert path.stat().st_ino == inode
    assert path.read_text() == "search example.com\nnameserver 10.210.0.54\noptions ndots:0\n"


NS0 = "nameserver 10.16.60.14\nnameserver 10.16.60.21\n"


@pytest.mark.parametrize(
    ("content", "ipv6", "expected"),
    [
        (NS0, False, NS0),
        ("nameserver 10.16.60.14\nnameserver 10.16.60.21\nnameserver 127.0.0.1\n", False, NS0),
        ("nameserver 10.16.60.14\nnameserver 127.0.0.1\nnameserver 10.16.60.21\n", False, NS0),
        ("nameserver 127.0.1.1\nnameserver 10.16.60.14\nnameserver 10.16.60.21\n", False, NS0),
        (
            "nameserver ::1\nnameserver 10.16.60.14\nnameserver 127.0.2.1\n"
            "nameserver 10.16.60.21\n",
            False,
            NS0,
        ),
        (
            "nameserver 10.16.60.14\nnameserver ::1\nnameserver 10.16.60.21\nnameserver ::1",
            False,
            NS0,
        ),
        # Without IPv6, IPv6 nameservers go too.
        (
            "nameserver 10.16.60.14\nnameserver 2002:dead:beef::1\nnameserver 10.16.60.21\n"
            "nameserver ::1",
            False,
            NS0,
        ),
        # With IPv6 they stay.
        (
            "nameserver 10.16.60.14\nnameserver 2002:dead:beef::1\nnameserver 10.16.60.21\n"
            "nameserver ::1",
            True,
            "nameserver 10.16.60.14\nnameserver 2002:dead:beef::1\nnameserver 10.16.60.21\n",
        ),
        # Nothing left: the public defaults, IPv6 ones only with IPv6.
        (
            "nameserver 127.0.0.1\nnameserver ::1\nnameserver 127.0.2.1",
            True,
            "\nnameserver 8.8.8.8\nnameserver 8.8.4.4"
            "\nnameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844",
        ),
        (
            "nameserver 127.0.0.1\nnameserver ::1\nnameserver 127.0.2.1",
            False,
            "\nnameserver 8.8.8.8\nnameserver 8.8.4.4",
        ),
    ],
)
def test_filter_resolv_dns(content: str, ipv6: bool, expected: str) -> None:
    assert resolvconf.filter_resolv_dns(content, ipv6) == expected


def test_filter_keeps_search_and_options() -> None:
    content = "search example.com\nnameserver 127.0.0.53\noptions edns0 trust-ad\n"
    filtered = resolvconf.filter_resolv_dns(content, False)
    assert resolvconf.get_search_domains(filtered) == ["example.com"]
    assert resolvconf.get_options(filtered) == ["edns0", "trust-ad"]
    assert resolvconf.get_nameservers(filtered) == ["8.8.8.8", "8.8.4.4"]


def test_is_localhost() -> None:
    assert resolvconf.is_localhost("127.0.0.1")
    assert resolvconf.is_localhost("127.0.0.53")
    assert resolvconf.is_localhost("::1")
    assert not resolvconf.is_localhost("10.210.0.53")
    assert not resolvconf.is_localhost("fd10:210::1")


def test_read(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(NS0)
    assert resolvconf.read(path) == NS0
    assert resolvconf.content_hash(NS0).startswith("sha256:")
    with pytest.raises(ResolvConfNotFound, match="missing") as exc:
        resolvconf.read(tmp_path / "missing")
    assert isinstance(exc.value, NotFound)
