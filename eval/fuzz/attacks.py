"""The hostile requests, by class. Each class makes *sequences* of :class:`Probe` (most are one
probe long; a brute force is a conversation) from a seeded random generator, so that a run can
be repeated.

``EXPECTED`` says what a class should get once issue 19 is closed; ``PENDING`` names the classes
whose expectation needs a fix that is not merged yet (auth on /api/ask, timestamp and nonce
checks, body limits, masking): the report shows their mismatches apart, and the suite's run
leaves them out.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wechatpy.crypto import WeChatCrypto

from eval.fuzz.fakes import WECHAT_APP_ID
from eval.fuzz.target import AGENT_TOKEN, API_TOKEN, TELEGRAM_SECRET, WECHAT_AES_KEY, WECHAT_TOKEN

WECHAT_PATH = "/wechat"
TELEGRAM_PATH = "/telegram/webhook"
ACCOUNT = "gh_fuzzshop"
TRACKING = ("SF1402394857", "ZT7781234560", "JD0099887766")
"""The demo orders' tracking numbers: in a reply, an order was disclosed."""


@dataclass
class Probe:
    cls: str
    method: str
    path: str
    params: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    truncate_to: int | None = None
    """Send a Content-Length for the whole body, then only this many bytes, and hang up."""
    pii: tuple[str, ...] = ()
    """Personal data in the request that must not be found raw on disk or in the logs."""


Sequence = list[Probe]

# The statuses each class should get once issue 19 is closed ("closed": no response, the
# client hung up first).
EXPECTED: dict[str, set[int | str]] = {
    "wechat_ok": {200},
    "wechat_bad_signature": {400, 403},
    "wechat_stale_timestamp": {400, 403},
    "wechat_replay": {400, 403},  # a signature used again
    "wechat_xml_bomb": {400},
    "wechat_malformed": {200, 400},
    "wechat_aes_broken": {400, 403},
    "wechat_huge": {400, 413},
    "telegram_ok": {200},
    "telegram_bad_secret": {401, 403},
    "telegram_wrong_types": {200, 400},
    "telegram_huge": {400, 413},
    "ask_wrong_types": {400, 401, 403, 413, 415, 422},
    "ask_huge": {401, 413},
    "ask_unknown_channel": {400, 401, 403, 422},
    "impersonation": {400, 401, 403, 422},
    "ticket_ids": {400, 401, 404, 405, 409, 422},
    "order_bruteforce": {200, 401, 403, 429},
    "truncated": {"closed", 400, 408, 413},
    "unknown_routes": {404, 405},
    "pii_variants": {200, 401},
}
PENDING: dict[str, str] = {}
"""Classes whose fixes have not landed yet (reported, not failed). Issue 19 closed them all."""


