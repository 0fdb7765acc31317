"""Order lookup: ownership, masking, and a backend that fails, against a real HTTP server on
loopback; and no raw personal data in the state store."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bots.orders import HttpOrderBackend, Order
from bots.orders.demo import sample_orders
from bots.store import SqliteStateStore
from bots.store.sqlite import MIGRATIONS
from kb.vocabulary import HandoffReason
from tests.conftest import Clock, everything_in
from tests.test_engine import at


class FakeOrderSystem:
    """The shop's order system: ``GET /orders/<number>`` with a bearer token."""

    def __init__(self, orders: list[Order]) -> None:
        self.orders = {o.number: o.__dict__ for o in orders}
        self.mode = "ok"  # ok | error | slow | garbage
        self.requests: list[tuple[str, str | None]] = []
        system = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                system.requests.append((self.path, self.headers.get("Authorization")))
                if system.mode == "slow":
                    time.sleep(1.5)
                if system.mode == "error":
                    return self._send(503, b'{"error": "maintenance"}')
                if system.mode == "garbage":
                    return self._send(200, b"<html>oops</html>")
                if self.headers.get("Authorization") != "Bearer s3cret":
                    return self._send(401, b"{}")
                order = system.orders.get(self.path.rsplit("/", 1)[-1])
                if order is None:
                    return self._send(404, b'{"error": "not found"}')
                return self._send(200, json.dumps(order).encode())

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def order_system():
    orders = sample_orders(today=__import__("datetime").date(2026, 11, 23))
    orders[0].customers = ["test:owner"]
    system = FakeOrderSystem(orders)
    yield system
    system.stop()


@pytest.fixture
def engine(make_engine, order_system):
    backend = HttpOrderBackend(order_system.url, "Authorization", "Bearer s3cret", timeout=0.5)
    return make_engine(orders=backend, clock=Clock(at(10)))


def test_the_owner_sees_the_order_with_phone_and_address_masked(engine, order_system):
    turn = engine.handle("test", "owner", "我的订单202611150001到哪了？")
    text = turn.text
    assert turn.replies[0].kind == "order"
    assert "202611150001" in text and "运输中" in text and "SF1402394857" in text
    assert "138****5678" in text and "13812345678" not in text
    assert "浦东新区" in text and "张江路" not in text and "88" not in text
    assert order_system.requests[-1] == ("/orders/202611150001", "Bearer s3cret")


def test_someone_else_must_give_the_phones_last_four_and_a_wrong_guess_reveals_nothing(engine):
    asked = engine.handle("test", "stranger", "where is my order 202611150001")
    assert asked.replies[0].kind == "ask" and "last four digits" in asked.text
    wrong = engine.handle("test", "stranger", "1234")
    assert "SF1402394857" not in wrong.text and "on its way" not in wrong.text
    engine.handle("test", "stranger", "0000")
    gave_up = engine.handle("test", "stranger", "9999")
    assert "agent" in gave_up.text and "SF1402394857" not in gave_up.text
    # After three wrong tries the right digits no longer unlock it in this exchange.
    assert "SF1402394857" not in engine.handle("test", "stranger", "5678").text


def test_the_right_last_four_unlock_the_order(engine):
    engine.handle("test", "buyer", "查一下订单 202611150002")
    turn = engine.handle("test", "buyer", "1111")
    assert turn.replies[0].kind == "order" and "已签收" in turn.text and "139****1111" in turn.text
    again = engine.handle("test", "buyer", "202611150002 呢")
    assert again.replies[0].kind == "order"  # verified once for this conversation


def test_an_order_question_without_a_number_asks_for_it_and_an_unknown_number_says_so(engine):
    asked = engine.handle("test", "u1", "我的快递到哪了")
    assert asked.replies[0].kind == "ask" and "订单号" in asked.text
    missing = engine.handle("test", "u1", "209999999999")
    assert "没有查到订单 209999999999" in missing.text


@pytest.mark.parametrize("mode", ["error", "slow", "garbage"])
def test_a_failing_order_system_gives_an_apology_and_a_handoff(engine, order_system, mode):
    order_system.mode = mode
    turn = engine.handle("test", "owner", "订单202611150001到哪了")
    assert turn.handed_off and turn.ticket.reason == "order_unavailable"
    assert "抱歉" in turn.text


def test_an_unreachable_order_system_gives_a_handoff(make_engine):
    backend = HttpOrderBackend("http://127.0.0.1:9", timeout=0.5)  # nothing listens on port 9
    turn = make_engine(orders=backend, clock=Clock(at(10))).handle("test", "u1", "where is order 202611150001")
    assert turn.handed_off and turn.ticket.reason == "order_unavailable"


