"""``kb telegram --polling`` (long polling: a laptop, a first try, no public URL needed) and
``kb telegram set-webhook URL`` (production: Telegram calls ``kb serve``).

The two do not mix: starting long polling removes the webhook (Telegram refuses ``getUpdates``
while one is set), so run ``set-webhook`` again before going back to ``kb serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

from telegram import Bot
from telegram.error import TelegramError

from bots.channels.hub import ChannelHub
from bots.channels.telegram.bot import TelegramBot
from bots.channels.telegram.settings import ALLOWED_UPDATES, WEBHOOK_PATH, TelegramSettings, load_telegram_settings
from bots.conversation import Engine
from kb.config import Config

log = logging.getLogger("kb.telegram")

ESCALATION_CHECK_SECONDS = 60.0


async def poll(bot: TelegramBot, stop: asyncio.Event, poll_timeout: float = 10.0) -> None:
    """Fetch updates until ``stop`` is set, then finish the ones under way. Also escalates
    overdue tickets, which ``kb serve`` does in the webhook setup."""
    application = bot.application
    if application.updater is None:
        raise ValueError("poll() needs a TelegramBot made with polling=True")
    async with application:  # initialize (getMe) ... shutdown
        await application.updater.start_polling(timeout=timedelta(seconds=poll_timeout), allowed_updates=ALLOWED_UPDATES)
        await application.start()
        escalation = asyncio.create_task(_escalate(bot))
        try:
            await stop.wait()
        finally:
            escalation.cancel()
            await application.updater.stop()
            await application.stop()


async def _escalate(bot: TelegramBot) -> None:
    while True:
        await asyncio.sleep(ESCALATION_CHECK_SECONDS)
        try:
            for ticket in await asyncio.to_thread(bot.engine.desk.escalate_overdue):
                log.warning("ticket %s escalated: untouched for %g hours", ticket.id, bot.engine.settings.escalate_after_hours)
                await bot.on_ticket("escalated", ticket)
        except Exception:
            log.exception("escalation check failed")


def run_polling(engine: Engine, settings: TelegramSettings) -> None:
    """Run the bot with long polling until Ctrl-C (or SIGTERM)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, or not the main thread
                loop.add_signal_handler(sig, stop.set)
        await poll(TelegramBot(ChannelHub.for_engine(engine), settings, polling=True), stop)

    asyncio.run(main())


def webhook_url(url: str) -> str:
    """``https://host`` → ``https://host/telegram/webhook``; a URL with a path is kept as it is."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path=WEBHOOK_PATH)
    return urlunsplit(parts)


async def set_webhook(settings: TelegramSettings, url: str) -> str:
    """Register ``url`` with Telegram, with the secret and the update kinds the bot handles."""
    async with Bot(settings.token, base_url=settings.base_url) as bot:
        await bot.set_webhook(url, secret_token=settings.webhook_secret, allowed_updates=ALLOWED_UPDATES)
        return bot.username


def telegram_command(config: Config, args: argparse.Namespace, make_engine: Callable[[Config], Engine]) -> int:
    """``kb telegram --polling`` / ``kb telegram set-webhook URL``."""
    action = getattr(args, "telegram_command", None)
    if action is None and not args.polling:
        print("Say what to do: kb telegram --polling, or kb telegram set-webhook URL.", file=sys.stderr)
        return 2
    settings = load_telegram_settings(config)
    if not settings.enabled:
        print("No bot token: set TELEGRAM_BOT_TOKEN (or [telegram] token in a local config).", file=sys.stderr)
        return 1
    if action == "set-webhook":
        if not settings.webhook_secret:
            print("No webhook secret: set TELEGRAM_WEBHOOK_SECRET (letters, digits, _ and -).", file=sys.stderr)
            return 1
        url = webhook_url(args.url)
        if not url.startswith("https://"):
            print(f"Note: Telegram only calls https:// webhooks; {url} is fine for a local Bot API server.", file=sys.stderr)
        try:
            username = asyncio.run(set_webhook(settings, url))
        except TelegramError as error:
            print(f"Telegram refused the webhook: {error}", file=sys.stderr)
            return 1
        print(f"Telegram now sends @{username}'s updates to {url} (with the secret).", file=sys.stderr)
        return 0
    engine = make_engine(config)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    engine.retriever.warm_up()  # the models load now, not on the first customer's message
    print("Telegram bot running with long polling; Ctrl-C stops it.", file=sys.stderr)
    run_polling(engine, settings)
    return 0
