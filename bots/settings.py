"""Settings of the conversation engine and the server, from the ``[engine]``, ``[orders]`` and
``[agents]`` sections of the configuration file, and from the environment for secrets.

Secrets are never in the repository: ``KB_AGENT_TOKEN``, ``KB_ORDERS_TOKEN`` and ``KB_STATE_URL``
in the environment win over the file (which should then be a local, ignored one), and
``[engine] state_url`` may name environment variables as ``${NAME}``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from kb.config import Config, ConfigError


@dataclass
class EngineSettings:
    state_path: Path = Path(".kb/state.sqlite")
    """The SQLite state store (conversations, tickets, feedback, the question log)."""
    state_url: str = ""
    """``postgresql://user:${KB_PG_PASSWORD}@host/db``: the state in PostgreSQL instead, shared by
    several workers. ``${NAME}`` is read from the environment; ``KB_STATE_URL`` wins over the file."""
    state_pool_size: int = 10
    """PostgreSQL connections per worker."""
    timezone: str = "Asia/Shanghai"
    service_hours: str = "09:00-22:00"
    """When agents answer, in ``timezone``. Outside these hours customers are told when."""
    max_message_chars: int = 1000
    """Longer messages are cut to this and the customer is told so."""
    escalate_after_hours: float = 24.0
    """A ticket untouched this long escalates."""
    max_failed_answers: int = 2
    """After this many answers in a row marked "not solved", the customer is handed over as upset."""
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
class Settings:
    engine: EngineSettings
    orders: OrderSettings
    agents: AgentSettings


def read_section(config: Config, name: str, cls: type, paths: tuple[str, ...] = ()) -> Any:
    """The ``[name]`` section of the configuration as a ``cls`` dataclass; ``paths`` are made
    relative to the configuration file. Unknown keys are an error that names the file."""
    values = dict(config.extra.get(name) or {})
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    where = config.source or "configuration"
    if unknown:
        raise ConfigError(f"{where}: [{name}] unknown setting(s): {', '.join(sorted(unknown))}")
    base = config.source.resolve().parent if config.source else Path.cwd()
    for key in paths:
        if key in values and not Path(values[key]).is_absolute():
            values[key] = base / values[key]
        elif key in values:
            values[key] = Path(values[key])
    return cls(**values)


def load_settings(config: Config) -> Settings:
    """The engine's settings. Relative paths are relative to the config file, and by default
    the state lives beside the knowledge base (``index_dir``)."""
    engine = read_section(config, "engine", EngineSettings, ("state_path",))
    orders = read_section(config, "orders", OrderSettings, ("demo_path",))
    agents = read_section(config, "agents", AgentSettings)
    index_dir = Path(config.index_dir)
    if "state_path" not in (config.extra.get("engine") or {}):
        engine.state_path = index_dir / "state.sqlite"
    if "demo_path" not in (config.extra.get("orders") or {}):
        orders.demo_path = index_dir / "orders.sqlite"
    orders.auth_token = os.environ.get("KB_ORDERS_TOKEN", orders.auth_token)
    agents.token = os.environ.get("KB_AGENT_TOKEN", agents.token)
    engine.state_url = expand_environment(os.environ.get("KB_STATE_URL", engine.state_url), config)
    if engine.state_url and not engine.state_url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"{config.source or 'configuration'}: [engine] state_url must start with postgresql://")
    try:
        engine.zone, engine.hours  # noqa: B018  (fail now, with the file's name, not on the first message)
    except Exception as error:
        raise ConfigError(f"{config.source or 'configuration'}: [engine] {error}") from None
    if orders.backend not in ("demo", "http"):
        raise ConfigError(f"{config.source or 'configuration'}: [orders] backend must be 'demo' or 'http'")
    return Settings(engine, orders, agents)


def expand_environment(text: str, config: Config) -> str:
    """``${NAME}`` replaced by the environment variable NAME: a password stays out of the file."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ConfigError(f"{config.source or 'configuration'}: [engine] state_url needs ${{{name}}}, which is not set")
        return os.environ[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value, text)
