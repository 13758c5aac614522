"""Configuration: a TOML file in the platform's config dir, then env vars, then flags.

Precedence (last wins): built-in defaults < config file < environment < command-line flags.
``OMNITENSOR_HOME`` sets the data dir; ``OMNITENSOR_CONFIG`` points at another config file.

The broker password comes from the config file (``[broker] password`` or ``password_file``),
``OMNITENSOR_BROKER_PASSWORD`` or ``OMNITENSOR_BROKER_PASSWORD_FILE``, never from a flag:
a command line shows in ``ps``. Credentials in a broker URL move into ``username`` and
``password`` here, so ``BrokerConfig.url`` never holds a secret.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from core.config_values import (
    check_alert,
    check_broker_url,
    check_float,
    check_gpus,
    check_listen,
    check_name,
    check_private_file,
    holds_password,
    read_password_file,
)
from core.errors import ConfigError

APP_NAME = "omnitensor"
_METRICS_KEYS = ("listen",)


@dataclass(frozen=True)
class BrokerConfig:
    """Where the network's MQTT broker is; ``url`` None means the embedded local network."""

    url: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    # Kept out of repr: a config or settings object may end up in a log line.
    password: str | None = field(default=None, repr=False)
    password_file: Path | None = None
    coordinator_key: str | None = None
    # Pin the first coordinator key heard on a broker other than the embedded local one.
    trust_first_use: bool = False


def may_trust_first_use(broker: BrokerConfig, *, local: bool) -> bool:
    """Whether a node may pin the first coordinator key it hears instead of refusing tasks.

    Only on the embedded local network, or when the user said so (``--trust-first-use``,
    ``[broker] trust_first_use = true``); otherwise it needs ``--coordinator-key``.
    """
    return local or broker.trust_first_use


def untrusted_coordinator_line(key: str) -> str:
    """What a node says when it hears a coordinator it may not trust on first use."""
    return (
        f"NOT TRUSTED: coordinator {key} is not pinned, so this node takes no tasks from it. "
        f"Check the key with the network's operator, then start the node with "
        f"--coordinator-key {key} (or --trust-first-use to accept whichever it hears first)."
    )


@dataclass(frozen=True)
class AlertConfig:
    """Thresholds (``[alerts]`` in the node's config file); 0 turns a check off."""

    gpu_temp_c: float = 85.0
    paused_minutes: float = 10.0
    offline_minutes: float = 10.0
    earnings_drop_percent: float = 50.0  # alert when the last hour earns below this % of 24 h
    quest_hours: float = 6.0  # alert when an accepted quest ends within this many hours
    command: str | None = None


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
    # Which GPUs work (indices among those CUDA makes visible); None: every usable one.
    gpus: tuple[int, ...] | None = None
    # The sentence-embedding model's files ([inference] model_dir); None: where pip put them.
    model_dir: Path | None = None
    # Benchmark once when the node first joins a network, as BOINC does ([node]
    # first_benchmark = false skips it: its bandwidth stage sizes arrays at 4x the CPU's
    # last-level cache, several GiB on a big-cache server).
    first_benchmark: bool = True
    alerts: AlertConfig = field(default_factory=AlertConfig)
    # Where the Prometheus metrics are served ([metrics] listen = "127.0.0.1:9400"), as
    # HOST:PORT; None: not served. See ``split_listen``.
    metrics_listen: str | None = None
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


