"""The Telegram adapter over real HTTP on loopback: ``kb serve`` runs in uvicorn, updates are POSTed
to its webhook, and the bot talks to a local fake of the Telegram Bot API (pointed at with
python-telegram-bot's base URL setting) that records every call."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from bots.channels import ChannelHub
from bots.channels.telegram.bot import TelegramBot
from bots.channels.telegram.format import LIMIT, chunks, paragraph, render, size
from bots.channels.telegram.keyboards import MAX_CALLBACK_BYTES, feedback_data, keyboard_for, parse_callback
from bots.channels.telegram.polling import poll
from bots.channels.telegram.settings import load_telegram_settings
from bots.cli import main
from bots.orders import DemoOrderBackend
from bots.replies.reply import Reply
from bots.server import create_app
from kb.config import ConfigError
from kb.model import Steps
from tests.live import live_server

TOKEN = "4242:test-token"
SECRET = "s3cret_webhook-token"
AGENTS = -1007777
BOT_USER = {"id": 4242, "is_bot": True, "first_name": "KB", "username": "kb_test_bot"}
AGENT_TOKEN = "agent-test-token"


# a fake Telegram Bot API


class FakeTelegram:
    """Speaks the Bot API methods the bot uses, over HTTP on loopback, and records each call as
    ``(time, method, params)``. ``flood(method, retry_after)`` answers the next call with 429."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, dict[str, Any]]] = []
        self.updates: list[dict[str, Any]] = []
        self._floods: dict[str, list[int]] = {}
        self._ids = count(5000)
        self._changed = threading.Condition()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(body or "{}")
                else:
                    params = {k: _maybe_json(v) for k, v in parse_qsl(body)}
                prefix = f"/bot{TOKEN}/"
                if not self.path.startswith(prefix):
                    return self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                status, payload = fake.call(self.path[len(prefix) :], params)
                self._answer(status, payload)

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the bot stopped a long poll
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/bot"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def flood(self, method: str, retry_after: int, times: int = 1) -> None:
        self._floods.setdefault(method, []).extend([retry_after] * times)

    def call(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._changed:
            self.calls.append((time.monotonic(), method, params))
            self._changed.notify_all()
            flood = self._floods.get(method)
            retry_after = flood.pop(0) if flood else None
        if retry_after is not None:
            description = f"Too Many Requests: retry after {retry_after}"
            return 429, {"ok": False, "error_code": 429, "description": description, "parameters": {"retry_after": retry_after}}
        if method == "getMe":
            return 200, {"ok": True, "result": BOT_USER}
        if method == "sendMessage":
            chat = int(params["chat_id"])
            params["message_id"] = next(self._ids)  # recorded with the call: tests reply to it
            message = {
                "message_id": params["message_id"],
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
            return 200, {"ok": True, "result": message}
        if method == "getUpdates":
            time.sleep(0.2)  # a short long poll
            with self._changed:
                updates, self.updates = self.updates, []
            return 200, {"ok": True, "result": updates}
        if method in ("answerCallbackQuery", "editMessageReplyMarkup", "setWebhook", "deleteWebhook"):
            return 200, {"ok": True, "result": True}
        return 404, {"ok": False, "error_code": 404, "description": f"Not Found: method {method}"}

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Messages the bot sent (to ``chat_id``), oldest first."""
        return [p for _, m, p in self.calls if m == "sendMessage" and (chat_id is None or int(p["chat_id"]) == chat_id)]

    def named(self, method: str) -> list[dict[str, Any]]:
        return [p for _, m, p in self.calls if m == method]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; calls: {[(m, p) for _, m, p in self.calls]}")
                self._changed.wait(min(left, 0.2))

    def wait_sent(self, chat_id: int, n: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """The first ``n`` messages to ``chat_id`` (waits for them)."""
        return self.wait_for(lambda: len(self.sent(chat_id)) >= n and self.sent(chat_id)[:n], timeout)


def _maybe_json(value: str) -> Any:
    if value[:1] in "{[":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@pytest.fixture
def fake() -> FakeTelegram:
    server = FakeTelegram()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


# updates as Telegram sends them

_update_ids = count(1)
_message_ids = count(100)


def text_update(user: int, text: str, chat: int | None = None, reply_to: int | None = None) -> dict[str, Any]:
    chat = chat or user
    message: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": int(time.time()),
        "chat": {"id": chat, "type": "private" if chat > 0 else "supergroup", "first_name": "Ann"},
        "from": {"id": user, "is_bot": False, "first_name": "Ann", "username": f"user{user}", "language_code": "zh"},
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    if reply_to is not None:
        message["reply_to_message"] = {
            "message_id": reply_to,
            "date": int(time.time()),
            "chat": message["chat"],
            "from": BOT_USER,
            "text": "…",
        }
    return {"update_id": next(_update_ids), "message": message}


def button_update(user: int, data: str, message_id: int) -> dict[str, Any]:
    return {
        "update_id": next(_update_ids),
        "callback_query": {
            "id": f"cb{next(_update_ids)}",
            "from": {"id": user, "is_bot": False, "first_name": "Ann"},
            "chat_instance": "ci",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": user, "type": "private"},
                "from": BOT_USER,
                "text": "…",
            },
        },
    }


# kb serve in uvicorn, on loopback


class Served:
    def __init__(self, app: Any, engine: Any) -> None:
        self.app, self.engine = app, engine
        self._running = contextlib.ExitStack()
        self.url = self._running.enter_context(live_server(app))
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def post(self, update: Any, secret: str | None = SECRET, raw: bytes | None = None) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        body = raw if raw is not None else json.dumps(update, ensure_ascii=False).encode()
        return self.http.post("/telegram/webhook", content=body, headers={**headers, "Content-Type": "application/json"})

    def close(self) -> None:
        self.http.close()
        self._running.close()


def telegram_config(sample_config: Any, fake: FakeTelegram, **extra: Any) -> Any:
    section = {"token": TOKEN, "webhook_secret": SECRET, "agents_chat_id": AGENTS, "base_url": fake.url, **extra}
    return dataclasses.replace(sample_config, extra={**sample_config.extra, "telegram": section})


@pytest.fixture
def serve(sample_config, make_engine, fake, monkeypatch):
    """``serve(**make_engine_args)``: kb serve with Telegram on, running; closed after the test."""
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("KB_AGENT_TOKEN", AGENT_TOKEN)
    running: list[Served] = []

    def start(**engine_args: Any) -> Served:
        engine = make_engine(**engine_args)
        served = Served(create_app(telegram_config(sample_config, fake), engine, reload_every=3600), engine)
        running.append(served)
        return served

    yield start
    for served in running:
        served.close()


def _last_to(fake: FakeTelegram, chat: int, containing: str, timeout: float = 20.0) -> dict[str, Any]:
    return fake.wait_for(lambda: next((m for m in reversed(fake.sent(chat)) if containing in m["text"]), None), timeout)


def _buttons(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row]


# formatting and buttons (no server)


def test_an_answer_is_html_with_the_conclusion_in_bold_and_numbered_steps():
    steps = Steps("可以 <退> & 换。", "根据《退换货政策》。", ["打开「我的订单」", "点「申请售后」"])
    reply = Reply("answer", "zh", steps=steps, asks_feedback=True, entry_id="return-quality")
    (text,) = render(reply)
    assert text.startswith("<b>可以 &lt;退&gt; &amp; 换。</b>\n\n原因：根据《退换货政策》。")
    assert "操作：\n1. 打开「我的订单」\n2. 点「申请售后」" in text
    assert "回复 1" not in text  # feedback is asked with buttons
    assert _button_data(keyboard_for(reply)) == ["fb:1:return-quality", "fb:0:return-quality", "agent"]


def test_long_texts_are_split_at_line_boundaries_within_the_limit():
    lines = [f"第 {i} 行 <b> & 说明：" + "很长的内容，" * 30 for i in range(200)]
    reply = Reply("handoff", "zh", text="\n".join(lines), steps=Steps("结论" * 3000, "原因", ["一步"]))
    messages = render(reply)
    assert len(messages) > 3
    assert all(size(m) <= LIMIT for m in messages)
    for message in messages:  # each is valid on its own: tags open and close in the same message
        assert message.count("<b>") == message.count("</b>")
        assert not re.search(r"&[a-z]*$", message)
    plain = html.unescape(re.sub(r"</?b>", "", "\n".join(messages)))
    for line in lines:
        assert line in plain  # no line of the text was cut
    assert "结论" * 3000 in plain.replace("\n", "")
    assert chunks([paragraph("😀" * 3000)], LIMIT)[0] == "😀" * 2048  # an emoji counts two


def test_callback_data_stays_within_64_bytes_and_strange_data_is_refused():
    assert len(feedback_data(True, "x" * 80).encode()) <= MAX_CALLBACK_BYTES
    assert parse_callback(feedback_data(False, "return-quality")).value == "return-quality"
    for data in (None, "", "fb:2:x", "q:zh:²", "pick:", "pick:-1", "agent:x", "x" * 65, "drop table"):
        assert parse_callback(data) is None


def test_settings_take_the_secrets_from_the_environment(sample_config, fake, monkeypatch):
    config = telegram_config(sample_config, fake)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:from-env")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "env_secret")
    settings = load_telegram_settings(config)
    assert (settings.token, settings.webhook_secret, settings.agents_chat_id) == ("1:from-env", "env_secret", AGENTS)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "not allowed!")
    with pytest.raises(ConfigError, match="webhook_secret"):
        load_telegram_settings(config)


def _button_data(markup: Any) -> list[str]:
    return [b.callback_data for row in markup.inline_keyboard for b in row]


# customers


def test_answer_buttons_and_feedback(serve, fake):
    served = serve()
    assert served.post(text_update(1001, "东西坏了能退吗")).status_code == 200
    (answer,) = fake.wait_sent(1001)
    assert answer["parse_mode"] == "HTML"
    assert answer["text"].startswith("<b>") and "\n1. " in answer["text"] and "原因：" in answer["text"]
    solved, not_solved, agent = _buttons(answer)
    assert solved.startswith("fb:1:") and not_solved.startswith("fb:0:") and agent == "agent"

    served.post(button_update(1001, solved, answer["message_id"]))
    thanks = _last_to(fake, 1001, "感谢您的反馈")
    assert not _buttons(thanks)
    fake.wait_for(lambda: fake.named("answerCallbackQuery") and fake.named("editMessageReplyMarkup"))
    entry = solved.split(":", 2)[2]
    assert served.engine.store.feedback_by_entry()[entry] == (1, 0)

    served.post(button_update(1001, solved, answer["message_id"]))  # pressed again: answered, not counted
    served.post(button_update(1001, "nonsense", answer["message_id"]))  # not ours: answered all the same
    fake.wait_for(lambda: len(fake.named("answerCallbackQuery")) == 3)
    assert served.engine.store.feedback_by_entry()[entry] == (1, 0)
    assert len(fake.sent(1001)) == 2


def test_start_greets_with_common_questions_as_buttons(serve, fake):
    served = serve()
    served.post(text_update(1002, "/start"))
    (greeting,) = fake.wait_sent(1002)
    assert "常见问题" in greeting["text"]
    questions = _buttons(greeting)
    assert questions[:2] == ["q:zh:0", "q:zh:1"]
    served.post(button_update(1002, "q:zh:2", greeting["message_id"]))  # 退款多久到账
    answer = fake.wait_sent(1002, 2)[1]
    assert "<b>" in answer["text"] and _buttons(answer)[-1] == "agent"
    fake.wait_for(lambda: fake.named("answerCallbackQuery"))

    served.post(text_update(1002, "/help"))
    assert "人工" in fake.wait_sent(1002, 3)[2]["text"]


# agents


def test_handoff_relay_take_close_and_resume(serve, fake):
    served = serve()
    customer = 1003
    served.post(text_update(customer, "东西坏了能退吗"))
    fake.wait_sent(customer)
    served.post(text_update(customer, "我的退款还没到账，怎么回事"))  # money: to a person
    handoff = fake.wait_sent(customer, 2)[1]
    assert "人工" in handoff["text"]
    ticket = served.engine.desk.tickets()[0]
    assert ticket.reason == "money" and ticket.user_id == str(customer)

    post = fake.wait_for(lambda: fake.sent(AGENTS))[0]
    text = post["text"]
    assert ticket.id in text and "涉及金额" in text and "首次回复截止" in text
    assert "东西坏了能退吗" in text and "我的退款还没到账" in text  # the transcript
    assert "知识库候选" in text and "\n1. " in text  # the top candidates

    # while the ticket is open the bot is silent; what the customer adds reaches the agents
    served.post(text_update(customer, "订单号 202611150002，手机 13812345678"))
    relay = fake.wait_for(lambda: len(fake.sent(AGENTS)) >= 2 and fake.sent(AGENTS)[1])
    assert "202611150002" in relay["text"] and "138****5678" in relay["text"]
    assert relay["reply_parameters"]["message_id"] == post["message_id"]
    assert len(fake.sent(customer)) == 2

    # an agent's message that is not a reply to a ticket is ignored
    served.post(text_update(777, "大家好，今天谁值班？", chat=AGENTS))
    # an agent replies to the post: the customer gets it
    served.post(text_update(777, "您好，我来帮您查一下退款。", chat=AGENTS, reply_to=post["message_id"]))
    relayed = _last_to(fake, customer, "我来帮您查一下退款")
    assert "人工客服" in relayed["text"]
    assert served.engine.desk.ticket(ticket.id).state == "human"
    assert any(m.author == "agent:@user777" for m in served.engine.desk.ticket(ticket.id).messages)

    # the agent API reaches the Telegram customer too
    response = served.http.post(
        f"/api/agent/tickets/{ticket.id}/reply",
        json={"agent": "desk", "text": "退款已经在处理中。"},
        headers={"Authorization": f"Bearer {AGENT_TOKEN}"},
    )
    assert response.status_code == 200 and response.json()["delivered"] is True
    _last_to(fake, customer, "退款已经在处理中")

    served.post(text_update(778, "/take", chat=AGENTS, reply_to=post["message_id"]))
    _last_to(fake, AGENTS, "已认领工单")
    assert served.engine.desk.ticket(ticket.id).agent == "@user778"

    served.post(text_update(778, "/close", chat=AGENTS, reply_to=relay["message_id"]))
    _last_to(fake, customer, "人工服务已结束")
    _last_to(fake, AGENTS, "已结束")
    assert served.engine.desk.ticket(ticket.id).state == "closed"

    # a reply to a closed ticket is not sent, and the agent is told
    before = len(fake.sent(customer))
    served.post(text_update(777, "还在吗？", chat=AGENTS, reply_to=post["message_id"]))
    _last_to(fake, AGENTS, "已经结束")
    assert len(fake.sent(customer)) == before
    # the bot has the customer again
    served.post(text_update(customer, "运费怎么算"))
    answer = fake.wait_sent(customer, before + 1)[before]
    assert "原因：" in answer["text"] and "转接" not in answer["text"]  # answered, not handed off again
    assert len([p for p in fake.sent(AGENTS) if "大家好" in p["text"]]) == 0


# the webhook


def test_the_secret_token_is_required(serve, fake):
    served = serve()
    for secret in (None, "", "wrong", SECRET + "x"):
        assert served.post(text_update(1004, "东西坏了能退吗"), secret=secret).status_code == 403
    time.sleep(0.5)
    assert fake.sent(1004) == []
    assert served.engine.store.conversation("telegram", "1004").updated_at == 0  # nothing processed
    assert served.post(text_update(1004, "东西坏了能退吗")).status_code == 200
    fake.wait_sent(1004)


def test_malformed_bodies_are_refused_and_nothing_breaks(serve, fake):
    served = serve()
    bad = [
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b'"update"',
        b"{}",
        b'{"update_id": "7"}',
        b'{"update_id": 7, "message": "oops"}',
    ]
    bad.append(json.dumps({"update_id": 8, "message": {"text": "no chat, no date"}}).encode())
    for body in bad:
        response = served.post(None, raw=body)
        assert response.status_code == 400, body
    ignored = [{"update_id": 9, "poll": {"id": "1"}}, {"update_id": 10, "edited_message": {"message_id": 1}}]
    for update in ignored:  # kinds the bot does not handle: acknowledged, dropped
        assert served.post(update).status_code == 200
    assert served.http.get("/healthz").status_code == 200
    update = text_update(1005, "东西坏了能退吗")
    assert served.post(update).status_code == 200
    assert served.post(update).status_code == 200  # Telegram resends: answered once
    fake.wait_sent(1005)
    time.sleep(1.0)
    assert len(fake.sent(1005)) == 1


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")  # PTB's own RetryAfter
def test_flood_control_is_honoured(serve, fake):
    served = serve()
    fake.flood("sendMessage", retry_after=1)
    served.post(text_update(1006, "东西坏了能退吗"))
    first, second = fake.wait_sent(1006, 2)  # refused with 429, then sent again
    assert "message_id" not in first and "message_id" in second and second["text"] == first["text"]
    attempts = [t for t, m, p in fake.calls if m == "sendMessage" and int(p["chat_id"]) == 1006]
    assert attempts[1] - attempts[0] >= 1.0


class SlowOrders:
    """The demo orders behind a slow order system."""

    def __init__(self, path: Path, seconds: float) -> None:
        self.demo, self.seconds = DemoOrderBackend(path), seconds

    def get(self, number: str):
        time.sleep(self.seconds)
        return self.demo.get(number)


def test_a_slow_order_lookup_holds_up_nobody_else(serve, fake, tmp_path):
    served = serve(orders=SlowOrders(tmp_path / "slow-orders.sqlite", 5.0))
    served.post(text_update(1007, "/start"))  # the models are warm before the clock starts
    fake.wait_sent(1007)
    started = time.monotonic()
    served.post(text_update(1008, "我的订单 202611150001 到哪了"))  # the slow one
    served.post(text_update(1009, "退款多久到账"))
    fake.wait_sent(1009)
    fast = time.monotonic() - started
    assert fast < 4.0 and fake.sent(1008) == []
    fake.wait_sent(1008)
    assert time.monotonic() - started >= 5.0


def test_without_a_token_there_is_no_route(sample_config, make_engine, monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    app = create_app(sample_config, make_engine())
    assert not any(getattr(r, "path", "") == "/telegram/webhook" for r in app.routes)
    assert "telegram" not in app.state.channels


# kb telegram


def test_long_polling(sample_config, make_engine, fake, monkeypatch):
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    settings = load_telegram_settings(telegram_config(sample_config, fake))
    bot = TelegramBot(ChannelHub.for_engine(make_engine()), settings, polling=True)
    fake.updates.append(text_update(1010, "东西坏了能退吗"))

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poll(bot, stop, poll_timeout=1))
        await asyncio.to_thread(fake.wait_sent, 1010)
        stop.set()
        await asyncio.wait_for(task, 30)

    asyncio.run(run())
    assert "<b>" in fake.sent(1010)[0]["text"]
    assert fake.named("deleteWebhook") and fake.named("getUpdates")[0]["allowed_updates"] == ["message", "callback_query"]


def test_set_webhook_registers_the_url_with_the_secret(tmp_path, fake, monkeypatch):
    config = tmp_path / "kb.toml"
    config.write_text(f'index_dir = "{tmp_path / "index"}"\n[telegram]\nbase_url = "{fake.url}"\n', encoding="utf-8")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    assert main(["--config", str(config), "telegram", "set-webhook", "https://bot.example.com"]) == 1  # no secret
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", SECRET)
    assert main(["--config", str(config), "telegram", "set-webhook", "https://bot.example.com"]) == 0
    (call,) = fake.named("setWebhook")
    assert call["url"] == "https://bot.example.com/telegram/webhook" and call["secret_token"] == SECRET
    assert call["allowed_updates"] == ["message", "callback_query"]


def test_updates_of_the_wrong_shape_are_refused_cleanly(serve, fake, caplog):
    """Issue 19: a text that is a number, list or object, a lone surrogate (SQLite refuses it) or
    a malformed chat was dropped with a traceback."""
    served = serve()

    def with_message(**changes: Any) -> dict[str, Any]:
        update = text_update(1006, "东西坏了能退吗")
        update["message"].update(changes)
        return update

    bad = [
        with_message(text=12345),
        with_message(text=["退货"]),
        with_message(text={"a": 1}),
        with_message(caption=7),
        with_message(text="退货\ud800"),
        with_message(chat="1006"),
        with_message(chat={"type": "private"}),
        with_message(chat={"id": "1006", "type": "private"}),
        with_message(**{"from": {"id": "x", "first_name": "Ann"}}),
        {**button_update(1006, "agent", 1), "callback_query": {"id": "c", "from": None, "data": "agent"}},
        {**button_update(1006, "agent", 1), "callback_query": {"id": "c", "from": {"id": 1006, "first_name": "A"}, "data": 5}},
    ]
    for update in bad:
        body = json.dumps(update, ensure_ascii=True).encode()  # \ud800 travels as JSON escapes, as an attacker sends it
        assert served.post(None, raw=body).status_code == 400, update
    time.sleep(0.5)
    assert fake.sent(1006) == []
    assert served.engine.store.conversation("telegram", "1006").updated_at == 0  # nothing stored
    assert not any(r.exc_info for r in caplog.records) and "Traceback" not in caplog.text
    assert served.post(text_update(1006, "东西坏了能退吗")).status_code == 200  # a good one still goes through
    fake.wait_sent(1006)
