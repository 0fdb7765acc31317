"""``kb``: the command line for editors, agents and developers.

kb lint              check every content file, print path:line: message
kb build             build the knowledge base from content/ (only changed texts are embedded)
kb ask QUESTION      answer as a customer would see it (--json: the whole result)
kb eval DIR          measure on a question set (kb.jsonl + queries.jsonl)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from kb.config import Config, ConfigError, load_config


def _progress(stream=sys.stderr):
    """A progress line for long builds: rewritten in place on a terminal, every 25 % otherwise."""
    shown: dict[str, int] = {}

    def report(name: str, done: int, total: int) -> None:
        if stream.isatty():
            stream.write(f"\r  embedding with {name}: {done}/{total}")
            if done == total:
                stream.write("\n")
        else:
            quarter = 4 * done // max(total, 1)
            if quarter > shown.get(name, 0) or done == total:
                shown[name] = quarter
                stream.write(f"  embedding with {name}: {done}/{total}\n")
        stream.flush()

    return report


def cmd_lint(config: Config, args: argparse.Namespace) -> int:
    from ingest import lint

    problems = lint(config)
    for problem in problems:
        print(problem)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if not problems:
        print(f"{config.content_dir}: all good.")
    else:
        print(f"\n{errors} error(s), {warnings} warning(s).", file=sys.stderr)
    return 1 if errors else 0


def cmd_build(config: Config, args: argparse.Namespace) -> int:
    from ingest import BuildFailed, build

    print(f"Building the knowledge base from {config.content_dir} ...", file=sys.stderr)
    try:
        report = build(config, progress=_progress())
    except BuildFailed as error:
        print(f"Build failed, the previous knowledge base is still serving: {error}", file=sys.stderr)
        return 1
    for problem in report.problems:
        if problem.severity == "error":
            print(problem, file=sys.stderr)
    for path in report.skipped:
        print(f"skipped {path} (see the error above); the rest was built", file=sys.stderr)
    new = ", ".join(f"{name} {count}" for name, count in report.embedded.items())
    print(
        f"Built {report.entries} FAQ entries and {report.chunks} policy sections "
        f"({report.phrases} phrases) in {report.seconds:.1f}s. Newly embedded: {new}; the rest came from the cache.\n"
        f"Serving from {report.path}",
        file=sys.stderr,
    )
    return 2 if report.skipped else 0


def _ensure_built(config: Config) -> None:
    """Build the knowledge base first when there is none yet."""
    from kb.store import current_build

    if current_build(config.index_dir) is None:
        print("No knowledge base yet: building it first.", file=sys.stderr)
        if cmd_build(config, argparse.Namespace()) == 1:
            raise SystemExit(1)


def _retriever(config: Config):
    from retriever import Retriever

    _ensure_built(config)
    return Retriever.from_config(config)


def cmd_ask(config: Config, args: argparse.Namespace) -> int:
    from retriever import render_answer

    retriever = _retriever(config)
    answer = retriever.ask(args.question)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_answer(answer))
    return 0


def cmd_eval(config: Config, args: argparse.Namespace) -> int:
    from eval.dataset import DatasetError
    from eval.run import evaluate

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r  {done}/{total} questions", end="", file=sys.stderr, flush=True)

    started = time.perf_counter()
    if not (Path(args.folder) / "kb.jsonl").exists():
        _ensure_built(config)  # questions for the configured knowledge base
    try:
        metrics = evaluate(config, Path(args.folder), progress)
    except DatasetError as error:
        print(error, file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}))
        return 0
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(f"{args.folder}: {metrics['n_queries']} questions in {time.perf_counter() - started:.0f}s")
    for key, value in metrics.items():
        if key != "n_queries":
            print(f"  {key:20s} {'n/a' if value is None else f'{value:.3f}'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kb", description="FAQ and knowledge-base bot for e-commerce customer service.")
    parser.add_argument("--config", help="configuration file (default: $KB_CONFIG or ./kb.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("lint", help="check every content file").set_defaults(run=cmd_lint)
    commands.add_parser("build", help="build the knowledge base from the content folder").set_defaults(run=cmd_build)
    ask = commands.add_parser("ask", help="answer a question as a customer would see it")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print the whole result as JSON")
    ask.set_defaults(run=cmd_ask)
    evaluate = commands.add_parser(
        "eval", help="measure on a question set (kb.jsonl + queries.jsonl; without kb.jsonl: on the configured content)"
    )
    evaluate.add_argument("folder")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.set_defaults(run=cmd_eval)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"Configuration problem: {error}", file=sys.stderr)
        return 1
    try:
        return args.run(config, args)
    except BrokenPipeError:
        # The reader went away (kb ask ... | head): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