RAW = ["13812345678", "138 1234 5678", "6222021234567890123", "110101199003071234", "bob.smith@example.com", "张江路88号3栋"]


def test_no_raw_phone_card_id_or_email_reaches_the_database(make_engine, tmp_path):
    engine = make_engine(clock=Clock(at(10)))
    messages = [
        "我的手机号是13812345678，订单202611150001到哪了",
        "call me on 138 1234 5678 please",
        "我的卡号6222021234567890123被扣了两次钱",  # money: a ticket with the transcript
        "身份证110101199003071234，邮箱 bob.smith@example.com",
        "地址是上海市浦东新区张江路88号3栋，能改地址吗",
    ]
    for message in messages:
        engine.handle("test", "u1", message)
    ticket = engine.desk.tickets()[0]
    engine.desk.reply(ticket.id, "alice", "请确认手机 13812345678 是否正确")
    engine.store.add_feedback("test", "u1", None, False, "13812345678", 0)
    if not isinstance(engine.store, SqliteStateStore):
        dump = everything_in(engine.store)
        assert not [raw for raw in RAW if raw in dump]
        assert "138****5678" in dump and "****0123" in dump and "202611150001" in dump
        return
    engine.store.close()
    database = sqlite3.connect(engine.store.path)
    dump = "\n".join(database.iterdump())
    for raw in RAW:
        assert raw not in dump
    assert "138****5678" in dump and "****0123" in dump and "***@example.com" in dump
    assert "202611150001" in dump  # an order number is not personal data
    wal = engine.store.path.with_name(engine.store.path.name + "-wal")
    files = [engine.store.path.read_bytes(), wal.read_bytes() if wal.exists() else b""]
    for raw in RAW:
        assert all(raw.encode() not in blob for blob in files)


def test_the_phone_guess_limit_holds_per_order_whatever_user_id_asks(engine):
    """Issue 19: the limit was 3 guesses per user id, and every request could bring a new one."""
    for i in range(engine.settings.order_guesses_per_order):
        engine.handle("test", f"made-up-{i}", "订单 202611150002 到哪了")
        assert engine.handle("test", f"made-up-{i}", f"{i:04d}").replies[0].kind == "ask"  # wrong, not locked yet
    engine.handle("test", "made-up-last", "订单 202611150002 到哪了")
    locked = engine.handle("test", "made-up-last", "1111")  # the right digits, after the limit
    assert locked.handed_off and locked.ticket.reason == HandoffReason.ORDER_LOCKED
    assert "ZT7781234560" not in locked.text and "139****1111" not in locked.text
    assert "锁定" in locked.text
    # Another order is not locked; this one opens again when the window has passed.
    engine.handle("test", "buyer", "订单 202611150001 到哪了")
    assert engine.handle("test", "buyer", "5678").replies[0].kind == "order"
    engine.clock.advance(engine.settings.order_lock_minutes * 60 + 1)
    engine.handle("test", "owner-later", "订单 202611150002 到哪了")
    assert engine.handle("test", "owner-later", "1111").replies[0].kind == "order"


def test_the_phone_guess_limit_holds_per_customer_over_every_order(make_engine):
    engine = make_engine(clock=Clock(at(10)), order_guesses_per_customer=4)
    numbers = ["202611150001", "202611150002", "202611150003"]
    for i in range(4):
        engine.handle("test", "prober", f"订单 {numbers[i % 3]} 到哪了")
        assert not engine.handle("test", "prober", "0000").handed_off
    engine.handle("test", "prober", "订单 202611150003 到哪了")
    turn = engine.handle("test", "prober", "0000")
    assert turn.handed_off and turn.ticket.reason == HandoffReason.ORDER_LOCKED


def test_hits_are_counted_in_the_store_shared_by_workers(tmp_path):
    first, second = SqliteStateStore(tmp_path / "s.sqlite"), SqliteStateStore(tmp_path / "s.sqlite")  # two workers
    assert first.schema_version == len(MIGRATIONS) >= 2
    assert [first.hit("k", 100.0, 60), second.hit("k", 110.0, 60), first.hit("k", 120.0, 60)] == [1, 2, 3]
    assert second.hit("other", 120.0, 60) == 1
    assert second.hit("k", 165.0, 60) == 3  # the hit at 100 is out of the window
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(first.hit("race", 200.0, 60))) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 21))  # atomic: no two callers see the same count
