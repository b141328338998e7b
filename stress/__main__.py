from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stress")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="measure log() latency and end-to-end throughput")
    bench.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    bench.add_argument("--writers", type=int, default=8)
    bench.add_argument("--points", type=int, default=250_000, help="points per writer")
    bench.add_argument("--calls", type=int, default=200_000, help="log() calls timed in-process")
    bench.add_argument("--json", default=None, help="also append the JSON lines to this file")
    args = parser.parse_args()
    from .bench import run

    return run(args)


sys.exit(main())
