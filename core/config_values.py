"""The checks of single configuration values (``core.config``): names, numbers, listen
addresses, broker URLs, alert thresholds, GPU lists, and files holding a password.

Each raises ``ConfigError`` naming where the value came from (the file and key, the
environment variable or the flag).
"""

from __future__ import annotations

import ipaddress
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from core.errors import ConfigError
from core.textsafe import redact_url

_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")
_BROKER_SCHEMES = ("mqtt", "mqtts")
_HOST_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,252})$")


def check_name(value: object, where: str) -> str:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError(f"{where}: name {value!r} must be 1-32 letters, digits, '_', '-' or '.'")
    return value


def check_float(value: object, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {value!r} is not a number")
    if not low <= float(value) <= high:
        raise ConfigError(f"{where}: {value!r} is outside {low:g}..{high:g}")
    return float(value)


def check_listen(value: object, where: str) -> str:
    """``HOST:PORT``, ``[V6]:PORT`` or ``PORT`` alone (on the loopback) as ``HOST:PORT``."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not HOST:PORT (like 127.0.0.1:9400)")
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    if not sep:
        host = ""
    host = host or "127.0.0.1"  # a bare port listens on the loopback only
    bracketed = host.startswith("[") and host.endswith("]")
    bare = host[1:-1] if bracketed else host
    if ":" in bare and not bracketed:
        raise ConfigError(f"{where}: {value!r}: write an IPv6 host in brackets, like [::1]:9400")
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(f"{where}: {value!r} needs a port 1..65535 (like 127.0.0.1:9400)")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        if ":" in bare or not _HOST_RE.match(bare):
            raise ConfigError(
                f"{where}: {value!r} has a bad host (like 127.0.0.1:9400 or [::1]:9400)"
            ) from None
        return f"{bare}:{int(port)}"
    return f"[{address}]:{int(port)}" if address.version == 6 else f"{address}:{int(port)}"


def split_listen(listen: str) -> tuple[str, int]:
    """A checked ``metrics_listen`` as (host, port); an IPv6 host loses its brackets."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def check_broker_url(value: object, where: str) -> tuple[str, str | None, str | None]:
    """The URL without credentials, and the user and password it carried."""
    if not isinstance(value, str):
        raise ConfigError(f"{where}: broker URL is not text")
    shown = redact_url(value)
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        raise ConfigError(f"{where}: broker {shown!r} has a bad host or port") from None
    if parts.scheme not in _BROKER_SCHEMES or not parts.hostname:
        raise ConfigError(
            f"{where}: broker {shown!r} must look like mqtt://HOST:PORT or mqtts://HOST:PORT"
        )
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    bare = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"
    return bare, username, password


ALERT_LIMITS = {
    "gpu_temp_c": 120.0,
    "paused_minutes": 24 * 60.0,
    "offline_minutes": 24 * 60.0,
    "earnings_drop_percent": 100.0,
    "quest_hours": 24 * 30.0,
}


def check_alert(key: str, value: object, where: str) -> dict[str, Any]:
    """One ``[alerts]`` setting: a threshold (0 turns it off) or the command to run."""
    if key == "command":
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{where}: {value!r} must be a command line (text)")
        return {"command": value}
    if key not in ALERT_LIMITS:
        names = ", ".join(sorted([*ALERT_LIMITS, "command"]))
        raise ConfigError(f"{where}: unknown alert setting (one of {names})")
    return {key: check_float(value, where, 0.0, ALERT_LIMITS[key])}


def check_gpus(value: object, where: str) -> tuple[int, ...] | None:
    """``"0,2"`` (a flag or env var), ``[0, 2]`` (TOML) or ``"all"``: GPU indices to use."""
    if value is None or value == "all":
        return None
    items: list[object]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list):
        items = list(value)
    else:
        raise ConfigError(f"{where}: {value!r} is not a list of GPU indices (like 0,2)")
    indices: list[int] = []
    for item in items:
        text = str(item)
        if isinstance(item, bool) or not text.isdigit() or int(text) > 63:
            raise ConfigError(f"{where}: {item!r} is not a GPU index (0..63)")
        indices.append(int(text))
    if not indices or len(set(indices)) != len(indices):
        raise ConfigError(f"{where}: {value!r} must name each GPU once, at least one")
    return tuple(indices)


def holds_password(table: Mapping[str, Any]) -> bool:
    url = table.get("broker_url")
    return "broker.password" in table or (isinstance(url, str) and bool(url_password(url)))


def url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def check_private_file(path: Path, what: str) -> None:
    """Refuse a file holding a secret that other users can read or change."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if mode & 0o077:
        raise ConfigError(
            f"{path}: {what} is open to other users (mode {mode:04o}); run: chmod 600 {path}"
        )


def read_password_file(path: Path) -> str:
    """The password in ``path`` (its first line); ConfigError when unsafe, unreadable or empty."""
    check_private_file(path, "password file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: password file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read password file ({exc.strerror})") from None
    password = text.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ConfigError(f"{path}: password file is empty")
    return password
