"""``python -m eval.fuzz``: see :mod:`eval.fuzz`. Exit status 1 when a 5xx, a traceback, a hang
or a leak of personal data was found (the classes pending issue 19 fixes only report)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.fuzz.attacks import EXPECTED, PENDING
from eval.fuzz.run import fuzz, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.fuzz", description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000, help="about this many requests, spread over the classes")
    parser.add_argument("--seconds", type=float, default=600, help="stop sending after this long")
    parser.add_argument("--config", type=Path, help="configuration to serve (default: $KB_CONFIG or kb.toml)")
    parser.add_argument("--index-dir", type=Path, help="serve this build (default: the configuration's index_dir)")
    parser.add_argument("--classes", help=f"comma-separated, of: {', '.join(EXPECTED)}")
    parser.add_argument("--skip-pending", action="store_true", help="leave out the classes waiting for issue 19 fixes")
    parser.add_argument("--workers", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--huge-bytes", type=int, default=2_000_000, help="the largest body sent")
    parser.add_argument("--schema-examples", type=int, default=50, help="schemathesis examples per operation (0: off)")
    parser.add_argument("--schema-seconds", type=float, default=300)
    parser.add_argument("--keep", type=Path, help="keep the state, configuration and server log in this folder")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    classes = args.classes.split(",") if args.classes else list(EXPECTED)
    if args.skip_pending:
        classes = [c for c in classes if c not in PENDING]
    unknown = set(classes) - set(EXPECTED)
    if unknown:
        parser.error(f"unknown classes: {', '.join(sorted(unknown))}")
    result = fuzz(
        args.requests,
        args.seconds,
        classes,
        args.config,
        workers=args.workers,
        huge_bytes=args.huge_bytes,
        schema_examples=args.schema_examples,
        schema_seconds=args.schema_seconds,
        keep=args.keep,
        index_dir=args.index_dir,
    )
    print(report(result))
    if args.json:
        figures = {
            "requests": result.requests,
            "seconds": round(result.seconds, 1),
            "by_class": {c: {str(s): n for s, n in counts.items()} for c, counts in result.by_class.items()},
            "server_errors": result.server_errors,
            "tracebacks": result.tracebacks,
            "hangs": result.hangs,
            "slow": result.slow,
            "orders_disclosed": result.orders_disclosed,
            "leaks": {where: len(values) for where, values in result.leaks.items()},
            "pending_leaks": {where: len(values) for where, values in result.pending_leaks.items()},
            "signed_queries_in_log": result.signed_queries_in_log,
            "schemathesis_passed": result.schema.passed if result.schema else None,
        }
        print(json.dumps(figures, ensure_ascii=False))
    failed = result.server_errors or result.tracebacks or result.hangs or result.leak_count or result.unexpected
    schema_failed = result.schema is not None and result.schema.ran and not result.schema.passed
    return 1 if failed or schema_failed else 0


if __name__ == "__main__":
    sys.exit(main())
