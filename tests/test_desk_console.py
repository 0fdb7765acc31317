"""The web desk over plain HTTP (no browser): sign-in, lock-out, the session cookie, CSRF on every
POST, who may open what, a ticket worked through the desk (a channel's refusal shown), search and
the service figures. The browser suite (tests/test_desk_browser.py) drives the same pages in Chromium."""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import shutil
import time
from datetime import date, datetime
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from bots.console import add_user, sign_in
from bots.console.accounts import LOCK_AFTER
from bots.console.figures import service_figures
from bots.console.text import NAMES, TEXT
from bots.server import create_app
from bots.store import FeedbackEvent, LoggedQuestion, Pick, SqliteStateStore, Ticket
from bots.store.sqlite import MIGRATIONS
from kb.vocabulary import DeskRole

PASSWORD = "correct horse battery"
USERS = {"ann": DeskRole.AGENT, "eve": DeskRole.EDITOR, "root": DeskRole.ADMIN}


def content_copy(sample_config, folder: Path):
    """The sample configuration over a copy of the content (an editor's accept writes there, never
    into the repository's own files)."""
    shutil.copytree(Path(sample_config.content_dir), folder / "content")
    return dataclasses.replace(sample_config, content_dir=folder / "content")


@pytest.fixture
def desk(sample_config, make_engine, tmp_path):
    engine = make_engine()
    for name, role in USERS.items():
        add_user(engine.store, name, PASSWORD, role, "zh" if name != "eve" else "en")
    app = create_app(content_copy(sample_config, tmp_path), engine, reload_every=3600)
    with TestClient(app, base_url="http://desk.test", follow_redirects=False) as client:
        client.engine = engine
        client.app_ = app
        yield client


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in_as(client: TestClient, name: str, password: str = PASSWORD, **headers: str):
    form = client.get("/desk/sign-in")
    assert form.status_code == 200
    return client.post("/desk/sign-in", data={"csrf": csrf_of(form.text), "name": name, "password": password}, headers=headers)


def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(desk):
    assert desk.get("/desk/queue").headers["location"] == "/desk/sign-in"  # not signed in
    signed = sign_in_as(desk, "ann")
    assert signed.status_code == 303 and signed.headers["location"] == "/desk/queue"
    cookie = signed.headers["set-cookie"].lower()
    assert "kb_desk=" in cookie and "httponly" in cookie and "samesite=lax" in cookie and "path=/desk" in cookie
    assert "secure" not in cookie  # plain HTTP on loopback: a Secure cookie would never come back
    queue = desk.get("/desk/queue")
    assert queue.status_code == 200 and "content-security-policy" in queue.headers
    token = desk.cookies.get("kb_desk")
    assert desk.engine.store.session(token, time.time()) is None  # the store keeps a hash, not the token
    assert desk.post("/desk/sign-out", data={"csrf": csrf_of(queue.text)}).status_code == 303
    desk.cookies.set("kb_desk", token, domain="desk.test", path="/desk")  # the old cookie, replayed
    assert desk.get("/desk/queue").status_code == 303


def test_behind_an_https_proxy_the_cookie_is_secure(desk):
    signed = sign_in_as(desk, "ann", **{"X-Forwarded-Proto": "https"})
    assert "secure" in signed.headers["set-cookie"].lower()


def test_a_wrong_password_is_refused_and_five_in_a_row_lock_the_account(desk):
    store = desk.engine.store
    assert store.account("ann").password_hash.startswith("$argon2id$")
    wrong = sign_in_as(desk, "ann", "not the password")
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text  # no Accept-Language: English
    assert sign_in_as(desk, "nobody", PASSWORD).status_code == 401
    for _ in range(LOCK_AFTER - 1):
        assert sign_in_as(desk, "ann", "still wrong").status_code == 401
    locked = sign_in_as(desk, "ann")  # the right password, too late
    assert locked.status_code == 401 and ("locked" in locked.text or "锁定" in locked.text)
    assert sign_in(store, "ann", PASSWORD, now=time.time() + 16 * 60).account is not None  # 15 minutes later


