from __future__ import annotations

from pathlib import Path

import pytest

from core.config import default_config_file, load_config
from core.errors import ConfigError


def test_defaults_use_platform_dirs(tmp_path: Path) -> None:
    config = load_config()
    assert config.config_file is None
    assert config.data_dir.name == "omnitensor"
    assert config.telemetry_interval == 1.0
    assert config.broker.url is None


def test_file_then_env_then_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = default_config_file()
    path.parent.mkdir(parents=True)
    path.write_text(
        'name = "from_file"\ntelemetry_interval = 2.0\n'
        "[guard]\npause_temp_c = 90\nresume_temp_c = 70\n"
        '[broker]\nurl = "mqtt://10.0.0.1:1883"\ncoordinator_key = "' + "ab" * 32 + '"\n'
    )
    config = load_config()
    assert config.config_file == path
    assert (config.name, config.telemetry_interval) == ("from_file", 2.0)
    assert (config.pause_temp_c, config.resume_temp_c) == (90.0, 70.0)
    assert config.broker.url == "mqtt://10.0.0.1:1883"
    assert config.broker.coordinator_key == "ab" * 32

    monkeypatch.setenv("OMNITENSOR_HOME", str(tmp_path / "envhome"))
    monkeypatch.setenv("OMNITENSOR_NAME", "from_env")
    config = load_config()
    assert config.data_dir == tmp_path / "envhome"
    assert config.name == "from_env"

    config = load_config({"name": "from_flag", "data_dir": str(tmp_path / "flag")})
    assert config.name == "from_flag"
    assert config.data_dir == tmp_path / "flag"
    # A flag left unset (None) does not override.
    assert load_config({"name": None}).name == "from_env"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("telemetry_interval = 0.1", "telemetry_interval: 0.1 is outside 0.25"),
        ('telemetry_interval = "fast"', "is not a number"),
        ("pause_temp_c = 80\nresume_temp_c = 85", "resume_temp_c 85 must be below pause_temp_c 80"),
        ('name = "has space"', "name 'has space' must be"),
        ("colour = 3", "unknown setting 'colour'"),
        ('[broker]\nurl = "http://x"', "must look like mqtt://HOST:PORT"),
        ("[broker]\nport = 3", "unknown setting 'port'"),
        ('[broker]\ncoordinator_key = "abc"', "not a coordinator key"),
        ("name = [", "not valid TOML"),
        ('[node]\nfirst_benchmark = "no"', "first_benchmark: 'no' must be true or false"),
    ],
)
def test_bad_config_file_names_file_and_value(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config({"config_file": str(path)})
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    if "must be below" not in expected:
        assert str(path) in message


def test_bad_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="command line: broker_url: broker 'nope'"):
        load_config({"broker_url": "nope"})
    monkeypatch.setenv("OMNITENSOR_FAKE_GPUS", "two")
    with pytest.raises(ConfigError, match="OMNITENSOR_FAKE_GPUS"):
        load_config()


def test_missing_explicit_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config({"config_file": str(tmp_path / "nope.toml")})


def test_first_benchmark_can_be_turned_off(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text("[node]\nfirst_benchmark = false\n")
    assert load_config({"config_file": str(path)}).first_benchmark is False
    assert load_config({}).first_benchmark is True
