"""Text normalisation, language detection and keyword tokens, shared by ingest and retrieval.

Both sides of a match must go through the same functions, so they live here, in the bottom layer.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_EMOJI = re.compile(
    "["
    "\U0001f000-\U0001faff"  # pictographs, emoticons, transport, symbols and pictographs
    "\U00002600-\U000027bf"  # miscellaneous symbols, dingbats
    "\U0001f1e6-\U0001f1ff"  # regional indicators (flags)
    "\ufe0f\u200d\u20e3"  # variation selector, zero-width joiner, keycap
    "]+"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


@lru_cache(maxsize=1)
def _t2s():
    # OpenCC's own C++ library: the conversion of the pure-Python ports, thirty times faster.
    from opencc import OpenCC

    return OpenCC("t2s")


def to_simplified(text: str) -> str:
    """Traditional Chinese characters to simplified ones; other text is left as it is."""
    return _t2s().convert(text) if _CJK.search(text) else text


def normalize(text: str) -> str:
    """The form in which a question is matched.

    Full-width → half-width (NFKC), traditional → simplified, lower case, emoji and control
    characters removed, white space collapsed.
    """
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    text = _EMOJI.sub(" ", text)
    text = to_simplified(text).lower()
    return _SPACE.sub(" ", text).strip()


def detect_language(text: str) -> str:
    """``zh`` when the text holds any Chinese character, else ``en``.

    A message mixing both ("我的order到了吗") is Chinese for the customer: answer in Chinese.
    """
    return "zh" if _CJK.search(text) else "en"


# Words too common to say anything about which entry is meant.
_STOP = frozenset(
    "的 了 吗 呢 吧 啊 呀 么 我 你 您 是 在 有 和 就 都 也 还 要 会 能 可以 怎么 怎样 如何 什么 "
    "请问 亲 一下 这个 那个 一个 "
    "a an the is are was were be been am i me my you your we our it its to of in on at for and or "
    "do does did can could would should will how what when where why which who this that there "
    "please pls hi hello".split()
)


def keyword_tokens(text: str) -> list[str]:
    """Tokens for keyword search of an already normalised text, stop words dropped: jieba's
    search-mode words for Chinese (a long word and the shorter ones in it), and for Latin
    letters and digits, in any language, words and numbers. Order numbers and product names
    survive whole."""
    latin = [w for w in _WORD.findall(text) if w not in _STOP]
    if not _CJK.search(text):
        return latin
    # jieba-rs (jieba's dictionary and segmentation, twenty times faster than jieba), imported
    # here: loading its dictionary takes 0.16 s that an English-only process never needs.
    import rjieba

    words = rjieba.cut_for_search(text)
    return [w for w in words if not w.isascii() and w not in _STOP and not unicodedata.category(w[0]).startswith("P")] + latin


_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])|(?<=\.)\s+")
_PARAGRAPH = re.compile(r"\n\s*\n|\n(?=\s*(?:\d+[.、)]|[-*+]\s))")
MAX_PASSAGE_CHARS = 160


def passages(text: str) -> list[str]:
    """A policy section as short passages: paragraphs and list items, split at sentence ends
    when long. Each is searched on its own, and the best one answers."""
    pieces: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        paragraph = " ".join(line.strip() for line in paragraph.splitlines()).strip()
        if len(paragraph) < 6:
            continue
        current = ""
        for sentence in _SENTENCE_END.split(paragraph):
            if current and len(current) + len(sentence) > MAX_PASSAGE_CHARS:
                pieces.append(current.strip())
                current = ""
            current += sentence
        if current.strip():
            pieces.append(current.strip())
    return pieces