def test_every_post_needs_the_session_csrf_token(desk):
    ticket = desk.engine.handle("api", "u1", "转人工").ticket
    form = desk.get("/desk/sign-in")
    no_token = desk.post("/desk/sign-in", data={"name": "ann", "password": PASSWORD})
    assert no_token.status_code == 403 and "kb_desk=" not in no_token.headers.get("set-cookie", "")
    assert csrf_of(form.text)
    sign_in_as(desk, "ann")
    page = desk.get(f"/desk/tickets/{ticket.id}")
    assert desk.post(f"/desk/tickets/{ticket.id}/take").status_code == 403
    assert desk.post(f"/desk/tickets/{ticket.id}/take", data={"csrf": "forged"}).status_code == 403
    assert desk.post("/desk/api/entries", data={"q": "退货"}).status_code == 403
    assert desk.engine.desk.ticket(ticket.id).agent is None
    assert desk.post(f"/desk/tickets/{ticket.id}/take", data={"csrf": csrf_of(page.text)}).status_code == 303
    assert desk.engine.desk.ticket(ticket.id).agent == "ann"


@pytest.mark.parametrize(
    "name, allowed, refused",
    [
        ("ann", ["/desk/queue", "/desk/search"], ["/desk/users", "/desk/reports", "/desk/suggestions"]),
        ("eve", ["/desk/search", "/desk/reports", "/desk/suggestions"], ["/desk/queue", "/desk/users"]),
        ("root", ["/desk/users"], ["/desk/queue", "/desk/search", "/desk/reports"]),
    ],
)
def test_each_role_opens_its_own_pages_only(desk, name, allowed, refused):
    sign_in_as(desk, name)
    for path in allowed:
        assert desk.get(path).status_code == 200, path
    for path in refused:
        assert desk.get(path).status_code == 403, path


def test_a_ticket_through_the_desk_and_a_channels_refusal_shown(desk):
    engine, hub = desk.engine, desk.app_.state.hub
    ticket = engine.handle("wechat", "wx-user", "转人工").ticket

    async def refuse(user_id, replies):  # WeChat after 48 hours of silence, as bots/channels/wechat sends it
        raise HTTPException(502, "WeChat did not accept the message: 45015 response out of time limit")

    hub.register_sender("wechat", refuse)
    sign_in_as(desk, "ann")
    rows = desk.get("/desk/queue/rows")
    assert ticket.id in rows.text and "顾客要求人工" in rows.text
    unchanged = desk.get("/desk/queue/rows", headers={"X-Version": rows.headers["x-version"]})
    assert unchanged.status_code == 204  # the page's poll: nothing to render
    page = desk.get(f"/desk/tickets/{ticket.id}")
    assert "转人工" in page.text  # the transcript
    refused = desk.post(f"/desk/tickets/{ticket.id}/reply", data={"csrf": csrf_of(page.text), "text": "您好，我来处理"})
    assert refused.status_code == 502 and "45015" in refused.text and "您好，我来处理</textarea>" in refused.text
    assert engine.desk.ticket(ticket.id).agent == "ann"  # the reply is on the ticket; the customer did not get it
    closed = desk.post(f"/desk/tickets/{ticket.id}/close", data={"csrf": csrf_of(page.text)})
    assert closed.status_code == 502 and not engine.desk.ticket(ticket.id).is_open


