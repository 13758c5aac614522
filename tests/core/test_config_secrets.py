"""Broker secrets: from the config file, the environment or a password file, never a flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import BrokerConfig, load_config, may_trust_first_use
from core.errors import ConfigError
from core.transport.mqtt import parse_broker_url

SECRET = "s3cr3t-Pa55"


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def one_line_without_secret(error: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert SECRET not in message
    return message


def test_a_password_in_a_command_line_url_is_refused() -> None:
    with pytest.raises(ConfigError) as error:
        load_config({"broker_url": f"mqtts://node:{SECRET}@broker.example:8883"})
    message = one_line_without_secret(error)
    assert message.startswith("command line: broker_url: a password on the command line")
    for alternative in ("config file", "OMNITENSOR_BROKER_PASSWORD", "--broker-password-file"):
        assert alternative in message
    with pytest.raises(ConfigError) as error:
        load_config({"broker.password": SECRET})
    one_line_without_secret(error)


def test_a_user_without_password_on_the_command_line_is_fine() -> None:
    config = load_config(
        {"broker_url": "mqtts://alice@broker.example:8883"},
        env={"OMNITENSOR_BROKER_PASSWORD": SECRET},
    )
    broker = config.broker
    assert (broker.url, broker.username, broker.password) == (
        "mqtts://broker.example:8883",
        "alice",
        SECRET,
    )


def test_credentials_in_a_config_file_url_move_out_of_the_url(tmp_path: Path) -> None:
    path = private_file(
        tmp_path / "c.toml", f'[broker]\nurl = "mqtts://bob:{SECRET}@10.0.0.1:8883"\n'
    )
    config = load_config({"config_file": str(path)})
    assert config.broker.url == "mqtts://10.0.0.1:8883"
    assert (config.broker.username, config.broker.password) == ("bob", SECRET)
    # Whatever shows the config (a debug line, a traceback's locals) shows no password.
    assert SECRET not in repr(config) and SECRET not in str(config.broker)


def test_percent_encoded_credentials_are_decoded(tmp_path: Path) -> None:
    path = private_file(tmp_path / "c.toml", '[broker]\nurl = "mqtt://u%40x:p%3Aw%2F@h:1883"\n')
    broker = load_config({"config_file": str(path)}).broker
    assert (broker.url, broker.username, broker.password) == ("mqtt://h:1883", "u@x", "p:w/")


@pytest.mark.parametrize(
    "broker_table",
    [f'password = "{SECRET}"', f'url = "mqtt://u:{SECRET}@h:1883"'],
)
def test_a_config_file_holding_a_password_must_be_private(
    tmp_path: Path, broker_table: str
) -> None:
    path = private_file(tmp_path / "c.toml", f"[broker]\n{broker_table}\n", mode=0o644)
    with pytest.raises(ConfigError) as error:
        load_config({"config_file": str(path)})
    message = one_line_without_secret(error)
    assert str(path) in message and "mode 0644" in message and f"chmod 600 {path}" in message
    path.chmod(0o600)
    assert load_config({"config_file": str(path)}).broker.password == SECRET
    # Without a password in it, a config file may be readable by all (the usual 0644).
    private_file(path, '[broker]\nurl = "mqtt://h:1883"\n', mode=0o644)
    assert load_config({"config_file": str(path)}).broker.password is None


def test_password_file(tmp_path: Path) -> None:
    secret_file = private_file(tmp_path / "pw", f"{SECRET}\n")
    config_file = tmp_path / "c.toml"
    config_file.write_text(f'[broker]\nusername = "carol"\npassword_file = "{secret_file}"\n')
    broker = load_config({"config_file": str(config_file)}).broker
    assert (broker.username, broker.password, broker.password_file) == (
        "carol",
        SECRET,
        secret_file,
    )
    # The flag names a file, never the password itself.
    assert load_config({"broker.password_file": str(secret_file)}).broker.password == SECRET
    env = {"OMNITENSOR_BROKER_PASSWORD_FILE": str(secret_file)}
    assert load_config(env=env).broker.password == SECRET


@pytest.mark.parametrize(
    ("mode", "text", "expected"),
    [
        (0o640, f"{SECRET}\n", "password file is open to other users (mode 0640); run: chmod 600"),
        (0o604, f"{SECRET}\n", "(mode 0604)"),
        (0o600, "\n", "password file is empty"),
        (None, "", "cannot read password file (No such file or directory)"),
    ],
)
def test_bad_password_file(tmp_path: Path, mode: int | None, text: str, expected: str) -> None:
    path = tmp_path / "pw"
    if mode is not None:
        private_file(path, text, mode)
    with pytest.raises(ConfigError) as error:
        load_config({"broker.password_file": str(path)})
    message = one_line_without_secret(error)
    assert message.startswith(f"{path}: ") and expected in message


def test_password_precedence_file_then_env(tmp_path: Path) -> None:
    path = private_file(tmp_path / "c.toml", '[broker]\npassword = "from-file"\n')
    assert load_config({"config_file": str(path)}).broker.password == "from-file"
    env = {"OMNITENSOR_BROKER_PASSWORD": SECRET}
    assert load_config({"config_file": str(path)}, env=env).broker.password == SECRET
    # A password file named later replaces a password given earlier, and the other way round.
    secret_file = private_file(tmp_path / "pw", "from-password-file\n")
    config = load_config({"config_file": str(path), "broker.password_file": str(secret_file)})
    assert config.broker.password == "from-password-file"
    both = private_file(
        tmp_path / "both.toml", f'[broker]\npassword = "x"\npassword_file = "{secret_file}"\n'
    )
    with pytest.raises(ConfigError, match="password or password_file, not both"):
        load_config({"config_file": str(both)})


@pytest.mark.parametrize(
    "url",
    [
        f"mqtt://user:{SECRET}@host:notaport",
        f"http://user:{SECRET}@host:1883",
        f"mqtt://user:{SECRET}@[::1:1883",
    ],
)
def test_bad_urls_are_shown_without_credentials(url: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(env={"OMNITENSOR_BROKER": url})
    message = one_line_without_secret(error)
    assert message.startswith("environment: broker_url: broker ") and "user" not in message
    with pytest.raises(ConfigError) as error:
        parse_broker_url(url)
    one_line_without_secret(error)


def test_trust_first_use_setting(tmp_path: Path) -> None:
    assert load_config().broker.trust_first_use is False
    assert load_config({"broker.trust_first_use": True}).broker.trust_first_use is True
    path = tmp_path / "c.toml"
    path.write_text("[broker]\ntrust_first_use = true\n")
    assert load_config({"config_file": str(path)}).broker.trust_first_use is True
    path.write_text('[broker]\ntrust_first_use = "yes"\n')
    with pytest.raises(ConfigError, match=r"trust_first_use: 'yes' is not true or false"):
        load_config({"config_file": str(path)})


def test_trust_on_first_use_only_locally_or_when_asked() -> None:
    assert may_trust_first_use(BrokerConfig(), local=True)
    assert not may_trust_first_use(BrokerConfig(), local=False)
    assert may_trust_first_use(BrokerConfig(trust_first_use=True), local=False)
