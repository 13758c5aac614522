"""A stand-in for ``ssh -N -L LOCAL_SOCK:REMOTE_SOCK ... -- user@host`` on this machine.

It listens on LOCAL_SOCK (mode 0600, as OpenSSH's StreamLocalBindMask makes it) and copies
each connection to and from REMOTE_SOCK, until SIGTERM: the fleet's ssh forward, without a
remote host. Every other option is accepted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(argv: list[str]) -> int:
    local, remote = argv[argv.index("-L") + 1].split(":", 1)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            far_reader, far_writer = await asyncio.open_unix_connection(remote)
        except OSError as exc:
            print(f"channel 2: open failed: connect failed: {exc.strerror}", file=sys.stderr)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, far_writer), _pipe(far_reader, writer))

    old = os.umask(0o177)
    server = await asyncio.start_unix_server(forward, path=local)
    os.umask(old)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(local)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
