"""Perceptual hashes of images for near-duplicate search: a 64-bit DCT pHash in integer
arithmetic (the same bits on every machine), as +-1 vectors so Hamming distances become
dot products on the array module."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from kernels.data.records import decode_image


def _dct_rows() -> npt.NDArray[np.int64]:
    # The first 8 rows of the orthonormal 32-point DCT-II, scaled by 2**12 and rounded: an
    # integer transform is exact on every machine (a float one could round a coefficient
    # at the median either way on different BLAS builds and flip a bit).
    k = np.arange(_PHASH_SIZE)
    rows = np.cos(np.pi * (2 * k[None, :] + 1) * k[:8, None] / (2 * _PHASH_SIZE))
    rows *= np.sqrt(2 / _PHASH_SIZE)
    rows[0] /= np.sqrt(2)
    scaled: npt.NDArray[np.int64] = np.rint(rows * 4096).astype(np.int64)
    return scaled


_PHASH_SIZE = 32
_DCT_ROWS = _dct_rows()


def phash(image: Image.Image) -> int:
    """The 64-bit perceptual hash of ``image``: grey, shrunk to 32x32 (Lanczos, so smaller
    copies alias little), 2-D DCT, one bit per lowest-frequency 8x8 coefficient (is it
    above their median?).

    Integer work only (Pillow's 8-bit resampling is fixed point, the DCT is an integer
    matrix), so every machine computes the same bits. It survives resizing and JPEG
    re-encoding; flat (single-colour) images all hash alike.
    """
    small = image.convert("L").resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.int64)
    coefficients = (_DCT_ROWS @ pixels @ _DCT_ROWS.T).ravel()  # < 2**43: no overflow
    bits = coefficients > np.median(coefficients)
    return int.from_bytes(np.packbits(bits).tobytes(), "big")


def image_signs(data: bytes) -> npt.NDArray[np.float32] | str:
    image = decode_image(data)
    if isinstance(image, str):
        return image
    try:
        value = phash(image)
    except Exception as err:  # a mode Pillow cannot turn grey: refuse, do not crash
        return f"cannot hash image ({type(err).__name__})"
    finally:
        image.close()
    bits = np.array([(value >> (63 - i)) & 1 for i in range(64)], dtype=np.float32)
    return bits * 2 - 1
