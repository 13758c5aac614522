"""Where packaged data files (``assets/``) are, in a wheel install and in a source checkout."""

from __future__ import annotations

from pathlib import Path

from core.errors import ConfigError

_CORE_DIR = Path(__file__).resolve().parent
# A wheel carries assets/ inside the package (pyproject force-includes it as core/_assets);
# a source checkout or an editable install has it beside core/.
ASSET_DIRS: tuple[Path, ...] = (_CORE_DIR / "_assets", _CORE_DIR.parent / "assets")


def asset_path(name: str) -> Path:
    """The path of asset ``name`` (e.g. ``"game.toml"``); ConfigError when it is missing."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise ValueError(f"bad asset name {name!r}")
    for base in ASSET_DIRS:
        candidate = base / relative
        if candidate.is_file():
            return candidate
    searched = ", ".join(str(base) for base in ASSET_DIRS)
    raise ConfigError(f"asset {name!r} not found (looked in {searched})")