def test_a_ticket_shows_the_order_it_mentions_masked_as_the_bot_would(desk):
    engine = desk.engine
    engine.handle("api", "u6", "我的订单 202611150001 到哪了")  # not this customer's: the bot asks for the phone
    ticket = engine.handle("api", "u6", "转人工").ticket
    plain = engine.handle("api", "u7", "转人工").ticket
    sign_in_as(desk, "ann")
    page = desk.get(f"/desk/tickets/{ticket.id}")
    card = re.search(r'<section class="order" id="order">.*?</section>', page.text, re.S).group(0)
    assert "202611150001" in card and "运输中" in card and "顺丰速运" in card
    assert "138****5678" in card and "13812345678" not in page.text and "张江路" not in page.text  # as the bot shows it
    assert 'id="order"' not in desk.get(f"/desk/tickets/{plain.id}").text  # no order mentioned: no card
    engine.handle("api", "u8", "订单 209999999999 呢")
    unknown = engine.handle("api", "u8", "转人工").ticket
    assert "订单系统里没有这个订单号" in desk.get(f"/desk/tickets/{unknown.id}").text


def test_the_queue_pages_a_long_queue_most_urgent_first_and_escapes_what_it_shows(desk):
    store, now = desk.engine.store, time.time()
    for i in range(150):
        urgent = i == 149  # opened last, due last: still first, being urgent
        store.open_ticket(Ticket(f"T{i:04d}", "api", f"q{i}", "waiting", "requested", "question",
                                 "urgent" if urgent else "normal", "zh", now - 60, now + 600 + i, now))  # fmt: skip
    store.update_ticket("T0003", agent="<b>mallory</b>", state="human")
    sign_in_as(desk, "ann")
    first = desk.get("/desk/queue")
    ids = re.findall(r'data-ticket="(T\d+)"', first.text)
    assert len(ids) == 100 and ids[:2] == ["T0149", "T0000"] and 'id="older"' in first.text and ">150<" in first.text
    assert "&lt;b&gt;mallory&lt;/b&gt;" in first.text and "<b>mallory" not in first.text
    second = desk.get("/desk/queue?page=2")
    assert re.findall(r'data-ticket="(T\d+)"', second.text) == [f"T{i:04d}" for i in range(99, 149)]
    assert 'id="newer"' in second.text and 'data-poll="/desk/queue/rows?page=2"' in second.text
    rows = desk.get("/desk/queue/rows?page=2")
    assert rows.text.count("<tr ") == 50 and rows.headers["server-timing"].startswith("app;dur=")


def test_a_reply_on_a_channel_without_push_says_so(desk):
    ticket = desk.engine.handle("api", "u2", "转人工").ticket
    sign_in_as(desk, "ann")
    page = desk.get(f"/desk/tickets/{ticket.id}")
    sent = desk.post(f"/desk/tickets/{ticket.id}/reply", data={"csrf": csrf_of(page.text), "text": "好的"})
    assert sent.headers["location"].endswith("done=not_pushed")


def test_search_shows_whole_entries_and_never_logs_the_query(desk, caplog):
    sign_in_as(desk, "eve")
    page = desk.get("/desk/search")
    with caplog.at_level(logging.DEBUG):
        found = desk.post("/desk/search", data={"csrf": csrf_of(page.text), "q": "东西坏了能退吗 13812345678"})
    assert found.status_code == 200
    assert "return-quality-problem" in found.text and re.search(r"faq/zh/[\w-]+\.md:\d+", found.text)
    assert "Confidence" in found.text and "Valid" in found.text
    assert not any("13812345678" in r.getMessage() for r in caplog.records)


def test_the_reply_box_finds_entries_in_the_customers_language(desk):
    sign_in_as(desk, "ann")
    page = desk.get("/desk/queue")
    entries = desk.post("/desk/api/entries", data={"csrf": csrf_of(page.text), "q": "东西坏了能退吗", "language": "en"}).json()
    top = entries["entries"][0]
    assert top["entry_id"] == "return-quality-problem" and top["text"].startswith("Conclusion: ")


