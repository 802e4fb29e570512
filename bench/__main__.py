"""``python -m bench``: measure what the proxy costs, write the table and the plot, print the
table.

Exits 1 when a request failed where none may (every scenario but the holds above 256 streams).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench import plot, report, runner
from bench.cli import RESULTS
from bench.plan import FULL, QUICK, UPSTREAMS, spare_cores

logger = logging.getLogger("bench")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="a short run that only proves the bench works (CI)"
    )
    parser.add_argument(
        "--upstream",
        action="append",
        choices=UPSTREAMS,
        help="measure only this upstream (repeatable; default: all)",
    )
    parser.add_argument(
        "--threads", type=int, help="proxy threads per process (default 1100: one per held stream)"
    )
    parser.add_argument(
        "--workers", type=int, help="gunicorn worker processes (default: half the cores)"
    )
    parser.add_argument(
        "--litellm",
        default=shutil.which("litellm"),
        help="LiteLLM's proxy executable, measured as a peer on llama-server "
        "(default: litellm on PATH; never in --quick)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="folder for <plan>.md, <plan>.json and <plan>.png"
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%X")
    plan = QUICK if args.quick else FULL
    plan = replace(
        plan,
        upstreams=tuple(args.upstream or plan.upstreams),
        threads=args.threads or plan.threads,
        workers=args.workers or spare_cores(),
    )
    if plan.peers and not args.litellm:
        logger.warning(
            "LiteLLM is not measured: it is not installed (pip install "
            "'litellm[proxy]', or name its executable with --litellm)"
        )
    load_before = (
        f"{report.load_average()}, and a fixed Python loop took {report.reference_loop():.2f} s"
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="oai-proxy-bench-") as work_dir:
        try:
            results = runner.run(plan, Path(work_dir), args.litellm)
        except Exception:
            for log in sorted(Path(work_dir).glob("*.log")):  # the servers' side of the story
                logger.error("%s:\n%s", log.name, log.read_text(errors="replace")[-2000:])
            raise
    took = time.monotonic() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{plan.name}.json").write_text(json.dumps(results, indent=1))
    table = report.markdown(plan, results, took, load_before)
    (args.out / f"{plan.name}.md").write_text(table)
    plot.save(plan, results, args.out / f"{plan.name}.png")
    sys.stdout.write(table)
    failures = report.failures(plan, results)
    for failure in failures:
        logger.error("FAILED: %s", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
