"""The shop's order system over HTTP: ``GET {base_url}/orders/{number}`` returns the order as
JSON (the fields of :class:`~bots.orders.backend.Order`), 404 when there is none."""

from __future__ import annotations

import httpx

from bots.orders.backend import Order, OrderBackendError


class HttpOrderBackend:
    def __init__(self, base_url: str, auth_header: str = "Authorization", auth_token: str = "", timeout: float = 3.0) -> None:
        if not base_url:
            raise ValueError("[orders] base_url is needed for the http backend")
        headers = {auth_header: auth_token} if auth_token else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def get(self, number: str) -> Order | None:
        try:
            response = self._client.get(f"/orders/{number}")
        except httpx.HTTPError as error:
            raise OrderBackendError(f"order system unreachable: {type(error).__name__}") from error
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise OrderBackendError(f"order system answered {response.status_code}")
        try:
            return Order.from_dict(response.json())
        except (ValueError, TypeError) as error:
            raise OrderBackendError(f"order system sent an unreadable order: {error}") from error

    def close(self) -> None:
        self._client.close()
