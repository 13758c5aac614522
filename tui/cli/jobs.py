"""Inference on the network: ``infer --network`` submits a job, ``jobs`` lists them.

The job goes through a node (the running one, or one started for the command); the
coordinator splits it into tasks, has each computed by two nodes and compared, and returns
the agreed vectors. The requester pays the fee from its OMNIT only when the job is delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
import time
from typing import IO, Any

from core.api.commands import GetJobResult, GetJobs, SubmitJob
from core.api.network import JobInfo, JobResult
from core.config import Config
from core.errors import CommandError, ConfigError
from core.textsafe import printable
from tui.cli.network import node_session
from tui.cli.output import print_json
from tui.format import omnit_label

POLL_S = 0.5
PAGE = 256


def add_jobs_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    jobs = sub.add_parser("jobs", parents=[common], help="this node's inference jobs and costs")
    jobs.add_argument("--limit", type=int, default=20, metavar="N", help="rows (default 20)")


def run(args: argparse.Namespace, config: Config, as_json: bool) -> int | None:
    if args.command == "jobs":
        if not 1 <= args.limit <= 1000:
            raise ConfigError(f"--limit {args.limit}: must be 1..1000")
        return asyncio.run(_jobs(config, args.limit, as_json))
    if args.command == "infer" and getattr(args, "network", False):
        texts = read_texts(args)
        return asyncio.run(_infer(config, texts, args.wait, as_json))
    return None


def read_texts(args: argparse.Namespace) -> list[str]:
    """TEXT arguments or the non-empty lines of --file (strict UTF-8, the line named)."""
    from tui.cli.inference import _Lines

    if args.similarity is not None:
        raise ConfigError("--similarity runs locally: drop --network")
    if args.text and args.file:
        raise ConfigError("give TEXT arguments or --file, not both")
    if args.file is None:
        texts = [t for t in args.text if t.strip()]
        for number, text in enumerate(texts, start=1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ConfigError(f"TEXT argument {number} is not valid UTF-8") from None
    else:
        try:
            stream: IO[bytes] = (
                sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
            )
        except OSError as err:
            raise ConfigError(f"cannot read {args.file}: {err.strerror or err}") from None
        try:
            texts = list(_Lines(stream, args.file, 1 << 30))
        except Exception as err:  # InferenceError: the line that is not UTF-8
            raise ConfigError(str(err)) from None
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()
    if not texts:
        raise ConfigError("nothing to embed: give TEXT or --file FILE")
    return texts


async def _infer(config: Config, texts: list[str], wait_s: float, as_json: bool) -> int:
    async with node_session(config) as client:
        submitted = await client.command(SubmitJob(texts=texts))
        print(
            f"job {submitted.job_id}: {submitted.sentences} sentences in {submitted.tasks} "
            f"task(s), fee {omnit_label(submitted.fee, grouped=False)} held until delivery",
            file=sys.stderr,
        )
        deadline = time.monotonic() + wait_s
        while True:
            result = await client.command(GetJobResult(job_id=submitted.job_id, limit=1))
            if result.state != "running":
                break
            if time.monotonic() > deadline:
                raise CommandError(
                    f"job {submitted.job_id} still running after {wait_s:g} s; see `omnitensor "
                    "jobs` (the fee is charged only if it is delivered)"
                )
            await asyncio.sleep(POLL_S)
        if result.state != "delivered":
            raise CommandError(
                f"job {submitted.job_id} failed: {result.reason} (the fee was refunded)"
            )
        pages = [await _page(client, submitted.job_id, o) for o in range(0, len(texts), PAGE)]
    _print_vectors(texts, pages, as_json)
    _print_provenance(pages[0] if pages else result)
    return 0


async def _page(client: Any, job_id: str, offset: int) -> JobResult:
    page: JobResult = await client.command(GetJobResult(job_id=job_id, offset=offset, limit=PAGE))
    return page


def _print_vectors(texts: list[str], pages: list[JobResult], as_json: bool) -> None:
    import msgspec
    import numpy as np

    out = sys.stdout.buffer
    encode = msgspec.json.Encoder().encode
    for page in pages:
        raw = base64.b64decode(page.embeddings_b64)
        vectors = np.frombuffer(raw, dtype="<f4").reshape(page.count, page.dim)
        for index, vector in enumerate(vectors):
            text = texts[page.offset + index]
            if as_json:
                rounded = np.round(vector.astype(np.float64), 7).tolist()
                out.write(encode({"text": text, "embedding": rounded}) + b"\n")
            else:
                head = " ".join(f"{v:+.4f}" for v in vector[:4].tolist())
                line = f"[{head} ... {float(vector[-1]):+.4f}] ({len(vector)} dims)  {text}\n"
                out.write(line.encode("utf-8", errors="replace"))
    out.flush()


def _print_provenance(result: JobResult) -> None:
    for task in result.tasks:
        workers = ", ".join(w[:12] for w in task.workers)
        similarity = (
            "" if task.min_similarity is None else f", min cosine {task.min_similarity:.6f}"
        )
        line = f"  task {task.task_id}: sentences {task.first + 1}-{task.first + task.count}, "
        line += f"agreed by {workers}{similarity}"
        for node, why in task.rejected.items():
            line += f"; rejected {node[:12]}: {why}"
        print(printable(line), file=sys.stderr)
    print(
        f"job {result.job_id} delivered: charged {omnit_label(result.fee, grouped=False)}",
        file=sys.stderr,
    )


async def _jobs(config: Config, limit: int, as_json: bool) -> int:
    async with node_session(config) as client:
        listing = await client.command(GetJobs(limit=limit))
    if as_json:
        print_json(listing)
        return 0
    if not listing.jobs:
        print("no jobs yet: submit one with `omnitensor infer --network TEXT ...`")
        return 0
    print(f"{'JOB':<26} {'STATE':<10} {'SENTENCES':>9} {'COST':>16}  SUBMITTED")
    for job in listing.jobs:
        print(_job_line(job))
    return 0


def _job_line(job: JobInfo) -> str:
    cost = omnit_label(job.fee if job.state == "delivered" else 0, grouped=False)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job.submitted_ts))
    line = f"{job.job_id:<26} {job.state:<10} {job.sentences:>9} {cost:>16}  {when}"
    if job.reason:
        line += f"  ({job.reason})"
    return printable(line)
