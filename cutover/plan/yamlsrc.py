"""Read YAML files so that a validation error can name the file, the line and the field path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from cutover.plan.errors import CutoverError

M = TypeVar("M", bound=BaseModel)
MAX_DEPTH = 64  # nesting of mappings and sequences (PyYAML's composer recurses: 600 deep exhausts the stack)
MAX_INT_DIGITS = 100  # a plan's numbers are small; Python refuses to convert past 4 300 digits
_INT = re.compile(r"^[-+]?(0x[0-9a-fA-F_]+|0o?[0-7_]+|[0-9][0-9_]*)$")


def field_path(loc: tuple[Any, ...]) -> str:
    """('phases', 3, 'flags') -> 'phases[3].flags'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest part of `loc` present in the file (a missing field: its parent's line)."""
    if root is None:
        return 1  # an empty document: its first line
    node, line = root, root.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _fix_for(err: ErrorDetails) -> str:
    kind, ctx = err.get("type", ""), err.get("ctx") or {}
    name = str(err["loc"][-1]) if err.get("loc") else "the field"
    if kind == "missing":
        return f"add `{name}` here (see rollout.yaml in the cutover repository for a complete example)"
    if kind == "extra_forbidden":
        return f"remove `{name}` or correct its spelling; `cutover plan show` lists the fields in use"
    if kind == "literal_error":
        return f"use one of: {ctx.get('expected', '')}"
    if kind in ("less_than_equal", "greater_than_equal", "less_than", "greater_than"):
        return "give a value inside the allowed range"
    return "correct the value; `cutover plan validate` re-checks the file"


class SourceFile:
    """A YAML document with its node tree, so errors can point at lines."""

    def __init__(self, path: Path, error_cls: type[CutoverError] = CutoverError):
        self.path, self.error_cls = Path(path), error_cls
        if not self.path.is_file():
            raise error_cls("file not found", file=str(path), fix="check the path, or run from the project directory")
        raw = self.path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error_cls(
                f"not UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}",
                file=str(path),
                line=raw[: exc.start].count(b"\n") + 1,
                fix="save the file as UTF-8",
            ) from None
        try:
            self._scan(text)
            self.root = yaml.compose(text)
            self._no_duplicate_keys(self.root)
            self.data: Any = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            line = mark.line + 1 if mark else None
            position = getattr(exc, "position", None)  # a reader error (a bad character) has a position only
            if line is None and isinstance(position, int):
                line = text[:position].count("\n") + 1
            raise error_cls(
                f"malformed YAML: {problem}",
                file=str(path),
                line=line,
                fix="fix the YAML syntax at that line (indentation, a missing colon, an unclosed quote, "
                "a control character such as NUL)",
            ) from None
        if self.data is None:
            self.data = {}

    def _scan(self, text: str) -> None:
        """Before building anything: nesting depth and integer length, from the parser's events
        (iterative), so that neither exhausts the stack nor Python's integer conversion."""
        depth = 0
        for event in yaml.parse(text):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise self.error_cls(
                        f"nested deeper than {MAX_DEPTH} levels",
                        file=str(self.path),
                        line=event.start_mark.line + 1 if event.start_mark else None,
                        fix="a plan is a few levels deep: check the indentation or the brackets here",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif (
                isinstance(event, yaml.ScalarEvent)
                and event.style is None
                and len(event.value) > MAX_INT_DIGITS
                and _INT.match(event.value)
            ):
                raise self.error_cls(
                    f"an integer of {len(event.value)} digits (at most {MAX_INT_DIGITS})",
                    file=str(self.path),
                    line=event.start_mark.line + 1 if event.start_mark else None,
                    fix="give a value inside the allowed range",
                )

    def _no_duplicate_keys(self, root: yaml.Node | None) -> None:
        stack = [(root, "")]
        while stack:
            node, where = stack.pop()
            if isinstance(node, yaml.MappingNode):
                seen: dict[str, int] = {}
                for k, v in node.value:
                    key = str(k.value)
                    path = f"{where}.{key}" if where else key
                    if key in seen:
                        raise self.error_cls(
                            f"duplicate key `{key}` (first at line {seen[key]}); YAML keeps only the last",
                            file=str(self.path),
                            line=k.start_mark.line + 1,
                            field=path,
                            fix="remove one of the two, or merge them",
                        )
                    seen[key] = k.start_mark.line + 1
                    stack.append((v, path))
            elif isinstance(node, yaml.SequenceNode):
                stack.extend((v, f"{where}[{i}]") for i, v in enumerate(node.value))

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        return _line_of(self.root, loc)

    def error(self, message: str, loc: tuple[Any, ...] = (), fix: str | None = None) -> CutoverError:
        return self.error_cls(
            message, file=str(self.path), line=self.line_of(loc), field=field_path(loc) or None, fix=fix
        )

    def validate(
        self, model: type[M], data: Any = None, prefix: tuple[Any, ...] = (), context: dict[str, Any] | None = None
    ) -> M:
        try:
            return model.model_validate(self.data if data is None else data, context=context)
        except ValidationError as exc:
            raise self.from_validation(exc, prefix) from None

    def from_validation(self, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> CutoverError:
        err = exc.errors()[0]
        loc = prefix + tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        more = len(exc.errors()) - 1
        if more:
            msg += f" (and {more} more error{'s' if more > 1 else ''})"
        return self.error(msg, loc, fix=_fix_for(err))
