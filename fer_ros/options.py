"""Options as dataclasses whose fields describe themselves: default, description, range, choices.

The inference core declares its settings this way (`EngineOptions`, `DetectorOptions`,
`TrackerOptions`, `PipelineOptions`); fer_node turns the very same fields into its ROS parameters
(`fer_ros.ros.params`) and bag-eval reads the same names from a params file. A setting is written
once, under one name, from config/fer.yaml to the code that uses it. The training config's sections
(`fer_ros.training.config`) are declared the same way and checked by `check_options`. YAML a
person writes (a training config, a `-p NAME:=VALUE`) is read by `read_yaml`: no aliases.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from fer_ros.errors import ConfigError, one_line


def option(
    default: Any,
    doc: str,
    low: float | None = None,
    high: float | None = None,
    choices: tuple = (),
    live: bool = True,
    check: Callable[[Any], str | None] | None = None,
):
    """A dataclass field with its description, allowed range (either end may be open) or choices,
    and whether it may change while the node runs (`live=False`: it applies when the node is
    configured). `check`, for a rule a range or list cannot say, returns what the value must be
    when it is not allowed (e.g. "auto, cpu, cuda or cuda:N"), else None."""
    return field(
        default=default,
        metadata={
            "doc": doc,
            "low": low,
            "high": high,
            "choices": tuple(choices),
            "live": live,
            "check": check,
        },
    )


@dataclass(frozen=True)
class Spec:
    name: str
    default: Any
    doc: str
    low: float | None
    high: float | None
    choices: tuple
    live: bool
    check: Callable[[Any], str | None] | None = None

    def problem(self, value: Any) -> str | None:
        """Why `value` is not allowed, or None when it is."""
        shown = short_repr(value)
        if not _same_kind(value, self.default):
            return f"{self.name} takes {_KINDS[type(self.default)]}, not {shown}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, not {shown}"
        low, high = self.low, self.high
        if low is not None or high is not None:
            # NaN compares false with every bound, so it would pass the range unless refused here.
            if isinstance(value, float) and not math.isfinite(value):
                return f"{self.name} must be a finite number {_bounds(low, high)}, not {shown}"
            if (low is not None and value < low) or (high is not None and value > high):
                return f"{self.name} must be {_bounds(low, high)}, not {shown}"
        if self.check is not None and (rule := self.check(value)):
            return f"{self.name} must be {rule}, not {shown}"
        return None


# A value shown in a message is cut short: a list nested by reference (a YAML alias bomb, or
# Python's [[0] * 1000] * 1000) has a repr() of gigabytes.
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 60, 60, 3
SHORT_CHARS = 120


def short_repr(value: Any) -> str:
    """repr() for a message: a few elements of a few levels, SHORT_CHARS characters at most."""
    text = _SHORT.repr(value)
    return text if len(text) <= SHORT_CHARS else text[: SHORT_CHARS - 3] + "..."


_KINDS = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    tuple: "a list",
}


def _bounds(low: float | None, high: float | None) -> str:
    if low is None:
        return f"<= {high:g}"
    return f">= {low:g}" if high is None else f"within {low:g}..{high:g}"


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))  # 1 for 1.0, as YAML and ROS write it
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def specs(cls) -> list[Spec]:
    """The described fields of an options dataclass, in declaration order (base classes first)."""
    return [
        Spec(
            f.name,
            f.default,
            f.metadata.get("doc", ""),
            f.metadata.get("low"),
            f.metadata.get("high"),
            f.metadata.get("choices", ()),
            f.metadata.get("live", True),
            f.metadata.get("check"),
        )
        for f in dataclasses.fields(cls)
        if "doc" in f.metadata
    ]


def check_options(options, prefix: str = "") -> None:
    """Raises ConfigError for the first described field of an options object whose value is not
    allowed, naming it with `prefix` (e.g. "train." for the training config's sections)."""
    for spec in specs(type(options)):
        if reason := dataclasses.replace(spec, name=prefix + spec.name).problem(
            getattr(options, spec.name)
        ):
            raise ConfigError(reason)


def check(cls, **values: Any) -> None:
    """Raise ConfigError for the first of `values` its spec in the options class `cls` refuses."""
    by_name = {spec.name: spec for spec in specs(cls)}
    for name, value in values.items():
        if reason := by_name[name].problem(value):
            raise ConfigError(reason)


class Checked:
    """Base of the options dataclasses: an instance is checked against its specs when it is made
    (the one place a choice or range is enforced; `Spec.problem` gives the reasons), so whoever
    reads an option need not check it again."""

    def __post_init__(self):
        check_options(self)


def from_params(cls, params: dict[str, Any]):
    """An options object from a flat dict of parameters (unknown names are ignored, missing ones
    keep their defaults); a value of the wrong type or outside its range raises ConfigError."""
    values = {}
    for spec in specs(cls):
        if spec.name not in params:
            continue
        value = params[spec.name]
        values[spec.name] = (
            float(value) if type(spec.default) is float and type(value) is int else value
        )
    return cls(**values)  # checked as it is made (Checked)


# Far above any training config or parameter value; YAML text beyond it is refused unread.
MAX_YAML_CHARS = 1_000_000


class _PlainLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: `*name` repeats a node by reference, so a few hundred
    characters can stand for billions of values (the "billion laughs"), which any copy, check or
    message that walks them expands. No fer_ros setting needs one."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise ConfigError(
                f"YAML aliases (*name) are not accepted (line {mark.line + 1}, "
                f"column {mark.column + 1}): write the value out"
            )
        return super().compose_node(parent, index)


def read_yaml(text: str, where: str = "YAML") -> Any:
    """YAML a person wrote (a training config, a -p value) as plain Python values, the one way
    fer_ros reads it: safe types only, no aliases, bounded size and nesting. Syntax errors
    stay yaml.YAMLError (a -p value that is not YAML is a string, as ROS reads it); anything
    refused for its size or shape is a ConfigError naming `where`."""
    if len(text) > MAX_YAML_CHARS:
        raise ConfigError(
            f"{where}: {len(text)} characters of YAML, more than the {MAX_YAML_CHARS} accepted"
        )
    try:
        return yaml.load(text, Loader=_PlainLoader)  # a SafeLoader whose aliases are refused
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    except ValueError as err:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"{where}: {one_line(err, 160)}") from None
