"""Data contribution and validation over the network: throughput and bytes per record.

Run ``python -m tests.bench.data_network_bench [--images 300] [--texts 1000]``.

A real Mosquitto, the real coordinator and four real nodes in this process (as in
``tests/integration/test_data_network.py``). One node contributes an image dataset (64 x 64
PNGs, a tenth of them resized JPEG copies) and a text dataset (JSONL, with near copies);
two others validate each. Reported, per dataset:

- the upload: records/s, and the bytes the requests carried per record (manifest line and
  base64 pieces; each request's signed envelope adds about 400 bytes on top, and one
  request carries up to 384 KiB of records);
- each validation, end to end (take the task, fetch every record, validate, report):
  records/s and fetched bytes per record;
- the kernel alone (``validate_records`` on the same records, no network): records/s.

Every node shares this machine's cores with the broker and the coordinator.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import tempfile
import time
from pathlib import Path

from PIL import Image

from core.node.data_work import contribute, validate_one
from kernels.backend import numpy_backend
from kernels.data import Encode, validate_records
from kernels.inference import ModelMissing, SentenceEncoder, find_model_dir, load_model
from tests.helpers.broker import MosquittoProcess
from tests.integration.test_data_network import DATA, image_bytes, network, read_local


def image_dataset(root: Path, count: int) -> Path:
    rng = random.Random(7)
    for i in range(count):
        label = f"class{i % 5}"
        (root / label).mkdir(parents=True, exist_ok=True)
        if i % 10 == 9:  # a resized JPEG copy of an earlier image
            copy = Image.open(io.BytesIO(image_bytes(rng.randrange(i), size=64)))
            copy.resize((96, 96)).convert("RGB").save(root / label / f"{i:05d}.jpg", "JPEG")
        else:
            (root / label / f"{i:05d}.png").write_bytes(image_bytes(i, size=64))
    return root


def text_dataset(path: Path, count: int) -> Path:
    subjects = ("The engineer", "A child", "My neighbour", "The captain", "A nurse", "Our team")
    verbs = ("repairs", "describes", "photographs", "sells", "paints", "forgets", "finds")
    objects = ("a broken radio", "the harbour", "three apples", "the final exam", "a letter")
    lines: list[tuple[str, str]] = []
    for i in range(count):
        text = f"{subjects[i % 6]} {verbs[i // 6 % 7]} {objects[i // 42 % 5]} (note {i})"
        if i % 10 == 9:
            text = lines[i - 5][0].upper()  # a near copy: the same words in capitals
        lines.append((text, f"topic{i % 4}"))
    path.write_text(
        "".join(json.dumps({"text": t, "label": label}) + "\n" for t, label in lines),
        encoding="utf-8",
    )
    return path


async def bench(args: argparse.Namespace) -> None:
    encode: Encode | None
    try:
        model = load_model(find_model_dir(None, {}), numpy_backend())
        encode = SentenceEncoder(model, workers=1).encode
    except ModelMissing:
        encode = None
        print("text: skipped (the model package is not installed)")
    with tempfile.TemporaryDirectory() as tmp, MosquittoProcess(Path(tmp) / "broker") as broker:
        root = Path(tmp)
        datasets: list[tuple[str, Path, Encode | None]] = [
            ("images", image_dataset(root / "images", args.images), None)
        ]
        if encode is not None:
            datasets.append(("texts", text_dataset(root / "texts.jsonl", args.texts), encode))
        async with network(root / "net", broker.url) as (_coordinator, nodes):
            alice, bob, carol, _dave = nodes
            names = {bob.node_id: "bob", carol.node_id: "carol"}
            for name, path, encoder in datasets:
                data = await read_local(path)
                count = len(data.records)
                started = time.perf_counter()
                done = await contribute(alice, name, data)
                upload_s = time.perf_counter() - started
                print(
                    f"{name}: {count} records, {data.total_bytes / count:,.0f} bytes each on "
                    f"average; upload {count / upload_s:,.0f} records/s, "
                    f"{done.wire_bytes / count:,.0f} request bytes per record"
                )
                for validator in (bob, carol):
                    started = time.perf_counter()
                    result = await validate_one(
                        validator, dataset=name, kinds=[data.kind], encode=encoder
                    )
                    took = time.perf_counter() - started
                    assert result is not None
                    print(
                        f"  validation by {names[validator.node_id]}: "
                        f"{count / took:,.0f} records/s end to end ({took:.2f} s), "
                        f"{result.wire_bytes / count:,.0f} fetched bytes per record; "
                        f"{result.outcome.state}"
                    )
                items = list(data.items())
                started = time.perf_counter()
                validate_records(data.kind, items, encode=encoder)
                took = time.perf_counter() - started
                print(f"  kernel alone: {count / took:,.0f} records/s ({took:.2f} s)")
    print(
        f"rewards: {DATA.validator_reward} base units per validated record, "
        f"{DATA.contributor_reward} per paid contributed record"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--texts", type=int, default=1000)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
