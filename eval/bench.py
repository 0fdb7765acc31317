"""Benchmark: prints the figures behind the speed and quality targets.

    python -m eval.bench                      # 1,000 entries + both dev sets
    python -m eval.bench --entries 1000 10000 --no-dev

For each size, a synthetic knowledge base is made from the sample content (each FAQ entry
copied with a distinct product name, so every text is new), then: cold build (empty embedding
cache), rebuild after editing one file, and, in a fresh Python process as a server would start:
cold start to the first answer, warm ``ask`` latency p50/p95/p99 over the customer question
sets (after one pass over them; the answer cache is off, so every question is answered anew),
and its peak memory. The machine (cores, CPU model) is printed with the figures, which
are of this machine only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from eval.metrics import percentile
from kb.config import Config, load_config
from kb.environment import set_environment_defaults

# ingest, retriever and the eval modules that use them are imported where they are used: they load
# FAISS and ONNX Runtime, which must come after main() has set the environment.

ROOT = Path(__file__).resolve().parent.parent
PRODUCTS = ["蓝牙耳机", "运动鞋", "羽绒服", "电饭煲", "口红", "坚果礼盒", "机械键盘", "保温杯", "双肩包", "吹风机"]


def synthetic_content(source: Path, target: Path, entries: int) -> None:
    """``entries`` FAQ files made from the sample ones, plus the sample policies and rules."""
    from ingest import load_content

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
    """Peak resident memory of this process so far.

    ``VmHWM`` where there is one: ``ru_maxrss`` of a process started by ``subprocess`` counts
    the parent's memory too (Linux carries it over the exec)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve(config: Config, questions: list[str]) -> dict[str, float]:
    """What a freshly started server sees (run in its own process, ``--serve``): load the build,
    answer the first question, then warm latencies over every question."""
    from retriever import Retriever

    started = time.perf_counter()
    config.retrieval.answer_cache_size = 0  # every question is answered anew, not from the cache
    retriever = Retriever.from_config(config)
    retriever.ask(questions[0])
    first_answer_at = time.time()
    load_and_first_ask = time.perf_counter() - started
    for question in questions:  # warm: every model, table and code path has run once
        retriever.ask(question)
    latencies = [retriever.ask(q).latency_ms for q in questions]
    return {
        "first_answer_at": first_answer_at,
        "load_and_first_ask_s": load_and_first_ask,
        "ask_p50_ms": percentile(latencies, 50),
        "ask_p95_ms": percentile(latencies, 95),
        "ask_p99_ms": percentile(latencies, 99),
        "questions": len(latencies),
        "serving_peak_mb": peak_mb(),
    }


def serve_in_fresh_process(config: Config, index_dir: Path) -> dict[str, float]:
    """:func:`serve` in a new Python process, so that cold start includes the interpreter, the
    imports and every model load, and its memory is the server's alone."""
    command = [sys.executable, "-m", "eval.bench", "--serve", str(index_dir)]
    if config.source is not None:
        command += ["--config", str(Path(config.source).resolve())]
    launched = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the serving process failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["cold_start_s"] = figures.pop("first_answer_at") - launched
    return figures


def bench_size(config: Config, entries: int) -> dict[str, float]:
    from ingest import build

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

        faq = settings.content_dir / "faq"
        edited = (sorted((faq / "zh").glob("*.md")) or sorted(faq.rglob("*.md")))[0]  # small sizes have English only
        edited.write_text(edited.read_text(encoding="utf-8").replace("alternates:\n", "alternates:\n  - 这个问题改过一次\n", 1))
        started = time.perf_counter()
        rebuilt = build(settings)
        rebuild = time.perf_counter() - started
        return {
            "entries": report.entries,
            "phrases": report.phrases,
            "cold_build_s": cold,
            "rebuild_one_file_s": rebuild,
            "rebuild_embedded": sum(rebuilt.embedded.values()),
            "build_peak_mb": peak_mb(),
            **serve_in_fresh_process(settings, settings.index_dir),
        }


def print_size(size: int, f: dict[str, float]) -> None:
    print(f"\n{size:,} entries ({f['entries']:,} made, {f['phrases']:,} phrases):")
    print(f"  cold build (empty embedding cache)   {f['cold_build_s']:8.1f} s")
    print(f"  rebuild after editing one file       {f['rebuild_one_file_s']:8.1f} s   ({f['rebuild_embedded']} text(s) embedded)")
    print(
        f"  warm ask p50 / p95 / p99             {f['ask_p50_ms']:.0f} / {f['ask_p95_ms']:.0f} / {f['ask_p99_ms']:.0f} ms"
        f"   ({f['questions']} customer questions, zh + en, none from the answer cache)"
    )
    print(f"  cold start to first answer           {f['cold_start_s']:8.1f} s   (new process: Python, imports, models, build)")
    print(f"    of which load + first ask          {f['load_and_first_ask_s']:8.1f} s   (the build, and the models it needs)")
    print(f"  peak memory, serving process         {f['serving_peak_mb']:8.0f} MB")
    print(f"  peak memory, building (this process) {f['build_peak_mb']:8.0f} MB   (sizes run smallest first)")


def main() -> None:
    set_environment_defaults()
    from eval.report import machine
    from eval.run import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="*", default=[1000], help="sizes of the synthetic knowledge bases")
    parser.add_argument("--no-dev", action="store_true", help="skip the dev question sets")
    parser.add_argument("--dev", default=str(ROOT.parent / "shared" / "eval"), help="folder of the dev sets")
    parser.add_argument("--config", help="configuration file (default: $KB_CONFIG or ./kb.toml)")
    parser.add_argument("--serve", metavar="INDEX_DIR", help=argparse.SUPPRESS)  # the fresh serving process
    args = parser.parse_args()
    config = load_config(args.config)
    if args.serve:
        config.index_dir = Path(args.serve)
        print(json.dumps(serve(config, customer_questions())))
        return
    print(f"machine: {machine()}, {platform.machine()}, Python {platform.python_version()}")
    described = [f"{e.name} ({e.kind}, weight {e.weight}, {'/'.join(e.languages)})" for e in config.embedders]
    print(f"embedders: {', '.join(described)}")
    for size in sorted(args.entries):
        print_size(size, bench_size(config, size))
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
