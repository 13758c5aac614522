"""The inference kernel's errors: each ``str(err)`` is one line naming what and where."""

from __future__ import annotations

__all__ = ["InferenceError", "ModelMissing"]


class InferenceError(Exception):
    """The model or its input cannot be used; ``str(err)`` is one line for the user."""


class ModelMissing(InferenceError):
    """No model directory was found; the message says how to get one."""
