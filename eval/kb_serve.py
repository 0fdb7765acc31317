"""``kb serve`` in its own process, for the benchmarks (``eval.bench_server``, ``eval.bench_wechat``).

The server is the real command (``python -m bots.cli serve``), started over a copy of the
configuration with a fresh state store, and measured over HTTP; the engine's own time per
message is read from the state store's question log (a SQLite file or a PostgreSQL database).
Nothing here imports ``bots``.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import tomlkit

ROOT = Path(__file__).resolve().parent.parent

_PATHS = {"": ("content_dir", "index_dir", "cache_path"), "engine": ("state_path",), "orders": ("demo_path",)}
"""The paths of the configuration file, by section ("": the top level), relative to the file."""


def configuration_copy(
    source: str | os.PathLike[str] | None,
    target: Path,
    sections: dict[str, dict[str, Any]],
    index_dir: Path | None = None,
) -> Path:
    """Write to ``target`` the configuration at ``source`` (default: ``$KB_CONFIG``, else the
    repository's ``kb.toml``) with its paths made absolute and ``sections`` (``{"engine":
    {"state_path": ...}}``) set over it (and ``index_dir``, to serve a build made elsewhere);
    return ``target``."""
    source = source or os.environ.get("KB_CONFIG") or (ROOT / "kb.toml" if (ROOT / "kb.toml").exists() else None)
    data: dict[str, Any] = tomllib.loads(Path(source).read_text(encoding="utf-8")) if source else {}
    base = Path(source).resolve().parent if source else ROOT
    data.setdefault("content_dir", "content")
    data.setdefault("index_dir", ".kb")
    for section, keys in _PATHS.items():
        table = data.get(section, {}) if section else data
        for key in keys:
            if key in table:
                table[key] = str(base / table[key])
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    if index_dir is not None:
        data["index_dir"] = str(index_dir.resolve())
    target.write_text(tomlkit.dumps(data), encoding="utf-8")
    return target


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(
    config: Path, port: int, log: Path, env: dict[str, str] | None = None, workers: int = 1, log_level: str = "warning"
) -> subprocess.Popen[bytes]:
    """``kb --config CONFIG serve [--workers N]`` on ``127.0.0.1:port``, its output into ``log``;
    returns once every worker answers ``/healthz`` (or exits when the server does not start)."""
    command = [sys.executable, "-m", "bots.cli", "--config", str(config), "serve", "--port", str(port), "--log-level", log_level]
    command += ["--workers", str(workers)] if workers > 1 else []
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, log, workers)
    except BaseException:
        stop(server)
        raise
    return server


def wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path, workers: int = 1, timeout: float = 300) -> None:
    """Until ``workers`` different workers have answered ``/healthz`` (each on a new connection:
    the kernel spreads them over the processes listening on the port)."""
    end = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < end:
        if server.poll() is not None:
            raise SystemExit(f"kb serve did not start:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            response = httpx.get(f"{url}/healthz", timeout=1)
            if response.status_code == 200:
                seen.add(response.json().get("worker", ""))
                if len(seen) >= workers:
                    return
                continue
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"kb serve did not start in {timeout:.0f} s")


def processes(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux; ``[pid]`` elsewhere): ``kb serve --workers N``'s workers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) the processes have used so far (Linux), NaN elsewhere."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")
    return total


def resident_mb(pid: int) -> float:
    """Resident memory of one process in MB (Linux), NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def engine_times(state: Path | str, since: float, channel: str) -> list[float]:
    """The engine's time (ms) for each message of ``channel`` logged since ``since`` (a Unix
    time), in order, from the question log of the state store at ``state``: a SQLite file, or a
    ``postgresql://`` URL."""
    query = "SELECT latency_ms FROM question_log WHERE at >= ? AND channel = ? AND latency_ms IS NOT NULL ORDER BY id"
    if isinstance(state, str):
        import psycopg

        with psycopg.connect(state) as db:
            return [row[0] for row in db.execute(query.replace("?", "%s"), (since, channel)).fetchall()]
    if not state.exists():
        return []
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True, timeout=30)) as db:
        rows = db.execute(query, (since, channel)).fetchall()
    return [row[0] for row in rows]
