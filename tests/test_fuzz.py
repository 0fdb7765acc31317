"""The fuzzer in the suite: a small run of every class whose fix is merged against the real
``kb serve`` process, with schemathesis over the OpenAPI schema (issue 19). The full run
(``python -m eval.fuzz``, ≥ 10,000 requests) is a benchmark; see the README."""

from __future__ import annotations

import shutil

from eval.fuzz.attacks import EXPECTED, PENDING
from eval.fuzz.run import fuzz, report
from tests.conftest import require


def test_a_small_fuzz_run_finds_no_5xx_no_traceback_and_no_leak(small):
    require(shutil.which("schemathesis") is not None or _importable("schemathesis"), "schemathesis", "pip install -e '.[dev]'")
    small.add_faq("refund-time", "退款多久到账", ["退款什么时候到"])
    small.add_faq("shipping-fee", "运费多少", ["邮费怎么算"])
    small.add_faq("invoice", "How do I get an invoice?", ["invoice please"], lang="en")
    assert small.cli("build") == 0
    classes = [c for c in EXPECTED if c not in PENDING]
    result = fuzz(300, 120, classes, small.root / "kb.toml", workers=4, huge_bytes=300_000, schema_examples=3, schema_seconds=180)
    figures = report(result)
    assert result.requests >= 250, figures
    assert result.server_errors == 0 and result.hangs == 0, figures
    assert result.tracebacks == 0, figures
    assert not result.unexpected, figures  # every class got what issue 19 says it must
    assert result.leak_count == 0 and result.sent_pii, figures
    assert result.schema is not None and result.schema.passed, figures


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None
