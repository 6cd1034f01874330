"""``openfer dataset ...``: argument parsing for the dataset tools (the work is in the modules beside this one)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataset", help="dataset tools: cards, label issues, pseudo-labels, subgroup audits")
    p.add_subparsers(dest="dataset_command", metavar="TOOL")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "dataset_command", None) is None:
        print("openfer dataset: give a tool (see openfer dataset --help)")
        return 2
    raise AssertionError(f"unknown dataset tool {args.dataset_command!r}")
