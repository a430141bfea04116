"""Pass 1 of reading a policy text: lines -> blocks, each block knowing the line it starts on.

Real texts are copies of PDFs or web pages: broken sentences, page numbers, running headers,
mixed full- and half-width punctuation, a byte-order mark, CRLF line ends. Page furniture is
dropped; the remaining lines are glued into blocks: a line continues the previous block unless
it opens with a structural marker or the block is already closed by sentence-ending
punctuation. Pure.
"""

from __future__ import annotations

import functools
import re
from collections import Counter

import opencc

_CN = "〇零一二三四五六七八九十"
_CN_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"零": 0}
# Full-width digits and punctuation fold to ASCII 1:1, so positions found in the folded copy
# are valid in the original text.
_FOLD = str.maketrans("０１２３４５６７８９．，；：（）", "0123456789.,;:()")

SECTION_RE = re.compile(r"^([一二三四五六七八九十]{1,3})\s*[、.]\s*(.+)$")  # 一、主要任务
GROUP_RE = re.compile(r"^[（(]\s*([一二三四五六七八九十]{1,3})\s*[)）]\s*(.*)$")  # （一）…
CLAUSE_RE = re.compile(r"^([1-9]\d{0,2})\s*[.、](?!\d)\s*(.*)$")  # 1. … / 1、… (not 1.5万)
# A clause whose title begins with digits (11.121人才梯队项目): a clause only where its number
# is the one expected next.
DIGIT_CLAUSE_RE = re.compile(r"^([1-9]\d{0,2})\s*[.](?=\d)(.*)$")
DATE_RE = re.compile(rf"(?P<y>[\d{_CN}]{{4}})\s*年\s*(?P<m>[\d{_CN}]{{1,3}})\s*月\s*(?P<d>[\d{_CN}]{{1,3}})\s*日")
DOCNO_RE = re.compile(r"([\u4e00-\u9fff]{1,12})\s*[〔\[［【(（]\s*(\d{4})\s*[〕\]］】)）]\s*(\d{1,4})\s*号")
ADDRESSEE_RE = re.compile(r"^各.{1,80}[:：]$")  # 各区县（自治县）人民政府，市政府各部门，有关单位：
# A publication mark above or below the title: (此件公开发布), (印发稿). Not part of the title.
PUBLICATION_NOTE_RE = re.compile(r"\((此件.{1,8}|印发稿)\)")
ATTACHMENT_RE = re.compile(r"^附\s*件\s*(\d+\s*)?([:：]|$)")
ANNEX_HEADING_RE = re.compile(r"^附\s*件\s*\d*\s*[:：]?$")  # 附件 / 附件1 alone on its line
# A division-of-work line under a clause: 责任单位:市发改委 / 牵头单位：区发改局 /
# 部门分工:省发展改革委牵头,各地、各部门配合。
NOTE_LINE_RE = re.compile(r"^((牵头|责任|配合|协办|主办|参与)(单位|部门)|(部门|责任|任务)分工)\s*[:：]")
# The official in charge, named under a clause (分管省领导:林克庆): a person, not a unit.
IN_CHARGE_RE = re.compile(r"^分管(省|市|区|县)?(政府)?(领导|负责同志)\s*[:：]\s*(.*)$")

_PAGE_NUMBER_RE = re.compile(
    r"^[\s\-—–－―~～·•]*(第\s*)?\d{1,3}\s*页?(\s*[/／]\s*\d{1,3}|\s*,?\s*共\s*\d{1,3}\s*页)?[\s\-—–－―~～·•]*$"
)
_RUNNING_HEADER_RE = re.compile(r"^[^\s]{2,30}(文件|公报)$")  # 重庆市人民政府办公厅行政规范性文件
PUNCT = set("。，；：、！？,;:!?")
_HEADING_PUNCT = set("，；：！？,;:!?")
_SENTENCE_PUNCT = set("；：！？;:!?")
# A title line: short, unpunctuated, ending with the genre's word (…的实施意见, …工作要点(2023年)).
_TITLE_END_RE = re.compile(r"(意见|方案|通知|要点|计划|措施|办法|分解|清单|规划)([(（][^()（）]{1,12}[)）])?$")
_CLOSED_RE = re.compile(r"[。；！？：!?;:][”’」』]*$|[。！？][（(][^（）()]*[)）]$|^[（(][^（）()]*[)）]$")


@functools.cache
def _to_simplified() -> opencc.OpenCC:
    return opencc.OpenCC("hk2s")  # traditional, Hong Kong variants included (衞 -> 卫)


