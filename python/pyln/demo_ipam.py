"""`pyln demo ipam`: IPAM on the embedded SQLite store. Allocates pools and addresses,
opens a second allocator on the same store, and shows it sees the same state.
(`make demo` runs the Container Network Model demo, demo.py.)"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyln.ipam import (
    ALLOC_SERIAL,
    GATEWAY,
    LOCAL_DEFAULT,
    REQUEST_ADDRESS_TYPE,
    Allocator,
    PoolInfo,
)
from pyln.store import SQLiteStore

GATEWAY_REQUEST = {REQUEST_ADDRESS_TYPE: GATEWAY}


def _show_pools(pools: list[PoolInfo]) -> None:
    for p in pools:
        sub = f" range {p.sub_pool}" if p.sub_pool else ""
        print(f"    {p.pool_id:<46} refs {p.refs}  free {p.free}{sub}")


def run(state_dir: Path) -> bool:
    """Runs the demo; returns whether the reopened allocator saw the same state."""
    store = SQLiteStore(state_dir)
    print(f"state directory {state_dir}, store {store.path} (SQLite, WAL)\n")
    a = Allocator(store)

    print("allocator 1: pools and addresses")
    allocated: dict[str, list[str]] = {}

    pid, nw, _ = a.request_pool(LOCAL_DEFAULT)
    gw = a.request_address(pid, options=GATEWAY_REQUEST)[0]
    hosts = [a.request_address(pid)[0] for _ in range(3)]
    print(f"  predefined pool {nw}: gateway {gw}, containers {', '.join(map(str, hosts))}")
    allocated[pid] = [str(x) for x in [gw, *hosts]]

    pid2, nw2, _ = a.request_pool(LOCAL_DEFAULT, "10.77.0.0/16", "10.77.5.0/24")
    gw2 = a.request_address(pid2, prefer="10.77.0.1", options=GATEWAY_REQUEST)[0]
    aux = a.request_address(pid2, prefer="10.77.0.250")[0]
    ranged = [a.request_address(pid2, options={ALLOC_SERIAL: "true"})[0] for _ in range(4)]
    a.release_address(pid2, ranged[1])
    again = a.request_address(pid2, options={ALLOC_SERIAL: "true"})[0]
    print(
        f"  pool {nw2} range 10.77.5.0/24: gateway {gw2}, auxiliary {aux}, serial "
        f"{', '.join(map(str, ranged))}; released {ranged[1].ip}, next serial is {again}"
    )
    allocated[pid2] = [str(x) for x in [gw2, aux, ranged[0], *ranged[2:], again]]

    pid6, nw6, _ = a.request_pool(LOCAL_DEFAULT, "fd00:77::/64", v6=True)
    v6 = [a.request_address(pid6)[0] for _ in range(2)]
    top = a.request_address(pid6, prefer="fd00:77::ffff:ffff:ffff:ffff")[0]
    print(f"  pool {nw6} (2^64 addresses): {v6[0]}, {v6[1]}, {top}")
    allocated[pid6] = [str(x) for x in [*v6, top]]

    before = a.pools()
    _show_pools(before)
    store.close()

    print("\nallocator 2: a new allocator on a new connection to the same file")
    b = Allocator(SQLiteStore(state_dir))
    after = b.pools()
    _show_pools(after)
    same_pools = after == before
    in_use = sum(b.in_use(p, addr) for p, addrs in allocated.items() for addr in addrs)
    total = sum(len(v) for v in allocated.values())
    print(f"  pools identical: {'yes' if same_pools else 'NO'}")
    print(f"  addresses still allocated: {in_use} of {total}")
    nxt = b.request_address(pid)[0]
    expected_next = f"{nw.network_address + len(hosts) + 2}/{nw.prefixlen}"
    print(f"  next address from {nw}: {nxt} (expected {expected_next})")
    same = same_pools and in_use == total and str(nxt) == expected_next
    print(f"\nsame state after reopening: {'yes' if same else 'NO'}")

    for p in (pid, pid2, pid6):
        b.release_pool(p)
    print(f"released the demo's pools; pools left in the store: {len(b.pools())}")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyln demo ipam", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path("state"))
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    return 0 if run(args.state_dir) else 1


if __name__ == "__main__":
    sys.exit(main())
