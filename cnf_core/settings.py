"""Settings declared once: type, default, bounds or choices, unit, label and help, on the config that uses them.

A config is a frozen dataclass whose user-facing fields are annotated
``Annotated[type, Setting(...)]``; its ``__post_init__`` calls `validate`,
which checks and normalises every declared field. Everything else reads the
same declaration: the app's widgets and their address-bar keys
(``ui/settings.py``), the command line (`add_arguments`), the limits a
checkpoint is checked against before anything is built from it, and the
test that walks every config (``tests/test_settings.py``).

Why plain dataclasses with ``typing.Annotated`` metadata rather than pydantic:
the configs hold engine objects (a drawn ``Dataset``, nested frozen configs)
that are not pydantic types, their error messages are the app's own ("batch_size:
must be between 1 and 20,000, got 0", shown as is on a page and by the CLI),
and the checks are a dozen lines of range and choice tests. The standard
library's ``dataclasses`` and ``typing.get_type_hints(include_extras=True)``
carry the declaration; `validate` is the one validator.

A setting can also be declared on a function's parameter (for example
``SolverConfig.fixed``'s ``steps``): `declared` reads those the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Mapping, Sequence

from .errors import ConfigError

__all__ = ["Setting", "Declared", "number", "declared", "validate", "add_arguments", "arguments_of"]


@dataclass(frozen=True)
class Setting:
    """What a person may set, and how it reads.

    - label, help, unit: the widget's label and help text, the CLI's help;
    - low, high: bounds of a number (inclusive unless ``low_open``/``high_open``),
      or of every element of a tuple setting;
    - choices: the allowed values (a sequence, or a function returning one, for a
      registry filled later such as the datasets); ``labels`` how each reads;
    - length: (fewest, most) elements of a tuple setting (a network's layers);
    - step, format: a number box's step and printf format;
    - ui: the (low, high) a widget offers where that is narrower than what the
      engine accepts (an open bound such as a tolerance's 0, a cap that code may
      set far lower than a person would);
    - flag: the command-line option (None: ``--field-name``; "": not on the command line);
    - key: the address-bar and widget key after the page's prefix (None: the field name).
    """

    label: str
    help: str = ""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: Sequence | Callable[[], Sequence] | None = None
    labels: Mapping[Any, str] | None = None
    length: tuple[int, int] | None = None
    unit: str = ""
    step: float | None = None
    format: str | None = None
    ui: tuple[float, float] | None = None
    flag: str | None = None
    key: str | None = None


def number(name: str, value, *, integer: bool = False) -> float:
    """A finite number from `value` (an int with `integer`), or a ConfigError naming the setting.

    The one check of every numeric setting in cnf_core: NaN, infinities,
    booleans, None and text that is not a number are refused here.

    Args:
        name: the setting's name, first in the message.
        value: anything a person or a file may have given.
        integer: require a whole number and return an ``int``.

    Returns:
        The value as a float (or an int with `integer`).

    Raises:
        ConfigError: `value` is not a finite number (or not whole with `integer`).

    >>> number("lr", "0.01")
    0.01
    >>> number("batch_size", 3.0, integer=True)
    3
    >>> number("rtol", float("nan"))
    Traceback (most recent call last):
    ...
    cnf_core.errors.ConfigError: rtol: must be a finite number, got nan
    """
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if integer and isinstance(value, int):  # exact, however large (a float holds only 53 bits)
        return value
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected a number, got {value!r}") from None
    if not math.isfinite(result):
        raise ConfigError(f"{name}: must be a finite number, got {value!r}")
    if integer:
        if result != int(result):
            raise ConfigError(f"{name}: must be a whole number, got {value!r}")
        return int(result)
    return result


@dataclass(frozen=True)
class Declared:
    """One declared setting of a config: its name, kind (bool, int, float, str or tuple), default and `Setting`."""

    name: str
    kind: type
    default: Any
    setting: Setting
    optional: bool = False  # None is a value (no budget in iterations, no time cap)
    others: tuple[type, ...] = ()  # objects the config checks itself (a drawn or uploaded Dataset besides a dataset's name)

    @property
    def label(self) -> str:
        return self.setting.label

    @property
    def key(self) -> str:
        """The widget and address key after a page's prefix."""
        return self.setting.key or self.name

    @property
    def flag(self) -> str | None:
        """The command-line option, or None when the setting is not on the command line."""
        if self.setting.flag == "":
            return None
        return self.setting.flag or "--" + self.name.replace("_", "-")

    def widget_range(self) -> tuple[float | None, float | None]:
        """The (low, high) a number widget offers: `Setting.ui`, else the declared bounds."""
        return self.setting.ui or (self.setting.low, self.setting.high)

    def options(self) -> tuple | None:
        """The allowed values, or None for a number within bounds."""
        choices = self.setting.choices
        if choices is None:
            return None
        return tuple(choices() if callable(choices) else choices)

    def label_of(self, value) -> str:
        """How `value` reads in a widget (its label, else the value itself)."""
        labels = self.setting.labels or {}
        return labels.get(value, value if isinstance(value, str) else _short(value))

    def bounds(self) -> str:
        """The allowed range in words: "between 1 and 20,000", "in (0, 1]", "at least 1"."""
        low, high, setting = self.setting.low, self.setting.high, self.setting
        if low is not None and high is not None:
            if not setting.low_open and not setting.high_open:
                return f"between {_short(low)} and {_short(high)}"
            return f"in {'(' if setting.low_open else '['}{_short(low)}, {_short(high)}{')' if setting.high_open else ']'}"
        if low is not None:
            return f"{'greater than' if setting.low_open else 'at least'} {_short(low)}"
        if high is not None:
            return f"{'less than' if setting.high_open else 'at most'} {_short(high)}"
        return "any value"

    def check(self, value):
        """`value` validated and normalised (ints as int, floats as float, tuples of ints), or a ConfigError naming the setting."""
        if value is None:
            if self.optional:
                return None
            raise ConfigError(f"{self.name}: a value is required")
        if self.others and isinstance(value, self.others):
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name}: expected true or false, got {value!r}")
            return value
        if self.kind is str:
            options = self.options()
            if not isinstance(value, str) or (options is not None and value not in options):
                listed = "" if options is None else f"; choose one of {', '.join(map(str, options))}"
                raise ConfigError(f"{self.name}: unknown {value!r}{listed}")
            return value
        if self.kind is tuple:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise ConfigError(f"{self.name}: expected a list of whole numbers, got {value!r}")
            values = tuple(self._in_bounds(number(self.name, item, integer=True)) for item in value)
            fewest, most = self.setting.length or (0, math.inf)
            if not fewest <= len(values) <= most:
                raise ConfigError(f"{self.name}: must have {fewest} to {most} entries, got {len(values)}")
            return values
        checked = number(self.name, value, integer=self.kind is int)
        options = self.options()
        if options is not None and checked not in options:
            raise ConfigError(f"{self.name}: must be one of {', '.join(map(_short, options))}, got {value!r}")
        return self._in_bounds(checked)

    def _in_bounds(self, value):
        low, high, setting = self.setting.low, self.setting.high, self.setting
        below = low is not None and (value <= low if setting.low_open else value < low)
        above = high is not None and (value >= high if setting.high_open else value > high)
        if below or above:
            unit = f" {self.setting.unit}" if self.setting.unit else ""
            raise ConfigError(f"{self.name}: must be {self.bounds()}{unit}, got {value!r}")
        return value

    def describe(self, default: Any = dataclasses.MISSING) -> str:
        """Help text with the allowed values and the default (the declaration's, unless the caller's own), for the command line."""
        default = self.default if default is dataclasses.MISSING else default
        parts = [(self.setting.help or self.label).rstrip(".")]
        options = self.options()
        if options is not None:
            parts.append(f"one of {', '.join(map(_short, options))}")
        if self.kind in (int, float, tuple) and options is None and (self.setting.low is not None or self.setting.high is not None):
            parts.append(f"{self.bounds()}{' ' + self.setting.unit if self.setting.unit else ''}")
        if default is not None and default is not dataclasses.MISSING:
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else _short(default)
            parts.append(f"default {shown}")
        return "; ".join(parts).replace("%", "%%")


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _kind(hint) -> tuple[type, bool, tuple[type, ...]]:
    """(bool/int/float/str/tuple, whether None is allowed, other types) of a type hint such as ``int | None``."""
    optional, others = False, ()
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint, others = members[0], tuple(members[1:])
    if typing.get_origin(hint) is tuple or hint is tuple:
        return tuple, optional, others
    if hint in (bool, int, float, str):
        return hint, optional, others
    raise TypeError(f"a declared setting must be bool, int, float, str or a tuple of ints, not {hint!r}")


