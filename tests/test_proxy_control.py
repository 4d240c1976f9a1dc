"""The proxy's control protocol fed arbitrary input (no process, no kernel objects):
every request line gets a well-formed reply and nothing raises. Requests that
would bind are turned into bind failures by using an address no interface has
(192.0.2.1, TEST-NET-1), so the fuzzer never opens a port."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import socket
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pyln.portmapper.proxy import Proxy

KINDS = {"bind", "bad_request", "not_found", "internal"}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=40)
)
fields = st.fixed_dictionaries(
    {},
    optional={
        "op": st.one_of(st.sampled_from(["add", "adopt", "remove", "list", "ping"]), scalars),
        "proto": st.one_of(st.sampled_from(["tcp", "udp", "sctp"]), scalars),
        "host_ip": st.one_of(st.sampled_from(["192.0.2.1", "::ffff:192.0.2.1", "x"]), scalars),
        "host_port": st.one_of(st.integers(-5, 70000), scalars),
        "backend_ip": st.one_of(st.sampled_from(["10.0.0.2", "::1"]), scalars),
        "backend_port": st.one_of(st.integers(-5, 70000), scalars),
    },
)
lines = st.one_of(
    st.binary(max_size=200),
    fields.map(lambda d: json.dumps(d).encode()),
    st.recursive(scalars, lambda c: st.lists(c, max_size=3)).map(lambda v: json.dumps(v).encode()),
)


def _check(reply: dict[str, Any]) -> None:
    assert isinstance(reply, dict)
    if reply["ok"] is not True:
        assert reply["ok"] is False and reply["kind"] in KINDS and reply["error"], reply
        assert reply["kind"] != "internal", reply
    json.dumps(reply)  # serialisable as the reply line


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, min_size=1, max_size=8), st.integers(0, 3))
def test_any_request_gets_a_well_formed_reply(reqs: list[bytes], passed: int) -> None:
    async def run() -> None:
        proxy = Proxy(udp_timeout=1.0, connect_timeout=1.0)
        # Some requests come with descriptors (adopt takes one each): plain sockets
        # bound nowhere, which adopt must refuse and close.
        fds: collections.deque[int] = collections.deque(
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM).detach() for _ in range(passed)
        )
        try:
            for line in reqs:
                _check(await proxy.dispatch(line, fds))
            assert proxy.forwards == {}
        finally:
            proxy.close_all()
            while fds:
                os.close(fds.popleft())

    asyncio.run(run())
