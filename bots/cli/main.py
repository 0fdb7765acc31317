"""``kb``: the command line for editors, agents and developers.

kb lint              check every content file, print path:line: message
kb build             build the knowledge base from content/ (only changed texts are embedded)
kb ask QUESTION      answer as a customer would see it (--json: the whole result)
kb eval DIR          measure on a question set (kb.jsonl + queries.jsonl); --compare, --calibrate, --report
kb report            for editors: top, unanswered and "not solved" questions, handoff reasons (Markdown + PNG)
kb serve             the HTTP server (--workers N: processes sharing PostgreSQL, docs/scaling.md)
kb migrate           bring the state store's schema up to date (kb serve does it too, at start)
kb export-state      copy the SQLite state store into PostgreSQL ([engine] state_url)
kb telegram          the Telegram bot: --polling (long polling), or set-webhook URL (for kb serve)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from kb.config import Config, ConfigError, load_config

if TYPE_CHECKING:
    from eval.calibrate import Calibration
    from eval.compare import Row


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
    """Build the knowledge base first when there is none yet, or when the serving one was made
    by another version or with other models than the configuration names (a rebuild reuses
    what it can)."""
    from kb.embedders import other_models
    from kb.store import FORMAT, serving_manifest

    manifest = serving_manifest(config.index_dir)
    if manifest is None:
        print("No knowledge base yet: building it first.", file=sys.stderr)
    else:
        if manifest.get("format") == FORMAT and other_models(manifest, config.embedders) is None:
            return
        print("The knowledge base was built with other models or by another version: building it again first.", file=sys.stderr)
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
    from eval.dataset import DatasetError, load_queries
    from eval.run import ask_all, serving, summarize

    def progress(done: int, total: int, name: str = "") -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r  {name + ': ' if name else ''}{done}/{total} questions   ", end="", file=sys.stderr, flush=True)

    if args.write_config and not (args.calibrate or args.fit_confidence):
        print("--write-config needs --calibrate or --fit-confidence (it writes what they find).", file=sys.stderr)
        return 2
    if not 0 < args.target_precision <= 1:
        print(f"--target-precision is a share between 0 and 1, not {args.target_precision}.", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if not (Path(args.folder) / "kb.jsonl").exists():
        _ensure_built(config)  # questions for the configured knowledge base
    rows, calibration, fits = None, None, None
    try:
        queries = load_queries(Path(args.folder))
        others = []
        if args.compare and (Path(args.folder) / "kb.jsonl").exists():
            from eval.compare import baselines

            others = baselines(config)
        with serving(config, Path(args.folder), others) as retriever:
            if args.compare:
                retriever.warm_up()  # every configuration then starts with its models loaded
            outcomes = ask_all(retriever, queries, progress)
            if args.compare:
                from eval.compare import compare

                rows = compare(retriever, queries, outcomes, lambda name, done, total: progress(done, total, name), others)
            if args.calibrate:
                from eval.calibrate import calibrate

                thresholds = retriever.config.thresholds
                calibration = calibrate(outcomes, retriever.kb.records, thresholds, args.target_precision)
            if args.fit_confidence:
                from eval.confidence import fit_confidence

                fits = fit_confidence(outcomes, retriever.config.confidence)
    except DatasetError as error:
        print(error, file=sys.stderr)
        return 1
    metrics = summarize(outcomes)
    if sys.stderr.isatty() and not args.json:
        print(file=sys.stderr)
    if args.json:
        if rows is None and calibration is None and fits is None:
            print(json.dumps(_plain(metrics)))
        else:
            extra = {"compare": {r.name: _plain(r.metrics) for r in rows}} if rows else {}
            extra |= {"calibration": calibration.to_dict()} if calibration else {}
            extra |= {"confidence": [dataclasses.asdict(f) for f in fits]} if fits is not None else {}
            print(json.dumps({"metrics": _plain(metrics), **extra}, ensure_ascii=False))
    else:
        _print_eval(args, metrics, rows, calibration, time.perf_counter() - started)
        if fits is not None:
            from eval.report import confidence_text

            print("\n" + confidence_text(fits))
    code = 0
    if args.write_config and calibration is not None:
        code = _write_thresholds(calibration, Path(args.write_config))
    if args.write_config and fits is not None:
        code = max(code, _write_confidence(fits, Path(args.write_config)))
    if args.report:
        from eval.compare import Row
        from eval.report import write_report

        shown = rows or [Row("product", metrics, outcomes, product=True)]
        written = write_report(Path(args.report), Path(args.folder), metrics, shown, calibration)
        print(f"Report written to {written[0]} (charts: {', '.join(p.name for p in written[1:])})", file=sys.stderr)
    return code


def _write_confidence(fits: list, path: Path) -> int:
    from eval.calibrate import write_settings

    if not fits:
        print(f"{path} left unchanged: no language has enough questions to fit its confidence.", file=sys.stderr)
        return 1
    for fit in fits:
        values = dataclasses.asdict(fit.calibration)
        try:
            write_settings(path, ("confidence", fit.language), values)
        except (ValueError, OSError) as error:
            print(f"Could not write the confidence of {fit.language}: {error}", file=sys.stderr)
            return 1
        shown = ", ".join(f"{k} = {v}" for k, v in values.items())
        print(f"Wrote [confidence.{fit.language}] {shown} to {path}", file=sys.stderr)
    return 0


def _plain(metrics: dict) -> dict:
    """NaN (no figure) as null, so that the JSON is valid."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def _print_eval(
    args: argparse.Namespace, metrics: dict, rows: list[Row] | None, calibration: Calibration | None, seconds: float
) -> None:
    from eval.compare import shortfalls
    from eval.report import calibration_text, compare_table

    print(f"{args.folder}: {metrics['n_queries']} questions in {seconds:.0f}s")
    if not rows:
        for key, value in metrics.items():
            if key != "n_queries":
                print(f"  {key:20s} {'n/a' if value is None else f'{value:.3f}'}")
    else:
        print("\n" + compare_table(rows))
        print("\nCoverage, precision and accuracy of a part use the product's calibration and thresholds;")
        print("compare the parts on recall, MRR and AUROC.")
        behind = shortfalls(rows)
        print("\n".join(f"Note: {s}." for s in behind) if behind else "The product pipeline wins or ties on recall@1 and AUROC.")
    if calibration is not None:
        print("\n" + calibration_text(calibration))


