"""``kb serve`` over real HTTP on loopback: health, /api/ask, the agent API and its token, bad
bodies, and a new build swapped in while requests are under way."""

from __future__ import annotations

import threading

import httpx
import pytest

from bots.conversation.engine import Engine
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
