"""``GET /healthz`` and ``GET /metrics`` on ``$PORT`` (only when PORT is set).

Healthy means the scheduler ticked recently and the database answers; a
platform's health check can then restart a wedged worker. The database ping
runs on the endpoint's own thread, so polls busy in the shared thread pool never
delay the answer; during a database outage the answer is 503 with
``"database": "unreachable"`` and ``outage_since``, and 200 again once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.metrics import REGISTRY

STALE_TICK_SECONDS = 30.0


@contextlib.asynccontextmanager
async def serve_health(worker: Any, port: int, host: str = "0.0.0.0") -> AsyncIterator[int]:
    """Serve the two endpoints for as long as the context is open; yields the bound port."""

    pinger = ThreadPoolExecutor(max_workers=2, thread_name_prefix="healthz")

    async def healthz(_: web.Request) -> web.Response:
        now = worker.clock()
        last = worker.last_tick
        ticking = last is not None and (now - last).total_seconds() < STALE_TICK_SECONDS
        loop = asyncio.get_running_loop()
        try:
            database = await asyncio.wait_for(loop.run_in_executor(pinger, worker.store.ping), 5)
        except Exception:
            database = False
        outage = getattr(worker, "outage", None)
        since = outage.down_since if outage is not None and not database else None
        healthy = ticking and database
        body = {
            "status": "ok" if healthy else "unhealthy",
            "scheduler": "ok" if ticking else "stalled",
            "database": "ok" if database else "unreachable",
            "last_tick": last.isoformat(timespec="seconds") if last else None,
            "outage_since": since.isoformat(timespec="seconds") if since else None,
            "config_version": worker.settings.version,
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = cast(asyncio.Server | None, site._server)  # aiohttp keeps the bound server here
    bound = server.sockets[0].getsockname()[1] if server else port
    try:
        yield bound
    finally:
        await runner.cleanup()
        pinger.shutdown(wait=False)
