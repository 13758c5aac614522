"""What inference work costs and pays: the model served, the requester's fee, the base reward.

Pure arithmetic in integer base units; the desk (``core/coordinator/inference.py``) and the
job book apply it.
"""

from __future__ import annotations

MODEL = "all-MiniLM-L6-v2"
MODEL_DIMS = {MODEL: 384}
# all-MiniLM-L6-v2's shape, for the base reward: useful work pays the GEMM rate on the
# encoder's FLOPs (core/game/rates.py), never more, so paying a job's fee to one's own nodes
# earns nothing that honest GEMM work on the same hardware would not.
_HIDDEN, _INTER, _LAYERS, _MAX_TOKENS = 384, 1536, 6, 256


def job_fee(sentences: int, per_1000: int) -> int:
    """The requester's fee in base units: per 1,000 sentences, rounded up to a base unit."""
    return -(-sentences * per_1000 // 1000)


def encoder_flops(texts: list[str]) -> int:
    """The FLOPs of encoding ``texts`` (about 4 characters a token, plus [CLS] and [SEP])."""
    total = 0
    for text in texts:
        tokens = min(_MAX_TOKENS, len(text) // 4 + 2)
        dense = 2 * tokens * (4 * _HIDDEN * _HIDDEN + 2 * _HIDDEN * _INTER)
        attention = 4 * tokens * tokens * _HIDDEN
        total += _LAYERS * (dense + attention)
    return total


def split_fee(fee: int, sizes: list[int]) -> list[int]:
    """Shares of ``fee`` proportional to ``sizes``, exact: the remainder goes to the last."""
    total = sum(sizes)
    shares = [fee * size // total for size in sizes]
    shares[-1] += fee - sum(shares)
    return shares
