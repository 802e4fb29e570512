"""An MCP server on stdio: its process started in a process group of its own, its messages
read line by line through a :class:`~proxy.tools.cutting.Cutter`, and the whole group
ended when the connection closes.

The SDK's own stdio transport reads a line whole, adding each read to all it read before
(a 10 MB answer took seconds, a 100 MB one more than five minutes, its memory growing all
the while); this one keeps only what the cutter keeps. What a message means is still the
SDK's: each line is parsed into its JSON-RPC types, and the process group is ended by its
POSIX helper.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from typing import IO, AsyncIterator, Mapping, Union

import anyio
from mcp.client.stdio import DEFAULT_INHERITED_ENV_VARS
from mcp.os.posix.utilities import terminate_posix_process_tree

from proxy.config.catalog import McpServerSpec
from proxy.tools.cutting import Cutter, TooLong
from proxy.tools.transport import Link, message_of

log = logging.getLogger(__name__)

EXIT_WAIT = 2.0  # seconds a server has to exit once its input closes, then again after SIGTERM


@contextlib.asynccontextmanager
async def stdio_transport(
    spec: McpServerSpec,
    environ: Mapping[str, str],
    stderr: Union[IO, int, None],
    link: Link,
    most: int,
) -> AsyncIterator[tuple]:
    """The streams of a session with the server ``spec`` runs: its program started with a
    few of ``environ``'s variables (the SDK's safe list) and its own ``env``, its standard
    error to ``stderr``. Each line the server writes keeps ``spec.max_output_bytes`` of its
    long strings and ``most`` bytes in all; past that, the transport ends. ``link`` is
    told why it ended, when it does."""
    env = {name: environ[name] for name in DEFAULT_INHERITED_ENV_VARS if name in environ}
    process = await anyio.open_process(
        list(spec.command),
        env={**env, **dict(spec.env)},
        cwd=spec.cwd or None,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        start_new_session=True,
    )
    reader_in, reader_out = anyio.create_memory_object_stream(0)
    writer_in, writer_out = anyio.create_memory_object_stream(0)

    async def read() -> None:
        cutter, line = Cutter(spec.max_output_bytes, most), []
        async with reader_in:
            try:
                async for chunk in process.stdout:
                    for piece, cut in cutter.pieces(chunk):
                        line.append(piece)
                        if cut is None:
                            continue
                        data, line = b"".join(line), []
                        if data.strip():
                            await reader_in.send(message_of(data, cut))
                with anyio.move_on_after(EXIT_WAIT):  # for its exit code
                    await process.wait()
                link.end(_exited(process))
            except TooLong:
                link.end(f"it wrote a message of more than {most} bytes")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                link.end(_exited(process))

    async def write() -> None:
        async with writer_out:
            try:
                async for message in writer_out:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                link.end("its standard input closed")
                await reader_in.aclose()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            tasks.start_soon(write)
            try:
                yield reader_out, writer_in
            finally:
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)
            await reader_out.aclose()
            await writer_in.aclose()


def _exited(process) -> str:
    code = process.returncode
    return "its process ended" + (f" (exit code {code})" if code is not None else "")


async def _stop(process) -> None:
    """End the server as the protocol says: its input closed, a while to exit, then its
    whole process group signalled (SIGTERM, then SIGKILL)."""
    with contextlib.suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    with anyio.move_on_after(EXIT_WAIT):
        await process.wait()
    if process.returncode is None:
        log.info("an MCP server did not exit when its input closed; signalling its group")
    await terminate_posix_process_tree(process, EXIT_WAIT)  # its children too
    with anyio.move_on_after(EXIT_WAIT):
        await process.aclose()