def test_editors_see_the_figures_the_unanswered_groups_and_the_not_solved_entries(desk):
    store, now = desk.engine.store, time.time()
    store.add_feedback("telegram", "u", "return-quality-problem", True, "q", now)
    for user in ("u1", "u2"):
        store.add_feedback("telegram", user, "return-quality-problem", False, "q", now)
    desk.engine.handle("telegram", "u9", "东西坏了能退吗")
    for i, words in enumerate(["积分可以换现金吗", "积分可以换现金吗？", "積分可以換現金嗎", "你们老板是谁"]):
        store.log_question(LoggedQuestion(now, "telegram", "zh", words, "menu" if i % 2 else "handoff", "low_confidence"))
    answered = desk.engine.handle("telegram", "u10", "转人工").ticket
    desk.engine.desk.take(answered.id, "ann")
    desk.engine.desk.reply(answered.id, "ann", "您好")  # the first response, well within the SLA
    sign_in_as(desk, "eve")
    page = desk.get("/desk/reports?days=7")
    assert page.status_code == 200 and page.text.count("<svg") == 5 and "telegram" in page.text
    assert "First-response time" in page.text and "within SLA" in page.text
    channel_row = re.search(r"<tr><td>telegram</td>.*?</tr>", page.text, re.S).group(0)
    assert "100%" in channel_row  # one ticket, answered on time
    unanswered = re.search(r'<table id="unanswered">.*?</table>', page.text, re.S).group(0)
    first_group = re.search(r"<tbody>\s*<tr><td>(\d+)</td><td><b>([^<]+)</b>", unanswered)
    assert first_group.group(1) == "3" and "积分" in first_group.group(2)  # traditional and punctuation group together
    assert "你们老板是谁" in unanswered and "东西坏了能退吗" not in unanswered  # answered questions are not listed
    not_solved = re.search(r'<table id="not-solved">.*?</table>', page.text, re.S).group(0)
    assert "return-quality-problem" in not_solved and "<td>2</td><td>1</td>" in not_solved


