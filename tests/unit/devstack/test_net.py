"""The stack's pre-bound listening socket, as asyncio servers (uvicorn) use it."""

from __future__ import annotations

import asyncio
import socket

from audiolift_devstack.net import LOOPBACK, bound_socket


def test_connections_accepted_by_an_asyncio_server_send_small_writes_at_once() -> None:
    # asyncio turns Nagle's algorithm off only on sockets made for IPPROTO_TCP; with it
    # on, an answer whose body follows its headers waited for the client's delayed ACK.
    async def accepted_nodelay() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def on_connection(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connection, sock=bound_socket(LOOPBACK, 0))
        async with server:
            port = server.sockets[0].getsockname()[1]
            _, writer = await asyncio.open_connection(LOOPBACK, port)
            try:
                return await asyncio.wait_for(seen, 5)
            finally:
                writer.close()

    assert asyncio.run(accepted_nodelay()) != 0
