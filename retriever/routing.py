"""The routing rule: what the bot does with a question, given its confidence, whether the top two
entries are nearly tied, and whether money is involved.

:class:`retriever.components.AnswerRouter` applies it to every question; ``kb eval --calibrate``
(:mod:`eval.calibrate`) replays it on recorded confidences to choose the thresholds. One rule, so
that the thresholds chosen are the ones the bot acts on.
"""

from __future__ import annotations


def route(
    confidence: float, near_tie: bool, answer: float, clarify: float, money_question: bool = False, money_top: bool = False
) -> tuple[str, str | None]:
    """``(action, reason)``: ``("answer", None)``, ``("clarify", None)``, ``("handoff", "low_confidence")``
    or ``("handoff", "money")``.

    A near tie (the top two within ``clarify_gap``) at confidence ≥ ``clarify`` is asked about
    (measured: most such top-1s are wrong); otherwise confidence ≥ ``answer`` is answered, and
    the rest handed off. A question about money is handed off whatever the thresholds, and so is
    an answer or a clarifying question whose top entry is a money one: the bot never decides a
    money question.
    """
    if near_tie and confidence >= clarify:
        action = "clarify"
    elif confidence >= answer:
        action = "answer"
    else:
        action = "handoff"
    if money_question or (money_top and action != "handoff"):
        return "handoff", "money"
    return action, ("low_confidence" if action == "handoff" else None)
