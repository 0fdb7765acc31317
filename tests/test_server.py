"""``kb serve`` over real HTTP on loopback: health, /api/ask, the agent API and its token, bad
bodies, and a new build swapped in while requests are under way."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest
from fastapi.testclient import TestClient

from bots.conversation.engine import Engine
from bots.guards import key_notice
from bots.orders import DemoOrderBackend
from bots.server import create_app
from bots.settings import load_settings
from bots.store import SqliteStateStore
from ingest import build
from retriever import Retriever
from tests.live import live_server

TOKEN = "agent-secret"


@pytest.fixture
def server(sample_config, make_engine, monkeypatch):
    monkeypatch.setenv("KB_AGENT_TOKEN", TOKEN)
    monkeypatch.delenv("KB_API_TOKEN", raising=False)  # on loopback: the local demo mode
    engine = make_engine()
    app = create_app(sample_config, engine, reload_every=3600)
    sent: list[tuple[str, str]] = []

    async def send(user_id, replies):
        sent.extend((user_id, r.plain()) for r in replies)

    app.state.hub.register_sender("api", send)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        http.sent = sent
        yield http


AGENT = {"Authorization": f"Bearer {TOKEN}"}


def test_health_and_a_plain_question(server):
    health = server.get("/healthz").json()
    assert health["status"] == "ok" and health["build"]
    answer = server.post("/api/ask", json={"question": "东西坏了能退吗"}).json()
    assert answer["action"] == "answer" and answer["entry_id"] == "return-quality-problem"
    assert answer["text"].startswith("结论：")


API_TOKEN = "api-secret"


def test_the_api_needs_its_key_when_one_is_set(sample_config, make_engine, monkeypatch):
    """Issue 19: anyone could act as any customer through /api/ask."""
    monkeypatch.setenv("KB_API_TOKEN", API_TOKEN)
    app = create_app(sample_config, make_engine(), reload_every=3600)
    question = {"question": "转人工", "user_id": "u1"}
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_TOKEN}):
            assert http.post("/api/ask", json=question, headers=headers).status_code == 401
        assert app.state.engine.desk.tickets() == []
        ok = http.post("/api/ask", json=question, headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert ok.status_code == 200 and ok.json()["handed_off"]


def test_without_a_key_the_api_answers_on_loopback_only(sample_config, make_engine, monkeypatch):
    monkeypatch.delenv("KB_API_TOKEN", raising=False)
    app = create_app(sample_config, make_engine(), reload_every=3600)
    # The request reached the server on a public address (the scope's "server").
    with TestClient(app, base_url="http://203.0.113.7") as public:
        response = public.post("/api/ask", json={"question": "转人工", "user_id": "u1"})
        assert response.status_code == 403 and "KB_API_TOKEN" in response.text
    with TestClient(app, base_url="http://127.0.0.1") as local:
        assert local.post("/api/ask", json={"question": "东西坏了能退吗"}).status_code == 200
    assert app.state.engine.desk.tickets() == []
    assert key_notice("", "127.0.0.1") and "local demo" in key_notice("", "127.0.0.1")
    assert "off for requests from other machines" in key_notice("", "0.0.0.0") and key_notice("s3cret", "0.0.0.0") is None


def test_the_api_speaks_for_its_own_channel_only(server):
    """A WeChat customer's openid with "channel": "wechat" opened a ticket for them; made-up
    channels ("", "\x00", "../x") made tickets too."""
    for channel in ("wechat", "telegram", "", "\x00", "../x"):
        response = server.post("/api/ask", json={"question": "转人工", "user_id": "o-openid", "channel": channel})
        assert response.status_code == 422, channel
    turn = server.post("/api/ask", json={"question": "转人工", "user_id": "o-openid", "channel": "api"}).json()
    ticket = server.get(f"/api/agent/tickets/{turn['ticket']}", headers=AGENT).json()
    assert ticket["channel"] == "api"
    assert [t["channel"] for t in server.get("/api/agent/tickets", headers=AGENT).json()] == ["api"]


def test_channel_names_are_a_closed_set_where_conversations_and_tickets_are_made(make_engine):
    engine = make_engine()
    for channel in ("", "\x00", "../x", "WeChat"):
        with pytest.raises(ValueError, match="unknown channel"):
            engine.handle(channel, "u1", "转人工")
    assert engine.desk.tickets() == []


def _raw_post(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a request by hand (headers and as much of the body as given, never the rest) and read
    what comes back: a server that waited for the whole body would never answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        return sock.recv(4096)


def test_the_api_refuses_a_large_body_before_reading_it(server):
    """Issue 19: six 30 MB bodies were taken with 200."""
    url = str(server.base_url).rstrip("/")
    declared = "POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 30000000\r\n"
    assert _raw_post(url, declared).startswith(b"HTTP/1.1 413")
    chunked = "POST /api/ask HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    chunk = b"x" * 70_000
    assert _raw_post(url, chunked, f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n").startswith(b"HTTP/1.1 413")
    big = {"question": "东西坏了能退吗", "padding": "x" * 70_000}
    assert server.post("/api/ask", json=big).status_code == 413
    assert server.post("/api/ask", json={"question": "东西坏了能退吗", "padding": "x" * 50_000}).status_code == 200


def test_with_a_user_id_the_whole_engine_answers(server):
    turn = server.post("/api/ask", json={"question": "转人工", "user_id": "u1"}).json()
    assert turn["handed_off"] and turn["ticket"] and turn["replies"][0]["kind"] == "handoff"
    assert server.post("/api/ask", json={"question": "还在吗", "user_id": "u1"}).json()["silent"]


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"{not json", "application/json"),
        (b'{"q": 1}', "application/json"),
        (b"\xff\xfe", "text/plain"),
        (b"[]", "application/json"),
    ],
)
def test_malformed_bodies_get_a_4xx(server, body, content_type):
    response = server.post("/api/ask", content=body, headers={"Content-Type": content_type})
    assert 400 <= response.status_code < 500


def test_the_agent_api_needs_the_token(server):
    assert server.get("/api/agent/tickets").status_code == 401
    assert server.get("/api/agent/tickets", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert server.get("/api/agent/tickets", headers=AGENT).status_code == 200


def test_agents_list_read_take_reply_and_close_tickets(server):
    ticket_id = server.post("/api/ask", json={"question": "我要投诉！！", "user_id": "u7"}).json()["ticket"]
    listed = server.get("/api/agent/tickets", headers=AGENT).json()
    assert [t["id"] for t in listed] == [ticket_id] and listed[0]["reason"] == "upset"
    ticket = server.get(f"/api/agent/tickets/{ticket_id}", headers=AGENT).json()
    assert ticket["messages"][0]["text"] == "我要投诉！！"
    assert server.post(f"/api/agent/tickets/{ticket_id}/take", json={"agent": "alice"}, headers=AGENT).json()["state"] == "human"
    replied = server.post(f"/api/agent/tickets/{ticket_id}/reply", json={"agent": "alice", "text": "您好"}, headers=AGENT)
    assert replied.json()["delivered"] and ("u7", "您好") in server.sent
    closed = server.post(f"/api/agent/tickets/{ticket_id}/close", json={"agent": "alice"}, headers=AGENT).json()
    assert closed["ticket"]["state"] == "closed" and closed["delivered"]
    again = server.post(f"/api/agent/tickets/{ticket_id}/reply", json={"agent": "alice", "text": "x"}, headers=AGENT)
    assert again.status_code == 409
    assert server.get("/api/agent/tickets/NOPE", headers=AGENT).status_code == 404
    assert server.post("/api/ask", json={"question": "东西坏了能退吗", "user_id": "u7"}).json()["replies"][0]["kind"] == "answer"


def test_without_a_configured_token_the_agent_api_is_off(sample_config, make_engine, monkeypatch):
    monkeypatch.delenv("KB_AGENT_TOKEN", raising=False)
    app = create_app(sample_config, make_engine(), reload_every=3600)
    with live_server(app) as url:
        assert httpx.get(f"{url}/api/agent/tickets", headers=AGENT).status_code == 503


def test_a_new_build_is_swapped_in_while_requests_are_under_way(small, tmp_path):
    small.add_faq("gift-wrap", "可以礼品包装吗？", ["能包装成礼物吗"], conclusion="可以，下单时选择礼品包装。")
    build(small.config)
    settings = load_settings(small.config)
    retriever = Retriever.from_config(small.config)
    engine = Engine(retriever, SqliteStateStore(tmp_path / "state.sqlite"), DemoOrderBackend(tmp_path / "o.sqlite"),
                    settings.engine, settings.orders.number_pattern)  # fmt: skip
    app = create_app(small.config, engine, reload_every=0.1)
    failures: list[object] = []
    stop = threading.Event()

    def ask_again_and_again(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            while not stop.is_set():
                response = http.post("/api/ask", json={"question": "可以礼品包装吗"})
                if response.status_code != 200 or response.json()["entry_id"] != "gift-wrap":
                    failures.append(response.text)

    with live_server(app) as url:
        first = httpx.get(f"{url}/healthz").json()["build"]
        threads = [threading.Thread(target=ask_again_and_again, args=(url,)) for _ in range(3)]
        for thread in threads:
            thread.start()
        small.add_faq("invoice", "怎么开发票？", ["能开发票吗"], conclusion="可以，在订单详情里申请电子发票。")
        build(small.config)
        for _ in range(100):
            if httpx.get(f"{url}/healthz").json()["build"] != first:
                break
            threading.Event().wait(0.1)
        answer = httpx.post(f"{url}/api/ask", json={"question": "能开发票吗"}).json()
        stop.set()
        for thread in threads:
            thread.join()
    assert httpx.Client  # the server is gone; what it answered is below
    assert failures == []
    assert answer["entry_id"] == "invoice" and answer["build"] != first
