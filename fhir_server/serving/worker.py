"""The gunicorn worker class of ``fhir-server serve``: gunicorn stays the process manager (arbiter,
signals, restarts, WEB_CONCURRENCY processes); each worker runs the front
(:mod:`.front`) on an asyncio event loop instead of serving one connection at a time.

    gunicorn --worker-class fhir_server.serving.worker.FrontWorker ... "fhir_server.app:create_app()"

SIGTERM stops gracefully: no new connections, idle ones closed, requests in hand answered within
gunicorn's graceful timeout. SIGINT and SIGQUIT stop at once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import typing as t

from gunicorn.workers import base

from ..config import Settings
from .front import Front


class FrontWorker(base.Worker):
    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.quick = False
        self.stopping: asyncio.Event | None = None

    def init_process(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.stopping = asyncio.Event()
        super().init_process()

    def init_signals(self) -> None:
        assert self.loop is not None
        for s in self.SIGNALS:
            signal.signal(s, signal.SIG_DFL)
        self.loop.add_signal_handler(signal.SIGTERM, self._stop, False)
        self.loop.add_signal_handler(signal.SIGINT, self._stop, True)
        self.loop.add_signal_handler(signal.SIGQUIT, self._stop, True)
        self.loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        self.loop.add_signal_handler(signal.SIGWINCH, lambda: None)
        self.loop.add_signal_handler(signal.SIGABRT, self._abort)

    def _stop(self, quick: bool) -> None:
        if quick and self.alive:
            self.cfg.worker_int(self)
        self.quick = self.quick or quick
        self.alive = False
        assert self.stopping is not None
        self.stopping.set()

    def _abort(self) -> None:
        self.alive = False
        self.cfg.worker_abort(self)
        sys.exit(1)

    def run(self) -> None:
        assert self.loop is not None
        try:
            self.loop.run_until_complete(self._serve())
        finally:
            self.loop.close()

    async def _serve(self) -> None:
        assert self.stopping is not None
        front = Front(self.wsgi, Settings(), cfg=self.cfg)
        # gunicorn hands workers its socket wrappers (gunicorn.sock.BaseSocket), not the sockets its stubs say
        servers = [await asyncio.start_server(front.connected, sock=listener.sock)  # type: ignore[attr-defined]
                   for listener in self.sockets]
        while self.alive:
            # A request stuck in the app longer than gunicorn's timeout stops the heartbeat, so the
            # arbiter restarts this worker.
            if front.oldest_call_seconds() < self.timeout:
                self.notify()
            front.bodies.return_memory()  # after a burst of bodies, not at each one
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            try:
                await asyncio.wait_for(self.stopping.wait(), 1.0)
            except TimeoutError:
                pass
        for server in servers:
            server.close()
        await front.shutdown(0 if self.quick else self.cfg.graceful_timeout)
