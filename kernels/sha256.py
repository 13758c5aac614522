"""SHA-256 of many equal-length tagged messages at once: on the device on CuPy, hashlib on NumPy.

Every message hashed by the work-unit commitments has the shape ``tag || data``: a 4-byte
domain tag, then ``W`` 32-bit words. ``data`` is a ``(N, W)`` uint32 array; with ``swap``
each word is taken as the 4 little-endian bytes of an int32 (a result block), without it
as a big-endian SHA-256 word (child digests, which are kept as the 8 state words). The
output is ``(N, 8)`` uint32 state words: the digest is their big-endian bytes.

Three implementations of the same function, all standard SHA-256 (hashlib is the reference):

* ``host``: hashlib, one message at a time; the NumPy backend's choice (SHA-NI makes it
  faster than any vectorised NumPy code);
* ``vector``: the compression written once as array-module uint32 operations vectorised
  across messages; runs on NumPy (tested against hashlib) and on CuPy;
* ``cuda``: one CUDA thread per message (``CUDA_SOURCE``, compiled by CuPy's NVRTC). The
  same source compiles as plain C, which is how the tests check it without a GPU.

:func:`select_hasher` checks its pick against hashlib once and falls back in that order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kernels.backend import Array, Backend

__all__ = ["CUDA_SOURCE", "Hasher", "host_hash", "select_hasher", "vector_hash"]

log = logging.getLogger(__name__)

_K = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1, 0x923F82A4,
    0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3, 0x72BE5D74, 0x80DEB1FE,
    0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786, 0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F,
    0x4A7484AA, 0x5CB0A9DC, 0x76F988DA, 0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7,
    0xC6E00BF3, 0xD5A79147, 0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC,
    0x53380D13, 0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070, 0x19A4C116,
    0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A, 0x5B9CCA4F, 0x682E6FF3,
    0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208, 0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7,
    0xC67178F2,
)  # fmt: skip
_H0 = (0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB,
       0x5BE0CD19)  # fmt: skip

HashFn = Callable[[Array, int, bool], Array]


def _message_bytes(data_words: int) -> int:
    return 4 * (data_words + 1)


def _padded_words(data_words: int) -> int:
    # The message, the 0x80 byte and the 8-byte length, rounded up to 64-byte blocks.
    return -(-(_message_bytes(data_words) + 9) // 64) * 16


def host_hash(data: Array, tag: int, swap: bool) -> Array:
    """hashlib over each row of ``data`` (a NumPy array): the reference implementation."""
    rows = np.ascontiguousarray(data, dtype=np.uint32)
    n, w = rows.shape
    raw = rows.astype("<u4" if swap else ">u4", copy=False).tobytes()
    prefix = int(tag).to_bytes(4, "big")
    step = 4 * w
    digests = b"".join(
        hashlib.sha256(prefix + raw[i * step : (i + 1) * step]).digest() for i in range(n)
    )
    return np.frombuffer(digests, dtype=">u4").astype(np.uint32).reshape(n, 8)


def _rotr(xp: Any, x: Array, r: int) -> Array:
    return (x >> xp.uint32(r)) | (x << xp.uint32(32 - r))


def _bswap(xp: Any, x: Array) -> Array:
    m = xp.uint32(0xFF)
    return (
        ((x & m) << xp.uint32(24))
        | (((x >> xp.uint32(8)) & m) << xp.uint32(16))
        | (((x >> xp.uint32(16)) & m) << xp.uint32(8))
        | (x >> xp.uint32(24))
    )


def vector_hash(xp: Any, data: Array, tag: int, swap: bool) -> Array:
    """SHA-256 of ``tag || row`` for every row, as array-module ops vectorised across rows."""
    n, w = data.shape
    words = _bswap(xp, data.astype(xp.uint32)) if swap else data.astype(xp.uint32)
    total = _padded_words(w)
    msg = xp.zeros((n, total), dtype=xp.uint32)
    msg[:, 0] = xp.uint32(tag)
    msg[:, 1 : w + 1] = words
    msg[:, w + 1] = xp.uint32(0x80000000)
    bits = 8 * _message_bytes(w)
    msg[:, total - 2] = xp.uint32(bits >> 32)
    msg[:, total - 1] = xp.uint32(bits & 0xFFFFFFFF)
    state = [xp.full((n,), h, dtype=xp.uint32) for h in _H0]
    for block in range(total // 16):
        sched = [msg[:, block * 16 + t] for t in range(16)]
        for t in range(16, 64):
            w15, w2 = sched[t - 15], sched[t - 2]
            s0 = _rotr(xp, w15, 7) ^ _rotr(xp, w15, 18) ^ (w15 >> xp.uint32(3))
            s1 = _rotr(xp, w2, 17) ^ _rotr(xp, w2, 19) ^ (w2 >> xp.uint32(10))
            sched.append(sched[t - 16] + s0 + sched[t - 7] + s1)
        a, b, c, d, e, f, g, h = state
        for t in range(64):
            big1 = _rotr(xp, e, 6) ^ _rotr(xp, e, 11) ^ _rotr(xp, e, 25)
            ch = (e & f) ^ (~e & g)
            t1 = h + big1 + ch + xp.uint32(_K[t]) + sched[t]
            big0 = _rotr(xp, a, 2) ^ _rotr(xp, a, 13) ^ _rotr(xp, a, 22)
            maj = (a & b) ^ (a & c) ^ (b & c)
            h, g, f, e, d, c, b, a = g, f, e, d + t1, c, b, a, t1 + big0 + maj
        state = [s + v for s, v in zip(state, (a, b, c, d, e, f, g, h), strict=True)]
    return xp.stack(state, axis=1)


# One thread per message. Words are built on the fly (tag, data, padding, length) so the
# data is read in place. Compiles as C too: SHA_HOST_TEST swaps the thread index for a loop.
CUDA_SOURCE = r"""
#ifdef SHA_HOST_TEST
#include <stdint.h>
#define DEVICE static
typedef uint32_t u32;
typedef uint64_t u64;
#else
#define DEVICE __device__ __forceinline__
typedef unsigned int u32;
typedef unsigned long long u64;
#endif
#define ROTR(x, r) (((x) >> (r)) | ((x) << (32 - (r))))
DEVICE u32 bswap32(u32 x) {
    return (x << 24) | ((x << 8) & 0xFF0000u) | ((x >> 8) & 0xFF00u) | (x >> 24);
}
DEVICE void sha256_one(const u32* data, int w, u32 tag, int swap, u32* out) {
    const u32 K[64] = {KCONST};
    u32 st[8] = {HCONST};
    int total = ((4 * (w + 1) + 9 + 63) / 64) * 16;
    u64 bits = (u64)8 * (u64)(4 * (w + 1));
    for (int blk = 0; blk < total / 16; ++blk) {
        u32 s[64];
        for (int t = 0; t < 16; ++t) {
            int i = blk * 16 + t;
            u32 v;
            if (i == 0) v = tag;
            else if (i <= w) v = swap ? bswap32(data[i - 1]) : data[i - 1];
            else if (i == w + 1) v = 0x80000000u;
            else if (i == total - 2) v = (u32)(bits >> 32);
            else if (i == total - 1) v = (u32)bits;
            else v = 0u;
            s[t] = v;
        }
        for (int t = 16; t < 64; ++t) {
            u32 s0 = ROTR(s[t - 15], 7) ^ ROTR(s[t - 15], 18) ^ (s[t - 15] >> 3);
            u32 s1 = ROTR(s[t - 2], 17) ^ ROTR(s[t - 2], 19) ^ (s[t - 2] >> 10);
            s[t] = s[t - 16] + s0 + s[t - 7] + s1;
        }
        u32 a = st[0], b = st[1], c = st[2], d = st[3];
        u32 e = st[4], f = st[5], g = st[6], h = st[7];
        for (int t = 0; t < 64; ++t) {
            u32 t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g))
                     + K[t] + s[t];
            u32 t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
        }
        st[0] += a; st[1] += b; st[2] += c; st[3] += d;
        st[4] += e; st[5] += f; st[6] += g; st[7] += h;
    }
    for (int j = 0; j < 8; ++j) out[j] = st[j];
}
#ifdef SHA_HOST_TEST
void sha256_tagged(const u32* data, long long n, int w, u32 tag, int swap, u32* out) {
    for (long long i = 0; i < n; ++i) sha256_one(data + i * w, w, tag, swap, out + i * 8);
}
#else
extern "C" __global__ void sha256_tagged(const u32* data, long long n, int w, u32 tag,
                                         int swap, u32* out) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) sha256_one(data + i * w, w, tag, swap, out + i * 8);
}
#endif
""".replace("KCONST", ", ".join(f"0x{k:08X}u" for k in _K)).replace(
    "HCONST", ", ".join(f"0x{h:08X}u" for h in _H0)
)


def _cuda_hash_fn(backend: Backend) -> HashFn:
    cupy = backend.xp
    kernel = cupy.RawKernel(CUDA_SOURCE, "sha256_tagged")
    threads = 128

    def run(data: Array, tag: int, swap: bool) -> Array:
        rows = cupy.ascontiguousarray(data, dtype=cupy.uint32)
        n, w = rows.shape
        out = cupy.empty((n, 8), dtype=cupy.uint32)
        if n:
            grid = (n + threads - 1) // threads
            args = (rows, np.int64(n), np.int32(w), np.uint32(tag), np.int32(swap), out)
            kernel((grid,), (threads,), args)
        return out

    return run


@dataclass(frozen=True)
class Hasher:
    """A checked SHA-256 implementation bound to a backend; ``name`` says which one."""

    name: str  # "host", "vector" or "cuda"
    backend: Backend
    fn: HashFn

    def hash(self, data: Array, tag: int, swap: bool) -> Array:
        """``(N, 8)`` uint32 digests of ``tag || row`` for each row of ``data`` (N, W)."""
        return self.fn(data, tag, swap)


def _self_check(backend: Backend, fn: HashFn) -> bool:
    # Lengths cover one and several blocks and the 55/56-byte padding edge.
    rng = np.random.default_rng(20240601)
    for w in (1, 12, 13, 16, 64, 100):
        host = rng.integers(0, 2**32, size=(3, w), dtype=np.uint32)
        for swap in (False, True):
            got = backend.to_host(fn(backend.asarray(host), 0x4F544C31, swap))
            if not np.array_equal(
                np.asarray(got, dtype=np.uint32), host_hash(host, 0x4F544C31, swap)
            ):
                return False
    return True


_CACHE: dict[tuple[str, str, str], Hasher] = {}


def select_hasher(backend: Backend, prefer: str | None = None) -> Hasher:
    """The fastest implementation that agrees with hashlib on this backend (checked once).

    CuPy: ``cuda``, else ``vector``, else ``host`` (copying data to the host). NumPy:
    ``host``. ``prefer`` forces one of them (it is still self-checked).
    """
    order = ["cuda", "vector", "host"] if backend.is_cupy else ["host"]
    if prefer is not None:
        order = [prefer]
    # Per device, not per model: eight identical cards are eight devices, each checked.
    key = (backend.name, f"{backend.index}:{backend.device}", ",".join(order))
    if key in _CACHE:
        return _CACHE[key]
    for name in order:
        try:
            fn = _make(backend, name)
            with backend.activate():
                checked = _self_check(backend, fn)
            if checked:
                hasher = Hasher(name=name, backend=backend, fn=fn)
                _CACHE[key] = hasher
                return hasher
            log.warning("SHA-256 %s on %s disagrees with hashlib; not used", name, backend.name)
        except Exception as exc:  # a missing compiler or driver: fall back, never fail the unit
            log.warning("SHA-256 %s on %s unavailable: %r", name, backend.name, exc)
    raise RuntimeError(f"no SHA-256 implementation agrees with hashlib among {order}")


def _make(backend: Backend, name: str) -> HashFn:
    if name == "cuda":
        if not backend.is_cupy:
            raise ValueError("the CUDA hasher needs the CuPy backend")
        return _cuda_hash_fn(backend)
    if name == "vector":
        return lambda data, tag, swap: vector_hash(backend.xp, data, tag, swap)
    if name == "host":
        return lambda data, tag, swap: backend.asarray(host_hash(backend.to_host(data), tag, swap))
    raise ValueError(f"unknown SHA-256 implementation {name!r}")
