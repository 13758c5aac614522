"""A tiny random-weight BERT with the real model's architecture and file layout, and a
plain float64 reference forward pass written independently of the encoder's tricks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
from safetensors.numpy import save_file
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

HIDDEN, HEADS, LAYERS, INTER, POSITIONS, MAX_TOKENS = 32, 4, 2, 64, 40, 24
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = [
    *("a", "man", "woman", "is", "playing", "guitar", "the", "cat", "dog", "runs", "eats"),
    *("an", "apple", "in", "park", "street", "music", "code", "def", "return", "x", "of"),
]

F64 = npt.NDArray[np.float64]


def vocabulary() -> list[str]:
    """Special tokens, whole words, single characters and their ## continuations."""
    chars = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,:()*#=_")
    # dict.fromkeys drops repeats ("a" is a word and a character) and keeps the order.
    return list(dict.fromkeys(_SPECIAL + _WORDS + chars + ["##" + c for c in chars]))


def write_tokenizer(path: Path, vocab: list[str]) -> None:
    """A BERT WordPiece tokenizer.json, built like the real one (lowercase, [CLS] ... [SEP])."""
    ids = {token: i for i, token in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    tok.decoder = decoders.WordPiece()
    tok.save(str(path))


def random_weights(vocab_size: int, seed: int = 0) -> dict[str, npt.NDArray[np.float32]]:
    """PyTorch-layout BertModel tensors, drawn so activations stay in a realistic range."""
    rng = np.random.default_rng(seed)

    def normal(*shape: int, scale: float = 0.2) -> npt.NDArray[np.float32]:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def ln(prefix: str) -> dict[str, npt.NDArray[np.float32]]:
        return {
            prefix + ".weight": (1.0 + normal(HIDDEN, scale=0.1)).astype(np.float32),
            prefix + ".bias": normal(HIDDEN, scale=0.1),
        }

    t = {
        "embeddings.word_embeddings.weight": normal(vocab_size, HIDDEN, scale=1.0),
        "embeddings.position_embeddings.weight": normal(POSITIONS, HIDDEN, scale=0.5),
        "embeddings.token_type_embeddings.weight": normal(2, HIDDEN, scale=0.5),
        **ln("embeddings.LayerNorm"),
        "pooler.dense.weight": normal(HIDDEN, HIDDEN),
        "pooler.dense.bias": normal(HIDDEN),
    }
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for name, n_out, n_in in (
            ("attention.self.query", HIDDEN, HIDDEN),
            ("attention.self.key", HIDDEN, HIDDEN),
            ("attention.self.value", HIDDEN, HIDDEN),
            ("attention.output.dense", HIDDEN, HIDDEN),
            ("intermediate.dense", INTER, HIDDEN),
            ("output.dense", HIDDEN, INTER),
        ):
            t[p + name + ".weight"] = normal(n_out, n_in, scale=1.5 / math.sqrt(n_in))
            t[p + name + ".bias"] = normal(n_out, scale=0.1)
        t.update(ln(p + "attention.output.LayerNorm"))
        t.update(ln(p + "output.LayerNorm"))
    return t


def build_tiny_model(directory: Path, seed: int = 0) -> Path:
    """Write config.json, sentence_bert_config.json, tokenizer.json, model.safetensors."""
    directory.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    config = {
        "architectures": ["BertModel"],
        "hidden_act": "gelu",
        "hidden_size": HIDDEN,
        "intermediate_size": INTER,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": POSITIONS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "type_vocab_size": 2,
        "vocab_size": len(vocab),
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": MAX_TOKENS}))
    write_tokenizer(directory / "tokenizer.json", vocab)
    save_file(random_weights(len(vocab), seed), str(directory / "model.safetensors"))
    return directory


def reference_embedding(directory: Path, ids: list[int]) -> F64:
    """BERT + mean pooling + L2 norm for one sentence, in float64, by the textbook."""
    from safetensors.numpy import load_file

    tensors = load_file(str(directory / "model.safetensors"))
    w = {name: value.astype(np.float64) for name, value in tensors.items()}
    erf = np.vectorize(math.erf)

    def layer_norm(x: F64, prefix: str) -> F64:
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        normed: F64 = (x - mu) / np.sqrt(var + 1e-12) * w[prefix + ".weight"] + w[prefix + ".bias"]
        return normed

    def dense(x: F64, prefix: str) -> F64:
        return x @ w[prefix + ".weight"].T + w[prefix + ".bias"]

    n = len(ids)
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:n]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    x = layer_norm(x, "embeddings.LayerNorm")
    dh = HIDDEN // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        q, k, v = (
            dense(x, p + f"attention.self.{name}").reshape(n, HEADS, dh).transpose(1, 0, 2)
            for name in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(dh)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        ctx = (probs @ v).transpose(1, 0, 2).reshape(n, HIDDEN)
        attended = x + dense(ctx, p + "attention.output.dense")
        x = layer_norm(attended, p + "attention.output.LayerNorm")
        h = dense(x, p + "intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = layer_norm(x + dense(h, p + "output.dense"), p + "output.LayerNorm")
    pooled = x.mean(axis=0)
    result: F64 = pooled / np.linalg.norm(pooled)
    return result
