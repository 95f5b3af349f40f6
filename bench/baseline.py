"""The baseline: a bare Litestar endpoint that only reads the raw body and answers 200.

Served like ``ledger serve`` serves the receiver: one process, one uvicorn server
(the same ``uvicorn.Server`` subclass) on a pre-bound socket with a listen backlog of
2048, ``log_level="info"``, access log off, lifespan on, uvicorn's default (auto)
event loop and HTTP implementation.

The listening socket comes from ``ledger.serve.bind`` (``IPPROTO_TCP``, so accepted
connections get ``TCP_NODELAY``), and the process freezes its start-up objects out of
the garbage collector as ``ledger serve`` does.

    python -m bench.baseline --port 8100
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import signal

import uvicorn
from litestar import Litestar, MediaType, Request, Response, get, post

from ledger.listen import ACCEPT_BATCH, bind
from ledger.serve import _Server


@post("/orderdesk", status_code=200, media_type=MediaType.TEXT)
async def receive(request: Request) -> Response[str]:  # type: ignore[type-arg]
    body = await request.body()
    return Response(f"read {len(body)} bytes\n", status_code=200, media_type=MediaType.TEXT)


@get("/healthz", media_type=MediaType.JSON)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def create_app() -> Litestar:
    return Litestar(route_handlers=[receive, healthz], openapi_config=None)


async def serve(host: str, port: int) -> None:
    sock = bind(host, port, "the baseline")
    gc.collect()
    gc.freeze()
    server = _Server(
        uvicorn.Config(
            create_app(), log_level="info", lifespan="on", access_log=False, backlog=ACCEPT_BATCH
        )
    )
    loop = asyncio.get_running_loop()

    def shutdown() -> None:
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown)
    await server.serve(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