def test_an_editor_accepts_and_rejects_suggestions_with_the_csrf_token(desk):
    store, content = desk.engine.store, Path(desk.app_.state.config.content_dir)
    for i, (words, entry) in enumerate([("东西坏了可以退么", "return-quality-problem")] * 2 + [
        ("发票能寄纸质的吗", "invoice-request"), ("能不能改", "invoice-request"), ("能不能改", "return-quality-problem")
    ]):  # fmt: skip
        store.add_pick(Pick(1000.0 + i, "telegram", words, entry, "menu"))
    sign_in_as(desk, "eve")
    page = desk.get("/desk/suggestions")
    assert page.status_code == 200 and "东西坏了可以退么" in page.text and "发票能寄纸质的吗" in page.text
    conflicts = re.search(r'<ul id="conflicts".*?</ul>', page.text, re.S).group(0)
    assert "能不能改" in conflicts and "能不能改" not in page.text.split('<ul id="conflicts"')[0]  # flagged, no accept
    accept_id = re.search(r'data-suggestion="(\w+)">\s*<td[^>]*>东西坏了可以退么', page.text).group(1)
    reject_id = re.search(r'data-suggestion="(\w+)">\s*<td[^>]*>发票能寄纸质的吗', page.text).group(1)
    files = {p: p.read_text(encoding="utf-8") for p in content.rglob("*.md")}

    assert desk.post(f"/desk/suggestions/{accept_id}/accept").status_code == 403  # no CSRF token
    assert desk.post(f"/desk/suggestions/{accept_id}/accept", data={"csrf": "forged"}).status_code == 403
    assert {p: p.read_text(encoding="utf-8") for p in files} == files
    accepted = desk.post(f"/desk/suggestions/{accept_id}/accept", data={"csrf": csrf_of(page.text)})
    assert accepted.status_code == 303
    changed = [p for p, before in files.items() if p.read_text(encoding="utf-8") != before]
    assert len(changed) == 1 and "  - 东西坏了可以退么" in changed[0].read_text(encoding="utf-8")
    shown = desk.get(accepted.headers["location"])
    assert str(changed[0].relative_to(content.parent)) in shown.text and "kb build" in shown.text

    assert desk.post(f"/desk/suggestions/{reject_id}/reject", data={"csrf": csrf_of(page.text)}).status_code == 303
    after = desk.get("/desk/suggestions")
    assert "东西坏了可以退么" not in after.text and "发票能寄纸质的吗" not in after.text  # decided: gone
    again = desk.post(f"/desk/suggestions/{accept_id}/accept", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 409  # decided already: nothing written twice
    sign_in_as(desk, "ann")  # an agent may not decide
    agent_token = csrf_of(desk.get("/desk/queue").text)
    assert desk.post(f"/desk/suggestions/{reject_id}/reject", data={"csrf": agent_token}).status_code == 403


def test_service_figures_per_day_and_channel():
    zone = datetime.now().astimezone().tzinfo
    day = datetime(2026, 5, 4, 12, tzinfo=zone).timestamp()

    def asked(channel, outcome, at=day):
        return LoggedQuestion(at, channel, "zh", "q", outcome, "money" if outcome == "handoff" else None)

    def ticket(channel, reason, escalated=None):
        return Ticket("T", channel, "u", "closed", reason, "question", "normal", "zh", day, day, day, escalated)

    questions = [asked("telegram", "answer"), asked("telegram", "handoff"), asked("wechat", "answer")]
    figures = service_figures(
        [*questions, asked("wechat", "answer", day - 86400)],
        [ticket("telegram", "money", escalated=day), ticket("wechat", "requested")],
        [FeedbackEvent(day, "telegram", "e", True), FeedbackEvent(day, "telegram", "e", False)],
        zone,
        date(2026, 5, 4),
        2,
        channel="telegram",
    )
    assert figures.days == [date(2026, 5, 3), date(2026, 5, 4)]
    assert figures.questions == [0, 2] and figures.resolved == [0, 1] and figures.handoffs == {"money": [0, 1]}
    assert figures.escalations == [0, 1] and figures.share(figures.solved, figures.feedback) == [None, 0.5]
    assert figures.channels["wechat"]["questions"] == 2 and figures.channels["wechat"]["handoffs"] == 1


def test_first_response_against_the_sla_per_day_and_channel():
    zone = datetime.now().astimezone().tzinfo
    day = datetime(2026, 5, 4, 12, tzinfo=zone).timestamp()

    def ticket(name, channel="telegram", state="human", created=day):
        return Ticket(name, channel, "u", state, "requested", "question", "normal", "zh", created, created + 600, created)

    tickets = [ticket("on-time"), ticket("late"), ticket("silent", state="closed"), ticket("not-due-yet", state="waiting"),
               ticket("yesterday", created=day - 86400), ticket("wechat", channel="wechat")]  # fmt: skip
    responses = {"on-time": day + 300, "late": day + 1200, "yesterday": day - 86400 + 60, "wechat": day + 900}
    figures = service_figures([], tickets, [], zone, date(2026, 5, 4), 2, "telegram", responses=responses, now=day + 60)
    assert figures.on_time == [1, 1] and figures.late == [0, 1] and figures.unanswered == [0, 1]
    assert figures.response_minutes == [1.0, 12.5]  # medians of 5 and 20 minutes
    assert figures.channels["telegram"]["responses"] == 4 and figures.channels["telegram"]["on_time"] == 2
    assert figures.channels["wechat"] == {**figures.channels["wechat"], "responses": 1, "on_time": 0}
    assert figures.channel_minutes == {"telegram": 5.0, "wechat": 15.0}


def test_both_languages_say_the_same_things():
    assert set(TEXT["zh"]) == set(TEXT["en"]) and set(NAMES["zh"]) == set(NAMES["en"])


def test_kb_desk_add_user_reads_the_password_from_stdin(small, monkeypatch):
    small.add_faq("x", "问题", ["别的说法"])
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    assert small.cli("desk", "add-user", "mia", "--role", "editor", "--language", "en") == 0
    store = SqliteStateStore(small.config.index_dir / "state.sqlite")
    assert store.schema_version == len(MIGRATIONS)
    assert sign_in(store, "mia", "a long enough password").account.role == "editor"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert small.cli("desk", "add-user", "mia", "--role", "editor") == 1
