"""Benchmark: prints the figures behind the speed and quality targets.

    python -m eval.bench                      # 1,000 entries + both dev sets
    python -m eval.bench --entries 1000 10000 --no-dev

For each size, a synthetic knowledge base is made from the sample content (each FAQ entry
copied with a distinct product name, so every text is new), then: cold build (empty embedding
cache), rebuild after editing one file, warm ``ask`` latency p50/p95/p99 over the customer
question sets, and peak memory. Timings are of this machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

from eval.metrics import percentile
from eval.run import evaluate
from ingest import build, load_content
from kb.config import Config, load_config
from retriever import Retriever

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ["蓝牙耳机", "运动鞋", "羽绒服", "电饭煲", "口红", "坚果礼盒", "机械键盘", "保温杯", "双肩包", "吹风机"]


def synthetic_content(source: Path, target: Path, entries: int) -> None:
    """``entries`` FAQ files made from the sample ones, plus the sample policies and rules."""
    content = load_content(source, display_root=source)
    shutil.copytree(source / "policies", target / "policies")
    shutil.copytree(source / "rules", target / "rules")
    files = sorted((source / "faq").rglob("*.md"))
    for i in range(entries):
        original = files[i % len(files)]
        product = f"{PRODUCTS[i % len(PRODUCTS)]}{i}"
        text = original.read_text(encoding="utf-8")
        record = next(r for r in content.faq if r.source == str(original.relative_to(source)))
        text = text.replace(f"id: {record.id}", f"id: {record.id}-{i}", 1)
        # Every phrase gets the product name, so nothing comes from the cache.
        for phrase in [record.question, *record.alternates]:
            text = text.replace(phrase, f"{phrase} {product}", 1)
        path = target / "faq" / original.parent.name / f"{record.id}-{i}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def customer_questions() -> list[str]:
    questions = []
    for name in ("customer_zh", "customer_en"):
        path = ROOT / "eval" / name / "queries.jsonl"
        if path.exists():
            questions += [json.loads(line)["query"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return questions


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_size(config: Config, entries: int, questions: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"kb-bench-{entries}-") as scratch:
        root = Path(scratch)
        settings = copy.deepcopy(config)
        settings.content_dir = root / "content"
        settings.index_dir = root / "index"
        settings.cache_path = root / "cache.sqlite"
        synthetic_content(config.content_dir, settings.content_dir, entries)

        started = time.perf_counter()
        report = build(settings)
        cold = time.perf_counter() - started

        edited = sorted((settings.content_dir / "faq" / "zh").glob("*.md"))[0]
        edited.write_text(edited.read_text(encoding="utf-8").replace("alternates:\n", "alternates:\n  - 这个问题改过一次\n", 1))
        started = time.perf_counter()
        rebuilt = build(settings)
        rebuild = time.perf_counter() - started

        started = time.perf_counter()
        retriever = Retriever.from_config(settings)
        retriever.ask(questions[0])
        cold_start = time.perf_counter() - started
        for question in questions[:20]:
            retriever.ask(question)
        latencies = [retriever.ask(q).latency_ms for q in questions]
        return {
            "entries": report.entries,
            "phrases": report.phrases,
            "cold_build_s": cold,
            "rebuild_one_file_s": rebuild,
            "rebuild_embedded": sum(rebuilt.embedded.values()),
            "load_and_first_answer_s": cold_start,
            "ask_p50_ms": percentile(latencies, 50),
            "ask_p95_ms": percentile(latencies, 95),
            "ask_p99_ms": percentile(latencies, 99),
            "peak_rss_mb": peak_mb(),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="*", default=[1000])
    parser.add_argument("--no-dev", action="store_true", help="skip the dev question sets")
    parser.add_argument("--dev", default=str(ROOT.parent / "shared" / "eval"), help="folder of the dev sets")
    args = parser.parse_args()
    config = load_config()
    print(f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}")
    described = [f"{e.name} ({e.kind}, weight {e.weight}, {'/'.join(e.languages)})" for e in config.embedders]
    print(f"embedders: {', '.join(described)}")
    questions = customer_questions()
    for size in args.entries:
        figures = bench_size(config, size, questions)
        print(f"\n{size} entries ({figures['entries']} made, {figures['phrases']} phrases):")
        for key, value in figures.items():
            if key not in ("entries", "phrases"):
                print(f"  {key:26s} {value:10.1f}")
    if not args.no_dev:
        for name in ("banking77_en", "clinc150_en"):
            folder = Path(args.dev) / name
            if folder.exists():
                metrics = evaluate(config, folder)
                shown = " ".join(
                    f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items() if v is not None
                )
                print(f"\n{name}: {shown}")


if __name__ == "__main__":
    main()
