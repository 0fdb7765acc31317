"""What WeChat's server sends and expects back: signatures, the AES envelope of compatible and
safe mode, the XML of a message, and the reply in the mode the message came in.

Everything that can go wrong with a request is one of two errors, so that the route answers
403 (:class:`Forbidden`: a signature that does not match, or a signed timestamp that is stale,
in the future or not a number; nothing is read further) or 400 (:class:`BadRequest`: not XML,
not a WeChat message, a field that should be text but holds elements or is repeated, too
large), and never 500.
"""

from __future__ import annotations

import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import xmltodict
from wechatpy import parse_message
from wechatpy.crypto import PrpCrypto, WeChatCrypto
from wechatpy.messages import BaseMessage
from wechatpy.replies import TextReply, TransferCustomerServiceReply
from wechatpy.utils import WeChatSigner

from bots.channels.wechat.settings import WeChatSettings

_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class Forbidden(Exception):
    """The request is not signed with our token."""


class BadRequest(Exception):
    """The request is signed (or not yet checked) but is not a message we can read."""


@dataclass
class Inbound:
    """One verified message from WeChat's server."""

    message: BaseMessage
    data: dict[str, Any]
    """The message's XML fields as parsed."""
    encrypted: bool
    """It came in compatible or safe mode: the reply is encrypted too."""
    nonce: str
    timestamp: str


def signature(*parts: str) -> str:
    """WeChat's signature: SHA-1 of the sorted parts."""
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def check(expected: str, given: str | None) -> None:
    """Compare in constant time, so that a forger learns nothing from how long a refusal takes."""
    if not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise Forbidden()


def check_fresh(timestamp: str, window_seconds: float, now: float | None = None) -> None:
    """A signature only proves who signed, not when: a signed timestamp must be a number within
    ``window_seconds`` of ``now``, so that a signature read somewhere cannot be used later."""
    now = time.time() if now is None else now
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(int(timestamp) - now) > window_seconds:
        raise Forbidden()


def check_handshake(settings: WeChatSettings, query: dict[str, str], now: float | None = None) -> str:
    """The ``echostr`` to send back when the server-verification request is signed with our token."""
    timestamp, nonce, echostr = query.get("timestamp", ""), query.get("nonce", ""), query.get("echostr")
    check(signature(settings.token, timestamp, nonce), query.get("signature"))
    check_fresh(timestamp, settings.timestamp_window_seconds, now)
    if echostr is None:
        raise BadRequest("no echostr")
    return echostr


def open_request(settings: WeChatSettings, query: dict[str, str], body: bytes, now: float | None = None) -> Inbound:
    """Verify and read a message in any of the three modes.

    Plaintext mode: ``signature`` = SHA-1(token, timestamp, nonce). Compatible and safe mode
    (``encrypt_type=aes``): ``msg_signature`` also covers the ``Encrypt`` element, which holds
    the message encrypted with the EncodingAESKey; in compatible mode the plaintext copy beside
    it is ignored, since only the encrypted one is signed. Either way the signed timestamp must
    be fresh (:func:`check_fresh`); that a nonce is not replayed is the route's check, against the
    store.
    """
    timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
    encrypted = query.get("encrypt_type", "raw").lower() == "aes"
    if "signature" in query or not encrypted:
        check(signature(settings.token, timestamp, nonce), query.get("signature"))
        check_fresh(timestamp, settings.timestamp_window_seconds, now)
    if not encrypted:
        if settings.require_encryption:
            raise Forbidden()
        return Inbound(*_message(body), encrypted=False, nonce=nonce, timestamp=timestamp)
    if not settings.encoding_aes_key:
        raise BadRequest("encrypted message, but no encoding_aes_key is configured")
    outer = _xml(body)
    encrypt = outer.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        check(signature(settings.token, timestamp, nonce, ""), query.get("msg_signature"))
        raise BadRequest("no Encrypt element")
    check(signature(settings.token, timestamp, nonce, encrypt), query.get("msg_signature"))
    check_fresh(timestamp, settings.timestamp_window_seconds, now)
    crypto = _crypto(settings)
    try:
        inner = PrpCrypto(crypto.key).decrypt(encrypt, settings.app_id)
    except Exception as error:  # bad base64, padding, or another account's key
        raise BadRequest(f"cannot decrypt: {type(error).__name__}") from None
    return Inbound(*_message(inner.encode("utf-8")), encrypted=True, nonce=nonce, timestamp=timestamp)


def seal(settings: WeChatSettings, inbound: Inbound, xml: str) -> tuple[str, str]:
    """(body, media type) of a passive reply: ``xml`` as is, or encrypted and signed when the
    message came encrypted. ``success`` stays plain: WeChat takes it in every mode."""
    if xml == "success" or not xml:
        return "success", "text/plain"
    if not inbound.encrypted:
        return xml, "application/xml"
    return _crypto(settings).encrypt_message(xml, inbound.nonce, str(int(time.time()))), "application/xml"


def text_reply(message: BaseMessage, text: str) -> str:
    """A passive text reply to ``message`` (the text within WeChat's 2,048 bytes)."""
    return TextReply(message=message, content=text).render()


def transfer_reply(message: BaseMessage) -> str:
    """Hand ``message`` and the customer to WeChat's agent system."""
    return TransferCustomerServiceReply(message=message).render()


def _crypto(settings: WeChatSettings) -> WeChatCrypto:
    try:
        return WeChatCrypto(settings.token, settings.encoding_aes_key, settings.app_id)
    except Exception:  # a key that is not base64 of 32 bytes (its length is checked at start-up)
        raise BadRequest("encoding_aes_key is not a valid key") from None


def _xml(body: bytes) -> dict[str, Any]:
    """The ``<xml>`` element of a body, refusing document type declarations (entity expansion)."""
    if not body.strip():
        raise BadRequest("empty body")
    if _DECLARATIONS.search(body):
        raise BadRequest("document type declarations are not accepted")
    try:
        parsed = xmltodict.parse(body, disable_entities=True)
    except Exception as error:
        raise BadRequest(f"not XML: {type(error).__name__}") from None
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict):
        raise BadRequest("the root element is not <xml>")
    return root


_TEXT_FIELDS = frozenset(
    "ToUserName FromUserName CreateTime MsgType MsgId MsgDataId Idx Content Recognition MediaId Format "
    "ThumbMediaId PicUrl Location_X Location_Y Scale Label Title Description Url Event EventKey Ticket "
    "Latitude Longitude Precision KfAccount FromKfAccount ToKfAccount CloseType bizmsgmenuid".split()
)
"""The fields the bot reads as text. WeChat never sends them with child elements or attributes."""


def _message(body: bytes) -> tuple[BaseMessage, dict[str, Any]]:
    data = _xml(body)
    for name, value in data.items():
        # Signed is not well formed: <Content><a>1</a></Content> or a second <Content> would
        # reach the engine as a dict or a list.
        if isinstance(value, list):
            raise BadRequest(f"<{name[:40]}> is repeated")
        if name in _TEXT_FIELDS and value is not None and not isinstance(value, str):
            raise BadRequest(f"<{name}> is not text")
    for name in ("ToUserName", "FromUserName", "MsgType", "CreateTime"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise BadRequest(f"no {name}")
    if not data["CreateTime"].isdigit() or not str(data.get("MsgId", "0")).isdigit():
        raise BadRequest("CreateTime and MsgId must be numbers")
    try:
        message = parse_message(body.decode("utf-8"))
    except Exception as error:
        raise BadRequest(f"not a WeChat message: {type(error).__name__}") from None
    return message, data