def _write_thresholds(calibration: Calibration, path: Path) -> int:
    from eval.calibrate import write_thresholds

    if not calibration.found:
        print(f"{path} left unchanged: no thresholds reach the target precision.", file=sys.stderr)
        return 1
    try:
        write_thresholds(path, calibration.answer, calibration.clarify)
    except (ValueError, OSError) as error:  # tomllib.TOMLDecodeError is a ValueError
        print(f"Could not write the thresholds: {error}", file=sys.stderr)
        return 1
    print(f"Wrote [thresholds] answer = {calibration.answer}, clarify = {calibration.clarify} to {path}", file=sys.stderr)
    return 0


def _engine(config: Config):
    from bots.conversation.engine import Engine

    _ensure_built(config)
    return Engine.from_config(config)


def cmd_chat(config: Config, args: argparse.Namespace) -> int:
    from bots.cli.chat import run_chat

    engine = _engine(config)
    run_chat(engine, args.user)
    return 0


def cmd_serve(config: Config, args: argparse.Namespace) -> int:
    import uvicorn

    from bots.server import create_app

    if args.workers <= 1:
        app = create_app(config, _engine(config))
        print(f"Serving on http://{args.host}:{args.port} (health: /healthz, API docs: /docs)", file=sys.stderr)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
        return 0
    _ensure_built(config)
    _open_state(config).close()  # migrate once, here, before the workers start
    if config.source:  # the workers are new processes: they read the same file
        os.environ["KB_CONFIG"] = str(config.source.resolve())
    print(f"Serving on http://{args.host}:{args.port} with {args.workers} worker processes", file=sys.stderr)
    uvicorn.run(
        "bots.server:app_from_environment", factory=True, workers=args.workers,
        host=args.host, port=args.port, log_level=args.log_level,
    )  # fmt: skip
    return 0


def _open_state(config: Config):
    from bots.settings import load_settings
    from bots.store import open_store

    return open_store(load_settings(config).engine)


def cmd_migrate(config: Config, args: argparse.Namespace) -> int:
    store = _open_state(config)
    try:
        print(f"The state store is at schema version {store.schema_version}.")
    finally:
        store.close()
    return 0


