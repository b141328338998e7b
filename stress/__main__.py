from __future__ import annotations

import argparse
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stress")
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser(
        "bench", help="the performance harness: every target row beside its baselines"
    )
    bench.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    bench.add_argument("--writers", type=int, default=8)
    bench.add_argument(
        "--points", type=int, default=200_000, help="points per writer, embedded runs"
    )
    bench.add_argument(
        "--http-points", type=int, default=100_000, help="points per writer, HTTP runs"
    )
    bench.add_argument(
        "--calls", type=int, default=50_000, help="log() calls per timed run (below the ring)"
    )
    bench.add_argument(
        "--bulk-call-points", type=int, default=1_048_576, help="points per call shape, bulk"
    )
    bench.add_argument(
        "--bulk-points", type=int, default=4_194_304, help="points per writer, bulk embedded"
    )
    bench.add_argument(
        "--bulk-http-points", type=int, default=2_097_152, help="points per writer, bulk HTTP"
    )
    bench.add_argument("--repeat", type=int, default=3, help="runs per figure (medians)")
    bench.add_argument("--scale", default="1,2,4,8,16,32", help="writer counts of the curve")
    bench.add_argument(
        "--scale-points", type=int, default=960_000, help="total points per curve point"
    )
    bench.add_argument("--idle-rings", type=int, default=64)
    bench.add_argument(
        "--idle-points", type=int, default=100_000, help="points per writer, idle-ring runs"
    )
    bench.add_argument("--only", default="", help="comma-separated sections to run")
    bench.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    bench.add_argument("--plot", default=None, help="PNG path (default docs/perf/throughput.png)")
    bench.add_argument("--no-plot", action="store_true")
    bench.add_argument("--json", default=None, help="also append the JSON lines to this file")
    bench.add_argument("--markdown", default=None, help="also write the target table here")
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
