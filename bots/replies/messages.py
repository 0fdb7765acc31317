"""What the bot says outside the knowledge base's answers, in the customer's language.

Short and friendly; never deflecting, never over-promising (docs/service-rules.md#language).
"""

from __future__ import annotations

TEXT: dict[str, dict[str, str]] = {
    "zh": {
        "greeting": "您好，我是小店的智能客服 😊 订单、退换货、退款、运费、优惠券都可以问我。常见问题：",
        "help": "直接用一句话描述您的问题就好，比如“退款多久到账”。查订单请发订单号；想找人工客服，回复「人工」。常见问题：",
        "thanks": "不客气，还有问题随时问我 😊",
        "invalid": "这条消息我没能看懂，可以用文字描述一下您的问题吗？比如“我的订单到哪了”。",
        "truncated": "（您的消息较长，我先看了前 {limit} 个字。）",
        "ask_feedback": "这个回答解决您的问题了吗？回复 1 已解决，2 未解决。",
        "solved": "太好了，感谢您的反馈！还有问题随时问我。",
        "not_solved": "抱歉没能帮到您。您可以换个说法再问我一次，或回复「人工」由客服为您处理。",
        "menu": "我想确认一下，您问的是哪一个？回复序号即可：",
        "menu_none": "都不是？回复 0 转人工客服。",
        "handoff_money": "这个问题涉及金额，需要由人工客服为您核实处理，我已为您转接。",
        "handoff_low_confidence": "这个问题我需要请同事帮您确认，已为您转接人工客服。",
        "handoff_requested": "好的，马上为您转接人工客服。",
        "handoff_upset": "非常抱歉给您带来不好的体验，我已请专人来处理您的问题。",
        "handoff_privacy": "这涉及账户安全，已为您转接专人处理。请不要在聊天中发送密码或验证码。",
        "handoff_order_unavailable": "抱歉，订单系统暂时没有响应，我已请同事帮您查询。",
        "handoff_order_locked": "这个订单的验证尝试次数过多，为保护订单信息已暂时锁定，我已请人工客服为您核实身份。",
        "due_in_hours": "客服会在 {within}内（{by} 前）回复您，您可以继续补充情况，我会一并转给客服。",
        "due_outside_hours": "现在是非服务时间（服务时间 {hours}），客服会在 {by} 上班后第一时间回复您。您可以继续补充情况。",
        "already_with_agent": "您的问题已在人工客服处理中，请稍候。",
        "info": "先为您提供相关说明，供参考：",
        "ask_order_number": "请把订单号发给我（在「我的订单」里可以复制），我马上帮您查。",
        "order_not_found": "没有查到订单 {number}，请核对一下订单号（在「我的订单」里可以复制）再发给我。",
        "ask_phone": "为了保护您的隐私，请回复下单手机号的后四位，我核对后告诉您订单 {number} 的状态。",
        "phone_mismatch": "手机号后四位与订单不符。请再核对一下；如果换过手机号，回复「人工」由客服帮您核实。",
        "phone_gave_up": "抱歉，暂时无法核实这个订单。为保护订单信息，回复「人工」由客服为您核实身份后查询。",
        "closed": "本次人工服务已结束，感谢您的耐心。还有问题随时问我 😊",
        "seconds": "{n} 秒",
        "minutes": "{n} 分钟",
        "hours_n": "{n} 小时",
        "telegram_solved": "✅ 已解决",
        "telegram_not_solved": "❌ 未解决",
        "telegram_agent": "👤 转人工客服",
        "telegram_none_of_these": "都不是，转人工客服",
        "telegram_from_agent": "👤 人工客服",
        "telegram_expired": "这个按钮已过期，直接发送您的问题就好 😊",
        "wechat_unsupported": "我暂时只能看懂文字消息 😊 请用文字描述一下您的问题，比如“退款多久到账”；要找人工客服，回复「人工」。",
        "wechat_voice_unclear": "抱歉，这条语音我没听清，可以打字告诉我吗？",
        "wechat_shortened": "（内容较长，后面的部分省略了。还有疑问请回复「人工」。）",
        "wechat_busy": "抱歉，刚才系统有点忙，请再发一次您的问题。",
        "wechat_late_transfer": "已为您转接人工客服，请直接回复消息说明您的问题，客服会尽快回复您。",
        "wechat_menu": "我想确认一下，您问的是哪一个？点一下即可：",
        "wechat_none_of_these": "都不是，转人工客服",
    },
    "en": {
        "greeting": "Hi, I'm the shop's assistant 😊 Ask me about orders, returns, refunds, shipping or coupons. Popular questions:",
        "help": "Just ask in one sentence, e.g. “When will I get my refund?”. To check an order, send its number; "
        "to talk to a person, reply “agent”. Popular questions:",
        "thanks": "You're welcome! Ask me anytime 😊",
        "invalid": "Sorry, I couldn't read that message. Could you tell me in words what you need? E.g. “Where is my order?”",
        "truncated": "(Your message was long, so I read the first {limit} characters.)",
        "ask_feedback": "Did this solve your problem? Reply 1 for yes, 2 for no.",
        "solved": "Great, thanks for letting me know! Ask me anytime.",
        "not_solved": "Sorry that didn't help. Try asking in other words, or reply “agent” and a colleague will take it from here.",
        "menu": "Just to be sure, which one do you mean? Reply with the number:",
        "menu_none": "None of these? Reply 0 and a colleague will help.",
        "handoff_money": "This involves money, so a colleague will check it and handle it for you. I've passed you to an agent.",
        "handoff_low_confidence": "Let me get a colleague to check this for you. I've passed you to an agent.",
        "handoff_requested": "Sure, I'm passing you to an agent now.",
        "handoff_upset": "I'm really sorry about this. I've asked a colleague to take care of it personally.",
        "handoff_privacy": "This concerns your account's security, so a specialist will take over. "
        "Please never send passwords or verification codes in chat.",
        "handoff_order_unavailable": "Sorry, our order system isn't answering right now. I've asked a colleague to look it up for you.",
        "handoff_order_locked": "There have been too many tries to verify this order, so it's locked for now to keep it safe. "
        "I've asked a colleague to verify you and help.",
        "due_in_hours": "An agent will reply within {within} (by {by}). Feel free to add details; I'll pass them on.",
        "due_outside_hours": "We're outside service hours ({hours}); an agent will reply first thing when we open at {by}. "
        "Feel free to add details meanwhile.",
        "already_with_agent": "An agent is already on your case, please hold on.",
        "info": "Meanwhile, here is what our rules say:",
        "ask_order_number": "Please send me your order number (you can copy it from My Orders) and I'll check right away.",
        "order_not_found": "I couldn't find order {number}. Could you check the number (copy it from My Orders) and send it again?",
        "ask_phone": "To protect your privacy, please reply with the last four digits of the phone number on order {number}.",
        "phone_mismatch": "Those digits don't match the order. Please check them; if you changed your number, reply “agent”.",
        "phone_gave_up": "Sorry, I can't verify this order here. To keep it private, reply “agent” and a colleague will verify "
        "you and check it.",
        "closed": "This chat with our agent has ended, thanks for your patience. Ask me anytime 😊",
        "seconds": "{n} seconds",
        "minutes": "{n} minutes",
        "hours_n": "{n} hours",
        "telegram_solved": "✅ Solved",
        "telegram_not_solved": "❌ Not solved",
        "telegram_agent": "👤 Talk to an agent",
        "telegram_none_of_these": "None of these: talk to a person",
        "telegram_from_agent": "👤 Our agent",
        "telegram_expired": "That button has expired; just send me your question 😊",
        "wechat_unsupported": "For now I can only read text 😊 Please tell me in words what you need, e.g. “When will I get my refund?”; to talk to a person, reply “agent”.",
        "wechat_voice_unclear": "Sorry, I couldn't catch that voice message. Could you type it?",
        "wechat_shortened": "(This was long, so the rest is left out. Reply “agent” if you need more.)",
        "wechat_busy": "Sorry, the system was busy just now. Please send your question again.",
        "wechat_late_transfer": "You're now with our customer service. Please reply here with your question and an agent will answer you as soon as possible.",
        "wechat_menu": "Just to be sure, which one do you mean? Tap one:",
        "wechat_none_of_these": "None of these: talk to a person",
    },
}


def say(language: str, key: str, **values: object) -> str:
    """The message ``key`` in ``language`` (English when the language has none)."""
    words = TEXT.get(language, TEXT["en"])
    return words.get(key, TEXT["en"][key]).format(**values)


def duration(language: str, minutes: float) -> str:
    """ "30 秒" / "2 hours": how long the customer waits, as a person says it."""
    if minutes < 1:
        return say(language, "seconds", n=round(minutes * 60))
    if minutes < 60:
        return say(language, "minutes", n=round(minutes))
    return say(language, "hours_n", n=round(minutes / 60))
