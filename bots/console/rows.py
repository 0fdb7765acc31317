"""The queue's rows as HTML, built in Python: with a thousand open tickets a Jinja loop was most of
the page's time (the queue is polled every two seconds). Same markup as before; every value escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from markupsafe import Markup

from bots.store import Ticket


def queue_rows(tickets: Sequence[Ticket], t: Mapping[str, str], names: Mapping[str, str], now: float) -> Markup:
    """One ``<tr>`` per ticket (or the "no tickets" row); waiting times and countdowns are
    written for ``now`` and kept running by the page's script."""
    if not tickets:
        return Markup(f'<tr class="empty"><td colspan="9">{escape(t["no_tickets"])}</td></tr>')
    label = {k: escape(t[k]) for k in ("ticket", "priority", "reason", "kind", "channel", "language", "waiting", "due", "agent")}
    overdue, nobody = escape(t["overdue"]), escape(t["nobody"])
    parts = []
    for ticket in tickets:
        tid, priority = escape(ticket.id), escape(ticket.priority)
        late = ticket.due_at <= now
        due = overdue if late else f"{int((ticket.due_at - now) // 60)} min"
        parts.append(
            f'<tr class="ticket p-{priority}" data-ticket="{tid}">'
            f'<td data-label="{label["ticket"]}"><a href="/desk/tickets/{tid}">{tid}</a></td>'
            f'<td data-label="{label["priority"]}"><span class="badge p-{priority}">'
            f"{escape(names.get(ticket.priority) or ticket.priority)}</span></td>"
            f'<td data-label="{label["reason"]}">{escape(names.get(ticket.reason) or ticket.reason)}</td>'
            f'<td data-label="{label["kind"]}">{escape(names.get(ticket.kind) or ticket.kind)}</td>'
            f'<td data-label="{label["channel"]}">{escape(ticket.channel)}</td>'
            f'<td data-label="{label["language"]}">{escape(ticket.language)}</td>'
            f'<td data-label="{label["waiting"]}" class="since" data-since="{int(ticket.created_at)}">'
            f"{int((now - ticket.created_at) // 60)} min</td>"
            f'<td data-label="{label["due"]}" class="due{" overdue" if late else ""}" data-due="{int(ticket.due_at)}" '
            f'data-overdue="{overdue}">{due}</td>'
            f'<td data-label="{label["agent"]}">{escape(ticket.agent) if ticket.agent else nobody}</td></tr>'
        )
    return Markup("\n".join(parts))
