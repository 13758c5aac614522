"""The BERT forward pass on the array module (NumPy or CuPy), over packed, unpadded tokens.

A batch is the concatenation of its sentences' real tokens: every dense layer is one
(tokens, features) GEMM, never a 3-D matmul (which runs one small GEMM per sentence).
Attention runs per *group* of consecutive sentences: on the CPU a group is a run of equal
length, so there is no padding at all; on a GPU one group spans the whole length-sorted
batch, padded to its longest sentence and masked, so a layer is a few large kernels.

Every array stays in the model's dtype (an int64 mask would promote attention to float64);
elementwise work is in place on preallocated scratch (see ``_Scratch``). In float16, layer
norm statistics and softmax sums accumulate in float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import Array
from kernels.inference.cpu_fused import FusedKernels, load_fused
from kernels.inference.model import LayerWeights, Model
from kernels.inference.pooling import l2_normalize, mean_pool_matrix

__all__ = ["Encoder", "Group", "gelu_scaled", "plan_groups"]

# Abramowitz & Stegun 7.1.26: erf(z) = 1 - t*(a1 + t*(a2 + ...)) * exp(-z^2) for z >= 0,
# t = 1/(1 + p*z), |error| <= 1.5e-7 (PyTorch's vectorised CPU erf uses the same formula).
_ERF_P = 0.3275911
_ERF_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
# The same polynomial in p*t: a_k / p^k.
_ERF_PT = tuple(c / _ERF_P ** (k + 1) for k, c in enumerate(_ERF_A))
# GELU rows processed per pass: keeps each chunk's temporaries in the core's L2 cache.
_GELU_CHUNK_ELEMENTS = 1 << 16
# Below this many keys, softmax takes its row maximum over column slices (see _softmax).
_SHORT_ROW = 64


@dataclass(frozen=True)
class Group:
    """Sentences ``[first, first + count)`` whose attention runs together, padded to
    ``length`` when ``lengths`` differ (then a mask hides the padding)."""

    first: int
    count: int
    row: int
    length: int
    lengths: tuple[int, ...]

    @property
    def padded(self) -> bool:
        """True when some sentence is shorter than ``length``."""
        return any(n != self.length for n in self.lengths)


def plan_groups(lengths: Sequence[int], *, pad: bool) -> list[Group]:
    """Attention groups: runs of equal length, or the whole batch when ``pad``."""
    groups: list[Group] = []
    if pad and lengths:
        return [Group(0, len(lengths), 0, max(lengths), tuple(lengths))]
    i, row = 0, 0
    while i < len(lengths):
        j = i
        while j < len(lengths) and lengths[j] == lengths[i]:
            j += 1
        groups.append(Group(i, j - i, row, lengths[i], tuple(lengths[i:j])))
        row += (j - i) * lengths[i]
        i = j
    return groups


def gelu_scaled(u: Array, a: Array, t: Array, q: Array, xp: Any) -> None:
    """In place: ``u <- sqrt(2) * GELU(sqrt(2) * u)``, the exact (erf) GELU.

    The model folds 1/sqrt(2) into the layer before and 1/sqrt(2) into the layer after, so
    ``u`` is already erf's argument. With erf(z) = sign(z)(1 - P(t) e^(-z^2)) the result is
    ``(u + |u|) - |u| P(t) / e^(u^2)`` for either sign: no sign-restore pass and no
    ``maximum`` (twice the cost of an add: it handles NaN). ``P`` is evaluated in
    ``p*t = 1/(|u| + 1/p)`` with rescaled coefficients (one pass fewer), and dividing by
    ``e^(u^2)`` saves negating (``e^(u^2)`` overflows to inf past |u| ~ 9.4, where the
    term is 0 anyway: callers silence NumPy's overflow warning). 19 passes, each over a
    chunk that stays in cache; ``a``, ``t``, ``q`` are scratch arrays of ``u``'s shape.
    """
    xp.abs(u, out=a)
    xp.add(a, 1.0 / _ERF_P, out=t)
    xp.reciprocal(t, out=t)
    c1, c2, c3, c4, c5 = _ERF_PT
    xp.multiply(t, c5, out=q)
    for coef in (c4, c3, c2, c1):
        q += coef
        q *= t
    xp.square(u, out=t)
    xp.exp(t, out=t)
    q *= a
    q /= t
    u += a
    u -= q


class _Scratch:
    """Grow-only named buffers: a worker reuses the same memory for every batch."""

    def __init__(self, xp: Any, dtype: str) -> None:
        self._xp = xp
        self._dtype = dtype
        self._store: dict[str, Array] = {}

    def get(self, name: str, shape: tuple[int, ...]) -> Array:
        size = math.prod(shape)
        buf = self._store.get(name)
        if buf is None or buf.size < size:
            # Some headroom so slowly growing batches do not reallocate every time.
            buf = self._xp.empty(int(size * 1.25) + 64, dtype=self._dtype)
            self._store[name] = buf
        return buf[:size].reshape(shape)


class Encoder:
    """Sentence embeddings for batches of token ids; one instance per worker thread."""

    def __init__(
        self, model: Model, *, pad_attention: bool | None = None, fused: bool | None = None
    ) -> None:
        """``fused``: the Numba kernels for GELU and residual + layer norm (default: on a
        CPU in float32 when Numba loads); False runs the NumPy passes."""
        self.model = model
        self.xp = model.backend.xp
        self.pad_attention = model.backend.is_cupy if pad_attention is None else pad_attention
        cpu32 = not model.backend.is_cupy and model.dtype == "float32"
        self.fused: FusedKernels | None = load_fused() if cpu32 and fused is not False else None
        if fused and self.fused is None:
            raise ValueError("fused kernels need NumPy, float32 and Numba")
        self._scratch = _Scratch(self.xp, model.dtype)
        self._f32 = model.dtype != "float32"  # accumulate statistics in float32
        self._eps = model.config.layer_norm_eps
        self._arange = np.arange(model.config.max_positions, dtype=np.int64)
        width = model.config.hidden_size
        self._inv_width = model.backend.asarray(np.full(width, 1.0 / width, dtype=model.dtype))

    def embed(self, batch: Sequence[npt.NDArray[np.int64]]) -> Array:
        """Unit-length float32 embeddings (len(batch), hidden), on the device.

        Sentences should come sorted by length so equal lengths are adjacent.
        """
        cfg = self.model.config
        lengths = [len(ids) for ids in batch]
        if not lengths:
            return self.xp.zeros((0, cfg.hidden_size), dtype=self.model.dtype)
        if min(lengths) < 1 or max(lengths) > cfg.max_positions:
            raise ValueError(f"token counts must be in 1..{cfg.max_positions}, got {lengths}")
        x = self._embeddings(batch, lengths)
        groups = plan_groups(lengths, pad=self.pad_attention)
        for layer in self.model.layers:
            x = self._layer(x, layer, groups)
        pool = self.model.backend.asarray(mean_pool_matrix(lengths, self.model.dtype))
        return l2_normalize(self.xp.matmul(pool, x), self.xp)

    def _embeddings(self, batch: Sequence[npt.NDArray[np.int64]], lengths: list[int]) -> Array:
        m, xp = self.model, self.xp
        tokens = sum(lengths)
        ids = m.backend.asarray(np.concatenate(batch))
        positions = m.backend.asarray(np.concatenate([self._arange[:n] for n in lengths]))
        x = self._scratch.get("x", (tokens, m.config.hidden_size))
        pos = self._scratch.get("h", (tokens, m.config.hidden_size))
        xp.take(m.word_embeddings, ids, axis=0, out=x)
        xp.take(m.position_embeddings, positions, axis=0, out=pos)
        if self.fused is not None:
            zero = self._scratch.get("zero_bias", (m.config.hidden_size,))
            zero[...] = 0
            self.fused.residual_layer_norm(x, zero, pos, m.emb_gamma, m.emb_beta, self._eps)
            return x
        x += pos
        self._layer_norm(x, m.emb_gamma, m.emb_beta)
        return x

    def _layer(self, x: Array, w: LayerWeights, groups: list[Group]) -> Array:
        xp, cfg, scratch = self.xp, self.model.config, self._scratch
        tokens, hidden = x.shape
        qkv = scratch.get("qkv", (tokens, 3 * hidden))
        xp.matmul(x, w.w_qkv, out=qkv)
        qkv += w.b_qkv
        ctx = scratch.get("ctx", (tokens, hidden))
        for group in groups:
            self._attention(qkv, ctx, group)
        # h = LN(x + attention(x)), then x = LN(h + FFN(h)) overwrites x's buffer.
        h = scratch.get("h", x.shape)
        inter = scratch.get("inter", (tokens, cfg.intermediate_size))
        xp.matmul(ctx, w.w_out, out=h)
        fused = self.fused
        if fused is not None:
            fused.residual_layer_norm(h, w.b_out, x, w.ln1_gamma, w.ln1_beta, self._eps)
            xp.matmul(h, w.w_in, out=inter)
            fused.bias_gelu(inter, w.b_in)
            xp.matmul(inter, w.w_ffn_out, out=x)
            fused.residual_layer_norm(x, w.b_ffn_out, h, w.ln2_gamma, w.ln2_beta, self._eps)
            return x
        h += w.b_out
        h += x
        self._layer_norm(h, w.ln1_gamma, w.ln1_beta)
        xp.matmul(h, w.w_in, out=inter)
        self._bias_gelu(inter, w.b_in)
        xp.matmul(inter, w.w_ffn_out, out=x)
        x += w.b_ffn_out
        x += h
        self._layer_norm(x, w.ln2_gamma, w.ln2_beta)
        return x

    def _bias_gelu(self, inter: Array, bias: Array) -> None:
        # Row chunks sized for L2: ~20 passes over a chunk that stays in cache.
        tokens, width = inter.shape
        rows = tokens if self.model.backend.is_cupy else max(1, _GELU_CHUNK_ELEMENTS // width)
        a = self._scratch.get("gelu_a", (min(rows, tokens), width))
        t = self._scratch.get("gelu_t", (min(rows, tokens), width))
        q = self._scratch.get("gelu_q", (min(rows, tokens), width))
        with np.errstate(over="ignore"):  # e^(u^2) -> inf is intended (see gelu_scaled)
            for start in range(0, tokens, rows):
                u = inter[start : start + rows]
                n = u.shape[0]
                u += bias
                gelu_scaled(u, a[:n], t[:n], q[:n], self.xp)

    def _layer_norm(self, x: Array, gamma: Array, beta: Array) -> None:
        xp, eps = self.xp, self.model.config.layer_norm_eps
        if self._f32:
            mean = x.mean(axis=1, dtype=np.float32)
            x -= mean[:, None].astype(x.dtype)
            var = xp.square(x).mean(axis=1, dtype=np.float32)
        else:
            # A GEMV is 4x faster than mean(axis=1) over rows of 384.
            mean = xp.matmul(x, self._inv_width)
            x -= mean[:, None]
            # einsum reads x once and allocates only the (tokens,) result.
            var = xp.einsum("ij,ij->i", x, x)
            var *= 1.0 / x.shape[1]
        var += eps
        rstd = xp.reciprocal(xp.sqrt(var, out=var), out=var)
        x *= rstd[:, None].astype(x.dtype, copy=False)
        x *= gamma
        x += beta

    def _attention(self, qkv: Array, ctx: Array, group: Group) -> None:
        xp, cfg = self.xp, self.model.config
        heads, dh, n, length = cfg.num_heads, cfg.head_dim, group.count, group.length
        if group.padded:
            index, mask = self._padding(group)
            parts = qkv[index].reshape(n, length, 3, heads, dh)
        else:
            rows = slice(group.row, group.row + n * length)
            parts = qkv[rows].reshape(n, length, 3, heads, dh)
        q = parts[:, :, 0].transpose(0, 2, 1, 3)  # (n, heads, length, dh)
        k_t = parts[:, :, 1].transpose(0, 2, 3, 1)  # (n, heads, dh, length)
        v = parts[:, :, 2].transpose(0, 2, 1, 3)
        scores = self._scratch.get("scores", (n, heads, length, length))
        xp.matmul(q, k_t, out=scores)
        if group.padded:
            scores += mask
        self._softmax(scores)
        if group.padded:
            context = self._context(scores, v).transpose(0, 2, 1, 3)  # (n, length, heads, dh)
            real = context.reshape(n * length, heads * dh)[self._real_rows(group)]
            ctx[group.row : group.row + sum(group.lengths)] = real
        else:
            out = ctx[group.row : group.row + n * length].reshape(n, length, heads, dh)
            if self.model.backend.is_cupy:
                out[...] = self._context(scores, v).transpose(0, 2, 1, 3)
            else:
                # NumPy's matmul writes the head-interleaved layout directly (BLAS ldc).
                self.xp.matmul(scores, v, out=out.transpose(0, 2, 1, 3))

    def _context(self, scores: Array, v: Array) -> Array:
        """probs @ v into fresh memory: CuPy's matmul is not given strided outputs."""
        return self.xp.matmul(scores, v)

    def _softmax(self, scores: Array) -> None:
        xp = self.xp
        length = scores.shape[-1]
        if self.model.backend.is_cupy or length >= _SHORT_ROW:
            peak = scores.max(axis=-1)
        else:
            # NumPy reduces short last axes row by row (~9 ns an element at 13 tokens);
            # a maximum over column slices is vectorised across rows (~0.7 ns).
            peak = xp.maximum(scores[..., 0], scores[..., 1 % length])
            for j in range(2, length):
                xp.maximum(peak, scores[..., j], out=peak)
        scores -= peak[..., None]
        xp.exp(scores, out=scores)
        if self._f32 or self.model.backend.is_cupy:
            total = scores.sum(axis=-1, dtype=np.float32)
        else:
            total = xp.einsum("...k->...", scores)  # 6x faster than NumPy's sum on short rows
        scores *= xp.reciprocal(total).astype(scores.dtype, copy=False)[..., None]

    def _padding(self, group: Group) -> tuple[Array, Array]:
        """Row index (count, length) into the packed rows, and the additive key mask."""
        n, length = group.count, group.length
        index = np.full((n, length), group.row, dtype=np.int64)
        mask = np.zeros((n, 1, 1, length), dtype=self.model.dtype)
        row = group.row
        for i, size in enumerate(group.lengths):
            index[i, :size] = np.arange(row, row + size)
            mask[i, ..., size:] = -np.inf
            row += size
        backend = self.model.backend
        return backend.asarray(index), backend.asarray(mask)

    def _real_rows(self, group: Group) -> Array:
        flat = np.concatenate(
            [np.arange(size) + i * group.length for i, size in enumerate(group.lengths)]
        )
        return self.model.backend.asarray(flat)
