"""Data-validation benchmark (and the calibration of its thresholds).

``python -m tests.bench.data_bench`` generates ``--images`` small PNGs (structured random
images; some exact and some near-duplicate copies: re-encoded JPEGs and resized ones) and
``--texts`` sentences (some repeated, some with punctuation or case changed), runs
``validate_records`` on each, and prints records/s, what was found against what was
planted, and the average record size raw and in base64 (the wire form in a JSON message).
Text uses the installed all-MiniLM-L6-v2 (encoding included in the time); without it the
text part is skipped and says so. ``--pairs N`` also times the blocked near-duplicate
search alone on N random 384-d vectors.

``--calibrate`` prints the figures the thresholds in ``kernels.data.validate`` were set
from: perceptual-hash distances of copies and of distinct images (add real images with
``--real-images 'GLOB'``), and cosines of hand-made text pairs and label margins.

A benchmark, not a test: it prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import itertools
import random
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from PIL import Image

from kernels.backend_base import numpy_backend
from kernels.data import IMAGE_NEAR_BITS, normalized_text, phash, validate_records
from kernels.data.validate import _near_pairs
from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model
from kernels.inference.bench import make_sentences

Records = list[tuple[str, str, bytes]]
T = TypeVar("T")


def smooth_image(rng: np.random.Generator, size: int) -> Image.Image:
    """A 6x6 random colour grid enlarged smoothly, plus noise: structure like a photo's."""
    grid = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    pixels = np.asarray(grid.resize((size, size), Image.Resampling.BICUBIC)).astype(np.int16)
    pixels = pixels + rng.integers(-20, 21, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def encoded(image: Image.Image, fmt: str = "PNG", **options: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, fmt, **options)
    return buffer.getvalue()


def record(data: bytes, label: str) -> tuple[str, str, bytes]:
    return hashlib.sha256(data).hexdigest(), label, data


def copies(image: Image.Image) -> dict[str, Image.Image]:
    """Near-duplicate versions of ``image``: resized, re-encoded as JPEG, both."""
    out: dict[str, Image.Image] = {}
    for scale in (0.5, 0.75, 1.5, 2.0):
        size = (max(8, int(image.width * scale)), max(8, int(image.height * scale)))
        out[f"resize {scale}x"] = image.resize(size, Image.Resampling.BILINEAR)
    for quality in (30, 50, 75, 95):
        out[f"jpeg q{quality}"] = Image.open(io.BytesIO(encoded(image, "JPEG", quality=quality)))
    half = image.resize((image.width // 2, image.height // 2))
    out["half + jpeg q60"] = Image.open(io.BytesIO(encoded(half, "JPEG", quality=60)))
    return out


def make_images(count: int, size: int, seed: int) -> tuple[Records, int, int]:
    """``count`` records: 80% distinct, 10% near copies, 10% exact copies (then shuffled)."""
    rng = np.random.default_rng(seed)
    shuffle = random.Random(seed)
    distinct = [smooth_image(rng, size) for _ in range(count - 2 * (count // 10))]
    records: Records = [record(encoded(im), f"class{i % 10}") for i, im in enumerate(distinct)]
    originals = list(records)
    near = [
        record(encoded(im, "JPEG", quality=70), "class0")
        for im in shuffle.sample(distinct, count // 10)
    ]
    exact = shuffle.sample(originals, count // 10)
    rest = near + exact
    shuffle.shuffle(rest)
    # Copies come after their originals: the first occurrence is the one kept.
    return originals + rest, len(near), len(exact)


def make_texts(count: int, seed: int) -> tuple[Records, int]:
    shuffle = random.Random(seed)
    sentences = make_sentences(count - count // 10, seed=seed)
    records = [record(s.encode(), f"topic{i % 5}") for i, s in enumerate(sentences)]
    edited = [
        s.upper().rstrip(".") + "!" for s in shuffle.sample(sentences, count // 10)
    ]  # the normalized-text rule catches these, whatever the cosine
    return records + [record(s.encode(), "topic0") for s in edited], len(set(edited))


def wire_sizes(records: Records) -> tuple[float, float]:
    raw = [len(data) for _, _, data in records]
    b64 = [4 * ((n + 2) // 3) for n in raw]
    return float(np.mean(raw)), float(np.mean(b64))


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def bench(args: argparse.Namespace) -> None:
    backend = numpy_backend()
    print(f"backend: {backend.name} ({backend.device})")
    images, near_planted, exact_planted = make_images(args.images, args.size, args.seed)
    validate_records("image-classification", images[:20])  # warm up Pillow's plugins
    seconds, report = timed(lambda: validate_records("image-classification", images))
    raw, b64 = wire_sizes(images)
    print(
        f"images: {len(images)} {args.size}x{args.size} PNG + JPEG copies, "
        f"{seconds:.2f} s, {len(images) / seconds:,.0f} records/s; "
        f"record bytes avg {raw:,.0f} raw, {b64:,.0f} base64"
    )
    print(
        f"  found {len(report.near_duplicates)} near duplicates (planted {near_planted}), "
        f"{len(report.duplicates)} duplicated hashes (planted {exact_planted} copies), "
        f"{len(report.invalid)} invalid"
    )
    try:
        model_dir = find_model_dir(None, {})
    except ModelMissing as err:
        print(f"texts: skipped, the model is not installed ({err})")
        model_dir = None
    if model_dir is not None:
        texts, edited = make_texts(args.texts, args.seed)
        with SentenceEncoder(load_model(model_dir, backend)) as encoder:
            encoder.encode([t.decode() for _, _, t in texts[:64]])  # warm up
            seconds, text_report = timed(
                lambda: validate_records("text-classification", texts, encode=encoder.encode)
            )
            encode_s, _ = timed(lambda: encoder.encode([t.decode() for _, _, t in texts]))
            workers = encoder.workers
        raw, b64 = wire_sizes(texts)
        print(
            f"texts: {len(texts)} sentences (all-MiniLM-L6-v2, {workers} encoder workers), "
            f"{seconds:.2f} s, {len(texts) / seconds:,.0f} records/s "
            f"(encoding alone {encode_s:.2f} s); record bytes avg {raw:.0f} raw, {b64:.0f} base64"
        )
        print(
            f"  found {len(text_report.near_duplicates)} near duplicates "
            f"(planted {edited} case and punctuation edits; the generator repeats some sentences), "
            f"{len(text_report.duplicates)} duplicated hashes, "
            f"{len(text_report.outliers)} outliers"
        )
    if args.pairs:
        rng = np.random.default_rng(args.seed)
        vectors = rng.standard_normal((args.pairs, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        matrix = backend.asarray(vectors)
        seconds, pairs = timed(lambda: list(_near_pairs(backend, matrix, 0.95)))
        print(
            f"near-duplicate search alone: {args.pairs:,} x 384 vectors in row blocks, "
            f"{seconds:.2f} s ({len(pairs)} pairs)"
        )


def hamming(a: Image.Image, b: Image.Image) -> int:
    return (phash(a) ^ phash(b)).bit_count()


def calibrate_images(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(args.seed)
    sets = {
        "smooth random 64x64": [smooth_image(rng, 64) for _ in range(100)],
        "noise 64x64": [
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(30)
        ],
    }
    if args.real_images:
        unique: dict[str, str] = {}
        for path in sorted(glob.glob(args.real_images, recursive=True)):
            with open(path, "rb") as file:
                unique.setdefault(hashlib.sha256(file.read()).hexdigest(), path)
        sets["real"] = [Image.open(path).convert("RGB") for path in sorted(unique.values())]
    print(f"image perceptual hash (threshold: at most {IMAGE_NEAR_BITS} bits apart)")
    for name, images in sets.items():
        worst: dict[str, int] = {}
        for image in images:
            for kind, copy in copies(image).items():
                worst[kind] = max(worst.get(kind, 0), hamming(image, copy))
        hashes = [phash(image) for image in images]
        apart = [(a ^ b).bit_count() for a, b in itertools.combinations(hashes, 2)]
        print(f"  {name} ({len(images)}): copies at most {max(worst.values())} bits apart")
        print("    " + ", ".join(f"{kind} {bits}" for kind, bits in worst.items()))
        print(
            f"    distinct pairs: min {min(apart)}, mean {np.mean(apart):.1f}, "
            f"{sum(d <= IMAGE_NEAR_BITS for d in apart)} of {len(apart)} within the threshold"
        )


NEAR_TEXTS = [
    ("I love this movie, it was great.", "I love this movie it was great"),
    ("The cat sat on the mat.", "THE CAT SAT ON THE MAT!"),
    ("Heavy rain is expected tomorrow morning.", "Heavy rain is expected tomorrow morning!!!"),
    ("Heavy rain is expected tomorrow morning.", "Tomorrow morning heavy rain is expected."),
    ("Heavy rain is expected tomorrow morning.", "Heavy rain is expected for tomorrow morning."),
    ("Simmer the sauce for twenty minutes.", "Simmer the sauce for 20 minutes."),
    ("Simmer the sauce for twenty minutes.", "Let the sauce simmer for twenty minutes."),
    ("I love this movie, it was great.", "I love this film, it was great."),
    ("I love this movie, it was great.", "I loved this movie, it was great."),
]
DISTINCT_TEXTS = [
    ("I love this movie, it was great.", "I hate this movie, it was terrible."),
    ("Heavy rain is expected tomorrow morning.", "Heavy snow is expected tomorrow morning."),
    ("Heavy rain is expected tomorrow morning.", "Light rain is expected tomorrow morning."),
    ("Simmer the sauce for twenty minutes.", "Simmer the sauce for ten minutes."),
    ("The price went up.", "The price went down."),
    ("Turn left at the bank.", "Turn right at the bank."),
    ("Heavy rain is expected tomorrow morning.", "Heavy rain is expected tomorrow evening."),
    ("The striker scored twice in the second half.", "The striker scored twice in the first half."),
    (
        "The new phone has a great camera and long battery life.",
        "The new phone has a great camera and short battery life.",
    ),
]
TOPICS = {
    "sports": [
        "The striker scored twice in the second half.",
        "The home team won the championship final.",
        "She broke the world record in the 100 metres.",
        "The coach was sacked after five straight defeats.",
        "Tickets for the derby sold out in minutes.",
    ],
    "cooking": [
        "Simmer the sauce for twenty minutes.",
        "Knead the dough until it is smooth.",
        "Season the chicken with salt and pepper.",
        "Chop the onions finely before frying them.",
        "Bake the cake at 180 degrees for forty minutes.",
    ],
    "weather": [
        "Heavy rain is expected tomorrow morning.",
        "Temperatures will drop below freezing tonight.",
        "A storm warning has been issued for the coast.",
        "It will be sunny with light winds this afternoon.",
        "Snow is forecast for the mountains this weekend.",
    ],
}
SENTIMENT = {
    "positive": [
        "I loved every minute of this film.",
        "Great service and friendly staff.",
        "This is the best phone I have ever owned.",
        "What a wonderful experience, highly recommended.",
        "The hotel room was spotless and comfortable.",
    ],
    "negative": [
        "The food was cold and tasteless.",
        "Worst customer service I have ever had.",
        "The battery died after one day.",
        "I want my money back, this is awful.",
        "The room was dirty and noisy all night.",
    ],
}
FLIPPED = [
    ("This was a terrible waste of money.", "positive"),
    ("Absolutely fantastic, I would buy it again.", "negative"),
]
MISPLACED = [
    ("Whisk the eggs and fold in the flour.", "sports"),
    ("The goalkeeper saved a penalty in extra time.", "weather"),
    ("Expect strong winds and showers on Friday.", "cooking"),
    ("The referee showed him a red card.", "cooking"),
]


def margins(encoder: SentenceEncoder, groups: dict[str, list[str]]) -> dict[str, float]:
    """text -> (best other label's centroid cosine) - (own centroid without it)."""
    texts = [t for members in groups.values() for t in members]
    labels = [label for label, members in groups.items() for _ in members]
    vectors = encoder.encode(texts)
    sums = {name: vectors[[i for i, x in enumerate(labels) if x == name]].sum(0) for name in groups}
    out: dict[str, float] = {}
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        own = sums[label] - vectors[i]
        best = max(
            float(vectors[i] @ sums[name]) / float(np.linalg.norm(sums[name]))
            for name in groups
            if name != label
        )
        out[text] = best - float(vectors[i] @ own) / float(np.linalg.norm(own))
    return out


def calibrate_texts() -> None:
    try:
        model_dir = find_model_dir(None, {})
    except ModelMissing as err:
        print(f"texts: skipped, the model is not installed ({err})")
        return
    with SentenceEncoder(load_model(model_dir, numpy_backend()), workers=1) as encoder:
        for title, pairs in (("near copies", NEAR_TEXTS), ("distinct", DISTINCT_TEXTS)):
            print(f"text pairs, {title} (cosine; '=' when equal once normalized):")
            for a, b in pairs:
                va, vb = encoder.encode([a, b])
                same = "=" if normalized_text(a) == normalized_text(b) else " "
                print(f"  {float(va @ vb):.3f} {same} {a} | {b}")
        sets = (("topics", TOPICS, MISPLACED), ("sentiment", SENTIMENT, FLIPPED))
        for title, base, wrong in sets:
            normal = margins(encoder, base)
            print(f"label margins, {title}: members at most {max(normal.values()):+.3f}")
            for text, label in wrong:
                groups = {name: list(members) for name, members in base.items()}
                groups[label].append(text)
                print(f"  misplaced in {label}: {margins(encoder, groups)[text]:+.3f} {text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=0, help="also time N x N vector search")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibrate", action="store_true", help="print calibration figures")
    parser.add_argument("--real-images", default="", help="glob of real images to calibrate")
    args = parser.parse_args()
    if args.calibrate:
        calibrate_images(args)
        calibrate_texts()
    else:
        bench(args)


if __name__ == "__main__":
    main()
