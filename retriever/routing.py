"""The routing rule: what the bot does with a question, given its confidence, whether there is
any entry to offer, and whether money is involved.

:class:`retriever.components.AnswerRouter` applies it to every question; ``kb eval --calibrate``
(:mod:`eval.calibrate`) replays it on recorded confidences to choose the thresholds. One rule, so
that the thresholds chosen are the ones the bot acts on.
"""

from __future__ import annotations

from kb.vocabulary import HandoffReason, RouterAction


def route(
    confidence: float,
    answer: float,
    menu: float,
    has_candidates: bool = True,
    money_question: bool = False,
    money_top: bool = False,
) -> tuple[RouterAction, HandoffReason | None]:
    """``(action, reason)``: answer when sure (confidence ≥ ``answer``); a menu of the best entries
    when the right one is likely among them (≥ ``menu``); otherwise hand off (``low_confidence``).

    A question about money is handed off whatever the thresholds, and so is an answer or a menu
    whose top entry is a money one: the bot never decides a money question (measured: offering it
    in a menu let 15-30 % of the money questions of the customer sets past the gate).
    """
    if confidence >= answer:
        action = RouterAction.ANSWER
    elif confidence >= menu and has_candidates:
        action = RouterAction.MENU
    else:
        action = RouterAction.HANDOFF
    if money_question or (money_top and action != RouterAction.HANDOFF):
        return RouterAction.HANDOFF, HandoffReason.MONEY
    return action, (HandoffReason.LOW_CONFIDENCE if action == RouterAction.HANDOFF else None)
