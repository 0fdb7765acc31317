"""Masking, tried with generated variants rather than a handful of examples: phones with every
separator, width and country prefix, and addresses given as a building and a door without
路 or 号 (issue 19: `１３８１２３４５６７８`, `138.1234.5678` and "望京SOHO T1 1201" escaped)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bots.pii import _masked, mask_text, narrow

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True)

WIDE = {chr(c): chr(c + 0xFEE0) for c in range(0x21, 0x7F)} | {" ": "\u3000"}
"""ASCII → its full-width form, as a Chinese input method types it."""


def widths(text: str, wide: list[bool]) -> str:
    """``text`` with the characters picked by ``wide`` (cycled) in full width."""
    return "".join(WIDE.get(ch, ch) if wide[i % len(wide)] else ch for i, ch in enumerate(text))


separators = st.sampled_from(["", " ", "-", ".", "  ", " - ", "\u2013", "\u2014", "\u2212", ". "])
prefixes = st.sampled_from(["", "+86", "+86 ", "+86-", "0086", "0086 ", "86 ", "(+86)", "(86) "])
around = st.sampled_from([("我的手机号是", "，谢谢"), ("call me on ", " please"), ("电话：", ""), ("", "")])


@SETTINGS
@given(
    second=st.integers(3, 9),
    third=st.integers(0, 9),
    middle=st.integers(0, 9999),
    last=st.integers(0, 9999),
    prefix=prefixes,
    first_sep=separators,
    second_sep=separators,
    wide=st.lists(st.booleans(), min_size=1, max_size=5),
    context=around,
)
def test_a_mobile_number_is_masked_whatever_its_separators_width_and_prefix(
    second, third, middle, last, prefix, first_sep, second_sep, wide, context
):
    head, mid, tail = f"1{second}{third}", f"{middle:04d}", f"{last:04d}"
    phone = widths(f"{prefix}{head}{first_sep}{mid}{second_sep}{tail}", wide)
    masked = mask_text(f"{context[0]}{phone}{context[1]}")
    assert f"{head}****{tail}" in masked
    assert f"{head}{mid}{tail}" not in re.sub(r"\D", "", masked)


buildings = st.sampled_from(["望京SOHO", "国贸大厦", "万达广场", "阳光花园", "金融中心", "华润大厦", "Central Plaza"])
towers = st.sampled_from(["T1", "T3", "A座", "B2", "3号楼", "5栋", "12幢", "C区", "b1"])
rooms = st.integers(100, 99999)
room_suffix = st.sampled_from(["", "室", "号"])
gaps = st.sampled_from(["", " ", "  ", "-"])


@SETTINGS
@given(
    building=buildings,
    tower=towers,
    room=rooms,
    suffix=room_suffix,
    before=gaps,
    between=gaps,
    wide=st.lists(st.booleans(), min_size=1, max_size=5),
)
def test_a_building_and_door_without_a_street_is_masked(building, tower, room, suffix, before, between, wide):
    address = widths(f"{building}{before.replace('-', ' ')}{tower}{between}{room}{suffix}", wide)
    masked = mask_text(f"地址：{address}，谢谢")
    assert str(room) not in masked, masked
    assert masked.endswith("，谢谢") and masked.startswith("地址：")


@SETTINGS
@given(building=buildings, room=rooms, gap=gaps.filter(lambda g: g != "-"))
def test_a_building_with_a_room_and_no_tower_is_masked(building, room, gap):
    assert str(room) not in mask_text(f"送到{building}{gap}{room}室")


def test_what_is_not_personal_data_stays_readable():
    for text in ("订单202611150001到哪了", "iPhone 15 1299元", "我买了3件，花了300元", "满 200 减 30", "退款 1500 元"):
        assert mask_text(text) == text
    assert mask_text("我买了２件") == "我买了2件"  # only the width changes
    assert mask_text("好的，谢谢！") == "好的，谢谢！"  # Chinese punctuation stays as written


pieces = st.sampled_from(
    [
        "me",
        "@",
        "＠",
        "shop",
        ".com",
        "me@shop.com",
        "li.na＠mail．cn",
        "5",
        "1201",
        "１３８",
        "٣",
        "13812345678",
        " ",
        "\u3000",
        "-",
        "+86",
        "(",
        ")",
    ]
    + ["T1", "SOHO", "大厦", "A座", "路", "号", "室", "12 Baker", "Street", "apt", "我的邮箱", "到哪了", "，"]
)
texts = st.lists(pieces, max_size=8).map("".join)
"""Texts built from the pieces personal data is made of, with and without digits or an @."""


@SETTINGS
@given(text=texts)
def test_a_text_skipped_as_without_personal_data_would_have_been_left_as_it_is(text):
    # mask_text skips the patterns when a text has no digit and no @: that must never change what it returns.
    assert mask_text(text) == _masked(narrow(text))
