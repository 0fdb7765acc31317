"""Order lookup: the :class:`OrderBackend` interface, an HTTP backend for the shop's order
system, an SQLite demo backend with sample orders, and the three-step order answer."""

from bots.orders.backend import Order, OrderBackend, OrderBackendError, open_backend
from bots.orders.demo import DemoOrderBackend
from bots.orders.http import HttpOrderBackend
from bots.orders.lookup import OrderQuestion, order_steps

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
