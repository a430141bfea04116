"""policyflow calendar: publish a year's working calendar (放假安排) and show what is in force.

The file is a small YAML document:

    year: 2027
    holidays: [2027-01-01, 2027-02-05, ...]   # the days off
    workdays: [2027-02-07, ...]                 # weekend days worked (调休)
    source: "国办发明电〔2026〕7号"

A bad file is refused here, before anything is sent, with the file, the line and the field.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from contracts.working_calendar import PublishedCalendar
from services.cli.client import Client, Config
from services.cli.common import AsJson, Token, console, emit, handled
from services.cli.errors import ApiError


class _DatesAsText(yaml.SafeLoader):
    """Dates stay text for the model to read, so a bad one is refused with its line and field."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

app = typer.Typer(no_args_is_help=True, help="The working calendar (放假安排) as published data.")


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the node at `loc` (field, then list index), or of the nearest one found."""
    node, line = root, (root.start_mark.line + 1) if root is not None else 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


def read_calendar(path: Path) -> PublishedCalendar:
    """The calendar in `path`, or an ApiError naming the file, the line and the field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiError(0, f"{path}: cannot read the calendar file: {exc}") from exc
    try:
        root = yaml.compose(text, Loader=_DatesAsText)
        data = yaml.load(text, Loader=_DatesAsText)  # a SafeLoader: plain data only
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ApiError(0, f"{where}: not YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ApiError(0, f"{path}:1: the calendar is a mapping with year, holidays, workdays and source")
    try:
        return PublishedCalendar.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        if not loc and ": " in message:  # "holidays[3]: ..." from the whole-calendar check
            where, message = message.split(": ", 1)
            field, _, index = where.partition("[")
            loc = (field, int(index.rstrip("]"))) if index else (field,)
        field = ".".join(str(p) for p in loc) or "calendar"
        raise ApiError(0, f"{path}:{_line_of(root, loc)}: {field}: {message}") from exc


def _show(status: dict[str, Any]) -> None:
    c = status.get("calendar") or {}
    console().print(f"{status['year']}: {status['message']}")
    if c:
        console().print(f"  source {c['source']}, revision {status['revision']}: "
                        f"{len(c['holidays'])} holidays, {len(c['workdays'])} make-up working days")  # fmt: skip


@app.command()
@handled
def publish(
    year: Annotated[int, typer.Argument(help="the calendar's year")],
    file: Annotated[Path, typer.Argument(help="YAML: year, holidays, workdays, source")],
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="follow until every running assignment is told")
    ] = True,
    token: Token = None,
    as_json: AsJson = False,
) -> None:
    """Admins: publish (or replace) YEAR's holidays and make-up working days; running assignments follow at once."""
    calendar = read_calendar(file)
    if calendar.year != year:
        raise ApiError(0, f"{file}: year: the file is the calendar of {calendar.year}, not {year}")
    with Client(Config.load(token)) as c:
        status = c.request("progress", "PUT", f"/v1/calendars/{year}", json=calendar.model_dump(mode="json"))
        while wait and status.get("state") in ("queued", "signalling"):
            time.sleep(1.0)
            status = c.request("progress", "GET", f"/v1/calendars/{year}")
    emit(status, as_json, _show)


@app.command()
@handled
def show(year: Annotated[int, typer.Argument()], token: Token = None, as_json: AsJson = False) -> None:
    """The calendar in force for YEAR: published (with its source) or the package's, provisionally."""
    with Client(Config.load(token)) as c:
        emit(c.request("progress", "GET", f"/v1/calendars/{year}"), as_json, _show)
