"""The workbench's form readers: text as people type it into the bodies, or reasons in Chinese."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.api import PlanBody, ReportBody
from services.progress import workbench_forms as forms


def test_a_plan_is_read_as_typed_with_full_width_digits_and_blank_rows_left_out() -> None:
    read = forms.plan(
        {
            "year": "2026",
            "milestone_due_0": "２０２６－０６－３０",
            "milestone_title_0": " 完成摸底 ",
            "milestone_due_1": "2026年12月20日",
            "milestone_title_1": "完成评估",
            "milestone_due_2": "",
            "milestone_title_2": "",
            "indicator_name_0": "惠及居民",
            "indicator_target_0": "３，０００",
            "indicator_unit_0": "户",
        }
    )
    assert read.errors == {}
    assert read.fields == {
        "year": 2026,
        "milestones": [{"title": "完成摸底", "due": "2026-06-30"}, {"title": "完成评估", "due": "2026-12-20"}],
        "indicators": [{"name": "惠及居民", "target": 3000.0, "unit": "户"}],
    }
    assert PlanBody.model_validate(read.fields).model_dump(mode="json")["milestones"][0]["title"] == "完成摸底"


def test_a_plan_says_what_is_missing_beside_each_field() -> None:
    typed = {"year": "2026", "milestone_due_0": "六月底", "indicator_name_1": "占比", "indicator_target_1": "高"}
    read = forms.plan(typed)
    assert read.errors == {
        "milestone_due_0": "请填写日期，例如 2026-06-30",
        "milestone_title_0": "请填写节点内容",
        "indicator_target_1": "目标值须为数字，例如 70 或 3000",
    }
    assert forms.plan({"year": "2026"}).errors == {"milestone_title_0": "年度计划至少需要一个节点"}


def test_a_report_reads_percent_values_and_refuses_what_is_not_a_number() -> None:
    typed = {"period": "２０２６-Q1", "percent": "６０％", "narrative": "摸底完成", "value:占比": "６８．５"}
    read = forms.report(typed)
    assert read.errors == {}
    assert read.fields == {
        "period": "2026-Q1",
        "percent": 60.0,
        "narrative": "摸底完成",
        "indicator_values": [{"name": "占比", "value": 68.5}],
    }
    bad = forms.report({"period": "2026-Q1", "percent": "120", "narrative": " ", "value:占比": "很多"})
    assert bad.errors == {
        "percent": "完成进度须为 0 到 100 之间的数字",
        "narrative": "请填写本季度工作进展",
        "value:占比": "指标完成值须为数字",
    }


@pytest.mark.parametrize(
    ("reader", "form", "errors"),
    [
        (forms.review, {"decision": "return", "comment": ""}, {"comment": "退回计划须写明原因，以便单位修改"}),
        (forms.review, {"decision": "maybe"}, {"decision": "请选择“通过”或“退回”"}),
        (forms.verify, {"decision": "fail", "findings": ""}, {"findings": "核验不通过须写明意见，以便单位整改"}),
        (forms.verify, {"decision": "pass", "score": "101"}, {"score": "评估得分须为 0 到 100 之间的数字"}),
        (forms.summary, {"year": "2026", "text": "  "}, {"text": "请填写年度汇总"}),
        (forms.cancel, {"reason": ""}, {"reason": "撤销任务须写明原因"}),
    ],
)
def test_decisions_need_their_reasons(reader: forms.Reader, form: dict[str, str], errors: dict[str, str]) -> None:
    assert reader(form).errors == errors


def test_what_the_body_model_refuses_goes_beside_its_field_in_words() -> None:
    with pytest.raises(ValidationError) as caught:
        ReportBody.model_validate({"period": "2026-Q5", "percent": 5, "narrative": "n"})
    assert forms.model_errors(caught.value) == {"period": "格式不对，季度应写作 2026-Q4"}


def test_a_refusal_is_shown_in_chinese_first_with_the_reason_kept() -> None:
    reason = "milestone 'm' is due 2027-03-01, outside the plan year 2026"
    assert forms.refusal_words(reason) == f"节点日期须在计划年度内。（{reason}）"
    assert forms.refusal_field(reason, "submit_plan") == "milestone_title_0"
    assert forms.refusal_words("something new") == "未能提交。（something new）"
    assert forms.refusal_field("indicator 'x' is not in the approved plan", "report_progress") == "percent"
