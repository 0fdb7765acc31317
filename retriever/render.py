"""An answer as the customer reads it, in plain text, in their language."""

from __future__ import annotations

from kb.model import Steps
from retriever.answer import Answer

TEXT = {
    "zh": {
        "conclusion": "结论",
        "reason": "原因",
        "instruction": "操作",
        "menu": "猜你想问：",
        "menu_reply": "回复序号即可，回复 0 转人工客服。",
        "money": "这个问题涉及金额，需要由人工客服为您核实处理，我已为您转接人工客服。",
        "low_confidence": "这个问题我需要请同事帮您确认，已为您转接人工客服，请稍候。",
        "info": "先为您提供相关说明，供参考：",
        "truncated": "（您的消息较长，我先看了前面的部分。）",
    },
    "en": {
        "conclusion": "Conclusion",
        "reason": "Reason",
        "instruction": "Steps",
        "menu": "Did you mean:",
        "menu_reply": "Reply with the number, or 0 to talk to a person.",
        "money": "This involves money, so a colleague will check it and handle it for you. I have passed you to an agent.",
        "low_confidence": "Let me get a colleague to check this for you. I have passed you to an agent, please hold on.",
        "info": "Meanwhile, here is what our rules say:",
        "truncated": "(Your message was long, so I read the first part.)",
    },
}
CIRCLED = "①②③④⑤⑥⑦⑧⑨⑩"


def format_steps(steps: Steps, language: str, numbering: str = "digits") -> str:
    """Three steps as labelled blocks; ``numbering`` is ``digits`` (1.) or ``circled`` (①)."""
    words = TEXT.get(language, TEXT["en"])

    def number(i: int) -> str:
        return CIRCLED[i] if numbering == "circled" and i < len(CIRCLED) else f"{i + 1}. "

    separator = "：" if language == "zh" else ": "
    lines = [
        f"{words['conclusion']}{separator}{steps.conclusion}",
        f"{words['reason']}{separator}{steps.reason}",
        f"{words['instruction']}{separator}".rstrip(),  # the numbered steps follow on their own lines
    ]
    lines += [f"{number(i)}{line}" for i, line in enumerate(steps.instruction)]
    return "\n".join(lines)


def render_steps(answer: Answer, numbering: str = "digits") -> str:
    """The answer's three steps as labelled blocks (empty when it has none)."""
    return "" if answer.steps is None else format_steps(answer.steps, answer.language, numbering)


def render_answer(answer: Answer) -> str:
    """Plain text for a customer: the answer, the menu of likely entries, or the handoff message."""
    words = TEXT.get(answer.language, TEXT["en"])
    parts = [words["truncated"]] if answer.truncated else []
    if answer.action == "answer":
        parts.append(render_steps(answer))
    elif answer.action == "menu":
        options = "\n".join(f"{i + 1}. {option.question}" for i, option in enumerate(answer.options))
        parts += [words["menu"], options, words["menu_reply"]]
    else:
        parts.append(words[answer.handoff_reason or "low_confidence"])
        if answer.steps is not None:
            parts += [words["info"], render_steps(answer)]
    return "\n\n".join(p for p in parts if p)
