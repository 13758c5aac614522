"""A TOML table with typed getters whose errors name the file and the dotted key.

The game's rules file (``core.game.rules_file``) is read through it: every value is checked
for its type and range where it is read, and keys nobody read are refused (a typo must not
silently fall back to a default).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from decimal import InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from core.errors import ConfigError
from core.game.rules import ID_RE
from core.money import parse_omnit

_MISSING: Final = object()


class TomlTable:
    """One TOML table with typed getters whose errors name the file and the dotted key."""

    def __init__(self, path: Path, data: Mapping[str, Any], where: str = "") -> None:
        self.path = path
        self.data = data
        self.where = where
        self._seen: set[str] = set()

    def key(self, key: str) -> str:
        if not key:
            return self.where or "(top level)"
        return f"{self.where}.{key}" if self.where else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {self.key(key)}: {problem}")

    def _get(self, key: str, default: object = _MISSING) -> Any:
        self._seen.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise self.error(key, "missing")
        return default

    def table(self, key: str) -> TomlTable:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        return TomlTable(self.path, value, self.key(key))

    def tables(self) -> Iterator[tuple[str, TomlTable]]:
        """Every entry of this table, each itself a table (``[quests.<id>]``)."""
        for key in self.data:
            if not ID_RE.fullmatch(key):
                raise self.error(key, "ids are lowercase letters, digits and '-' (max 48)")
            yield key, self.table(key)

    def text(self, key: str, default: str | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self._get(key, _MISSING if default is None else default)
        if not isinstance(value, str) or not value.strip() or len(value) > 500:
            raise self.error(key, f"{value!r} must be a non-empty string (max 500 characters)")
        if choices and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def optional_text(self, key: str) -> str | None:
        if key not in self.data:
            self._seen.add(key)
            return None
        return self.text(key)

    def boolean(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self.error(key, f"{value!r} must be true or false")
        return value

    def integer(self, key: str, low: int, high: int) -> int:
        return self._check_int(key, self._get(key), low, high)

    def _check_int(self, key: str, value: object, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"{value!r} must be a whole number")
        if not low <= value <= high:
            raise self.error(key, f"{value} is outside {low}..{high}")
        return value

    def fraction(
        self, key: str, low: Fraction, high: Fraction, *, low_open: bool = False
    ) -> Fraction:
        value = self._get(key)
        try:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float):
                number = Fraction(repr(value))  # exactly the decimal as written
            elif isinstance(value, int | str):
                number = Fraction(value.strip() if isinstance(value, str) else value)
            else:
                raise TypeError
        except (TypeError, ValueError, ZeroDivisionError):
            raise self.error(key, f'{value!r} is not a number (write "3/2" or "1.5")') from None
        too_low = number <= low if low_open else number < low
        if too_low or number > high:
            bound = "above" if low_open else "at least"
            raise self.error(key, f"{number} must be {bound} {low} and at most {high}")
        return number

    def optional_fraction(self, key: str, low: Fraction, high: Fraction) -> Fraction | None:
        if key not in self.data:
            self._seen.add(key)
            return None
        return self.fraction(key, low, high)

    def omnit(self, key: str, default: int | None = None) -> int:
        value = self._get(key, _MISSING if default is None else default)
        return self._check_omnit(key, value)

    def _check_omnit(self, key: str, value: object) -> int:
        if isinstance(value, float):
            raise self.error(
                key, f'{value!r}: write OMNIT as a whole number or a quoted decimal ("0.5")'
            )
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise self.error(key, f"{value!r} is not an amount of OMNIT")
        try:
            amount = parse_omnit(value.strip() if isinstance(value, str) else value)
        except (ValueError, InvalidOperation):
            raise self.error(key, f"{value!r} is not an exact amount of OMNIT") from None
        if amount < 0:
            raise self.error(key, f"{value!r} must not be negative")
        return amount

    def _list(self, key: str, length: int | None) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self.error(key, "must be a list")
        if length is not None and len(value) != length:
            raise self.error(key, f"has {len(value)} values; it needs {length} (one per rank)")
        return value

    def omnit_list(self, key: str, length: int) -> tuple[int, ...]:
        return tuple(self._check_omnit(key, v) for v in self._list(key, length))

    def integer_list(self, key: str, length: int, low: int, high: int) -> tuple[int, ...]:
        return tuple(self._check_int(key, v, low, high) for v in self._list(key, length))

    def text_list(self, key: str) -> tuple[str, ...]:
        values = self._list(key, None)
        if not values or not all(isinstance(v, str) and ID_RE.fullmatch(v) for v in values):
            raise self.error(key, "must be a non-empty list of ids (lowercase, digits, '-')")
        if len(set(values)) != len(values):
            raise self.error(key, "lists a value twice")
        return tuple(values)

    def finish(self) -> None:
        """Refuse keys nobody read: a typo must not silently fall back to a default."""
        unknown = [key for key in self.data if key not in self._seen]
        if unknown:
            raise self.error(unknown[0], "unknown key")


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
