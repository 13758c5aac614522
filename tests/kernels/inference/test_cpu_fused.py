"""The Numba kernels against the NumPy passes they replace, and the fallback without Numba."""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kernels.backend import numpy_backend
from kernels.inference import Encoder, SentenceEncoder, cpu_fused, load_model
from kernels.inference.cpu_fused import (
    ERF_CLAMP,
    FusedKernels,
    fused_loaded,
    fused_status,
    load_fused,
)
from kernels.inference.encoder import gelu_scaled
from kernels.inference.runner import FUSED_MIN_TOKENS
from tests.kernels.inference.test_encoder import TEXTS
from tests.kernels.inference.tiny import MAX_TOKENS


@pytest.fixture
def fresh_load() -> Iterator[None]:
    """Forget the loaded kernels before and after a test that changes how they load."""
    cpu_fused._load.cache_clear()
    yield
    cpu_fused._load.cache_clear()


@pytest.fixture
def kernels() -> FusedKernels:
    loaded = load_fused()
    # Numba is a declared dependency: its absence here is a broken install, not a skip.
    assert loaded is not None, fused_status()
    return loaded


def test_bias_gelu_is_the_exact_gelu(kernels: FusedKernels) -> None:
    rng = np.random.default_rng(0)
    x = np.linspace(-12, 12, 48_000, dtype=np.float32).reshape(-1, 96)
    bias = rng.standard_normal(96).astype(np.float32)
    u = (x + bias).astype(np.float64)
    exact = u + u * np.vectorize(math.erf)(u)  # sqrt(2) GELU(sqrt(2) u): the scaled form
    kernels.bias_gelu(x, bias)
    # erf within 5e-7, so the result within 5e-7 |u| (and float32 rounding of ~|u|).
    scale = np.maximum(1.0, np.abs(u))
    assert (np.abs(x - exact) / scale).max() < 5e-7
    # ...and the NumPy passes' A&S erf agrees with it.
    numpy_path = u.astype(np.float32)
    a, t, q = (np.empty_like(numpy_path) for _ in range(3))
    with np.errstate(over="ignore"):
        gelu_scaled(numpy_path, a, t, q, np)
    assert (np.abs(x - numpy_path) / scale).max() < 1e-6


def test_erf_saturates_exactly_past_the_clamp(kernels: FusedKernels) -> None:
    x = np.array([[ERF_CLAMP, 5.0, 40.0, -ERF_CLAMP, -5.0, -40.0, 0.0, -0.0]], np.float32)
    kernels.bias_gelu(x, np.zeros(8, np.float32))
    # u (1 + erf u): 2u for large positive u, exactly 0 for large negative u.
    np.testing.assert_array_equal(x[0, 1:3], [10.0, 80.0])
    np.testing.assert_array_equal(x[0, 4:], [0.0, 0.0, 0.0, 0.0])


def test_residual_layer_norm_matches_numpy(kernels: FusedKernels) -> None:
    rng = np.random.default_rng(1)
    rows, width = 37, 384
    x = (rng.standard_normal((rows, width)) * 4 + 3).astype(np.float32)
    residual = rng.standard_normal((rows, width)).astype(np.float32)
    bias, gamma, beta = (rng.standard_normal(width).astype(np.float32) for _ in range(3))
    v = x.astype(np.float64) + bias + residual
    mean = v.mean(axis=1, keepdims=True)
    expected = (v - mean) / np.sqrt(((v - mean) ** 2).mean(axis=1, keepdims=True) + 1e-12)
    expected = expected * gamma + beta
    kernels.residual_layer_norm(x, bias, residual, gamma, beta, 1e-12)
    assert np.abs(x - expected).max() < 2e-5


def test_fused_and_numpy_encoders_agree(tiny_dir: Path) -> None:
    model = load_model(tiny_dir, numpy_backend())
    batch = sorted(model.tokenizer.encode(TEXTS), key=len)
    fused = Encoder(model, fused=True)
    assert fused.fused is not None
    plain = Encoder(model, fused=False)
    assert plain.fused is None
    np.testing.assert_allclose(fused.embed(batch), plain.embed(batch), atol=3e-6)


def test_float16_never_takes_the_float32_kernels(tiny_dir: Path) -> None:
    f16 = load_model(tiny_dir, numpy_backend(), dtype="float16")
    assert Encoder(f16).fused is None
    with pytest.raises(ValueError, match="float32"):
        Encoder(f16, fused=True)


