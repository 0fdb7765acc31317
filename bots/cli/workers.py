"""``kb serve --workers N``: N server processes on one port, each with a listening socket of its own.

uvicorn's own workers share one listening socket, and whichever worker wakes first accepts every
connection waiting (asyncio accepts them in a loop): a burst of keep-alive connections, as a
reverse proxy or WeChat opens them, lands mostly on one worker while the other idles. With
``SO_REUSEPORT`` each worker listens on its own socket and the kernel spreads new connections
over them evenly (Linux hashes each connection to one socket), which is what nginx's
``reuseport`` and gunicorn's ``--reuse-port`` do.

The parent process only supervises: it starts the workers, starts a new one when one dies, and
stops them all on SIGTERM or SIGINT (each finishes the requests it has, as uvicorn does).
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import socket
import threading
from typing import Any

log = logging.getLogger("kb.server")

APP = "bots.server:app_from_environment"
"""Each worker builds its application from ``KB_CONFIG`` (:func:`bots.server.app_from_environment`)."""
STOP_SECONDS = 30.0
"""How long a worker has to finish its requests when stopped, before it is killed."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` that other processes may bind too (``SO_REUSEPORT``)."""
    family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock


def serve_workers(host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Run ``workers`` server processes on ``host:port`` until SIGTERM or SIGINT; the exit status.
    ``options``: :class:`uvicorn.Config`'s (log level, log configuration)."""
    # Bound, never listening: it holds the port (port 0 becomes a real one) and takes no connections.
    holder = listening_socket(host, port)
    port = holder.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    stopping = threading.Event()

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(host, port, options), name="kb-serve-worker")
        process.start()
        return process

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    processes = [start() for _ in range(workers)]
    try:
        while not stopping.wait(0.5):
            for index, process in enumerate(processes):
                if not process.is_alive():
                    log.warning("worker %s stopped (exit code %s): starting another", process.pid, process.exitcode)
                    processes[index] = start()
    finally:
        for process in processes:
            process.terminate()  # SIGTERM: uvicorn finishes the requests under way
        for process in processes:
            process.join(STOP_SECONDS)
            if process.is_alive():
                process.kill()
                process.join()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        holder.close()
    return 0


def _worker(host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = listening_socket(host, port)
    uvicorn.Server(uvicorn.Config(APP, factory=True, **options)).run(sockets=[sock])
