"""The `pyln` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyln", description="pyln: libnetwork in Python")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="the demos: cnm (default) or ipam", add_help=False)
    sub.add_parser("sim", help="simulate a networkdb cluster (capacity planning)", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        from pyln import demo

        return demo.main(rest)
    if args.command == "sim":
        from pyln.sim import cli

        return cli.main(rest)
    return 2


if __name__ == "__main__":
    sys.exit(main())