def test_disabled_by_environment(
    tiny_dir: Path, fresh_load: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(cpu_fused.DISABLE_ENV, "0")
    assert load_fused() is None
    assert fused_status() == f"numpy passes ({cpu_fused.DISABLE_ENV}=0)"
    with SentenceEncoder(load_model(tiny_dir, numpy_backend()), workers=1) as encoder:
        assert encoder.kernels == "numpy passes"
        assert encoder.encode(["a man is playing guitar"]).shape == (1, encoder.dimension)


def test_without_numba_the_numpy_passes_run(
    tiny_dir: Path, fresh_load: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = importlib.import_module

    def no_numba(name: str, package: str | None = None) -> object:
        if name == "numba":
            raise ModuleNotFoundError("No module named 'numba'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", no_numba)
    assert fused_status() == "numpy passes (numba is not installed)"
    model = load_model(tiny_dir, numpy_backend())
    assert Encoder(model).fused is None
    with pytest.raises(ValueError, match="Numba"):
        Encoder(model, fused=True)


def test_no_writable_cache_compiles_in_memory(
    fresh_load: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_compile = cpu_fused._compile
    attempts: list[bool] = []

    def no_cache_dir(numba: object, *, cache: bool) -> FusedKernels:
        attempts.append(cache)
        if cache:  # what Numba raises when no cache locator applies
            raise RuntimeError("cannot cache function 'bias_gelu': no locator available")
        return real_compile(numba, cache=cache)

    monkeypatch.setattr(cpu_fused, "_compile", no_cache_dir)
    kernels = load_fused()
    assert kernels is not None and attempts == [True, False]
    x = np.zeros((1, 4), np.float32)
    kernels.bias_gelu(x, np.array([-5, 0, 1, 5], np.float32))
    np.testing.assert_allclose(x[0], [0, 0, 1 + math.erf(1), 10], atol=1e-6)


def test_a_numba_that_fails_to_import_falls_back(
    tiny_dir: Path, fresh_load: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = importlib.import_module

    def broken_llvmlite(name: str, package: str | None = None) -> object:
        if name == "numba":  # what llvmlite raises when its shared library will not load
            raise OSError("Could not find/load shared object file 'libllvmlite.so'")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", broken_llvmlite)
    assert load_fused() is None
    assert fused_status() == (
        "numpy passes (numba failed to import: OSError: "
        "Could not find/load shared object file 'libllvmlite.so')"
    )
    model = load_model(tiny_dir, numpy_backend())
    with SentenceEncoder(model, workers=1) as encoder:
        encoder.encode(["music " * 40] * (FUSED_MIN_TOKENS // MAX_TOKENS + 1))
        assert encoder.kernels == fused_status()  # tried, fell back, says why


def test_numba_with_its_jit_disabled_is_not_used(
    fresh_load: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numba

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert load_fused() is None
    assert fused_status() == "numpy passes (NUMBA_DISABLE_JIT is set)"


def test_a_failing_compiler_falls_back(fresh_load: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(numba: object, *, cache: bool) -> FusedKernels:
        raise OSError("libllvmlite.so: cannot open shared object file")

    monkeypatch.setattr(cpu_fused, "_compile", broken)
    assert load_fused() is None
    assert fused_status().startswith("numpy passes (numba failed: OSError: libllvmlite.so")


def test_auto_waits_for_enough_tokens_to_repay_loading_them(
    tiny_dir: Path, fresh_load: None
) -> None:
    model = load_model(tiny_dir, numpy_backend())
    line = "music " * 40  # 24 tokens in the tiny model
    with SentenceEncoder(model, workers=2) as encoder:
        small = encoder.encode(TEXTS)
        assert encoder.kernels == "numpy passes"
        assert not fused_loaded()
        # Many small calls (a node's tasks, a stream's chunks) add up to the threshold.
        before = encoder.tokens_seen
        while encoder.kernels == "numpy passes":
            before = encoder.tokens_seen
            encoder.encode([line] * 16)
        # It switched on the call that took the count to the threshold, not before.
        assert before < FUSED_MIN_TOKENS <= before + 16 * 24 == encoder.tokens_seen
        assert encoder.kernels.startswith("numba ") and fused_loaded()
        assert all(worker.fused is not None for worker in encoder._encoders)
        np.testing.assert_allclose(encoder.encode(TEXTS), small, atol=3e-6)
    # A new encoder in the same process starts with the kernels already loaded.
    with SentenceEncoder(model, workers=1) as later:
        assert later.kernels.startswith("numba ")
    # Explicitly off stays off.
    with SentenceEncoder(model, workers=1, fused=False) as off:
        off.encode([line] * (FUSED_MIN_TOKENS // 24 + 1))
        assert off.kernels == "numpy passes"


def test_auto_takes_kernels_someone_else_loaded(tiny_dir: Path, fresh_load: None) -> None:
    model = load_model(tiny_dir, numpy_backend())
    with SentenceEncoder(model, workers=2) as encoder:
        assert encoder.kernels == "numpy passes"
        load_fused()  # e.g. the node's inference worker, or a benchmark
        encoder.encode(["dog"])
        assert encoder.kernels.startswith("numba ")
        assert all(worker.fused is not None for worker in encoder._encoders)
