"""What every ``python -m bench.<name>`` shares: ``--quick`` and ``--out``, and where its
results go (``<name>.md``, or ``<name>-quick.md`` for a quick run, so a CI run never
overwrites the committed figures)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def arguments(
    name: str, description: str, quick: str = "a short run that proves it runs"
) -> argparse.ArgumentParser:
    """A parser for ``python -m bench.<name>`` with ``--quick`` and ``--out``."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=description)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results")
    return parser


def with_baseline(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--baseline DIR``: another checkout of the project, whose proxy is measured beside
    this one's in the same run (its figures are the "before")."""
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the project whose proxy is measured beside this one's",
    )
    return parser


def commit_of(checkout: Path) -> str:
    """The commit a checkout stands at, as a report names its baseline (its path is this
    machine's alone)."""
    found = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return found.stdout.strip() or checkout.name


def results(args: argparse.Namespace, name: str) -> Path:
    """The run's results path without its suffix, its folder made."""
    args.out.mkdir(parents=True, exist_ok=True)
    return args.out / f"{name}{'-quick' if args.quick else ''}"


def publish(args: argparse.Namespace, name: str, report: str) -> None:
    """Print the report and write it as ``<name>[-quick].md``."""
    print(report)
    results(args, name).with_suffix(".md").write_text(report)
