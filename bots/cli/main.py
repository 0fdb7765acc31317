"""``kb``: the command line for editors, agents and developers.

kb lint              check every content file, print path:line: message
kb build             build the knowledge base from content/ (only changed texts are embedded; --force to drop > 20 %)
kb ask QUESTION      answer as a customer would see it (--json: the whole result)
kb eval DIR          measure on a question set (kb.jsonl + queries.jsonl); --compare, --calibrate, --report
kb report            for editors: top, unanswered and "not solved" questions, handoff reasons (Markdown + PNG)
kb suggest           for editors: phrasings customers taught the bot (menu picks); --accept ID, --reject ID
kb serve             the HTTP server (--workers N: processes sharing PostgreSQL, docs/scaling.md)
kb migrate           bring the state store's schema up to date (kb serve does it too, at start)
kb export-state      copy the SQLite state store into PostgreSQL ([engine] state_url)
kb telegram          the Telegram bot: --polling (long polling), or set-webhook URL (for kb serve)
kb desk add-user     an account for the web desk at /desk (agent, editor or admin)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from eval.cli import add_arguments as eval_arguments
from kb.config import Config, ConfigError, load_config
from kb.environment import set_environment_defaults


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
        report = build(config, progress=_progress(), force=getattr(args, "force", False))
    except BuildFailed as error:
        print(f"Build failed, the previous knowledge base is still serving: {error}", file=sys.stderr)
        return 1
    for problem in report.problems:
        if problem.severity == "error":
            print(problem, file=sys.stderr)
    for path in report.kept:
        print(f"kept the last good version of {path} serving (see the error above); fix it and build again", file=sys.stderr)
    for path in report.skipped:
        print(f"skipped {path} (see the error above); the rest was built", file=sys.stderr)
    new = ", ".join(f"{name} {count}" for name, count in report.embedded.items())
    print(
        f"Built {report.entries} FAQ entries and {report.chunks} policy sections "
        f"({report.phrases} phrases) in {report.seconds:.1f}s. Newly embedded: {new}; the rest came from the cache.\n"
        f"Serving from {report.path}",
        file=sys.stderr,
    )
    # Non-zero whenever what serves is not what the files say, so scripts and CI notice.
    return 2 if report.differs_from_files else 0


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
    from eval.cli import run

    return run(config, args, build_if_needed=_ensure_built)


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

    from bots.guards import key_notice, serve_log_config
    from bots.settings import load_settings

    notice = key_notice(load_settings(config).api.token, args.host)
    # The access log never shows WeChat's signatures, timestamps and nonces (they would let a reader forge messages).
    options = {"host": args.host, "port": args.port, "log_level": args.log_level, "log_config": serve_log_config()}
    if args.workers <= 1:
        from bots.server import create_app

        app = create_app(config, _engine(config))
        print(f"Serving on http://{args.host}:{args.port} (health: /healthz, API docs: /docs)", file=sys.stderr)
        if notice:
            print(notice, file=sys.stderr)
        uvicorn.run(app, **options)
        return 0
    _ensure_built(config)
    _open_state(config).close()  # migrate once, here, before the workers start
    if config.source:  # the workers are new processes: they read the same file
        os.environ["KB_CONFIG"] = str(config.source.resolve())
    print(f"Serving on http://{args.host}:{args.port} with {args.workers} worker processes", file=sys.stderr)
    if notice:
        print(notice, file=sys.stderr)
    from bots.cli.workers import serve_workers

    return serve_workers(args.host, args.port, args.workers, options)


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


def cmd_suggest(config: Config, args: argparse.Namespace) -> int:
    from bots.cli.suggest import run

    return run(config, args)


def cmd_telegram(config: Config, args: argparse.Namespace) -> int:
    from bots.channels.telegram.polling import telegram_command

    return telegram_command(config, args, _engine)


def cmd_desk(config: Config, args: argparse.Namespace) -> int:
    import getpass

    from bots.console import AccountError, add_user
    from bots.settings import load_settings
    from bots.store import open_store

    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.name}: ")
        if getpass.getpass("Again: ") != password:
            print("The two passwords differ; nothing changed.", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    store = open_store(load_settings(config).engine)
    try:
        add_user(store, args.name, password, args.role, args.language)
    except AccountError as error:
        print(f"Not saved: {error}.", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"{args.name} can sign in at /desk as {args.role}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    set_environment_defaults()  # before any command loads a model library
    parser = argparse.ArgumentParser(prog="kb", description="FAQ and knowledge-base bot for e-commerce customer service.")
    parser.add_argument("--config", help="configuration file (default: $KB_CONFIG or ./kb.toml)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("lint", help="check every content file").set_defaults(run=cmd_lint)
    build_command = commands.add_parser("build", help="build the knowledge base from the content folder")
    build_command.add_argument(
        "--force", action="store_true", help="build even if it drops over a fifth of the serving entries, or every FAQ entry"
    )
    build_command.set_defaults(run=cmd_build)
    ask = commands.add_parser("ask", help="answer a question as a customer would see it")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true", help="print the whole result as JSON")
    ask.set_defaults(run=cmd_ask)
    evaluate = commands.add_parser(
        "eval", help="measure on a question set (kb.jsonl + queries.jsonl; without kb.jsonl: on the configured content)"
    )
    eval_arguments(evaluate)
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
    suggest = commands.add_parser("suggest", help="for editors: phrasings customers taught the bot, to accept or reject")
    from bots.cli.suggest import add_arguments as suggest_arguments

    suggest_arguments(suggest)
    suggest.set_defaults(run=cmd_suggest)
    telegram = commands.add_parser("telegram", help="the Telegram bot: --polling, or set-webhook URL")
    telegram.add_argument("--polling", action="store_true", help="run the bot with long polling (no public URL needed)")
    telegram_actions = telegram.add_subparsers(dest="telegram_command", metavar="ACTION")
    set_webhook = telegram_actions.add_parser("set-webhook", help="tell Telegram to send updates to kb serve at URL")
    set_webhook.add_argument("url", help="https://your.host (/telegram/webhook is added) or the full webhook URL")
    telegram.set_defaults(run=cmd_telegram)
    desk = commands.add_parser("desk", help="the web desk's accounts: add-user NAME --role agent|editor|admin")
    desk_actions = desk.add_subparsers(dest="desk_command", metavar="ACTION", required=True)
    add_user = desk_actions.add_parser("add-user", help="add an account, or reset its password (read from stdin or asked)")
    add_user.add_argument("name")
    add_user.add_argument("--role", choices=["agent", "editor", "admin"], required=True)
    add_user.add_argument("--language", choices=["zh", "en"], default="zh", help="the desk's language for this person")
    desk.set_defaults(run=cmd_desk)
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
