"""Configuration: a TOML file in the platform's config dir, then env vars, then flags.

Precedence (last wins): built-in defaults < config file < environment < command-line flags.
``OMNITENSOR_HOME`` sets the data dir; ``OMNITENSOR_CONFIG`` points at another config file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from core.errors import ConfigError

APP_NAME = "omnitensor"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_BROKER_SCHEMES = ("mqtt", "mqtts")


@dataclass(frozen=True)
class BrokerConfig:
    """Where the network's MQTT broker is; ``url`` None means the embedded local network."""

    url: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    coordinator_key: str | None = None


@dataclass(frozen=True)
class Config:
    """Everything the node needs to start; frozen, built once by ``load_config``."""

    data_dir: Path
    config_file: Path | None = None
    name: str | None = None
    telemetry_interval: float = 1.0
    pause_temp_c: float = 85.0
    resume_temp_c: float = 80.0
    pause_power_fraction: float | None = 0.98
    resume_power_fraction: float | None = 0.90
    # Demo/benchmark aid: a positive number runs the node on that many fake GPUs.
    fake_gpus: int = 0
    broker: BrokerConfig = field(default_factory=BrokerConfig)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "node.sock"

    @property
    def store_path(self) -> Path:
        return self.data_dir / "node.db"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "node.lock"


def default_config_file() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME))


def _check_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(f"{where}: name {value!r} must be 1-32 letters, digits, '_', '-' or '.'")
    return value


def _check_float(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {value!r} is not a number")
    if not low <= float(value) <= high:
        raise ConfigError(f"{where}: {value!r} is outside {low:g}..{high:g}")
    return float(value)


def _check_broker_url(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: broker {value!r} is not a URL")
    parts = urlsplit(value)
    if parts.scheme not in _BROKER_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{where}: broker {value!r} must look like mqtt://HOST:PORT or mqtts://HOST:PORT"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ConfigError(f"{where}: broker {value!r} has a bad port") from None
    return value


_GUARD_KEYS = ("pause_temp_c", "resume_temp_c", "pause_power_fraction", "resume_power_fraction")
_BROKER_KEYS = {f.name for f in fields(BrokerConfig)}


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None


def _flatten_file(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Turn the file's ``[guard]`` and ``[broker]`` tables into flat settings."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key == "guard" and isinstance(value, dict):
            flat.update(value)
        elif key == "broker" and isinstance(value, dict):
            for bkey, bvalue in value.items():
                if bkey not in _BROKER_KEYS:
                    raise ConfigError(f"{where} [broker]: unknown setting {bkey!r}")
                flat["broker_url" if bkey == "url" else f"broker.{bkey}"] = bvalue
        else:
            flat[key] = value
    return flat


def _apply(values: dict[str, Any], table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate one source's flat settings on top of ``values``."""
    out = dict(values)
    broker = dict(out.get("broker", {}))
    for key, value in table.items():
        here = f"{where}: {key}"
        if key == "name":
            out["name"] = _check_name(value, here)
        elif key == "data_dir":
            if not isinstance(value, str | Path) or not str(value):
                raise ConfigError(f"{here}: {value!r} is not a path")
            out["data_dir"] = Path(value).expanduser()
        elif key == "telemetry_interval":
            out["telemetry_interval"] = _check_float(value, here, 0.25, 3600.0)
        elif key == "fake_gpus":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16:
                raise ConfigError(f"{here}: {value!r} must be a whole number 0..16")
            out["fake_gpus"] = value
        elif key in ("pause_temp_c", "resume_temp_c"):
            out[key] = _check_float(value, here, 30.0, 120.0)
        elif key in ("pause_power_fraction", "resume_power_fraction"):
            out[key] = None if value is None else _check_float(value, here, 0.1, 1.5)
        elif key == "broker_url":
            broker["url"] = _check_broker_url(value, here)
        elif key in ("coordinator_key", "broker.coordinator_key"):
            if value is not None and (
                not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value)
            ):
                raise ConfigError(f"{here}: {value!r} is not a coordinator key (64 hex digits)")
            broker["coordinator_key"] = value
        elif key.startswith("broker."):
            bkey = key.removeprefix("broker.")
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{here}: {value!r} is not a string")
            broker[bkey] = value
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    if broker:
        out["broker"] = broker
    return out


def load_config(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Build the config from file, environment and flag ``overrides`` (None values ignored)."""
    env = os.environ if env is None else env
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    explicit_file = overrides.pop("config_file", None) or env.get("OMNITENSOR_CONFIG")
    config_file = Path(explicit_file) if explicit_file else default_config_file()

    values: dict[str, Any] = {}
    used_file: Path | None = None
    if config_file.exists() or explicit_file:
        if not config_file.is_file():
            raise ConfigError(f"{config_file}: config file not found")
        where = str(config_file)
        values = _apply(values, _flatten_file(_read_file(config_file), where), where)
        used_file = config_file

    env_table: dict[str, Any] = {}
    if env.get("OMNITENSOR_HOME"):
        env_table["data_dir"] = env["OMNITENSOR_HOME"]
    if env.get("OMNITENSOR_BROKER"):
        env_table["broker_url"] = env["OMNITENSOR_BROKER"]
    if env.get("OMNITENSOR_NAME"):
        env_table["name"] = env["OMNITENSOR_NAME"]
    if env.get("OMNITENSOR_FAKE_GPUS"):
        raw = env["OMNITENSOR_FAKE_GPUS"]
        if not raw.isdigit():
            raise ConfigError(f"environment OMNITENSOR_FAKE_GPUS: {raw!r} is not a whole number")
        env_table["fake_gpus"] = int(raw)
    values = _apply(values, env_table, "environment")
    values = _apply(values, overrides, "command line")

    broker = BrokerConfig(**{k: _as_path(k, v) for k, v in values.pop("broker", {}).items()})
    data_dir = Path(values.pop("data_dir", default_data_dir())).expanduser().absolute()
    config = Config(data_dir=data_dir, config_file=used_file, broker=broker, **values)
    if config.resume_temp_c >= config.pause_temp_c:
        raise ConfigError(
            f"resume_temp_c {config.resume_temp_c:g} must be below pause_temp_c "
            f"{config.pause_temp_c:g}"
        )
    if (
        config.pause_power_fraction is not None
        and config.resume_power_fraction is not None
        and config.resume_power_fraction >= config.pause_power_fraction
    ):
        raise ConfigError(
            f"resume_power_fraction {config.resume_power_fraction:g} must be below "
            f"pause_power_fraction {config.pause_power_fraction:g}"
        )
    return config


def _as_path(key: str, value: Any) -> Any:
    if key.endswith("_file") and value is not None:
        return Path(value).expanduser()
    return value
