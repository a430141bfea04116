"""policyflow export status|summaries|indicators|scores: a view as an .xlsx or .csv file; and
policyflow bulletin PROGRAMME PERIOD: the 督查通报 as a .pdf or .docx.

The file is the progress service's own (`?format=`): the whole result of the filters given, in the
caller's scope (a department's token gets its own unit only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer

from services.cli.client import NO_TOKEN, Client, Config, _detail
from services.cli.common import AsJson, Token, console, emit, handled, t
from services.cli.errors import ApiError

app = typer.Typer(no_args_is_help=True)

FileFormat = Literal["xlsx", "csv"]
Format = Annotated[FileFormat, typer.Option("--format", "-f", help="xlsx (default) or csv (UTF-8 with BOM)")]
Output = Annotated[Path | None, typer.Option("-o", "--output", help="where to write it (default: a name in .)")]
Programme = Annotated[str | None, typer.Option("--programme", help="programme id")]
Unit = Annotated[str | None, typer.Option("--unit", help="unit id (a department gets its own anyway)")]
AsOf = Annotated[str | None, typer.Option("--as-of", help="a date (2027-12-31) or ISO time; default now")]


def save(token: str | None, path: str, params: dict[str, Any], fmt: str, out: Path | None, stem: str) -> dict[str, Any]:
    """GET the view as a file and write it; what was written."""
    clean = {k: v for k, v in params.items() if v is not None} | {"format": fmt}
    with Client(Config.load(token)) as c:
        if not c.config.token:
            raise ApiError(0, NO_TOKEN)
        url = f"{c.config.urls['progress']}{path}"
        try:
            resp = c.http.get(url, params=clean, headers={"Authorization": f"Bearer {c.config.token}"})
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the progress service at {url}: {exc}") from exc
    if resp.status_code >= 400:
        raise ApiError(resp.status_code, _detail(resp))
    target = out or Path(f"{stem}.{fmt}")
    try:
        target.write_bytes(resp.content)
    except OSError as exc:
        raise ApiError(0, f"cannot write {target}: {exc.strerror}") from exc
    return {"path": str(target), "format": fmt, "bytes": len(resp.content)}


def _said(saved: dict[str, Any]) -> None:
    console().print(t("已导出", "written") + f" {saved['path']} ({saved['bytes']} bytes)")


@app.command("status")
@handled
def status(
    programme: Programme = None,
    unit: Unit = None,
    task: Annotated[int | None, typer.Option(help="task number")] = None,
    group: Annotated[int | None, typer.Option(help="task group number")] = None,
    stage: Annotated[str | None, typer.Option(help="stage")] = None,
    overdue: Annotated[str | None, typer.Option(help="none, blue, yellow, red, or any")] = None,
    fmt: Format = "xlsx",
    output: Output = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Every assignment the filters match (not a page), most urgent first: 任务状态."""
    params = {"programme_id": programme, "unit_id": unit, "task_no": task, "group": group, "stage": stage,
              "overdue": overdue}  # fmt: skip
    emit(save(token, "/v1/status", params, fmt, output, "status"), as_json, _said)


@app.command("summaries")
@handled
def summaries(
    by: Annotated[str, typer.Option(help="unit, task, group, year or role")] = "unit",
    programme: Programme = None,
    unit: Unit = None,
    fmt: Format = "xlsx",
    output: Output = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Counts and on-time rate per unit / task / group / year / role: 汇总."""
    params = {"by": by, "programme_id": programme, "unit_id": unit}
    emit(save(token, "/v1/status/summary", params, fmt, output, f"summary-{by}"), as_json, _said)


@app.command("indicators")
@handled
def indicators(
    programme: Annotated[str, typer.Argument(help="programme id")],
    as_of: AsOf = None,
    unit: Unit = None,
    indicator: Annotated[str | None, typer.Option(help="one indicator id")] = None,
    fmt: Format = "xlsx",
    output: Output = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Per indicator and year: the city-wide value, each unit's value and target: 指标."""
    params = {"as_of": as_of, "unit_id": unit, "indicator_id": indicator}
    path = f"/v1/programmes/{programme}/indicators"
    emit(save(token, path, params, fmt, output, f"indicators-{programme}"), as_json, _said)


@app.command("scores")
@handled
def scores(
    programme: Annotated[str, typer.Argument(help="programme id")],
    year: Annotated[int, typer.Option(help="the year scored", min=2000, max=2100)],
    as_of: AsOf = None,
    unit: Unit = None,
    fmt: Format = "xlsx",
    output: Output = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Each unit's 考核 score for the year, every component with what it counted: 考核得分."""
    params = {"year": year, "as_of": as_of, "unit_id": unit}
    path = f"/v1/programmes/{programme}/scores"
    emit(save(token, path, params, fmt, output, f"scores-{programme}-{year}"), as_json, _said)


@handled
def bulletin(
    programme: Annotated[str, typer.Argument(help="programme id")],
    period: Annotated[str, typer.Argument(help="a quarter (2026-Q4) or a year (2026)")],
    fmt: Annotated[Literal["pdf", "docx"], typer.Option("--format", "-f", help="pdf (default) or docx (Word)")] = "pdf",
    unit: Unit = None,
    output: Output = None,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """The 督查通报 of a quarter or a year: figures, task groups, red and yellow units, scores,
    indicators with charts, overdue items."""
    path = f"/v1/programmes/{programme}/bulletins/{period}"
    stem = f"bulletin-{programme}-{period}" + (f"-{unit}" if unit else "")
    if not as_json:
        console().print(t("正在生成通报……", "rendering the bulletin…"))
    emit(save(token, path, {"unit_id": unit}, fmt, output, stem), as_json, _said)
