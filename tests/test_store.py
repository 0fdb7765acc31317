"""The state store's roles, each test once in SQLite and once in PostgreSQL (the ``state`` fixture):
both backends must keep and return the same things, mask the same text, and hold their promises
across workers (one open ticket per customer, a claim taken once, a lease held by one)."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bots.settings import load_settings
from bots.store import Conversation, LoggedQuestion, Ticket, TicketMessage
from kb.config import Config, ConfigError
from kb.vocabulary import ConversationState, Outcome, Priority, TicketState

TRANSCRIPT = [("customer", "我的手机是13812345678"), ("bot", "请稍候"), ("customer", "转人工"), ("customer", "好的")]


def ticket(ticket_id: str, user: str = "u1", priority: str = Priority.NORMAL, due: float = 100.0) -> Ticket:
    return Ticket(ticket_id, "wechat", user, TicketState.WAITING, "asked_for_agent", "other", priority, "zh", 1.0, due, 1.0)


def test_a_conversation_comes_back_as_it_was_saved_with_personal_data_masked(state):
    store = state.fresh()
    assert store.conversation("wechat", "u1") == Conversation("wechat", "u1")
    saved = Conversation("wechat", "u1", ConversationState.HUMAN, "t1", "en", None, {"phone": "13812345678"}, 1, 2, "e1", 5.5)
    store.save_conversation(saved)
    back = store.conversation("wechat", "u1")
    assert back.context != saved.context and "13812345678" not in str(back.context)
    assert dataclasses.replace(back, context=saved.context) == saved
    store.save_conversation(dataclasses.replace(saved, failed_count=0))
    assert store.conversation("wechat", "u1").failed_count == 0


def test_the_transcript_keeps_the_last_messages_in_order(state):
    store = state.fresh()
    for n in range(5):
        store.add_message("wechat", "u1", "customer", f"message {n}", float(n))
    store.add_message("wechat", "u2", "customer", "someone else", 9.0)
    assert [m.text for m in store.recent_messages("wechat", "u1", limit=3)] == ["message 2", "message 3", "message 4"]


def test_a_turn_adds_the_message_before_it_reads_and_saves_with_its_logged_question(state):
    store = state.fresh()
    store.save_conversation(Conversation("wechat", "u1", language="en", failed_count=1))
    begun = store.begin_turn("wechat", "u1", "call me on 13812345678", 7.0)
    assert (begun.language, begun.failed_count) == ("en", 1)
    [said] = store.recent_messages("wechat", "u1")
    assert said.author == "customer" and said.at == 7.0 and "13812345678" not in said.text and said.text.startswith("call me")
    assert store.begin_turn("wechat", "new", "hi", 8.0) == Conversation("wechat", "new")  # a first message
    begun.failed_count, begun.context = 0, {"popular": ["退货 13812345678"]}
    store.end_turn(begun, LoggedQuestion(9.0, "wechat", "en", "call me on 13812345678", Outcome.HANDOFF, "requested"))
    back = store.conversation("wechat", "u1")
    assert back.failed_count == 0 and "13812345678" not in str(back.context)
    [logged] = store.questions(since=8.5)
    assert logged.outcome == Outcome.HANDOFF and logged.reason == "requested" and "13812345678" not in logged.question
    with pytest.raises(ValueError):
        store.begin_turn("fax", "u1", "hello", 10.0)  # channels are a closed set here too


def test_answers_are_shared_between_workers_but_never_one_to_a_question_with_personal_data(state):
    a, b = state.shared(), state.shared()
    a.share_answer("k1", "build-1", "东西坏了能退吗", '{"action": "answer"}')
    a.share_answer("k1", "build-1", "东西坏了能退吗", '{"action": "menu"}')  # a second worker's: the first stays
    assert b.shared_answer("k1") == '{"action": "answer"}' and b.shared_answer("k2") is None
    b.share_answer("k2", "build-1", "我的手机 13812345678 收不到验证码", '{"action": "answer"}')
    assert a.shared_answer("k2") is None
    a.share_answer("k3", "build-0", "where is my order", "{}")
    assert b.forget_answers("build-1", before=0.0) == 1  # another build's
    assert a.shared_answer("k3") is None and a.shared_answer("k1") is not None
    assert b.forget_answers("build-1", before=time.time() + 1) == 1  # older than asked: yesterday's
    assert a.shared_answer("k1") is None


def test_one_open_ticket_per_customer_even_when_two_workers_hand_off_at_once(state):
    workers = [state.shared(), state.shared()]
    start = threading.Barrier(8)

    def hand_off(n: int) -> tuple[str, bool]:
        start.wait()
        opened, created = workers[n % 2].open_ticket(ticket(f"t{n}"))
        return opened.id, created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(hand_off, range(8)))
    assert len({ticket_id for ticket_id, _ in results}) == 1
    assert [created for _, created in results].count(True) == 1
    first = workers[0].ticket(results[0][0])
    workers[1].update_ticket(first.id, state=TicketState.CLOSED, closed_at=3.0)
    assert workers[0].open_ticket(ticket("again"))[1] is True  # closed: the next handoff opens a new one


def test_an_opened_ticket_is_returned_as_it_reads_back_with_its_transcript_masked_in_order(state):
    store = state.fresh()
    said = [TicketMessage(1.0 + n, author, text) for n, (author, text) in enumerate(TRANSCRIPT)]
    new = dataclasses.replace(ticket("t-read"), candidates=[{"entry_id": "e1", "score": 0.5}], messages=said)
    opened, created = store.open_ticket(new)
    assert created and opened == store.ticket("t-read")
    assert [m.author for m in opened.messages] == [m.author for m in said]
    assert "13812345678" not in str(opened.messages) and opened.messages[-1].text == "好的"
    again, created = store.open_ticket(dataclasses.replace(new, id="t-again"))
    assert not created and again == opened  # the customer's open ticket, read back


def test_tickets_list_the_most_urgent_first_with_their_messages(state):
    store = state.fresh()
    low = dataclasses.replace(ticket("low", "a", Priority.LOW, due=1.0), messages=[])
    store.open_ticket(low)
    store.open_ticket(ticket("urgent", "b", Priority.URGENT, due=50.0))
    store.open_ticket(ticket("normal", "c", Priority.NORMAL, due=10.0))
    assert [t.id for t in store.tickets()] == ["urgent", "normal", "low"]
    assert [t.id for t in store.tickets(limit=2, offset=1)] == ["normal", "low"] and store.count_tickets() == 3
    store.add_ticket_message("normal", "agent:amy", "call me at 13812345678", 2.0)
    kept = store.ticket("normal").messages[-1]
    assert kept.author == "agent:amy" and "13812345678" not in kept.text
    with pytest.raises(ValueError, match="cannot update"):
        store.update_ticket("normal", user_id="someone")
    store.update_ticket("normal", state=TicketState.CLOSED, closed_at=3.0)
    assert [t.id for t in store.tickets((TicketState.CLOSED,))] == ["normal"]
    assert store.ticket("missing") is None


def test_first_responses_are_each_tickets_first_agent_message(state):
    store = state.fresh()
    for name in ("early", "late", "silent"):
        store.open_ticket(dataclasses.replace(ticket(name, name), created_at=1.0 if name != "early" else 0.5))
    store.add_ticket_message("early", "system", "escalated", 2.0)
    store.add_ticket_message("early", "agent:amy", "hello", 3.0)
    store.add_ticket_message("early", "agent:bob", "again", 4.0)
    store.add_ticket_message("late", "customer", "hi?", 5.0)
    store.add_ticket_message("late", "agent:amy", "sorry", 9.0)
    assert store.first_responses() == {"early": 3.0, "late": 9.0}  # system and customer lines are no response
    assert store.first_responses(since=1.0) == {"late": 9.0}  # opened in the period only


def test_feedback_and_the_question_log(state):
    store = state.fresh()
    store.add_feedback("wechat", "u1", "e1", True, "退货", 1.0)
    store.add_feedback("wechat", "u2", "e1", False, "退货", 2.0)
    store.add_feedback("wechat", "u2", None, False, "?", 2.0)
    assert store.feedback_by_entry() == {"e1": (1, 1)}
    store.log_question(LoggedQuestion(1.0, "wechat", "zh", "old", Outcome.ANSWER, confidence=0.9, entry_id="e1"))
    store.log_question(LoggedQuestion(5.0, "wechat", "zh", "my card 6222021234567890123", Outcome.HANDOFF, "asked"))
    recent = store.questions(since=2.0)
    assert len(recent) == 1 and recent[0].outcome == Outcome.HANDOFF and "6222021234567890123" not in recent[0].question
    assert store.questions()[0] == LoggedQuestion(1.0, "wechat", "zh", "old", Outcome.ANSWER, confidence=0.9, entry_id="e1")


def test_a_delivery_is_claimed_once_across_workers_and_carries_its_reply(state):
    first, second = state.shared(), state.shared()
    with ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda n: (first, second)[n % 2].claim_delivery("n1", "msg:1", 10.0, f"w{n}"), range(8)))
    assert taken.count((True, True)) == 1 and taken.count((True, False)) == 7  # one nonce, one message: retries
    assert second.claimed_reply("msg:1") is None
    first.set_claimed_reply("msg:1", "the answer")
    assert second.claimed_reply("msg:1") == "the answer"
    assert second.claim_delivery("n2", "msg:1", 11.0, "w9") == (True, False)  # a retry with a new nonce
    # A signature used again with another message is refused, and claims nothing.
    assert first.claim_delivery("n1", "msg:forged", 12.0, "w1") == (False, False)
    assert second.claim_delivery("n3", "msg:forged", 13.0, "w1") == (True, True)
    assert first.forget_claims(before=12.5) == 3  # n1, msg:1, n2
    with ThreadPoolExecutor(8) as pool:  # the plain claim (a ticket posted once to the agents)
        posted = list(pool.map(lambda n: (first, second)[n % 2].claim("telegram:posted:t1", 20.0), range(8)))
    assert posted.count(True) == 1
    assert second.claim_delivery("n1", "msg:1", 30.0, "w1") == (True, True)


def test_a_claim_of_a_dead_holder_is_taken_over_by_one_worker_only(state):
    first, second = state.shared(), state.shared()
    assert first.claim_delivery("n9", "wechat:msg:9", 10.0, "worker-a") == (True, True)
    assert second.claim_holder("wechat:msg:9") == ("worker-a", 10.0)
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda n: (first, second)[n % 2].take_over("wechat:msg:9", "worker-a", f"w{n}", 20.0), range(8)))
    assert won.count(True) == 1
    assert second.claim_holder("wechat:msg:9") == (f"w{won.index(True)}", 20.0)
    first.set_claimed_reply("wechat:msg:9", "the answer")
    assert second.claim_holder("wechat:msg:9") is None  # answered: nothing to take over
    assert not second.take_over("wechat:msg:9", f"w{won.index(True)}", "late", 30.0)


def test_shared_values_expire(state):
    store = state.fresh()
    store.set_value("token", "abc", expires_at=100.0)
    assert store.get_value("token", now=99.0) == "abc" and store.get_value("token", now=100.0) is None
    store.set_value("token", "def")
    assert store.get_value("token", now=1e12) == "def" and store.get_value("missing", 0.0) is None


def test_a_lease_is_held_by_one_worker_until_it_expires(state):
    a, b = state.shared(), state.shared()
    assert a.take_lease("escalation", "worker-a", now=0.0, seconds=60.0)
    assert not b.take_lease("escalation", "worker-b", now=30.0, seconds=60.0)
    assert a.take_lease("escalation", "worker-a", now=30.0, seconds=60.0)  # renewed: until 90
    assert not b.take_lease("escalation", "worker-b", now=89.0, seconds=60.0)
    assert b.take_lease("escalation", "worker-b", now=90.0, seconds=60.0)
    assert not a.take_lease("escalation", "worker-a", now=91.0, seconds=60.0)


def test_rate_limit_hits_are_counted_within_the_window_across_workers(state):
    a, b = state.shared(), state.shared()
    with ThreadPoolExecutor(8) as pool:
        counts = sorted(pool.map(lambda n: (a, b)[n % 2].hit("orders:u1", 100.0 + n * 0.01, 60.0), range(10)))
    assert counts == list(range(1, 11))  # each hit saw every earlier one, whichever worker took it
    assert b.hit("orders:u1", 170.0, 60.0) == 1  # the earlier ones are out of the window
    assert a.hit("orders:u2", 170.0, 60.0) == 1


def test_migrations_run_once_when_workers_start_together(state):
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: state.shared(), range(4)))
    if state.backend == "postgres":
        from bots.store.postgres import MIGRATIONS

        assert stores[0].migrate() == len(MIGRATIONS)  # again: nothing left to do
    else:
        from bots.store.sqlite import MIGRATIONS
    assert {s.schema_version for s in stores} == {len(MIGRATIONS)}


def test_the_state_url_takes_its_password_from_the_environment(monkeypatch):
    config = Config(extra={"engine": {"state_url": "postgresql://kb:${KB_TEST_PG_PASSWORD}@db.internal/kb"}})
    monkeypatch.delenv("KB_STATE_URL", raising=False)
    monkeypatch.delenv("KB_TEST_PG_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match="KB_TEST_PG_PASSWORD"):
        load_settings(config)
    monkeypatch.setenv("KB_TEST_PG_PASSWORD", "s3cret")
    assert load_settings(config).engine.state_url == "postgresql://kb:s3cret@db.internal/kb"
    with pytest.raises(ConfigError, match="postgresql://"):
        load_settings(Config(extra={"engine": {"state_url": "mysql://x"}}))
    monkeypatch.setenv("KB_STATE_URL", "postgresql://other@db2/kb")
    assert load_settings(config).engine.state_url == "postgresql://other@db2/kb"


def test_a_sqlite_writer_waiting_for_another_process_does_not_hold_up_its_own_readers(tmp_path):
    from bots.store import SqliteStateStore

    other, mine = SqliteStateStore(tmp_path / "s.sqlite"), SqliteStateStore(tmp_path / "s.sqlite")
    mine.set_value("seen", "yes")
    other._db.execute("BEGIN IMMEDIATE")  # another worker holds the write lock
    writing = threading.Thread(target=mine.set_value, args=("k", "v"))
    writing.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert mine.get_value("seen", 0.0) == "yes"  # this worker's other threads go on
    read_in = time.monotonic() - started
    assert writing.is_alive() and read_in < 0.05
    other._db.execute("COMMIT")
    writing.join(5)
    assert not writing.is_alive() and mine.get_value("k", 0.0) == "v"
