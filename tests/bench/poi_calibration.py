"""Calibrate Proof of Inference: per-sentence cosines of honest and dishonest embeddings.

Run ``python -m tests.bench.poi_calibration [--sentences N] [--out PATH]`` (NumPy, the real
all-MiniLM-L6-v2, our encoder). Every case encodes the same generated corpus (``corpus``:
short, ~100-token and mixed sentences from seeded word lists) and is compared, sentence by
sentence, with the reference run (float32, batch 128, one worker):

honest (must pass): float16 (on a stratified subset: NumPy's float16 matmul has no BLAS and
is ~100x slower), batch size 1 and 7 and another batch composition (these change the GEMM
shapes and so the accumulation order: they stand in for NumPy vs CuPy, which we cannot run
here), two workers with one BLAS thread each vs one worker with two.

dishonest (must fail): random unit vectors, another sentence's embedding (rows shuffled),
input cut to half its tokens, the last word dropped, two layers swapped, the last layer
skipped, gaussian noise of 1% of the weights' std on one layer's four matrices. A sweep of
smaller noise (0.5% down to 0.001%, 0.1% included) shows where a perturbation stops being
detectable: 0.1% already moves embeddings less than float16 does.

Also honest: sentence-transformers on PyTorch (the parity test's committed reference, its
~20 sentences) vs our float32: another implementation of the same model.

Writes ``kernels/inference/data/poi_calibration.json`` (statistics only) and, with
``--raw``, every per-sentence cosine as ``.npz`` (``--reuse-raw`` recomputes the statistics
from it, e.g. after changing the threshold, without encoding again).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from kernels.backend import numpy_backend
from kernels.inference import SentenceEncoder, find_model_dir, load_model
from kernels.inference.model import Model
from kernels.inference.poi import POI_THRESHOLD, cosines

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "kernels" / "inference" / "data" / "poi_calibration.json"
BATCH = 64  # sentences per PoI batch for the batch-level rates
BATCH_DRAWS = 2000  # random batches drawn per case for the batch-level rates
NOISE_LAYER = 3  # the layer whose weights get gaussian noise
SWEEP = (5e-3, 3e-3, 2e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5)
REFERENCE = ROOT / "tests" / "kernels" / "inference" / "data" / "reference.json"

Vectors = npt.NDArray[np.float32]

_SUBJECTS = (
    "the engineer", "a tired nurse", "my grandmother", "the committee", "two students",
    "a stray cat", "the new manager", "our neighbours", "the pilot", "a young farmer",
    "the orchestra", "a delivery driver", "the mayor", "several tourists", "the robot",
)  # fmt: skip
_VERBS = (
    "repaired", "painted", "described", "ignored", "bought", "carried", "measured",
    "photographed", "cancelled", "cleaned", "explained", "borrowed", "tested", "sold",
)  # fmt: skip
_OBJECTS = (
    "the old bridge", "a broken umbrella", "the quarterly report", "a bowl of soup",
    "the wooden fence", "an unusual painting", "the train schedule", "a stack of letters",
    "the server rack", "a bag of oranges", "the garden shed", "a red bicycle", "the contract",
)  # fmt: skip
_PLACES = (
    "near the harbour", "after the storm", "in the library", "before breakfast",
    "at the station", "during the meeting", "behind the school", "on a rainy Tuesday",
    "under the bridge", "in the mountains", "at midnight", "outside the hospital",
)  # fmt: skip
_LINKS = (", and then", ", while", " because", ", although", ", so", " until", ", but")
_MIXED = (
    "Order #{n} shipped to Zürich on {d}/03/2024 for €{n}.99.",
    "Call +1-555-{n:04d} or visit https://example.org/item/{n}?ref=poi",
    "def f_{n}(x): return x ** 2 + {d}  # Python",
    "Le café coûte {d} euros à Paris, naïve question?",
    "東京 and 大阪 are {n} km apart 🚄 roughly.",
    "ERROR {n}: connection reset by peer (errno={d})",
    "SELECT * FROM users WHERE id = {n} AND age > {d};",
    "The patient's HbA1c was {d}.{n}% — up from last year.",
    "¿Dónde está la estación número {d}? Gracias 🙂",
    "GPU temp {d}°C, fan {n} rpm, power {d}{n} W",
)


def _clause(rng: random.Random) -> str:
    return " ".join(
        (rng.choice(_SUBJECTS), rng.choice(_VERBS), rng.choice(_OBJECTS), rng.choice(_PLACES))
    )


def corpus(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct sentences, a third each short (3-9 words), mixed (numbers, code,
    non-ASCII, emoji) and long (~100 tokens), the same on every machine for one seed."""
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    kinds = ("short", "mixed", "long")
    while len(out) < count:
        kind = kinds[len(out) % 3]
        if kind == "short":
            words = _clause(rng).split()
            text = " ".join(words[: rng.randint(3, 9)]).capitalize() + rng.choice(".?!")
        elif kind == "mixed":
            template = rng.choice(_MIXED)
            text = template.format(n=rng.randint(1, 9999), d=rng.randint(1, 99))
            if rng.random() < 0.5:
                text = _clause(rng).capitalize() + ": " + text
        else:
            parts = [_clause(rng) for _ in range(rng.randint(6, 8))]
            text = parts[0].capitalize()
            for part in parts[1:]:
                text += rng.choice(_LINKS) + " " + part
            text += "."
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _encode(
    model: Model, texts: Sequence[str], *, batch_size: int = 128, workers: int = 1
) -> Vectors:
    with SentenceEncoder(model, batch_size=batch_size, workers=workers) as encoder:
        return encoder.encode(texts)