@functools.cache
def declared(owner) -> dict[str, Declared]:
    """The declared settings of a config class (its ``Annotated[..., Setting]`` fields) or of a function's parameters."""
    hints = typing.get_type_hints(owner, include_extras=True)
    if dataclasses.is_dataclass(owner):
        defaults = {
            f.name: f.default if f.default is not dataclasses.MISSING else (f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
            for f in dataclasses.fields(owner)
        }
    else:
        defaults = {name: p.default if p.default is not inspect.Parameter.empty else dataclasses.MISSING for name, p in inspect.signature(owner).parameters.items()}
    result = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is not Annotated or name not in defaults:
            continue
        setting = next((meta for meta in hint.__metadata__ if isinstance(meta, Setting)), None)
        if setting is None:
            continue
        kind, optional, others = _kind(hint.__origin__)
        result[name] = Declared(name, kind, defaults[name], setting, optional, others)
    return result


def validate(config) -> None:
    """Check every declared field of a frozen dataclass `config` and store its normalised value (call from ``__post_init__``).

    Raises:
        ConfigError: naming the first setting out of its bounds or choices.
    """
    for name, declaration in declared(type(config)).items():
        object.__setattr__(config, name, declaration.check(getattr(config, name)))


# ---------------------------------------------------------------- the command line


def _parse_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers like 64,64,64, got {text!r}") from None


def add_arguments(parser, owner, names: Sequence[str] | None = None, *, defaults: Mapping[str, Any] | None = None) -> None:
    """One option per declared setting of `owner` (all, or those in `names`): flag, type, choices, default and help from the declaration.

    Values are checked by the config itself when it is built (`arguments_of`),
    so the command line gives the same message as the app for a bad value.
    """
    for name, declaration in declared(owner).items():
        if names is not None and name not in names or declaration.flag is None:
            continue
        default = (defaults or {}).get(name, declaration.default)
        default = None if default is dataclasses.MISSING else default
        options = dict(dest=name, default=default, help=declaration.describe(default))
        if declaration.kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif declaration.kind is tuple:
            options.update(type=_parse_tuple, metavar="N,N,…")
        else:
            if declaration.kind is not str:  # a name is checked by the config, whose message lists the choices
                options["type"] = declaration.kind
            options["metavar"] = declaration.name.split("_")[-1].upper()
        parser.add_argument(declaration.flag, **options)


def arguments_of(args: argparse.Namespace, owner) -> dict[str, Any]:
    """The values `add_arguments` parsed for `owner`'s settings (those present in `args`)."""
    return {name: getattr(args, name) for name in declared(owner) if hasattr(args, name)}
