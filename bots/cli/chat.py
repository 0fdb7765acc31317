"""``kb chat``: the whole engine in a terminal, for editors and developers.

Type as a customer would. Lines starting with ``:`` act as the agent on the open ticket:
``:take``, ``:reply TEXT``, ``:close``, ``:tickets``; ``:solved`` / ``:unsolved`` press the
feedback buttons; ``:quit`` (or Ctrl-D) leaves.
"""

from __future__ import annotations

import sys
from typing import TextIO

from bots.conversation.engine import Engine
from bots.desk import TicketError
from bots.replies.reply import Delivery, Turn
from kb.vocabulary import ReplyKind

CHANNEL = "chat"
HELP = "Ask as a customer would. Agent side: :take, :reply TEXT, :close, :tickets. Feedback: :solved, :unsolved. Leave: :quit"


def _show(out: TextIO, who: str, text: str) -> None:
    if text:
        out.write(f"{who}> " + text.replace("\n", "\n     ") + "\n\n")
        out.flush()


def _show_turn(out: TextIO, turn: Turn) -> None:
    if turn.silent:
        _show(out, "   ", f"(ticket {turn.ticket.id if turn.ticket else ''} is with an agent: the bot stays quiet)")
    for reply in turn.replies:
        _show(out, "bot", reply.plain())
    if turn.handed_off and turn.ticket:
        t = turn.ticket
        _show(out, "   ", f"(ticket {t.id} opened: {t.reason}, {t.kind}, {t.priority}; try :take / :reply TEXT / :close)")


def _show_delivery(out: TextIO, delivery: Delivery | None) -> None:
    for reply in delivery.replies if delivery else []:
        _show(out, "agent" if reply.kind == ReplyKind.AGENT else "bot", reply.plain())


def run_chat(engine: Engine, user_id: str = "demo", stdin: TextIO = sys.stdin, out: TextIO = sys.stdout) -> None:
    out.write(f"{HELP}\n(Demo order 202611150001 belongs to this user; 202611150002 asks for the phone's last four: 1111.)\n\n")
    while True:
        if stdin.isatty():
            out.write("you> ")
            out.flush()
        line = stdin.readline()
        if not line or line.strip() in (":quit", ":q"):
            return
        line = line.rstrip("\n")
        command, _, rest = line.partition(" ")
        conversation = engine.conversation(CHANNEL, user_id)
        try:
            if command == ":solved" or command == ":unsolved":
                _show_turn(out, engine.feedback(CHANNEL, user_id, command == ":solved"))
            elif command == ":tickets":
                for t in engine.desk.tickets():
                    _show(out, "   ", f"{t.id} {t.state} {t.reason} {t.priority} user={t.user_id}")
            elif command in (":take", ":reply", ":close"):
                if not conversation.ticket_id:
                    _show(out, "   ", "(no open ticket for this conversation)")
                elif command == ":take":
                    ticket = engine.desk.take(conversation.ticket_id, "you")
                    _show(out, "   ", f"(ticket {ticket.id} is yours)")
                elif command == ":reply":
                    _show_delivery(out, engine.desk.reply(conversation.ticket_id, "you", rest or "…"))
                else:
                    _show_delivery(out, engine.desk.close(conversation.ticket_id, "you"))
            elif command.startswith(":"):
                _show(out, "   ", HELP)
            else:
                _show_turn(out, engine.handle(CHANNEL, user_id, line))
        except TicketError as error:
            _show(out, "   ", f"({error})")
