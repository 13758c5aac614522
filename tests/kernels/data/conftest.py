"""Fixtures: small generated images and the real sentence encoder (skipped without it)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from kernels.backend_base import numpy_backend
from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model


def smooth_image(seed: int, size: int = 32) -> Image.Image:
    """A structured random image (a 6x6 colour grid, smoothly enlarged, plus some noise):
    closer to a photo than pure noise, which JPEG and resizing destroy."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    pixels = np.asarray(base.resize((size, size), Image.Resampling.BICUBIC)).astype(np.int16)
    pixels = pixels + rng.integers(-20, 21, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str = "PNG", **options: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def encoder() -> Iterator[SentenceEncoder]:
    try:
        path = find_model_dir(None, {})
    except ModelMissing as err:
        pytest.skip(f"model package not installed ({err})")
    with SentenceEncoder(load_model(path, numpy_backend()), workers=1) as sentence_encoder:
        yield sentence_encoder
