"""Order lookup: the :class:`OrderBackend` interface, an HTTP backend for the shop's order
system, an SQLite demo backend with sample orders, and the three-step order answer."""

from bots.orders.backend import Order, OrderBackend, OrderBackendError
from bots.orders.demo import DemoOrderBackend
from bots.orders.http import HttpOrderBackend
from bots.orders.lookup import OrderQuestion, order_steps
from bots.settings import OrderSettings


def open_backend(settings: OrderSettings) -> OrderBackend:
    """The backend the configuration names."""
    if settings.backend == "http":
        return HttpOrderBackend(settings.base_url, settings.auth_header, settings.auth_token, settings.timeout)
    return DemoOrderBackend(settings.demo_path)


__all__ = [
    "DemoOrderBackend",
    "HttpOrderBackend",
    "Order",
    "OrderBackend",
    "OrderBackendError",
    "OrderQuestion",
    "open_backend",
    "order_steps",
]