def _encode_ids(model: Model, ids: Sequence[npt.NDArray[np.int64]]) -> Vectors:
    with SentenceEncoder(model, batch_size=128, workers=1) as encoder:
        return encoder.encode_ids(ids)


def _with_layers(model: Model, layers: Sequence[Any]) -> Model:
    return dataclasses.replace(model, layers=tuple(layers))


def _noisy(model: Model, relative: float, seed: int) -> Model:
    """The model with N(0, (relative * std(w))^2) added to every matrix of one layer."""
    rng = np.random.default_rng(seed)
    layer = model.layers[NOISE_LAYER]
    changes = {}
    for name in ("w_qkv", "w_out", "w_in", "w_ffn_out"):
        w = np.asarray(getattr(layer, name), dtype=np.float64)
        noisy = w + rng.standard_normal(w.shape) * (relative * w.std())
        changes[name] = np.ascontiguousarray(noisy, dtype=model.dtype)
    layers = list(model.layers)
    layers[NOISE_LAYER] = dataclasses.replace(layer, **changes)
    return _with_layers(model, layers)


def _random_unit(shape: tuple[int, ...], seed: int) -> Vectors:
    v = np.random.default_rng(seed).standard_normal(shape)
    out: Vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    return out


def _derangement(n: int, seed: int) -> npt.NDArray[np.int64]:
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def _half_tokens(ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """[CLS] + the first half of the content tokens + [SEP]."""
    keep = (len(ids) - 2) // 2
    return np.concatenate([ids[: 1 + keep], ids[-1:]])


def _drop_last_word(text: str) -> str:
    words = text.split()
    return " ".join(words[:-1])


@dataclasses.dataclass
class Case:
    name: str
    kind: str  # "honest", "dishonest" (must fail) or "sweep" (informational)
    what: str
    cos: npt.NDArray[np.float64]  # per sentence, vs the reference
    rows: npt.NDArray[np.int64]  # which corpus sentences (fp16 runs on a subset)


def measure(count: int, fp16_count: int, log: Callable[[str], None]) -> list[Case]:
    texts = corpus(count)
    model = load_model(find_model_dir(), numpy_backend())
    ids = model.tokenizer.encode(texts)
    lengths = np.array([len(a) for a in ids])
    log(f"{count} sentences, tokens min {lengths.min()} median {np.median(lengths):.0f} "
        f"max {lengths.max()}, {lengths.sum()} in all")  # fmt: skip
    every = np.arange(count)
    t0 = time.perf_counter()
    ref = _encode(model, texts)
    log(f"reference encoded in {time.perf_counter() - t0:.1f}s")
    cases: list[Case] = []

    def add(name: str, kind: str, what: str, vectors: Vectors, rows: Any = every) -> None:
        rows = np.asarray(rows)
        cos = cosines(ref[rows], vectors)
        cases.append(Case(name, kind, what, cos, rows))
        log(f"{kind:9} {name:20} 1-min {1 - cos.min():.2e} 1-median {1 - np.median(cos):.2e}")

    add("batch1", "honest", "fp32, batch size 1 (each sentence alone)",
        _encode(model, texts, batch_size=1))  # fmt: skip
    add("batch7", "honest", "fp32, batch size 7", _encode(model, texts, batch_size=7))
    order = np.random.default_rng(1).permutation(count)
    filler = corpus(count + 150, seed=99)[:150]
    mixed = _encode(model, [texts[i] for i in order] + filler, batch_size=48)
    back = np.empty_like(ref)
    back[order] = mixed[:count]
    add("composition", "honest", "fp32, batch 48, shuffled and mixed with 150 other texts",
        back)  # fmt: skip
    add("workers2", "honest", "fp32, 2 workers x 1 BLAS thread (reference: 1 x 2)",
        _encode(model, texts, workers=2))  # fmt: skip
    # Another implementation: sentence-transformers on PyTorch (the parity test's reference).
    st = json.loads(REFERENCE.read_text("utf-8"))
    st_ours = _encode(model, st["sentences"])
    cos = cosines(np.array(st["embeddings"], dtype=np.float32), st_ours)
    cases.append(Case("pytorch", "honest", "sentence-transformers (PyTorch) vs ours, "
                      f"{len(cos)} reference sentences", cos, np.arange(len(cos))))  # fmt: skip
    log(f"honest    pytorch              1-min {1 - cos.min():.2e}")
    # A stratified subset for float16 (thirds: short, mixed, long, all kept in proportion).
    sub = np.linspace(0, count - 1, min(fp16_count, count)).round().astype(np.int64)
    t0 = time.perf_counter()
    half = load_model(find_model_dir(), numpy_backend(), dtype="float16")
    add("float16", "honest", f"float16 weights and activations ({len(sub)} sentences)",
        _encode(half, [texts[i] for i in sub], workers=2), sub)  # fmt: skip
    log(f"float16 encoded in {time.perf_counter() - t0:.1f}s")

    add("random", "dishonest", "random unit vectors", _random_unit(ref.shape, 3))
    add("shuffled", "dishonest", "another sentence's embedding (rows deranged)",
        ref[_derangement(count, 4)])  # fmt: skip
    add("half_tokens", "dishonest", "input cut to half its tokens",
        _encode_ids(model, [_half_tokens(a) for a in ids]))  # fmt: skip
    add("drop_last_word", "dishonest", "last word of the input dropped",
        _encode(model, [_drop_last_word(t) for t in texts]))  # fmt: skip
    swapped = list(model.layers)
    swapped[2], swapped[3] = swapped[3], swapped[2]
    add("layers_swapped", "dishonest", "layers 2 and 3 swapped",
        _encode(_with_layers(model, swapped), texts))  # fmt: skip
    add("last_layer_skipped", "dishonest", "last of 6 layers skipped",
        _encode(_with_layers(model, model.layers[:-1]), texts))  # fmt: skip
    for rel, kind in ((1e-2, "dishonest"), *((r, "sweep") for r in SWEEP)):
        add(f"noise_{rel:g}", kind, f"layer {NOISE_LAYER} weights + N(0, ({rel:g} std)^2)",
            _encode(_noisy(model, rel, seed=5), texts))  # fmt: skip
    return cases


def _stats(cos: npt.NDArray[np.float64]) -> dict[str, float]:
    pct = np.percentile(cos, [0.1, 1, 50])
    return {
        "min": float(cos.min()),
        "p0_1": float(pct[0]),
        "p1": float(pct[1]),
        "median": float(pct[2]),
        "max": float(cos.max()),
    }


def _batch_fail_rate(cos: npt.NDArray[np.float64], threshold: float) -> float:
    """Fraction of random 64-sentence batches whose lowest cosine is below ``threshold``."""
    rng = np.random.default_rng(11)
    size = min(BATCH, len(cos))
    fails = sum(
        bool(cos[rng.choice(len(cos), size, replace=False)].min() < threshold)
        for _ in range(BATCH_DRAWS)
    )
    return fails / BATCH_DRAWS


def summarise(cases: list[Case], threshold: float, count: int) -> dict[str, Any]:
    table: list[dict[str, Any]] = []
    for case in cases:
        below = float(np.mean(case.cos < threshold))
        table.append(
            {"case": case.name, "kind": case.kind, "what": case.what, "sentences": len(case.cos)}
            | _stats(case.cos)
            | {
                "sentences_below": round(below, 6),
                "batches64_below": round(_batch_fail_rate(case.cos, threshold), 6),
            }
        )
    honest = np.concatenate([c.cos for c in cases if c.kind == "honest"])
    dishonest = np.concatenate([c.cos for c in cases if c.kind == "dishonest"])
    honest_fails = [float(r["batches64_below"]) for r in table if r["kind"] == "honest"]
    dishonest_fails = [float(r["batches64_below"]) for r in table if r["kind"] == "dishonest"]
    return {
        "model": "all-MiniLM-L6-v2",
        "backend": "numpy",
        "threshold": threshold,
        "corpus_sentences": count,
        "batch": BATCH,
        "worst_honest_min": float(honest.min()),
        "best_dishonest_max": float(dishonest.max()),
        "rates": {
            "false_reject_per_sentence": float(np.mean(honest < threshold)),
            "false_accept_per_sentence": float(np.mean(dishonest >= threshold)),
            "false_reject_per_batch64": max(honest_fails),
            "false_accept_per_batch64": 1.0 - min(dishonest_fails),
        },
        "cases": table,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentences", type=int, default=300)
    parser.add_argument("--fp16-sentences", type=int, default=90)
    parser.add_argument("--threshold", type=float, default=POI_THRESHOLD)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--raw", type=Path, help="also save every cosine here (.npz)")
    parser.add_argument("--reuse-raw", action="store_true", help="read --raw, do not encode")
    args = parser.parse_args(argv)
    if args.reuse_raw:
        stored = np.load(args.raw, allow_pickle=False)
        meta = json.loads(str(stored["meta"]))
        cases = [
            Case(m["name"], m["kind"], m["what"], stored[f"cos_{i}"], stored[f"rows_{i}"])
            for i, m in enumerate(meta["cases"])
        ]
        count = int(meta["count"])
    else:
        count = args.sentences
        cases = measure(count, args.fp16_sentences, print)
        if args.raw:
            meta = {"count": count, "cases": [
                {"name": c.name, "kind": c.kind, "what": c.what} for c in cases
            ]}  # fmt: skip
            arrays: dict[str, npt.NDArray[Any]] = {f"cos_{i}": c.cos for i, c in enumerate(cases)}
            arrays |= {f"rows_{i}": c.rows for i, c in enumerate(cases)}
            np.savez(args.raw, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
    result = summarise(cases, args.threshold, count)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"\nthreshold {args.threshold}  ->  {args.out}")
    print("(cosines as 1 - cos: 0 is identical; '<thr' = fraction below the threshold)")
    print(f"{'case':20} {'kind':9} {'n':>4} {'1-min':>9} {'1-p0.1':>9} {'1-p1':>9} "
          f"{'1-median':>9} {'<thr':>6} {'batch<thr':>9}")  # fmt: skip
    for r in result["cases"]:
        gaps = " ".join(f"{1 - r[k]:9.2e}" for k in ("min", "p0_1", "p1", "median"))
        print(f"{r['case']:20} {r['kind']:9} {r['sentences']:4} {gaps} "
              f"{r['sentences_below']:6.3f} {r['batches64_below']:9.4f}")  # fmt: skip
    print(json.dumps(result["rates"], indent=1))


if __name__ == "__main__":
    main()