def simplified(text: str) -> tuple[str, bool]:
    """A copy in traditional characters (牽頭單位：…；配合單位：…, a Hong Kong or Taiwan copy) as
    simplified characters, and whether it was one. A simplified text is returned as it is: it is
    converted only when at least 1% of its CJK characters are traditional forms. Line breaks are
    kept, so line numbers stay those of the original."""
    converted = _to_simplified().convert(text)
    changed = sum(a != b for a, b in zip(text, converted, strict=False))
    cjk = sum("\u4e00" <= ch <= "\u9fff" for ch in text)
    if converted.count("\n") != text.count("\n") or changed < max(3, cjk // 100):
        return text, False
    return converted, True


class Block(str):
    """A block of text and the (1-based) line of the original text it starts on."""

    line: int

    def __new__(cls, text: str, line: int) -> Block:
        block = super().__new__(cls, text)
        block.line = line
        return block


def cn_number(s: str) -> int:
    """一 -> 1, 十二 -> 12, 二十 -> 20, 二〇二二 -> 2022, and plain digits."""
    s = s.translate(_FOLD)
    if s.isdigit():
        return int(s)
    if "十" not in s:
        return int("".join(str(_CN_DIGIT[c]) for c in s))
    tens, _, ones = s.partition("十")
    return (_CN_DIGIT[tens] if tens else 1) * 10 + (_CN_DIGIT[ones] if ones else 0)


def fold(s: str) -> str:
    return s.translate(_FOLD)


def clause_match(block: str, expected: int | None = None) -> re.Match[str] | None:
    """The clause marker at the start of a block; a digits-led title (11.121人才…) counts only
    when its number is the one expected next."""
    folded = fold(block)
    if m := CLAUSE_RE.match(folded):
        return m
    m = DIGIT_CLAUSE_RE.match(folded)
    return m if m and expected is not None and int(m.group(1)) == expected else None


def content_lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of the non-blank lines that are not page furniture."""
    numbered = [(i, line.strip()) for i, line in enumerate(text.replace("\ufeff", "").splitlines(), 1)]
    numbered = [(i, line) for i, line in numbered if line]
    # A running header repeats on every page; a real paragraph never repeats word for word.
    counts = Counter(line for _, line in numbered)

    def furniture(line: str) -> bool:
        if _PAGE_NUMBER_RE.match(fold(line)):
            return True
        if PUNCT.isdisjoint(line) and not starts_block(line):
            return bool(_RUNNING_HEADER_RE.match(line) and "关于" not in line) or (counts[line] > 1 and len(line) <= 40)
        return False

    return [(i, line) for i, line in numbered if not furniture(line)]


def starts_block(line: str, expected: int | None = None) -> bool:
    """A line that always opens a new block, whatever the previous one ended with."""
    folded = fold(line)
    return bool(
        SECTION_RE.match(folded)
        or GROUP_RE.match(folded)
        or clause_match(line, expected)
        or DOCNO_RE.fullmatch(folded)
        or DATE_RE.fullmatch(folded)
        or ADDRESSEE_RE.match(folded)
        or ATTACHMENT_RE.match(folded)
        or NOTE_LINE_RE.match(folded)
        or IN_CHARGE_RE.match(folded)
    )


def heading(block: str) -> tuple[int, str, str] | None:
    """(number, title, body) when the block is a level-1 heading such as 二、主要任务, or one that
    carries its body (一、指导思想。以…); None for a sentence that merely starts with 一、."""
    m = SECTION_RE.match(fold(block))
    if not m:
        return None
    title = block[m.start(2) :].split("。", 1)[0]
    # A heading line of its own may carry a comma (一、抓好疫情防控,全面恢复生产生活秩序).
    alone = "。" not in block and len(title) <= 40 and not _SENTENCE_PUNCT.intersection(title)
    if not alone and (len(title) > 30 or not _HEADING_PUNCT.isdisjoint(title)):
        return None
    body = block[m.start(2) + len(title) :].lstrip("。").strip()
    return cn_number(m.group(1)), strip_stop(title), body


def strip_stop(s: str) -> str:
    return s.strip().rstrip("。.；;：:").strip()


def _is_heading(block: str) -> bool:
    found = heading(block)
    return found is not None and not found[2]


def _is_closed(block: str) -> bool:
    folded = fold(block)
    return bool(
        _CLOSED_RE.search(folded)
        or _is_heading(block)
        or DOCNO_RE.fullmatch(folded)
        or DATE_RE.fullmatch(folded)
        or ANNEX_HEADING_RE.match(folded)
        or bool(_TITLE_END_RE.search(block) and PUNCT.isdisjoint(block) and len(block) <= 60)
        # a group heading on a line of its own (（一）进一步推进权力清单公开), its body below
        or bool(GROUP_RE.match(folded) and PUNCT.isdisjoint(block) and len(block) <= 40)
    )


def join(left: str, right: str) -> str:
    # A line break between Latin words stands for a space; CJK text and numbers join without one.
    if left[-1:].isascii() and left[-1:].isalpha() and right[:1].isascii() and right[:1].isalpha():
        return f"{left} {right}"
    return left + right


def blocks(text: str) -> list[Block]:
    out: list[Block] = []
    expected: int | None = None  # the clause number that would come next
    for no, line in content_lines(text):
        if out and not starts_block(line, expected) and not _is_closed(out[-1]):
            out[-1] = Block(join(out[-1], line), out[-1].line)
            continue
        out.append(Block(line, no))
        if m := clause_match(line, expected):
            expected = int(m.group(1)) + 1
    return out
