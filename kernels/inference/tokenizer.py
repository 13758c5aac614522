"""The model's own ``tokenizer.json`` run by Hugging Face ``tokenizers`` (Rust), unpadded.

Texts are stripped and truncated to the model's limit exactly as sentence-transformers does
(it strips every input and truncates at ``max_seq_length``, 256 here, overriding the 128 in
this model's tokenizer.json). No padding: the encoder packs real tokens only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.inference.errors import InferenceError

__all__ = ["Tokenizer"]

IdArray = npt.NDArray[np.int64]


class Tokenizer:
    """Turns texts into token id arrays, [CLS] ... [SEP], at most ``max_tokens`` long."""

    def __init__(self, inner: Any, max_tokens: int, source: Path) -> None:
        self._inner = inner
        self.max_tokens = max_tokens
        self.source = source
        self.vocab_size = int(inner.get_vocab_size(with_added_tokens=True))

    @classmethod
    def from_file(cls, path: Path, *, max_tokens: int) -> Tokenizer:
        """Load ``tokenizer.json``; raises InferenceError naming the file when it is bad."""
        from tokenizers import Tokenizer as RustTokenizer

        try:
            inner = RustTokenizer.from_file(str(path))
        except Exception as err:  # tokenizers raises a bare Exception for a bad file
            detail = " ".join(str(err).split())[:200]
            raise InferenceError(f"{path} is not a usable tokenizer: {detail}") from None
        inner.no_padding()
        inner.enable_truncation(max_length=max_tokens)
        tokenizer = cls(inner, max_tokens, path)
        ids = tokenizer.encode([""])[0]
        if len(ids) < 1:
            raise InferenceError(f"{path}: the tokenizer adds no special tokens (not BERT's)")
        return tokenizer

    def encode(self, texts: Sequence[str]) -> list[IdArray]:
        """Token ids of each text (at least the special tokens, even for an empty text)."""
        return self.encode_counting(texts)[0]

    def encode_counting(self, texts: Sequence[str]) -> tuple[list[IdArray], int]:
        """Token ids of each text, and how many texts were cut at ``max_tokens``."""
        stripped = [text.strip() for text in texts]
        encodings = self._inner.encode_batch_fast(stripped, add_special_tokens=True)
        truncated = sum(1 for e in encodings if e.overflowing)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings], truncated