def sha1(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


class Factory:
    """Makes the probes of every class; ``huge_bytes`` bounds the size of a huge body."""

    def __init__(self, seed: int = 19, huge_bytes: int = 2_000_000) -> None:
        self.rng = random.Random(seed)
        self.huge_bytes = huge_bytes
        self.crypto = WeChatCrypto(WECHAT_TOKEN, WECHAT_AES_KEY, WECHAT_APP_ID)
        self.msg_ids = iter(range(8_000_000_000_000_000_000, 9_000_000_000_000_000_000))
        self.replayed: dict[str, str] | None = None

    # helpers

    def openid(self) -> str:
        return "o" + "".join(
            self.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") for _ in range(27)
        )

    def phone(self) -> str:
        return f"13{self.rng.randrange(3, 10)}{self.rng.randrange(10**8):08d}"

    def id_card(self) -> str:
        return f"3101151988{self.rng.randrange(1, 13):02d}{self.rng.randrange(1, 29):02d}{self.rng.randrange(1000):03d}X"

    def email(self) -> str:
        return f"fuzz{self.rng.randrange(10**9)}@example.com"

    def personal(self) -> tuple[str, tuple[str, ...]]:
        """A message with personal data the masking handles today, and that data."""
        phone, card, mail = self.phone(), self.id_card(), self.email()
        form = self.rng.choice(
            ["我的手机号是{p}，身份证{c}", "电话 {p} 邮箱 {m}", "call me on {p}, email {m}", "身份证号码 {c} 手机{p}"]
        )
        text = form.format(p=phone, c=card, m=mail)
        return text, tuple(v for v in (phone, card, mail) if v in text)

    def wechat_xml(self, user: str, kind: str = "text", fields: str | None = None, created: int | None = None) -> str:
        fields = fields if fields is not None else f"<Content><![CDATA[你好]]></Content><MsgId>{next(self.msg_ids)}</MsgId>"
        return (
            f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>{fields}</xml>"
        )

    def signed_query(self, timestamp: str | None = None, nonce: str | None = None) -> dict[str, str]:
        timestamp = str(int(time.time())) if timestamp is None else timestamp
        nonce = nonce or str(self.rng.randrange(10**9))
        return {"signature": sha1(WECHAT_TOKEN, timestamp, nonce), "timestamp": timestamp, "nonce": nonce}

    def wechat(self, cls: str, body: bytes, query: dict[str, str] | None = None, pii: tuple[str, ...] = ()) -> Probe:
        headers = {"Content-Type": "text/xml"}
        return Probe(cls, "POST", WECHAT_PATH, query or self.signed_query(), headers, body, pii=pii)

    def aes(self, cls: str, xml: str, pii: tuple[str, ...] = ()) -> Probe:
        query = self.signed_query()
        envelope = self.crypto.encrypt_message(xml, query["nonce"], query["timestamp"])
        encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        query.update(encrypt_type="aes", msg_signature=sha1(WECHAT_TOKEN, query["timestamp"], query["nonce"], encrypt))
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return self.wechat(cls, body.encode(), query, pii)

    def telegram(self, cls: str, update: Any, secret: str | None = TELEGRAM_SECRET, pii: tuple[str, ...] = ()) -> Probe:
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        return Probe(cls, "POST", TELEGRAM_PATH, None, headers, body, pii=pii)

    def tg_message(self, text: Any, chat: Any = None, user: int | None = None) -> dict[str, Any]:
        user = user or self.rng.randrange(10**6, 10**9)
        return {
            "update_id": self.rng.randrange(10**9),
            "message": {
                "message_id": self.rng.randrange(10**6),
                "date": int(time.time()),
                "chat": chat if chat is not None else {"id": user, "type": "private"},
                "from": {"id": user, "is_bot": False, "first_name": "Fuzz"},
                "text": text,
            },
        }

    def ask(self, cls: str, payload: Any, headers: dict[str, str] | None = None, pii: tuple[str, ...] = ()) -> Probe:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_TOKEN}", **(headers or {})}
        return Probe(cls, "POST", "/api/ask", None, headers, body, pii=pii)

    # the classes

    def wechat_ok(self) -> Sequence:
        text, pii = self.personal()
        xml = self.wechat_xml(self.openid(), fields=f"<Content><![CDATA[{text}]]></Content><MsgId>{next(self.msg_ids)}</MsgId>")
        if self.rng.random() < 0.5:
            return [self.wechat("wechat_ok", xml.encode(), pii=pii)]
        return [self.aes("wechat_ok", xml, pii)]

    def wechat_bad_signature(self) -> Sequence:
        query = self.signed_query()
        choice = self.rng.randrange(5)
        if choice == 0:
            query["signature"] = f"{self.rng.randrange(16**40):040x}"
        elif choice == 1:
            query.pop("signature")
        elif choice == 2:
            query["signature"] = ""
        elif choice == 3:
            query["signature"] = sha1("not-the-token", query["timestamp"], query["nonce"])
        else:
            query = {"signature": query["signature"] * 50, "timestamp": "\x00", "nonce": "../../etc"}
        return [self.wechat("wechat_bad_signature", self.wechat_xml(self.openid()).encode(), query)]

    def wechat_stale_timestamp(self) -> Sequence:
        now = int(time.time())
        timestamp = self.rng.choice(["0", "abc", "", str(now - 400 * 86400), str(now + 400 * 86400), str(now - 3600), "-1"])
        query = self.signed_query(timestamp)
        return [self.wechat("wechat_stale_timestamp", self.wechat_xml(self.openid()).encode(), query)]

    def wechat_replay(self) -> Sequence:
        # One plaintext signature, reused with other bodies and openids.
        if self.replayed is None:
            # The signature's first use is a genuine message (counted as such); every later one is a replay.
            self.replayed = self.signed_query()
            return [self.wechat("wechat_ok", self.wechat_xml(self.openid()).encode(), dict(self.replayed))]
        return [self.wechat("wechat_replay", self.wechat_xml(self.openid()).encode(), dict(self.replayed))]

    def wechat_xml_bomb(self) -> Sequence:
        user = self.openid()
        bombs = [
            '<!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>'
            + self.wechat_xml(user, fields="<Content>&d;</Content><MsgId>1</MsgId>"),
            '<!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + self.wechat_xml(user, fields="<Content>&x;</Content>"),
            '<!DOCTYPE xml SYSTEM "http://127.0.0.1:1/evil.dtd">' + self.wechat_xml(user),
            '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:1/p">%p;]>' + self.wechat_xml(user),
        ]
        xml = self.rng.choice(bombs)
        encoding = self.rng.choice(["utf-8", "utf-16", "utf-16-be", "utf-32", "gbk", "utf-7"])
        declared = f'<?xml version="1.0" encoding="{encoding}"?>'
        try:
            body = (declared + xml).encode(encoding)
        except LookupError:
            body = (declared + xml).encode()
        return [self.wechat("wechat_xml_bomb", body)]

    def wechat_malformed(self) -> Sequence:
        user, msg = self.openid(), next(self.msg_ids)
        shapes = [
            self.wechat_xml(user, fields=f"<Content><a>1</a></Content><MsgId>{msg}</MsgId>"),
            self.wechat_xml(user, fields=f"<Content>a</Content><Content>b</Content><MsgId>{msg}</MsgId>"),
            self.wechat_xml(user, "voice", f"<MediaId>m</MediaId><Recognition><x>1</x></Recognition><MsgId>{msg}</MsgId>"),
            self.wechat_xml(user, "event", "<Event><a/></Event>"),
            self.wechat_xml(user, "text", f"<MsgId>{msg}</MsgId>"),
            self.wechat_xml(user)[: self.rng.randrange(5, 120)],
            "not xml at all",
            "<xml></xml>",
            self.wechat_xml(user, "\x01\x02", ""),
        ]
        return [self.wechat("wechat_malformed", self.rng.choice(shapes).encode())]

    def wechat_aes_broken(self) -> Sequence:
        query = self.signed_query()
        encrypt = self.rng.choice(["", "AAAA", "!!!notbase64", "A" * 64, "QUJD" * 100])
        query.update(
            encrypt_type="aes",
            msg_signature=self.rng.choice([sha1(WECHAT_TOKEN, query["timestamp"], query["nonce"], encrypt), "0" * 40]),
        )
        body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        return [self.wechat("wechat_aes_broken", body.encode(), query)]

    def wechat_huge(self) -> Sequence:
        size = self.rng.randrange(70_000, max(70_001, self.huge_bytes))
        xml = self.wechat_xml(self.openid(), fields=f"<Content><![CDATA[{'好' * (size // 3)}]]></Content><MsgId>1</MsgId>")
        return [self.wechat("wechat_huge", xml.encode())]

    def telegram_ok(self) -> Sequence:
        text, pii = self.personal()
        return [self.telegram("telegram_ok", self.tg_message(text), pii=pii)]

    def telegram_bad_secret(self) -> Sequence:
        secret = self.rng.choice([None, "", "wrong", TELEGRAM_SECRET + "x", TELEGRAM_SECRET.upper()])
        return [self.telegram("telegram_bad_secret", self.tg_message("你好"), secret)]

    def telegram_wrong_types(self) -> Sequence:
        shapes: list[Any] = [
            self.tg_message(12345),
            self.tg_message(["a", "b"]),
            self.tg_message({"text": "x"}),
            self.tg_message(None),
            self.tg_message("你好", chat="not a chat"),
            self.tg_message("你好", chat={"id": "abc"}),
            {"update_id": "7"},
            {"update_id": 7, "message": "oops"},
            {"update_id": 8, "message": {"text": "no chat, no date"}},
            [1, 2, 3],
        ]
        choice = self.rng.randrange(len(shapes) + 2)
        if choice == len(shapes):  # a lone surrogate, which SQLite refuses
            body = json.dumps(self.tg_message("x")).replace('"text": "x"', '"text": "\\ud800"').encode()
        elif choice == len(shapes) + 1:
            body = b'{"update_id": 1, "message": {'
        else:
            body = json.dumps(shapes[choice]).encode()
        return [self.telegram("telegram_wrong_types", body)]

    def telegram_huge(self) -> Sequence:
        size = self.rng.randrange(1_050_000, max(1_050_001, self.huge_bytes))
        return [self.telegram("telegram_huge", self.tg_message("长" * (size // 3)))]

    def ask_wrong_types(self) -> Sequence:
        payloads: list[Any] = [
            {"question": 1},
            {"question": ["a"]},
            {"question": None},
            {},
            {"question": "hi", "user_id": {"a": 1}},
            {"question": "hi", "user_id": 5},
            {"question": "hi", "channel": ["x"]},
            [1, 2],
            "just a string",
            b"not json",
            b"\xff\xfe\xfa",
            b'{"question": "\\ud800"}',
            b'{"question": "x"' + b" " * 10,
        ]
        payload = self.rng.choice(payloads)
        headers = self.rng.choice([{}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}])
        return [self.ask("ask_wrong_types", payload, headers)]

    def ask_huge(self) -> Sequence:
        size = self.rng.randrange(200_000, max(200_001, self.huge_bytes))
        body = b'{"question": "hi", "pad": "' + b"x" * size + b'"}'
        return [self.ask("ask_huge", body)]

    def ask_unknown_channel(self) -> Sequence:
        channel = self.rng.choice(["", "\x00", "../x", "wechat\n", "x" * 40, "微信", "telegram ", "api/../wechat"])
        return [self.ask("ask_unknown_channel", {"question": "你好", "user_id": self.openid(), "channel": channel})]

    def impersonation(self) -> Sequence:
        channel, user = self.rng.choice([("wechat", self.openid()), ("telegram", str(self.rng.randrange(10**6, 10**9)))])
        text = self.rng.choice(["转人工", "我的订单还没到", "1"])
        return [self.ask("impersonation", {"question": text, "user_id": user, "channel": channel})]

    def ticket_ids(self) -> Sequence:
        ticket = self.rng.choice(
            [
                "../../etc/passwd",
                "..%2f..%2fetc%2fpasswd",
                "%00",
                "a%00b",
                "T-1%00",
                "x" * 5000,
                "%E2%80%AE",
                "%ff%fe",
                "' OR 1=1 --",
                "1;DROP TABLE tickets",
            ]
        )
        method, action = self.rng.choice([("GET", ""), ("POST", "/take"), ("POST", "/reply"), ("POST", "/close")])
        headers = {"Content-Type": "application/json"}
        if self.rng.random() < 0.7:
            headers["Authorization"] = f"Bearer {AGENT_TOKEN}"
        body = json.dumps({"agent": "fuzz", "text": "hi"}).encode() if method == "POST" else None
        return [Probe("ticket_ids", method, f"/api/agent/tickets/{ticket}{action}", None, headers, body)]

    def order_bruteforce(self) -> Sequence:
        # A made-up user per conversation: the old limit was per user id.
        user, order = self.openid(), f"20261115000{self.rng.randrange(1, 6)}"
        sequence = [self.ask("order_bruteforce", {"question": f"查一下订单 {order}", "user_id": user})]
        for _ in range(3):
            sequence.append(self.ask("order_bruteforce", {"question": f"{self.rng.randrange(10000):04d}", "user_id": user}))
        return sequence

    def truncated(self) -> Sequence:
        probe = self.rng.choice(
            [
                self.ask("truncated", {"question": "退款多久到账" * 50}),
                self.wechat("truncated", self.wechat_xml(self.openid()).encode()),
                self.telegram("truncated", self.tg_message("hi" * 100)),
            ]
        )
        probe.truncate_to = self.rng.randrange(0, len(probe.body or b"x"))
        return [probe]

    def unknown_routes(self) -> Sequence:
        method, path = self.rng.choice(
            [
                ("GET", "/api/ask"),
                ("PUT", "/api/ask"),
                ("DELETE", "/api/agent/tickets"),
                ("GET", "/.env"),
                ("GET", "/../../etc/passwd"),
                ("POST", "/healthz"),
                ("GET", "/wechat/../admin"),
                ("PATCH", "/telegram/webhook"),
            ]
        )
        return [Probe("unknown_routes", method, path)]

    def pii_variants(self) -> Sequence:
        digits = self.phone()
        full_width = digits.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        dotted = f"{digits[:3]}.{digits[3:7]}.{digits[7:]}"
        room = f"望京SOHO T{self.rng.randrange(1, 4)} {self.rng.randrange(100, 3000)}"
        value = self.rng.choice([full_width, dotted, room])
        return [self.ask("pii_variants", {"question": f"我的信息：{value}，订单还没到", "user_id": self.openid()}, pii=(value,))]


CLASSES: dict[str, Callable[[Factory], Sequence]] = {name: getattr(Factory, name) for name in EXPECTED}


def sequences(factory: Factory, classes: list[str], per_class: int) -> Iterator[Sequence]:
    """``per_class`` sequences of each class, interleaved (so that a time limit cuts them all)."""
    for _ in range(per_class):
        for name in classes:
            yield CLASSES[name](factory)
