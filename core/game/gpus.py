"""The reference table of GPU types (``assets/gpu_reference.toml``), for reward estimates.

Only estimates use it: the network pays for a node's measured, verified throughput.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from core.assets import asset_path
from core.errors import ConfigError
from core.game.errors import UnknownGpuType

# Words that vendors and drivers put around a model name without changing the card.
_NOISE: Final = frozenset(
    {"nvidia", "geforce", "tesla", "quadro", "amd", "radeon", "instinct", "graphics", "tm", "r"}
)
_MEMORY_RE: Final = re.compile(r"\d+gb")
# Half a rounding step of 0.1 TFLOPS, the tolerance for gemm = peak x efficiency.
_ROUNDING: Final = Fraction(1, 20)


@dataclass(frozen=True)
class GpuType:
    """One card of the reference table; ``gemm_tflops`` is the estimate used."""

    name: str
    vendor: str
    architecture: str
    peak_fp32_tflops: Fraction
    sgemm_efficiency: Fraction
    gemm_tflops: Fraction
    source: str
    aliases: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class GpuTable:
    """All reference cards, with the normalized lookup keys of their names and aliases."""

    source: Path
    types: tuple[GpuType, ...]
    keys: dict[str, GpuType]

    def __len__(self) -> int:
        return len(self.types)


def gpu_key(name: str) -> str:
    """The lookup key of a GPU name: lowercase, no vendor words, memory sizes or spacing.

    ``"NVIDIA GeForce RTX 3080"``, ``"RTX 3080"`` and ``"nvidia rtx 3080"`` all give
    ``"rtx3080"``; ``"NVIDIA A100-SXM4-80GB"`` gives ``"a100sxm4"``.
    """
    words = re.split(r"[^a-z0-9]+", name.lower())
    return "".join(w for w in words if w and w not in _NOISE and not _MEMORY_RE.fullmatch(w))


def _fraction(path: Path, where: str, value: Any) -> Fraction:
    try:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError
        number = Fraction(value)
    except (TypeError, ValueError, ZeroDivisionError):
        raise ConfigError(f'{path}: {where}: {value!r} is not a quoted number ("29.77")') from None
    if number <= 0:
        raise ConfigError(f"{path}: {where}: {value!r} must be positive")
    return number


def _text(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: {where}: must be a non-empty string")
    return value


_GPU_KEYS: Final = frozenset(
    {
        "name",
        "vendor",
        "architecture",
        "peak_fp32_tflops",
        "sgemm_efficiency",
        "gemm_tflops",
        "source",
        "aliases",
        "note",
    }
)


def load_gpu_reference(path: Path | None = None) -> GpuTable:
    """Load and check the reference table (default: the packaged one)."""
    path = asset_path("gpu_reference.toml") if path is None else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    entries = data.get("gpu")
    if set(data) != {"gpu"} or not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: gpu: the file holds one [[gpu]] table per card, nothing else")
    types: list[GpuType] = []
    keys: dict[str, GpuType] = {}
    for index, entry in enumerate(entries):
        where = f"gpu[{index}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: {where}: must be a table")
        unknown = set(entry) - _GPU_KEYS
        if unknown:
            raise ConfigError(f"{path}: {where}.{sorted(unknown)[0]}: unknown key")
        for required in ("name", "vendor", "architecture", "source"):
            if required not in entry:
                raise ConfigError(f"{path}: {where}.{required}: missing")
        name = _text(path, f"{where}.name", entry["name"])
        where = f"gpu[{index}] ({name})"
        peak = _fraction(path, f"{where}.peak_fp32_tflops", entry.get("peak_fp32_tflops"))
        efficiency = _fraction(path, f"{where}.sgemm_efficiency", entry.get("sgemm_efficiency"))
        gemm = _fraction(path, f"{where}.gemm_tflops", entry.get("gemm_tflops"))
        if efficiency > 1:
            raise ConfigError(f"{path}: {where}.sgemm_efficiency: {efficiency} is above 1")
        if abs(gemm - peak * efficiency) > _ROUNDING:
            raise ConfigError(
                f"{path}: {where}.gemm_tflops: {float(gemm):g} is not peak x efficiency "
                f"({float(peak * efficiency):.2f}) rounded to 0.1"
            )
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise ConfigError(f"{path}: {where}.aliases: must be a list of names")
        gpu = GpuType(
            name=name,
            vendor=_text(path, f"{where}.vendor", entry["vendor"]),
            architecture=_text(path, f"{where}.architecture", entry["architecture"]),
            peak_fp32_tflops=peak,
            sgemm_efficiency=efficiency,
            gemm_tflops=gemm,
            source=_text(path, f"{where}.source", entry["source"]),
            aliases=tuple(aliases),
            note=str(entry.get("note", "")),
        )
        for alias in (name, *aliases):
            key = gpu_key(alias)
            if not key:
                raise ConfigError(f"{path}: {where}: {alias!r} has no usable name")
            other = keys.get(key)
            if other is not None and other is not gpu:
                raise ConfigError(f"{path}: {where}: {alias!r} clashes with {other.name!r}")
            keys[key] = gpu
        types.append(gpu)
    return GpuTable(source=path, types=tuple(types), keys=keys)


@lru_cache(maxsize=1)
def default_gpu_table() -> GpuTable:
    """The packaged reference table, loaded once."""
    return load_gpu_reference()


def lookup_gpu(name: str, table: GpuTable | None = None) -> GpuType:
    """The reference card called ``name`` (vendor prefixes, case and spacing ignored).

    Unknown names raise :class:`UnknownGpuType` listing the closest known names.
    """
    table = default_gpu_table() if table is None else table
    key = gpu_key(name)
    found = table.keys.get(key)
    if found is not None:
        return found
    close = difflib.get_close_matches(key, list(table.keys), n=8, cutoff=0.6)
    names: list[str] = []
    for match in close:
        display = table.keys[match].name
        if display not in names:
            names.append(display)
    raise UnknownGpuType(name, names[:5], len(table))
