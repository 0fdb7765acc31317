"""``kb suggest``: alternate phrasings customers taught the bot, for editors to accept or reject."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bots.report.suggestions import SuggestionError, accept, pending, reject
from bots.settings import load_settings
from bots.store import open_store
from ingest.suggestions import FrontMatterError
from kb.config import Config
from kb.store import KnowledgeBase


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--accept", metavar="ID", help="write the suggestion into its entry's Markdown file")
    parser.add_argument("--reject", metavar="ID", help="drop the suggestion (it is not proposed again)")
    parser.add_argument("--min-picks", type=int, metavar="N", help="picks a phrasing needs (default: [learning] min_picks)")


def run(config: Config, args: argparse.Namespace) -> int:
    settings = load_settings(config).engine
    if not settings.state_url and not settings.state_path.exists():
        print("Nothing to suggest yet: customers' picks fill it up (kb chat, kb serve).")
        return 0
    records = KnowledgeBase.load(config.index_dir).records
    store = open_store(settings)
    try:
        if args.accept:
            roots = [Path.cwd(), Path(config.content_dir).resolve().parent]
            suggestion, path = accept(store, records, args.accept, roots)
            print(f"Added “{suggestion.phrasing}” to {suggestion.entry_id} in {path}. Run kb build to use it.")
            return 0
        if args.reject:
            suggestion = reject(store, records, args.reject)
            print(f"Rejected “{suggestion.phrasing}” for {suggestion.entry_id}; it will not be proposed again.")
            return 0
        min_picks = args.min_picks if args.min_picks is not None else config.learning.min_picks
        suggestions, conflicts = pending(store, records, min_picks)
    except (SuggestionError, FrontMatterError) as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        store.close()
    if not suggestions and not conflicts:
        print(f"No suggestions yet (a phrasing needs {min_picks} pick(s) for one entry).")
        return 0
    for s in suggestions:
        print(f"{s.id}  {s.entry_id:32s} {s.picks:3d} pick(s)  {s.phrasing}")
    for c in conflicts:
        picked = ", ".join(f"{entry} ×{n}" for entry, n in sorted(c.picks.items()))
        print(f"flagged  “{c.phrasing}”: picked for different entries ({picked}); look before adding it anywhere")
    if suggestions:
        print("\nkb suggest --accept ID writes one into its entry; --reject ID drops it.")
    return 0