_NOT_ON_COMMAND_LINE = (
    "a password on the command line shows in `ps`; put it in the config file "
    "([broker] password or password_file), in $OMNITENSOR_BROKER_PASSWORD or in a file "
    "named by --broker-password-file"
)


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
    """Turn the file's ``[guard]``, ``[node]`` and ``[broker]`` tables into flat settings."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if key in ("guard", "node", "inference") and isinstance(value, dict):
            flat.update(value)
        elif key == "alerts" and isinstance(value, dict):
            for akey, avalue in value.items():
                flat[f"alerts.{akey}"] = avalue
        elif key == "metrics" and isinstance(value, dict):
            for mkey, mvalue in value.items():
                if mkey not in _METRICS_KEYS:
                    raise ConfigError(f"{where} [metrics]: unknown setting {mkey!r}")
                flat[f"metrics_{mkey}"] = mvalue
        elif key == "broker" and isinstance(value, dict):
            for bkey, bvalue in value.items():
                if bkey not in _BROKER_KEYS:
                    raise ConfigError(f"{where} [broker]: unknown setting {bkey!r}")
                flat["broker_url" if bkey == "url" else f"broker.{bkey}"] = bvalue
        elif key == "fleet":
            continue  # [[fleet.rigs]]: the fleet console's, parsed by core.fleet
        else:
            flat[key] = value
    return flat


def _apply(
    values: dict[str, Any], table: Mapping[str, Any], where: str, *, secrets_allowed: bool = True
) -> dict[str, Any]:
    """Validate one source's flat settings on top of ``values``."""
    out = dict(values)
    broker = dict(out.get("broker", {}))
    from_url: dict[str, str | None] = {}
    if "broker.password" in table and "broker.password_file" in table:
        raise ConfigError(f"{where}: set broker password or password_file, not both")
    for key, value in table.items():
        here = f"{where}: {key}"
        if key == "name":
            out["name"] = check_name(value, here)
        elif key == "data_dir":
            if not isinstance(value, str | Path) or not str(value):
                raise ConfigError(f"{here}: {value!r} is not a path")
            out["data_dir"] = Path(value).expanduser()
        elif key == "telemetry_interval":
            out["telemetry_interval"] = check_float(value, here, 0.25, 3600.0)
        elif key == "model_dir":
            if not isinstance(value, str | Path) or not str(value):
                raise ConfigError(f"{here}: {value!r} is not a path")
            out["model_dir"] = Path(value).expanduser()
        elif key == "gpus":
            out["gpus"] = check_gpus(value, here)
        elif key.startswith("alerts."):
            alerts = dict(out.get("alerts", {}))
            alerts.update(check_alert(key.removeprefix("alerts."), value, here))
            out["alerts"] = alerts
        elif key == "metrics_listen":
            out["metrics_listen"] = check_listen(value, here)
        elif key == "first_benchmark":
            if not isinstance(value, bool):
                raise ConfigError(f"{here}: {value!r} must be true or false")
            out["first_benchmark"] = value
        elif key == "fake_gpus":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16:
                raise ConfigError(f"{here}: {value!r} must be a whole number 0..16")
            out["fake_gpus"] = value
        elif key in ("pause_temp_c", "resume_temp_c"):
            out[key] = check_float(value, here, 30.0, 120.0)
        elif key in ("pause_power_fraction", "resume_power_fraction"):
            out[key] = None if value is None else check_float(value, here, 0.1, 1.5)
        elif key == "broker_url":
            broker["url"], from_url["username"], from_url["password"] = check_broker_url(
                value, here
            )
            if from_url["password"] is not None and not secrets_allowed:
                raise ConfigError(f"{here}: {_NOT_ON_COMMAND_LINE}")
        elif key in ("coordinator_key", "broker.coordinator_key"):
            if value is not None and (
                not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value)
            ):
                raise ConfigError(f"{here}: {value!r} is not a coordinator key (64 hex digits)")
            broker["coordinator_key"] = value
        elif key == "broker.trust_first_use":
            if not isinstance(value, bool):
                raise ConfigError(f"{here}: {value!r} is not true or false")
            broker["trust_first_use"] = value
        elif key == "broker.password":
            if not secrets_allowed:
                raise ConfigError(f"{here}: {_NOT_ON_COMMAND_LINE}")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{here}: the password must be non-empty text")
            broker["password"], broker["password_file"] = value, None
        elif key == "broker.password_file":
            if not isinstance(value, str | Path) or not str(value):
                raise ConfigError(f"{here}: {value!r} is not a path")
            broker["password_file"], broker["password"] = value, None
        elif key.startswith("broker."):
            bkey = key.removeprefix("broker.")
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{here}: {value!r} is not a string")
            broker[bkey] = value
        else:
            raise ConfigError(f"{where}: unknown setting {key!r}")
    # A URL's credentials count as set by its source, unless that source set them apart.
    if from_url.get("username") and "broker.username" not in table:
        broker["username"] = from_url["username"]
    if from_url.get("password") and not {"broker.password", "broker.password_file"} & set(table):
        broker["password"], broker["password_file"] = from_url["password"], None
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
        table = _flatten_file(_read_file(config_file), where)
        if holds_password(table):
            check_private_file(config_file, "config file with a broker password")
        values = _apply(values, table, where)
        used_file = config_file

    env_table: dict[str, Any] = {}
    if env.get("OMNITENSOR_HOME"):
        env_table["data_dir"] = env["OMNITENSOR_HOME"]
    if env.get("OMNITENSOR_BROKER"):
        env_table["broker_url"] = env["OMNITENSOR_BROKER"]
    if env.get("OMNITENSOR_BROKER_PASSWORD"):
        env_table["broker.password"] = env["OMNITENSOR_BROKER_PASSWORD"]
    if env.get("OMNITENSOR_BROKER_PASSWORD_FILE"):
        env_table["broker.password_file"] = env["OMNITENSOR_BROKER_PASSWORD_FILE"]
    if env.get("OMNITENSOR_NAME"):
        env_table["name"] = env["OMNITENSOR_NAME"]
    if env.get("OMNITENSOR_MODEL_DIR"):
        env_table["model_dir"] = env["OMNITENSOR_MODEL_DIR"]
    if env.get("OMNITENSOR_GPUS"):
        env_table["gpus"] = env["OMNITENSOR_GPUS"]
    if env.get("OMNITENSOR_METRICS_LISTEN"):
        env_table["metrics_listen"] = env["OMNITENSOR_METRICS_LISTEN"]
    if env.get("OMNITENSOR_FAKE_GPUS"):
        raw = env["OMNITENSOR_FAKE_GPUS"]
        if not raw.isdigit():
            raise ConfigError(f"environment OMNITENSOR_FAKE_GPUS: {raw!r} is not a whole number")
        env_table["fake_gpus"] = int(raw)
    values = _apply(values, env_table, "environment")
    values = _apply(values, overrides, "command line", secrets_allowed=False)

    broker = BrokerConfig(**{k: _as_path(k, v) for k, v in values.pop("broker", {}).items()})
    if broker.password_file is not None:
        broker = replace(broker, password=read_password_file(broker.password_file))
    data_dir = Path(values.pop("data_dir", default_data_dir())).expanduser().absolute()
    alerts = AlertConfig(**values.pop("alerts", {}))
    config = Config(
        data_dir=data_dir, config_file=used_file, broker=broker, alerts=alerts, **values
    )
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
