"""What a handoff ticket is (kind, priority) and when it is due, from the response-time table of
docs/service-rules.md#response-times, and the service hours agents work."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bots.settings import EngineSettings
from kb.text import normalize
from kb.vocabulary import HandoffReason, Priority, TicketKind

_PAYMENT_ANOMALY = re.compile(
    r"扣款|扣了|扣钱|重复|两次|多扣|支付失败|付款失败|没付成功|盗刷|charged twice|double charge|charged .*twice|"
    r"payment failed|payment error|deducted|taken twice"
)
_FAULT = re.compile(
    r"登录不了|登不上|无法登录|登陆不了|验证码|闪退|打不开|报错|can'?t log ?in|login|error|crash|verification code"
)
_SUGGESTION = re.compile(r"建议|意见|希望你们|能不能增加|suggest|feedback|it would be nice|please add")


@dataclass(frozen=True)
class Sla:
    kind: TicketKind
    """``question`` (咨询), ``complaint`` (投诉), ``suggestion`` (建议) or ``fault`` (故障)."""
    priority: Priority
    minutes: float
    """First response due this many minutes after the handoff (in service hours)."""


def classify(reason: str, message: str) -> Sla:
    """The ticket's kind, priority and first-response time for a handoff ``reason``."""
    text = normalize(message)
    if reason == HandoffReason.PRIVACY:
        return Sla(TicketKind.FAULT, Priority.URGENT, 3)  # account security
    if reason == HandoffReason.MONEY and _PAYMENT_ANOMALY.search(text):
        return Sla(TicketKind.FAULT, Priority.URGENT, 3)  # payment anomaly
    if reason == HandoffReason.UPSET:
        return Sla(TicketKind.COMPLAINT, Priority.HIGH, 60)
    if _SUGGESTION.search(text):
        return Sla(TicketKind.SUGGESTION, Priority.LOW, 120)
    if _FAULT.search(text):
        return Sla(TicketKind.FAULT, Priority.HIGH, 30)
    if reason in (HandoffReason.MONEY, HandoffReason.ORDER_UNAVAILABLE, HandoffReason.ORDER_LOCKED):
        return Sla(TicketKind.QUESTION, Priority.NORMAL, 120)  # ordinary after-sales: direction within 2 hours
    return Sla(TicketKind.QUESTION, Priority.NORMAL, 0.5)  # an instant question in chat: 30 seconds


def in_service_hours(settings: EngineSettings, at: datetime) -> bool:
    start, end = settings.hours
    local = at.astimezone(settings.zone).time()
    return start <= local < end


def next_opening(settings: EngineSettings, at: datetime) -> datetime:
    """When agents next start work, after ``at`` (outside service hours)."""
    local = at.astimezone(settings.zone)
    start, _ = settings.hours
    opening = local.replace(hour=start.hour, minute=start.minute, second=0, microsecond=0)
    if opening <= local:
        opening += timedelta(days=1)
    return opening


def due_time(settings: EngineSettings, sla: Sla, at: datetime) -> datetime:
    """In service hours: ``at`` plus the SLA; outside: before the next service day starts."""
    if in_service_hours(settings, at):
        return at + timedelta(minutes=sla.minutes)
    return next_opening(settings, at)
