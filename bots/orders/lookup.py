"""Recognising an order question and answering it in three steps, with personal data masked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bots.orders.backend import Order
from bots.pii import mask_address, mask_phone
from kb.model import Steps
from kb.text import normalize

_STATUS_QUESTION = re.compile(
    r"(订单|包裹|快递|物流|货|东西|单号).{0,8}(到哪|在哪|哪里了|什么时候到|啥时候到|多久到|怎么还没|还没到|还没收到|状态|进度|发货了没|发了吗|发货没)|"
    r"(查|查询|查一下|查下|看看|看下)(一下)?(我的)?(订单|物流|快递|包裹)|催单|催一下|催发货|到哪了|到哪儿了|"
    r"where('?s| is) my (order|parcel|package|stuff)|track(ing)? (my )?(order|parcel|package)|"
    r"(order|parcel|package) status|status of my (order|parcel|package)|when will my (order|parcel|package)|"
    r"has my (order|parcel|package)|check (on )?my (order|parcel|package)"
)

STATUS_TEXT = {
    "zh": {
        "unpaid": "待付款", "paid": "已付款，仓库正在备货", "shipped": "已发货", "in_transit": "运输中",
        "out_for_delivery": "派送中", "delivered": "已签收", "cancelled": "已取消", "returning": "退货处理中",
    },
    "en": {
        "unpaid": "waiting for payment", "paid": "paid and being packed", "shipped": "shipped", "in_transit": "on its way",
        "out_for_delivery": "out for delivery", "delivered": "delivered", "cancelled": "cancelled", "returning": "being returned",
    },
}  # fmt: skip


@dataclass
class OrderQuestion:
    """What a message says about orders."""

    number: str | None
    asks_status: bool


def read_order_question(message: str, number_pattern: re.Pattern[str]) -> OrderQuestion:
    text = normalize(message)
    found = number_pattern.search(text)
    return OrderQuestion(found.group(0) if found else None, bool(_STATUS_QUESTION.search(text)))


def order_steps(order: Order, language: str) -> Steps:
    """Where the order is (conclusion), what it rests on (reason), what to do next (steps)."""
    status = STATUS_TEXT["zh" if language == "zh" else "en"].get(order.status, order.status)
    phone = mask_phone(order.phone) if order.phone else ""
    region = mask_address(**order.address) if order.address else ""
    if language == "zh":
        conclusion = f"您的订单 {order.number} 目前{status}" + (
            f"，预计 {order.eta} 送达。" if order.eta and order.status not in ("delivered", "cancelled") else "。"
        )
        if order.carrier and order.last_event:
            reason = (
                f"这是{order.carrier}（运单号 {order.tracking_number}）的最新记录：{order.last_event_at} {order.last_event}。"
            )
        else:
            reason = "这是订单系统中的最新状态。"
        reason += f"收件信息：{phone}，{region}。"
        steps = _zh_steps(order)
    else:
        conclusion = f"Your order {order.number} is {status}" + (
            f", expected by {order.eta}." if order.eta and order.status not in ("delivered", "cancelled") else "."
        )
        if order.carrier and order.last_event:
            scan = f"{order.last_event_at} {order.last_event}"
            reason = f"This is the latest scan from {order.carrier} (tracking {order.tracking_number}): {scan}."
        else:
            reason = "This is the latest status in our order system."
        reason += f" Delivering to {phone}, {region}."
        steps = _en_steps(order)
    return Steps(conclusion, reason, steps)


def _zh_steps(order: Order) -> list[str]:
    if order.status == "delivered":
        return [
            "如果没有收到包裹，请先看看门卫、快递柜或驿站；",
            "仍未找到，回复「人工」，我们会在 2 小时内联系快递公司，48 小时内给您答复。",
        ]
    if order.status in ("paid", "unpaid"):
        return [
            "付款后 48 小时内发货，发货后会有短信通知；",
            "发货前可在「我的订单」修改地址或取消订单；",
            "超过 48 小时仍未发货，回复「人工」为您催促仓库。",
        ]
    if order.status == "cancelled":
        return ["已付款的金额会原路退回，1–3 个工作日到账；", "需要的话可以重新下单；有疑问回复「人工」。"]
    return [
        "在「我的订单」→「查看物流」可随时查看最新进度；",
        "物流超过 3 天没有更新，回复「人工」，我们会联系快递公司核实；",
        "签收时请当面验货，有破损可拒收。",
    ]


def _en_steps(order: Order) -> list[str]:
    if order.status == "delivered":
        return [
            "If you haven't got it, check with reception, a parcel locker or the pickup point.",
            "Still missing? Reply \u201cagent\u201d: we contact the carrier within 2 hours and answer within 48 hours.",
        ]
    if order.status in ("paid", "unpaid"):
        return [
            "Orders ship within 48 hours of payment; you get a message when it ships.",
            "Until then you can change the address or cancel in My Orders.",
            "Not shipped after 48 hours? Reply \u201cagent\u201d and we will chase the warehouse.",
        ]
    if order.status == "cancelled":
        return [
            "Any payment goes back to where it came from within 1\u20133 working days.",
            "You can order again at any time; questions: reply \u201cagent\u201d.",
        ]
    return [
        "Follow it any time in My Orders \u2192 Track parcel.",
        "No update for 3 days? Reply \u201cagent\u201d and we will check with the carrier.",
        "Check the parcel when it arrives; you may refuse a damaged one.",
    ]
