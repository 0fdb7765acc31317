"""``kb eval DIR``: measure the product on a labelled question set, and optionally compare its
parts, calibrate the thresholds, fit the confidence, write a report. :mod:`bots.cli` wires the
subcommand to :func:`add_arguments` and :func:`run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from kb.config import Config

if TYPE_CHECKING:
    from eval.calibrate import Calibration
    from eval.compare import Row


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``kb eval``."""
    parser.add_argument("folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--compare", action="store_true", help="also run keyword search alone and each embedder alone, and print one table"
    )
    parser.add_argument("--calibrate", action="store_true", help="find the answer and menu thresholds for --target-precision")
    parser.add_argument(
        "--learn",
        action="store_true",
        help="ask the first half, learn the phrasings whose menu held the right entry, rebuild, ask the second half",
    )
    parser.add_argument(
        "--target-precision", type=float, default=0.95, metavar="P", help="answered precision to keep (default 0.95)"
    )
    parser.add_argument(
        "--fit-confidence",
        action="store_true",
        help="fit each language's confidence on half the questions, check it on the rest",
    )
    parser.add_argument(
        "--write-config", metavar="PATH", help="with --calibrate / --fit-confidence: write what they find into this TOML file"
    )
    parser.add_argument("--report", metavar="PATH", help="also write a Markdown report with PNG charts")


def _learn(config: Config, args: argparse.Namespace) -> int:
    """``kb eval DIR --learn``: the loop of learning from customers' picks, measured."""
    from eval.learn import learn, learning_text

    try:
        result = learn(config, Path(args.folder))
    except ValueError as error:
        print(error, file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), ensure_ascii=False, default=str) if args.json else learning_text(result))
    return 0


def run(config: Config, args: argparse.Namespace, build_if_needed: Callable[[Config], None] = lambda config: None) -> int:
    """``kb eval`` with the ``args`` of :func:`add_arguments`; the exit code. ``build_if_needed``
    builds the configured knowledge base first when a set has no ``kb.jsonl`` of its own (the
    ``kb`` command's, which prints how the build goes)."""
    from eval.dataset import DatasetError

    refused = _refused(args)
    if refused:
        print(refused, file=sys.stderr)
        return 2
    if getattr(args, "learn", False):
        return _learn(config, args)
    started = time.perf_counter()
    if not (Path(args.folder) / "kb.jsonl").exists():
        build_if_needed(config)  # questions for the configured knowledge base
    try:
        found = _measure(config, args)
    except DatasetError as error:
        print(error, file=sys.stderr)
        return 1
    if sys.stderr.isatty() and not args.json:
        print(file=sys.stderr)
    if args.json:
        _print_json(found)
    else:
        _print_eval(args, found.metrics, found.rows, found.calibration, time.perf_counter() - started)
        if found.fits is not None:
            from eval.report import confidence_text

            print("\n" + confidence_text(found.fits))
    code = _write_config(found, Path(args.write_config)) if args.write_config else 0
    if args.report:
        _write_report(found, Path(args.report), Path(args.folder))
    return code


def _refused(args: argparse.Namespace) -> str | None:
    """Why these arguments cannot run together, if they cannot."""
    if args.write_config and not (args.calibrate or args.fit_confidence):
        return "--write-config needs --calibrate or --fit-confidence (it writes what they find)."
    if not 0 < args.target_precision <= 1:
        return f"--target-precision is a share between 0 and 1, not {args.target_precision}."
    return None


@dataclasses.dataclass
class _Findings:
    outcomes: list
    metrics: dict
    rows: list[Row] | None = None
    """With ``--compare``: the product and each part alone."""
    calibration: Calibration | None = None
    fits: list | None = None
    """With ``--fit-confidence``: one fit per language that has enough questions."""


def _measure(config: Config, args: argparse.Namespace) -> _Findings:
    """Ask every question of the set, then compare, calibrate and fit as ``args`` ask."""
    from eval.dataset import load_queries
    from eval.run import ask_all, serving, summarize

    def progress(done: int, total: int, name: str = "") -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r  {name + ': ' if name else ''}{done}/{total} questions   ", end="", file=sys.stderr, flush=True)

    folder = Path(args.folder)
    queries = load_queries(folder)
    others = []
    if args.compare and (folder / "kb.jsonl").exists():
        from eval.compare import baselines

        others = baselines(config)
    with serving(config, folder, others) as retriever:
        if args.compare:
            retriever.warm_up()  # every configuration then starts with its models loaded
        outcomes = ask_all(retriever, queries, progress)
        found = _Findings(outcomes, summarize(outcomes))
        if args.compare:
            from eval.compare import compare

            found.rows = compare(retriever, queries, outcomes, lambda name, done, total: progress(done, total, name), others)
        if args.calibrate:
            from eval.calibrate import calibrate

            thresholds = retriever.config.thresholds
            found.calibration = calibrate(outcomes, retriever.kb.records, thresholds, args.target_precision)
        if args.fit_confidence:
            from eval.confidence import fit_confidence

            found.fits = fit_confidence(outcomes, retriever.config.confidence)
    return found


def _print_json(found: _Findings) -> None:
    if found.rows is None and found.calibration is None and found.fits is None:
        print(json.dumps(_plain(found.metrics)))
        return
    extra = {"compare": {r.name: _plain(r.metrics) for r in found.rows}} if found.rows else {}
    extra |= {"calibration": found.calibration.to_dict()} if found.calibration else {}
    extra |= {"confidence": [dataclasses.asdict(f) for f in found.fits]} if found.fits is not None else {}
    print(json.dumps({"metrics": _plain(found.metrics), **extra}, ensure_ascii=False))


def _write_config(found: _Findings, path: Path) -> int:
    """Write what --calibrate and --fit-confidence found into ``path``; the exit code."""
    code = 0
    if found.calibration is not None:
        code = _write_thresholds(found.calibration, path)
    if found.fits is not None:
        code = max(code, _write_confidence(found.fits, path))
    return code


def _write_report(found: _Findings, path: Path, folder: Path) -> None:
    from eval.compare import Row
    from eval.report import write_report

    shown = found.rows or [Row("product", found.metrics, found.outcomes, product=True)]
    written = write_report(path, folder, found.metrics, shown, found.calibration)
    print(f"Report written to {written[0]} (charts: {', '.join(p.name for p in written[1:])})", file=sys.stderr)


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
        write_thresholds(path, calibration.answer, calibration.menu)
    except (ValueError, OSError) as error:  # tomllib.TOMLDecodeError is a ValueError
        print(f"Could not write the thresholds: {error}", file=sys.stderr)
        return 1
    print(f"Wrote [thresholds] answer = {calibration.answer}, menu = {calibration.menu} to {path}", file=sys.stderr)
    return 0