def cmd_export_state(config: Config, args: argparse.Namespace) -> int:
    from bots.settings import load_settings
    from bots.store.export import StateNotEmpty, export_sqlite

    settings = load_settings(config).engine
    if not settings.state_url:
        print("Set [engine] state_url (or KB_STATE_URL) to the PostgreSQL database to copy into.", file=sys.stderr)
        return 1
    source = Path(args.source) if args.source else settings.state_path
    if not source.exists():
        print(f"No SQLite state store at {source}.", file=sys.stderr)
        return 1
    try:
        copied = export_sqlite(source, settings.state_url)
    except StateNotEmpty as error:
        print(f"{error}: nothing copied.", file=sys.stderr)
        return 1
    print(f"Copied {source} into PostgreSQL: " + ", ".join(f"{n} {table}" for table, n in copied.items()))
    return 0


def cmd_report(config: Config, args: argparse.Namespace) -> int:
    from bots.report import NothingToReport, report_from_config

    try:
        report = report_from_config(config, args.since, Path(args.out) if args.out else None)
    except NothingToReport as empty:
        print(f"Nothing to report yet: {empty}. It fills up as customers talk to the bot (kb chat, kb serve).")
        return 0
    charts = ", ".join(p.name for p in report.charts) or "none"
    print(f"Report on {report.questions} questions written to {report.markdown} (charts: {charts})")
    return 0


def cmd_telegram(config: Config, args: argparse.Namespace) -> int:
    from bots.channels.telegram.polling import telegram_command

    return telegram_command(config, args, _engine)


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
    evaluate.add_argument(
        "--compare", action="store_true", help="also run keyword search alone and each embedder alone, and print one table"
    )
    evaluate.add_argument(
        "--calibrate", action="store_true", help="find the answer and clarify thresholds for --target-precision"
    )
    evaluate.add_argument(
        "--target-precision", type=float, default=0.95, metavar="P", help="answered precision to keep (default 0.95)"
    )
    evaluate.add_argument(
        "--fit-confidence",
        action="store_true",
        help="fit each language's confidence on half the questions, check it on the rest",
    )
    evaluate.add_argument(
        "--write-config", metavar="PATH", help="with --calibrate / --fit-confidence: write what they find into this TOML file"
    )
    evaluate.add_argument("--report", metavar="PATH", help="also write a Markdown report with PNG charts")
    evaluate.set_defaults(run=cmd_eval)
    chat = commands.add_parser("chat", help="talk to the whole bot in the terminal")
    chat.add_argument("--user", default="demo", help="the customer's user id (default: demo)")
    chat.set_defaults(run=cmd_chat)
    serve = commands.add_parser("serve", help="run the HTTP server (webhooks, /api/ask, agent API)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--log-level", default="info")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (several need PostgreSQL: docs/scaling.md)")
    serve.set_defaults(run=cmd_serve)
    commands.add_parser("migrate", help="bring the state store's schema up to date").set_defaults(run=cmd_migrate)
    export = commands.add_parser("export-state", help="copy the SQLite state store into PostgreSQL ([engine] state_url)")
    export.add_argument("--from", dest="source", metavar="PATH", help="the SQLite file (default: [engine] state_path)")
    export.set_defaults(run=cmd_export_state)
    report = commands.add_parser("report", help="for editors: what customers asked, Markdown with PNG charts")
    report.add_argument("--since", type=float, default=30, metavar="DAYS", help="the last DAYS days (default 30; 0: all)")
    report.add_argument("--out", metavar="DIR", help="where to write report.md and the charts (default reports/<today>/)")
    report.set_defaults(run=cmd_report)
    telegram = commands.add_parser("telegram", help="the Telegram bot: --polling, or set-webhook URL")
    telegram.add_argument("--polling", action="store_true", help="run the bot with long polling (no public URL needed)")
    telegram_actions = telegram.add_subparsers(dest="telegram_command", metavar="ACTION")
    set_webhook = telegram_actions.add_parser("set-webhook", help="tell Telegram to send updates to kb serve at URL")
    set_webhook.add_argument("url", help="https://your.host (/telegram/webhook is added) or the full webhook URL")
    telegram.set_defaults(run=cmd_telegram)
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
    except Exception as error:
        if not _needs_build(error):
            raise
        print(f"{error}.", file=sys.stderr)
        return 1


def _needs_build(error: Exception) -> bool:
    """No build yet, or one made with other models (after an upgrade or a configuration change)."""
    from kb.store import KnowledgeBaseMissing
    from retriever.pipeline import IndexMismatch

    return isinstance(error, (KnowledgeBaseMissing, IndexMismatch))


if __name__ == "__main__":
    sys.exit(main())
