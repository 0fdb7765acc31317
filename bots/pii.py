"""Personal data masked before it is logged, stored or shown to an agent
(docs/service-rules.md#personal-data): a phone as 138****5678, only the last four digits of a
card or ID number, an e-mail without its name, an address without its street and number.

Order numbers are not personal data and stay readable: they are what agents search by.

Width is normalised first (NFKC, for the full-width forms of ASCII): a phone typed in a Chinese
input method's full-width mode (１３８１２３４５６７８) is still a phone. Chinese punctuation
(，：？) stays as written.
"""

from __future__ import annotations

import re
import unicodedata

_ID_CARD = re.compile(r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9A-Za-z])")
_CARD = re.compile(r"(?<![0-9])(?:\d[ -]?){12,18}\d(?![0-9])")
_SEP = r"(?: ?[.\-\u2010-\u2015\u2212]? ?)"
"""What people put between a number's groups (or nothing): a space or two, a dot or a dash of any
length, with or without spaces around it."""
_CN_MOBILE = re.compile(rf"(?<![0-9])(?:(?:(?:\+|00)?86|\(\+?86\)){_SEP}?)?(1[3-9]\d){_SEP}?(\d{{4}}){_SEP}?(\d{{4}})(?![0-9])")
_INTL_PHONE = re.compile(rf"(?<![\w+])\+\d{{1,3}}{_SEP}?(?:\(?\d{{1,4}}\)?{_SEP}?){{2,4}}\d{{2,4}}(?![0-9])")
_EMAIL = re.compile(r"[\w.+-]+@([\w-]+\.)+[A-Za-z]{2,}")
# A Chinese street address: what follows the district (路/街/道/巷/弄 + number, building, room).
_ZH_STREET = re.compile(
    r"[^\s省市区县,，:：]{1,12}(?:路|街|大道|道|巷|弄|胡同|村|小区|花园|公寓|大厦)"
    r"[\u4e00-\u9fa5A-Za-z0-9\-]{0,20}?(?:\d+\s*(?:号|栋|幢|楼|单元|室|层|座)[\u4e00-\u9fa5A-Za-z0-9\-]*)+"
)
# A building and its door without 路 or 号: "望京SOHO T1 1201", "国贸大厦 A座 2305", "3号楼 1201室".
_BUILDING = r"(?:SOHO|大厦|广场|中心|大楼|写字楼|公寓|花园|小区|家园|苑|园|城|府|Tower|Plaza|Center|Centre|Building|Mansion)"
_TOWER = r"(?:[A-Za-z]\d{1,2}(?:座|栋|幢|号楼|塔|区)?|[A-Za-z](?:座|栋|幢|区)|\d{1,3}(?:座|栋|幢|号楼|区))"
_ROOM = r"\d{3,5}(?:室|房|号)?(?![0-9元块%])"
_BUILDING_ROOM = re.compile(
    rf"[\u4e00-\u9fa5A-Za-z0-9]{{0,12}}?{_BUILDING}\s*(?:{_TOWER}[\s\-]*)?{_ROOM}"
    rf"|(?<![A-Za-z0-9]){_TOWER}[\s\-]*{_ROOM}",  # without a building's name: "T1 1201", "A座2305"
    re.IGNORECASE,
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


_NARROW = str.maketrans(
    {
        chr(code): narrow
        for code in (*range(0xFF01, 0xFF5F), 0x3000)
        if (narrow := unicodedata.normalize("NFKC", chr(code))).isascii() and (narrow.isalnum() or narrow in "+-.@() ")
    }
)


def narrow(text: str) -> str:
    """``text`` with full-width letters, digits, ``+-.@()`` and spaces in their ASCII form."""
    return text.translate(_NARROW)


def _last_four(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group(0))
    return "*" * (len(digits) - 4) + digits[-4:]


_MAYBE_PERSONAL = re.compile(r"[\d@]")
"""What every pattern above needs (a digit, or an e-mail's @): a text without it is returned at the
cost of one search instead of eight (the engine masks every text it stores, most have neither)."""


def mask_text(text: str) -> str:
    """``text`` with every phone, ID, card number, e-mail and street address masked."""
    text = narrow(text)
    return _masked(text) if _MAYBE_PERSONAL.search(text) else text


def _masked(text: str) -> str:
    text = _EMAIL.sub(lambda m: "***@" + m.group(0).split("@", 1)[1], text)
    text = _ID_CARD.sub(_last_four, text)
    text = _CN_MOBILE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)
    text = _CARD.sub(_last_four, text)
    text = _INTL_PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _BUILDING_ROOM.sub("****", text)  # before the street: 大厦 is both, and the door must go with it
    text = _ZH_STREET.sub("****", text)
    return _EN_STREET.sub("****", text)


def mask_address(province: str = "", city: str = "", district: str = "", **_: object) -> str:
    """An address as an agent or a customer may see it: region only, street and number left out."""
    region = "".join(part for part in (province, city if city != province else "", district) if part)
    return f"{region}****" if region else "****"
