"""Settings of the conversation engine and the server, from the ``[engine]``, ``[orders]``,
``[agents]``, ``[api]`` and ``[capacity]`` sections of the configuration file, and from the environment for secrets.

Secrets are never in the repository: ``KB_AGENT_TOKEN``, ``KB_API_TOKEN``, ``KB_ORDERS_TOKEN`` and
``KB_STATE_URL`` in the environment win over the file (which should then be a local, ignored one),
and ``[engine] state_url`` may name environment variables as ``${NAME}``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

from kb.config import Config, ConfigError, read_section


@dataclass
class EngineSettings:
    state_path: Path = Path(".kb/state.sqlite")
    """The SQLite state store (conversations, tickets, feedback, the question log)."""
    state_url: str = ""
    """``postgresql://user:${KB_PG_PASSWORD}@host/db``: the state in PostgreSQL instead, shared by
    several workers. ``${NAME}`` is read from the environment; ``KB_STATE_URL`` wins over the file."""
    state_pool_size: int = 20
    """PostgreSQL connections per worker; a thread holds one for a statement only."""
    timezone: str = "Asia/Shanghai"
    service_hours: str = "09:00-22:00"
    """When agents answer, in ``timezone``. Outside these hours customers are told when."""
    max_message_chars: int = 1000
    """Longer messages are cut to this and the customer is told so."""
    escalate_after_hours: float = 24.0
    """A ticket untouched this long escalates."""
    max_failed_answers: int = 2
    """After this many answers in a row marked "not solved", the customer is handed over as upset."""
    order_guesses_per_order: int = 5
    """Guesses of an order's phone digits (right or wrong, from anyone) within ``order_lock_minutes``;
    past this the order is locked for that long and the customer is handed to a person. Order
    numbers are sequential, so the limit must hold per order, not per customer."""
    order_guesses_per_customer: int = 10
    """The same, per customer (channel and user), over every order."""
    order_lock_minutes: float = 60.0
    common_questions: dict[str, list[str]] = field(
        default_factory=lambda: {
            "zh": ["我的订单到哪了", "怎么申请退货", "退款多久到账", "运费怎么算", "优惠券怎么用"],
            "en": ["Where is my order?", "How do I return an item?", "When will I get my refund?", "How much is shipping?"],
        }
    )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def hours(self) -> tuple[time, time]:
        start, end = self.service_hours.split("-")
        return time.fromisoformat(start.strip()), time.fromisoformat(end.strip())


@dataclass
class OrderSettings:
    backend: str = "demo"
    """``demo`` (an SQLite file of sample orders, created on first use) or ``http``."""
    demo_path: Path = Path(".kb/orders.sqlite")
    base_url: str = ""
    auth_header: str = "Authorization"
    auth_token: str = ""
    """Secret: better in ``KB_ORDERS_TOKEN``."""
    timeout: float = 3.0
    number_pattern: str = r"(?<![0-9])20\d{10}(?![0-9])"
    """How an order number looks (the demo shop's: 12 digits starting with 20)."""


@dataclass
class AgentSettings:
    token: str = ""
    """Bearer token for the agent API. Secret: better in ``KB_AGENT_TOKEN``. Empty: API off."""


@dataclass
class ApiSettings:
    token: str = ""
    """Bearer token for ``POST /api/ask``. Secret: better in ``KB_API_TOKEN``. Empty: the API
    answers only requests that reach the server on a loopback address (a local demo)."""
    max_body_bytes: int = 64_000
    """A larger body gets 413 before it is read."""


@dataclass
class CapacitySettings:
    """Worker threads for ``POST /api/ask`` (channels with deadlines have their own)."""

    ask_workers: int = 4
    """Questions of ``/api/ask`` the engine answers at once."""
    ask_queue: int = 32
    """Questions of ``/api/ask`` that may wait for a worker; more get 503 with ``Retry-After``."""
    retry_after_seconds: int = 2


@dataclass
class Settings:
    engine: EngineSettings
    orders: OrderSettings
    agents: AgentSettings
    api: ApiSettings = field(default_factory=ApiSettings)
    capacity: CapacitySettings = field(default_factory=CapacitySettings)


def load_settings(config: Config) -> Settings:
    """The engine's settings. Relative paths are relative to the config file, and by default
    the state lives beside the knowledge base (``index_dir``)."""
    engine = read_section(config, "engine", EngineSettings)
    orders = read_section(config, "orders", OrderSettings)
    agents = read_section(config, "agents", AgentSettings)
    api = read_section(config, "api", ApiSettings)
    capacity = read_section(config, "capacity", CapacitySettings)
    if min(capacity.ask_workers, capacity.retry_after_seconds) <= 0 or capacity.ask_queue < 0:
        raise ConfigError(f"{config.source or 'configuration'}: [capacity] ask_workers and retry_after_seconds must be positive")
    index_dir = Path(config.index_dir)
    if "state_path" not in (config.extra.get("engine") or {}):
        engine.state_path = index_dir / "state.sqlite"
    if "demo_path" not in (config.extra.get("orders") or {}):
        orders.demo_path = index_dir / "orders.sqlite"
    orders.auth_token = os.environ.get("KB_ORDERS_TOKEN", orders.auth_token)
    agents.token = os.environ.get("KB_AGENT_TOKEN", agents.token)
    api.token = os.environ.get("KB_API_TOKEN", api.token)
    engine.state_url = expand_environment(os.environ.get("KB_STATE_URL", engine.state_url), config)
    if engine.state_url and not engine.state_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{config.source or 'configuration'}: [engine] state_url must start with postgresql://")
    try:
        engine.zone, engine.hours  # noqa: B018  (fail now, with the file's name, not on the first message)
    except Exception as error:
        raise ConfigError(f"{config.source or 'configuration'}: [engine] {error}") from None
    if orders.backend not in ("demo", "http"):
        raise ConfigError(f"{config.source or 'configuration'}: [orders] backend must be 'demo' or 'http'")
    return Settings(engine, orders, agents, api, capacity)


def expand_environment(text: str, config: Config) -> str:
    """``${NAME}`` replaced by the environment variable NAME: a password stays out of the file."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{config.source or 'configuration'}: [engine] state_url needs ${{{name}}}, which is not set")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value, text)
