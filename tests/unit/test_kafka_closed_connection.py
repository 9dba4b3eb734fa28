"""A Kafka connection the broker closed is a connection error under uvloop too, so the producer retries.

uvloop raises RuntimeError when a closed transport is written to, where asyncio's raises an OSError that
aiokafka turns into KafkaConnectionError; the RuntimeError used to end the producer's sender for good
(every later send: "Unexpected error during batch delivery"). libs/common's kafka module makes it a
KafkaConnectionError. A socket pair stands for the broker's connection: no network, no broker.
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

import cte_common.kafka  # noqa: F401  (its import makes the change)


async def _send_on_a_connection_the_peer_closed() -> None:
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    theirs.close()
    await reader.read()  # end of stream: the broker went away
    writer.transport.close()
    await asyncio.sleep(0)
    conn = AIOKafkaConnection("127.0.0.1", 9092)
    read_task = asyncio.get_running_loop().create_future()
    read_task.set_result(None)
    conn._reader, conn._writer, conn._versions, conn._read_task = reader, writer, {3: (0, 0)}, read_task
    conn.send(MetadataRequest([]))


def test_a_write_to_a_closed_connection_under_uvloop_is_a_connection_error() -> None:
    with pytest.raises(KafkaConnectionError, match="broken"):
        uvloop.run(_send_on_a_connection_the_peer_closed())
