"""Refusals of the game rules: each carries the one-line reason shown to the user."""

from __future__ import annotations

from collections.abc import Sequence

from core.errors import OmniError


class GameError(OmniError):
    """A game rule refused an action; ``reason`` (and ``str(err)``) says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class QuestError(GameError):
    """A quest action was refused (claiming twice, claiming unfinished, accepting expired...)."""


class EventError(GameError):
    """A multiplier event was refused (not announced in advance, above the 3x cap...)."""


class StakeError(GameError):
    """A staking action was refused (more than the balance, not enough stake for a task...)."""


class UnknownGpuType(GameError, LookupError):
    """A GPU type is not in the reference table; ``matches`` are the closest known names."""

    def __init__(self, name: str, matches: Sequence[str], known: int) -> None:
        self.name = name
        self.matches = tuple(matches)
        if self.matches:
            hint = "close matches: " + ", ".join(self.matches)
        else:
            hint = f"no close match among the {known} types of the reference table"
        super().__init__(f"unknown GPU type {name!r}; {hint}")
