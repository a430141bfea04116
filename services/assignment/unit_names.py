"""From the names a text gives (市住房和城乡建设委员会, 各区县政府) to units of the registry.

In order: the registry's own ids, names and aliases; then known short forms (市住房城乡建委 and
市住建委 for 市住房和城乡建设委员会); a set of district-level units (各区县, 各县(市、区)政府) is every
unit of kind district. A name matched by none of these is unmatched, with the closest registry
name as a suggestion for a person to confirm: nothing is matched by guess. Pure.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from contracts.catalog import Unit, UnitKind
from services.assignment.division_notes import is_district_set

EXACT = "exact"
SHORT_FORM = "short form"
ALL_DISTRICTS = "all district-level units"

# Pairs of long and short forms the genre uses for the same words in unit names.
_SHORT_FORMS = (
    ("委员会", "委"),
    ("发展和改革", "发展改革"),
    ("发改", "发展改革"),
    ("住房和城乡建设", "住房城乡建设"),
    ("住房城乡建设委", "住房城乡建委"),
    ("住建委", "住房城乡建委"),
    ("住建局", "住房城乡建设局"),
    ("人力资源和社会保障", "人力社保"),
    ("人力资源社会保障", "人力社保"),
    ("人社局", "人力社保局"),
    ("经济和信息化", "经济信息"),
    ("经信", "经济信息"),
    ("规划和自然资源", "规划自然资源"),
    ("生态环境保护", "生态环境"),
    ("市场监督管理局", "市场监管局"),
    ("应急管理局", "应急局"),
    ("城管局", "城市管理局"),
    ("科学技术局", "科技局"),
    ("文化和旅游", "文化旅游"),
    ("卫生健康委员会", "卫生健康委"),
    ("卫健委", "卫生健康委"),
    ("农业农村委员会", "农业农村委"),
    ("人民政府", "政府"),
)
# 重庆市 / 广东省 before a department's name: the registry writes 市… / 省…
_CITY_PREFIXES = ("省", "市")


@dataclass(frozen=True)
class NameMatch:
    name: str
    unit_ids: tuple[str, ...] = ()
    how: str = ""  # exact, short form, all district-level units; empty when unmatched
    suggestion: str = ""  # the closest registry name, for a person to confirm


def short_form(name: str) -> str:
    """The name with the genre's long forms replaced by its short ones."""
    s = name.replace("（", "(").replace("）", ")").replace(" ", "")
    for long, short in _SHORT_FORMS:
        s = s.replace(long, short)
    # 重庆市住房城乡建委 -> 市住房城乡建委: a place name before 市 / 省 is dropped
    for i, ch in enumerate(s[:6]):
        if ch in _CITY_PREFIXES and i > 0 and len(s) - i > 2:
            return s[i:]
    return s


class UnitNames:
    """Matches names as written to the unit registry."""

    def __init__(self, units: list[Unit]) -> None:
        self.units = units
        self.exact: dict[str, str] = {}
        self.short: dict[str, set[str]] = {}
        for u in units:
            for key in (u.unit_id, u.name, *u.aliases):
                self.exact.setdefault(key, u.unit_id)
                self.short.setdefault(short_form(key), set()).add(u.unit_id)
        self.districts = tuple(u.unit_id for u in units if u.kind == UnitKind.DISTRICT)
        self.names = {u.name: u.unit_id for u in units} | {a: u.unit_id for u in units for a in u.aliases}

    def name_of(self, unit_id: str) -> str:
        return next((u.name for u in self.units if u.unit_id == unit_id), unit_id)

    def match(self, name: str) -> NameMatch:
        if name in self.exact:
            return NameMatch(name, (self.exact[name],), EXACT)
        if is_district_set(name) and self.districts:
            return NameMatch(name, self.districts, ALL_DISTRICTS)
        found = self.short.get(short_form(name), set())
        if len(found) == 1:
            return NameMatch(name, tuple(found), SHORT_FORM)
        close = difflib.get_close_matches(name, list(self.names), n=1, cutoff=0.6)
        return NameMatch(name, suggestion=close[0] if close else "")
