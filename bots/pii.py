"""Personal data masked before it is logged, stored or shown to an agent
(docs/service-rules.md#personal-data): a phone as 138****5678, only the last four digits of a
card or ID number, an e-mail without its name, an address without its street and number.

Order numbers are not personal data and stay readable: they are what agents search by.
"""

from __future__ import annotations

import re

_ID_CARD = re.compile(r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])")
_CARD = re.compile(r"(?<![0-9])(?:\d[ -]?){12,18}\d(?![0-9])")
_CN_MOBILE = re.compile(r"(?<![0-9])(?:\+?86[ -]?)?(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?![0-9])")
_INTL_PHONE = re.compile(r"(?<![\w+])\+\d{1,3}[ -]?(?:\(?\d{1,4}\)?[ -]?){2,4}\d{2,4}(?![0-9])")
_EMAIL = re.compile(r"[\w.+-]+@([\w-]+\.)+[A-Za-z]{2,}")
# A Chinese street address: what follows the district (路/街/道/巷/弄 + number, building, room).
_ZH_STREET = re.compile(
    r"[^\s省市区县,，:：]{1,12}(?:路|街|大道|道|巷|弄|胡同|村|小区|花园|公寓|大厦)"
    r"[\u4e00-\u9fa5A-Za-z0-9\-]{0,20}?(?:\d+\s*(?:号|栋|幢|楼|单元|室|层|座)[\u4e00-\u9fa5A-Za-z0-9\-]*)+"
)
_EN_STREET = re.compile(
    r"\b\d{1,6}[A-Za-z]?\s+(?:[A-Z][\w'.-]*\s+){0,4}"
    r"(?:street|st|road|rd|avenue|ave|lane|ln|boulevard|blvd|drive|dr|court|ct|way|place|pl|terrace|close)\b\.?"
    r"(?:,?\s*(?:apt|apartment|unit|flat|suite)\.?\s*\w+)?",
    re.IGNORECASE,
)


def mask_phone(phone: str) -> str:
    """138****5678; a short or foreign number keeps only its last four digits."""
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 11 and digits.startswith("1"):
        return f"{digits[:3]}****{digits[-4:]}"
    return "****" + digits[-4:] if len(digits) > 4 else "****"


def _last_four(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * (len(digits) - 4) + digits[-4:]


def mask_text(text: str) -> str:
    """``text`` with every phone, ID, card number, e-mail and street address masked."""
    text = _EMAIL.sub(lambda m: "***@" + m.group(0).split("@", 1)[1], text)
    text = _ID_CARD.sub(_last_four, text)
    text = _CN_MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _CARD.sub(_last_four, text)
    text = _INTL_PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _ZH_STREET.sub("****", text)
    return _EN_STREET.sub("****", text)


def mask_address(province: str = "", city: str = "", district: str = "", **_: object) -> str:
    """An address as an agent or a customer may see it: region only, street and number left out."""
    region = "".join(part for part in (province, city if city != province else "", district) if part)
    return f"{region}****" if region else "****"
