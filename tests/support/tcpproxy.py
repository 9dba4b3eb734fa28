"""A TCP proxy that can cut every live connection and refuse new ones on command.

It runs an asyncio loop in a thread of its own, so blocking test code can drive it. The services
connect to the proxy instead of Kafka or PostgreSQL; ``cut()`` resets every connection at once (what a
failed switch or a restarted load balancer does), ``refuse()`` / ``accept()`` close and reopen the door.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class TcpProxy:
    def __init__(self, listen_port: int, target_port: int, host: str = "127.0.0.1") -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.host = host
        self.accepting = True
        # Seconds between one side closing and the proxy closing the other: what a slow network shows,
        # everything already sent arriving well before the end of the connection.
        self.close_delay = 0.0
        self.connections = 0
        self.cuts = 0
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy-{listen_port}", daemon=True)
        self._server: asyncio.Server | None = None

    def start(self) -> TcpProxy:
        self._thread.start()
        self._server = self._call(
            asyncio.start_server(self._handle, self.host, self.listen_port, reuse_address=True, backlog=512)
        )
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            self._abort_all()

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def cut(self) -> int:
        """Reset every live connection; returns how many were cut."""

        async def run() -> int:
            return self._abort_all()

        n = self._call(run())
        self.cuts += 1
        return n

    def refuse(self) -> int:
        """New connections are closed at once (live ones are cut too); returns how many were cut."""
        self.accepting = False
        return self.cut()

    def accept(self) -> None:
        self.accepting = True

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def _abort_all(self) -> int:
        # Pairs are registered together, so half the writers are one connection each.
        n = len(self._writers) // 2
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    # SO_LINGER 0: close with an RST, as a real cut looks to both ends.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                w.transport.abort()
        self._writers.clear()
        return n

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            # The target is down (a restart in progress): the client sees a reset, as it would directly.
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        self._writers.discard(writer)
        self._writers.discard(up_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            # One side ended: end the other, so neither end is left half open.
            if self.close_delay:
                await asyncio.sleep(self.close_delay)
            with contextlib.suppress(Exception):
                writer.close()
