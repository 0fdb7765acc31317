"""A throwaway PostgreSQL server for the tests and the benchmarks (``eval.bench_server``): a
cluster made by ``initdb`` in a temporary folder, listening on a free loopback port, stopped at
the end. PostgreSQL refuses to run as root, so
when the tests run as root (CI) the server runs as the ``postgres`` user in a folder it owns."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

INSTALL = "apt-get update && apt-get install -y postgresql"


def binaries() -> Path | None:
    """Debian's server binaries (``/usr/lib/postgresql/<version>/bin``), the newest version."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster_for(states: list[str]) -> PostgresServer | None:
    """A throwaway cluster when a benchmark measures the ``postgres`` state, else None."""
    if "postgres" not in states:
        return None
    bin_dir = binaries()
    if bin_dir is None:
        raise SystemExit(f"PostgreSQL is not installed ({INSTALL}), or run with --state sqlite")
    return PostgresServer(bin_dir)


class PostgresServer:
    """One cluster; :meth:`new_database` gives each test (or benchmark run) its own empty database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="kb-postgres-"))
        self.data = self.folder / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "start",
            "-o", f"-p {self.port} -h 127.0.0.1 -k {self.folder} -c fsync=off -c max_connections=200",
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self._as_user, str(self.bin_dir / program), *args], check=True, capture_output=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def main_pid(self) -> int:
        """The server's main process (its backends are its children)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def new_database(self) -> str:
        """An empty database on this server: its URL."""
        import psycopg

        name = f"kb_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
