"""Reading the programme directory's files with every problem located: file, line and field.

A YAML value keeps the line it starts on, so that a pydantic error on it can be reported as
`division.yaml:14: tasks.2.lead: ...`; all problems are collected and raised at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}"


class DivisionError(ValueError):
    """One or more problems in a units, division or schedule file; nothing was loaded."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class Located:
    """A YAML value with the (1-based) line it starts on; mappings and lists hold Located."""

    value: Any
    line: int

    def plain(self) -> Any:
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def _located(node: Node, constructor: SafeConstructor) -> Located:
    line = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        return Located({str(constructor.construct_object(k)): _located(v, constructor) for k, v in node.value}, line)
    if isinstance(node, SequenceNode):
        return Located([_located(v, constructor) for v in node.value], line)
    assert isinstance(node, ScalarNode)
    return Located(constructor.construct_object(node), line)


def read_text(path: Path, *, legacy_encoding: bool = False) -> str:
    """A file's text, or a DivisionError naming the file. `legacy_encoding` accepts GB18030,
    which is what spreadsheet programs on Chinese Windows write for 'CSV'."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DivisionError([Problem(str(path), None, "file", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        if legacy_encoding:
            try:
                return data.decode("gb18030")
            except UnicodeDecodeError:
                pass
        raise DivisionError([Problem(str(path), None, "file", "not UTF-8 text")]) from None


def load_yaml(path: Path) -> Located:
    text = read_text(path)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise DivisionError([Problem(str(path), line, "yaml", str(exc.problem or exc))]) from None
    if node is None:
        raise DivisionError([Problem(str(path), None, "file", "empty")])
    return _located(node, SafeConstructor())


def line_of(root: Located, loc: Iterable[Any]) -> int:
    """The line of the deepest value a pydantic error location reaches."""
    here = root
    for part in loc:
        value = here.value
        in_dict = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)
        if in_dict or in_list:
            here = value[part]
        else:
            break
    return here.line


def validate(model: type[M], item: Located, file: str, problems: list[Problem]) -> M | None:
    try:
        return model.model_validate(item.plain())
    except ValidationError as exc:
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or model.__name__
            problems.append(Problem(file, line_of(item, err["loc"]), field, err["msg"]))
        return None


def raise_if(problems: list[Problem]) -> None:
    if problems:
        unique = dict.fromkeys(problems)  # e.g. a bad top-level default is reported once, not per task
        raise DivisionError(sorted(unique, key=lambda p: (p.file, p.line or 0)))
