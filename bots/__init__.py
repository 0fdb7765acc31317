"""The front ends: the ``kb`` command line, and (later) the WeChat and Telegram adapters."""
