"""/etc/hosts handling, restating libnetwork's etchosts tests (same inputs, same
expected bytes) plus in-place writes and typed errors."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from pyln.errors import NotFound
from pyln.osl import etchosts
from pyln.osl.etchosts import HostsFileNotFound, Record

DEFAULT = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    return tmp_path / "hosts"


def test_build_default_is_stable(hosts: Path) -> None:
    for _ in range(6):
        etchosts.build(hosts, "", "", "", [])
        assert hosts.read_text() == DEFAULT
    assert hosts.stat().st_mode & 0o777 == 0o644


def test_build_hostname_and_domainname(hosts: Path) -> None:
    etchosts.build(hosts, "10.11.12.13", "testhostname", "testdomainname", [])
    assert hosts.read_text() == (
        "10.11.12.13\ttesthostname.testdomainname testhostname\n" + DEFAULT
    )


def test_build_hostname(hosts: Path) -> None:
    etchosts.build(hosts, "10.11.12.13", "testhostname", "", [])
    assert "10.11.12.13\ttesthostname\n" in hosts.read_text()


def test_build_fqdn_in_hostname(hosts: Path) -> None:
    etchosts.build(hosts, "10.11.12.13", "testhostname.testdomainname.com", "", [])
    assert "10.11.12.13\ttesthostname.testdomainname.com testhostname\n" in hosts.read_text()


def test_build_without_ip_has_no_main_record(hosts: Path) -> None:
    etchosts.build(hosts, "", "testhostname", "", [])
    assert hosts.read_text() == DEFAULT


def test_build_extra_records_last(hosts: Path) -> None:
    etchosts.build(hosts, "", "", "", [Record("db", "10.210.0.5"), Record("cache", "10.210.0.6")])
    assert hosts.read_text() == DEFAULT + "10.210.0.5\tdb\n10.210.0.6\tcache\n"


def test_update(hosts: Path) -> None:
    etchosts.build(hosts, "10.11.12.13", "testhostname", "testdomainname", [])
    etchosts.update(hosts, "1.1.1.1", "testhostname")
    content = hosts.read_text()
    assert "1.1.1.1\ttesthostname.testdomainname testhostname\n" in content
    assert "10.11.12.13" not in content


def test_update_ignores_prefixed_hostname(hosts: Path) -> None:
    """libnetwork issue #603: updating "prefix" must not touch "prefixAndMore"."""
    etchosts.build(
        hosts,
        "10.11.12.13",
        "testhostname",
        "testdomainname",
        [
            Record("prefix", "2.2.2.2"),
            Record("prefixAndMore", "3.3.3.3"),
            Record("unaffectedHost", "4.4.4.4"),
        ],
    )
    assert "2.2.2.2\tprefix\n3.3.3.3\tprefixAndMore\n4.4.4.4\tunaffectedHost\n" in (
        hosts.read_text()
    )
    etchosts.update(hosts, "5.5.5.5", "prefix")
    assert "5.5.5.5\tprefix\n3.3.3.3\tprefixAndMore\n4.4.4.4\tunaffectedHost\n" in (
        hosts.read_text()
    )


def test_delete_ignores_prefixed_hostname(hosts: Path) -> None:
    etchosts.build(hosts, "", "", "", [])
    etchosts.add(hosts, [Record("prefix", "1.1.1.1"), Record("prefixAndMore", "2.2.2.2")])
    etchosts.delete(hosts, [Record("prefix", "1.1.1.1")])
    content = hosts.read_text()
    assert "2.2.2.2\tprefixAndMore\n" in content
    assert "1.1.1.1\tprefix\n" not in content


def test_add_and_add_empty(hosts: Path) -> None:
    etchosts.build(hosts, "", "", "", [])
    etchosts.add(hosts, [])
    assert hosts.read_text() == DEFAULT
    etchosts.add(hosts, [Record("testhostname", "2.2.2.2")])
    assert hosts.read_text() == DEFAULT + "2.2.2.2\ttesthostname\n"


def test_delete_empty_and_blank_file(hosts: Path) -> None:
    etchosts.build(hosts, "", "", "", [])
    etchosts.delete(hosts, [])
    assert hosts.read_text() == DEFAULT
    hosts.write_text("\n")
    etchosts.delete(hosts, [Record("prefix", "2.2.2.2")])
    assert hosts.read_text() == ""


def test_delete(hosts: Path) -> None:
    etchosts.build(hosts, "", "", "", [])
    etchosts.add(
        hosts,
        [
            Record("testhostname1", "1.1.1.1"),
            Record("testhostname2", "2.2.2.2"),
            Record("testhostname3", "3.3.3.3"),
        ],
    )
    etchosts.delete(hosts, [Record("testhostname1", "1.1.1.1"), Record("testhostname3", "3.3.3.3")])
    assert hosts.read_text() == DEFAULT + "2.2.2.2\ttesthostname2\n"


def test_delete_keeps_comments(hosts: Path) -> None:
    hosts.write_text("# managed by pyln\n\n10.210.0.2\tweb\n10.210.0.3\tdb\n")
    etchosts.delete(hosts, [Record("web", "")])
    assert hosts.read_text() == "# managed by pyln\n10.210.0.3\tdb\n"


def test_concurrent_writes(hosts: Path) -> None:
    etchosts.build(hosts, "", "", "", [])
    etchosts.add(hosts, [Record("inithostname", "172.17.0.1")])
    errors: list[BaseException] = []

    def churn(i: int) -> None:
        rec = [Record(f"testhostname{i}", f"{i}.{i}.{i}.{i}")]
        try:
            for _ in range(25):
                etchosts.add(hosts, rec)
                etchosts.delete(hosts, rec)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=churn, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert hosts.read_text() == DEFAULT + "172.17.0.1\tinithostname\n"


def test_writes_in_place(hosts: Path) -> None:
    """A bind-mounted hosts file must keep its inode across every change."""
    etchosts.build(hosts, "10.210.0.2", "web", "", [])
    inode = hosts.stat().st_ino
    etchosts.add(hosts, [Record("db", "10.210.0.3")])
    etchosts.update(hosts, "10.210.0.9", "web")
    etchosts.delete(hosts, [Record("db", "10.210.0.3")])
    etchosts.build(hosts, "10.210.0.2", "web", "", [])
    assert hosts.stat().st_ino == inode


def test_missing_file_is_not_found(hosts: Path) -> None:
    calls: list[Callable[[], None]] = [
        lambda: etchosts.add(hosts, [Record("a", "10.210.0.1")]),
        lambda: etchosts.delete(hosts, [Record("a", "10.210.0.1")]),
        lambda: etchosts.update(hosts, "10.210.0.1", "a"),
    ]
    for call in calls:
        with pytest.raises(HostsFileNotFound, match=re.escape(os.fspath(hosts))) as exc:
            call()
        assert isinstance(exc.value, NotFound)
    etchosts.drop(hosts)
