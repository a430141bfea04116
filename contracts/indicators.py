"""A programme's declared outcomes: its indicators (指标) and its scoring rule (考核评分办法).

Both are imported with the programme and travel in its ProgrammeImported fact, so every reader of
the stream (the progress read model, the auditors' replay) computes the same figures from them.
Plans and reports name an indicator by its `id`; its `name` is for display.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from contracts.base import Frozen, Role

INDICATOR_ID_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
Aggregation = Literal["sum", "mean", "share_at_or_above", "latest"]

AGGREGATION_WORDS: dict[str, str] = {
    "sum": "各单位之和",
    "mean": "各单位平均",
    "share_at_or_above": "达标单位占比（%）",
    "latest": "最新填报值",
}


class IndicatorSpec(Frozen):
    """One indicator: what is measured, which tasks report it and how units' values combine.

    sum / mean: of the units' latest values for the year; share_at_or_above: the percentage of the
    units assigned to the indicator's tasks whose value is at or above `threshold` (a unit that has
    not reported counts as below); latest: the value most recently reported by any unit.
    """

    id: str = Field(pattern=INDICATOR_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    measure: str = Field(default="", max_length=50)  # the unit of measure: %, 万平方米, 个
    tasks: list[int] = Field(min_length=1, max_length=200)
    aggregation: Aggregation
    threshold: float | None = None
    targets: dict[int, float] = {}  # city-wide target per year
    goal_year: int = Field(ge=2000, le=2100)
    goal: float
    higher_is_better: bool = True
    roles: list[Role] = []  # the units counted: those with these roles on the tasks (empty: every role)

    @model_validator(mode="after")
    def _threshold_when_share(self) -> IndicatorSpec:
        if self.aggregation == "share_at_or_above" and self.threshold is None:
            raise ValueError(f"indicator {self.id}: share_at_or_above needs a threshold")
        return self


class EscalationPenalties(Frozen):
    """What each escalation of the year takes off the escalation component (a fraction of it)."""

    blue: float = Field(default=0.1, ge=0, le=1)
    yellow: float = Field(default=0.25, ge=0, le=1)
    red: float = Field(default=0.5, ge=0, le=1)


class ScoreWeights(Frozen):
    acceptance: float = Field(default=15, ge=0, le=1000)  # 按期签收
    plans: float = Field(default=20, ge=0, le=1000)  # 年度计划按期报送
    reports: float = Field(default=25, ge=0, le=1000)  # 季度进展按期报送
    verification: float = Field(default=20, ge=0, le=1000)  # 核验结果
    escalations: float = Field(default=10, ge=0, le=1000)  # 督办（按颜色扣分）
    indicators: float = Field(default=10, ge=0, le=1000)  # 指标目标完成

    def total(self) -> float:
        return self.acceptance + self.plans + self.reports + self.verification + self.escalations + self.indicators


class ScoringRule(Frozen):
    """The 考核 rule as data. The default is an EXAMPLE, not an official 考核办法.

    Each component is a fraction (0..1) times its weight: acceptance, plans and reports are the
    share of the year's deadlines met on time (a late one earns `late_credit`, a missed one 0,
    one not yet due is left out); verification the share of the year's decisions that passed;
    escalations 1 minus the penalties of the year's escalations (not below 0); indicators the
    share of the year's planned targets met by the reported values. A component with nothing in
    it earns its whole weight if the unit has accepted an assignment and nothing if it has not,
    so a unit that has not started scores lowest on timeliness.
    """

    example: bool = True
    note: str = Field(default="示例评分办法（EXAMPLE），非正式考核办法", max_length=500)
    weights: ScoreWeights = ScoreWeights()
    late_credit: float = Field(default=0.5, ge=0, le=1)
    penalties: EscalationPenalties = EscalationPenalties()


DEFAULT_SCORING = ScoringRule()


class ProgrammeOutcomes(Frozen):
    """indicators.yaml: the programme's indicators and (optionally) its scoring rule."""

    example: bool = False
    note: str = Field(default="", max_length=2000)
    indicators: list[IndicatorSpec] = Field(default=[], max_length=200)
    scoring: ScoringRule = DEFAULT_SCORING

    @model_validator(mode="after")
    def _ids_unique(self) -> ProgrammeOutcomes:
        seen: set[str] = set()
        for ind in self.indicators:
            if ind.id in seen:
                raise ValueError(f"indicator id {ind.id} appears twice")
            seen.add(ind.id)
        return self
