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
    stress = sub.add_parser("run", help="log known points under injected faults, then verify")
    stress.add_argument("--quick", action="store_true", help="a short run (CI)")
    stress.add_argument("--target", choices=("server", "embedded"), default="server")
    stress.add_argument("--writers", type=int, default=8)
    stress.add_argument("--points", type=int, default=100_000, help="points per writer")
    stress.add_argument("--fault-interval", type=float, default=2.0, help="seconds between faults")
    stress.add_argument(
        "--duration", type=float, default=0.0, help="spread each writer's points over this"
    )
    stress.add_argument("--max-writer-kills", type=int, default=2)
    stress.add_argument("--seed", type=int, default=1)
    stress.add_argument("--timeout", type=float, default=3600)
    stress.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.command == "run":
        from .run import run as stress_run

        return stress_run(args)
    from .bench import run

    return run(args)


sys.exit(main())
