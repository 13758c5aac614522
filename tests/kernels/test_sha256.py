"""The SHA-256 implementations agree with hashlib; the CUDA source is checked compiled as C."""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from kernels.backend import numpy_backend
from kernels.merkle import leaf_digest
from kernels.sha256 import CUDA_SOURCE, _self_check, host_hash, select_hasher, vector_hash

TAG = int.from_bytes(b"OTL1", "big")
# 1 word: one block; 13/14: around the 55/56-byte padding edge; 64: a leaf of an 8x8 block.
LENGTHS = (1, 12, 13, 14, 15, 16, 31, 64, 100)


def _reference(data: npt.NDArray[np.uint32], swap: bool) -> list[bytes]:
    order = "<u4" if swap else ">u4"
    return [hashlib.sha256(b"OTL1" + row.astype(order).tobytes()).digest() for row in data]


def _as_bytes(words: npt.NDArray[np.uint32]) -> list[bytes]:
    return [row.astype(">u4").tobytes() for row in np.asarray(words)]


@pytest.mark.parametrize("words", LENGTHS)
@pytest.mark.parametrize("swap", [False, True])
def test_host_and_vector_match_hashlib(words: int, swap: bool) -> None:
    data = np.random.default_rng(words).integers(0, 2**32, size=(5, words), dtype=np.uint32)
    expected = _reference(data, swap)
    assert _as_bytes(host_hash(data, TAG, swap)) == expected
    assert _as_bytes(vector_hash(np, data, TAG, swap)) == expected


def test_a_leaf_of_int32_values_hashes_their_little_endian_bytes() -> None:
    block = np.arange(-32, 32, dtype=np.int32).reshape(8, 8)
    words = host_hash(block.reshape(1, 64).view(np.uint32), TAG, True)
    assert _as_bytes(words)[0] == leaf_digest(block)


@pytest.fixture(scope="module")
def compiled_cuda_source(tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler to check the CUDA kernel's source on the host")
    out: Path = tmp_path_factory.mktemp("sha")
    (out / "sha.c").write_text(CUDA_SOURCE)
    cmd = [compiler, "-O1", "-shared", "-fPIC", "-DSHA_HOST_TEST", "-o", str(out / "sha.so")]
    subprocess.run([*cmd, str(out / "sha.c")], check=True, capture_output=True)
    return ctypes.CDLL(str(out / "sha.so"))


@pytest.mark.parametrize("words", LENGTHS)
@pytest.mark.parametrize("swap", [False, True])
def test_cuda_kernel_source_matches_hashlib(
    compiled_cuda_source: ctypes.CDLL, words: int, swap: bool
) -> None:
    data = np.random.default_rng(100 + words).integers(0, 2**32, size=(7, words), dtype=np.uint32)
    out = np.zeros((7, 8), dtype=np.uint32)
    compiled_cuda_source.sha256_tagged(
        data.ctypes.data_as(ctypes.c_void_p),
        ctypes.c_longlong(7),
        ctypes.c_int(words),
        ctypes.c_uint32(TAG),
        ctypes.c_int(int(swap)),
        out.ctypes.data_as(ctypes.c_void_p),
    )
    assert _as_bytes(out) == _reference(data, swap)


def test_numpy_backend_uses_hashlib_and_vector_can_be_forced() -> None:
    backend = numpy_backend()
    assert select_hasher(backend).name == "host"
    assert select_hasher(backend, prefer="vector").name == "vector"


def test_self_check_rejects_a_wrong_implementation() -> None:
    backend = numpy_backend()
    assert _self_check(backend, host_hash)
    assert not _self_check(backend, lambda d, t, s: host_hash(d, t, not s))


def test_no_working_implementation_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="no SHA-256"):
        select_hasher(numpy_backend(), prefer="cuda")  # needs CuPy: unavailable here
