"""The WeChat Official Account adapter: signed and encrypted webhooks, the 5-second deadline,
transfer to agents. :func:`mount_wechat` adds it to ``kb serve`` when ``[wechat]`` is set."""

from bots.channels.wechat.route import WeChatWebhook, mount_wechat
from bots.channels.wechat.settings import WeChatSettings, load_wechat_settings

__all__ = ["WeChatSettings", "WeChatWebhook", "load_wechat_settings", "mount_wechat"]
