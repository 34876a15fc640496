"""The front: reads each request whole on the event loop, within deadlines and MAX_BODY_BYTES, then
runs it in the app on a thread of a bounded pool.

One task a connection, HTTP/1.1 by h11 (parsing, framing, keep-alive, ``Expect: 100-continue``).
A client holds a task and a few kilobytes, never a thread, while it sends its head, and its body's
bytes out of the worker's body budget while it sends that: a thread is taken only by a request that
has arrived whole. Per request:

- request line and headers within ``HEADER_TIMEOUT_SECONDS`` (at most :data:`MAX_HEAD_BYTES` in
  :data:`MAX_HEADER_FIELDS` fields, else 431; valid HTTP/1.x, else 400, or 505 for another version);
  past the time 408 if part of them came, else the idle connection is closed;
- the body within ``BODY_TIMEOUT_SECONDS`` (else 408) and at most ``MAX_BODY_BYTES`` however it
  is framed, counted as it arrives (else 413, before the app sees any of it);
- bodies held by all of the worker's connections together within ``BODY_BUFFER_BYTES``
  (:class:`BodyBudget`; else 503 with Retry-After);
- requests that need no database (:data:`NO_DATABASE_PATHS`) run on a pool of their own, so they
  are answered while every app thread waits on the database; and the app's answer to each is kept
  (:meth:`Front.answer_public`), so the same request again is answered on the event loop, with no
  thread, in microseconds;
- readiness and metrics (:data:`PROBE_PATHS`) run on a pool of their own too, never kept: a probe
  is answered, within its own bound, while every app thread waits on a frozen database.

Every refusal is an OperationOutcome (the envelope under ``/v1/``) and closes the connection; an
exception that escapes the app is logged and answered 500 (EM01100). What the front answers without
the app (refusals, kept answers, that 500) goes to the request log and the metrics as the app's
answers do.
"""

from __future__ import annotations

import asyncio
import ctypes
import email.utils
import http
import logging
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

import h11

from .. import audit, logs, metrics
from ..config import Settings
from ..envelope import new_request_id
from ..outcome import Issue, Msg, issue
from .answers import Answer, refusal
from .wsgi import WsgiApp, build_environ, call_app, request_path

MAX_HEAD_BYTES = 32 * 1024  # request line and headers, as nginx's large_client_header_buffers (4 x 8k)
MAX_HEADER_FIELDS = 100  # gunicorn's limit_request_fields
# Chunks of one chunked body. Each costs the event loop a parser event whatever its size, so a body
# sent one byte a chunk would cost a million of them (seconds of a worker's time, for no key at all).
# Clients chunk by their write buffer (4-64 KiB); 1024 lets a 1 MiB body come in 1 KiB chunks.
MAX_BODY_CHUNKS = 1024
# Served from memory (auth.PUBLIC_ENDPOINTS: no key, no rate-limit count, no database).
NO_DATABASE_PATHS = frozenset({"/metadata", "/openapi.json", "/healthz"})
NO_DATABASE_THREADS = 2
# Readiness (which waits at most http/probes.READY_TIMEOUT_SECONDS for the database) and the metrics.
PROBE_PATHS = frozenset({"/readyz", "/metrics"})
PROBE_THREADS = 2
PUBLIC_ANSWERS_KEPT = 64  # distinct requests for them whose answers a worker keeps (least recently used go)
# What an answer of NO_DATABASE_PATHS depends on, besides the app: the method, the target (``_format``,
# ``_pretty``), Accept (negotiation), Accept-Encoding (gzip), Origin (CORS), Host, scheme and listener
# (the base URL written in the document).
_PUBLIC_KEY = ("REQUEST_METHOD", "RAW_URI", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_ORIGIN", "HTTP_HOST",
               "wsgi.url_scheme", "SERVER_NAME", "SERVER_PORT")
# ... and what a proxy forwards, which counts only if the peer is a trusted one (http/hosts.py).
_FORWARDED_KEY = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT")
RETURN_AFTER_BYTES = 16 * 1024 * 1024  # bodies freed before their memory is handed back (BodyBudget.return_memory)
LINGER_SECONDS = 2.0  # after a refusal, how long unread input is drained so the client sees the answer
_READ_SIZE = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", "proxy-connection"}

log = logging.getLogger(__name__)


class Refused(Exception):
    """The request cannot go on: answer ``found`` (if there is still someone to answer) and close."""

    def __init__(self, found: Issue | None = None, status: int | None = None, request: h11.Request | None = None) -> None:
        self.issue, self.status, self.request = found, status, request


class BodyBudget:
    """The bytes of request bodies a worker holds in memory, across all its connections, and their limit.

    Policy: a body framed by Content-Length takes its whole length from its headers, before a byte of
    it is read (or asked for with ``100 Continue``): one that does not fit is refused at once, so its
    client sends nothing in vain, and one taken in is never refused part-way for want of room. A
    chunked body, whose length is unknown, takes its bytes as they arrive. What a request took is
    given back when its answer is written or it is refused (and by its connection's end in any case).
    A client that sends headers and stalls holds its share for ``BODY_TIMEOUT_SECONDS`` at most.
    Used only from the event loop's thread, so it needs no lock.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.freed = 0  # given back since the memory was last returned to the system (return_memory)

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give_back(self, size: int) -> None:
        self.used -= size
        self.freed += size

    def return_memory(self) -> None:
        """Hand the memory of bodies freed since last time back to the system, once they come to
        :data:`RETURN_AFTER_BYTES`. The C allocator keeps freed blocks of this size for reuse (it raises
        its threshold for mapping them on their own after the first is freed), so without this a burst
        of large bodies leaves the worker at its peak size for good. Called once a second by the
        worker; a trim after 150 MB of bodies takes the event loop ~13 ms."""
        if self.freed >= RETURN_AFTER_BYTES and _malloc_trim is not None:
            self.freed = 0
            _malloc_trim(0)


def _find_malloc_trim() -> t.Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc's; other C libraries (musl) go without
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()


class Front:
    """The per-worker state: the app, its thread pools, the live connections."""

    def __init__(self, app: WsgiApp, settings: Settings, *, cfg: t.Any = None) -> None:
        self.app = app
        self.settings = settings
        self.cfg = cfg
        self.alive = True
        self.app_pool = ThreadPoolExecutor(settings.app_threads, thread_name_prefix="app")
        self.no_database_pool = ThreadPoolExecutor(NO_DATABASE_THREADS, thread_name_prefix="no-db")
        self.probe_pool = ThreadPoolExecutor(PROBE_THREADS, thread_name_prefix="probe")
        self.connections: dict[asyncio.Task[None], ClientConnection] = {}
        self.bodies = BodyBudget(settings.body_buffer_bytes)
        self.in_app: dict[int, float] = {}  # id of a running call → its start (time.monotonic)
        self.public_answers: dict[tuple[t.Any, ...], Answer] = {}  # oldest used first

    async def connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if self.cfg is not None and len(self.connections) >= self.cfg.worker_connections:
            writer.close()  # over gunicorn's worker_connections: refused before a byte is read
            return
        connection = ClientConnection(self, reader, writer)
        self.connections[task] = connection
        try:
            await connection.serve()
        except asyncio.CancelledError:
            pass  # stopped by shutdown(); ending normally keeps asyncio's stream callback from logging it
        finally:
            del self.connections[task]

    def oldest_call_seconds(self) -> float:
        """How long the longest-running app call has run (0 if none): a worker whose call outlives
        gunicorn's timeout stops telling the arbiter it is alive, so the arbiter restarts it."""
        return time.monotonic() - min(self.in_app.values()) if self.in_app else 0.0

    async def run_app(self, environ: dict[str, t.Any]) -> Answer:
        path = environ["PATH_INFO"]
        pool = (self.no_database_pool if path in NO_DATABASE_PATHS else self.probe_pool if path in PROBE_PATHS
                else self.app_pool)
        key = id(environ)
        self.in_app[key] = time.monotonic()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, call_app, self.app, environ)
        except Exception:
            # Flask answers its own errors; this is one that escaped it (a hook, a handler, the bridge).
            # The path, not the target: a query string is never logged.
            request_id = new_request_id()
            log.exception("Error handling request %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"],
                          extra={logs.FIELDS: {"request_id": request_id}})
            answer = refusal(issue(Msg.INTERNAL), path=environ["PATH_INFO"], request_id=request_id)
            _log_answer(answer, environ["REQUEST_METHOD"], environ["PATH_INFO"], environ[audit.RECEIVED],
                        db_round_trips=None)  # the app's, unknown
            return answer
        finally:
            del self.in_app[key]

    async def answer_public(self, environ: dict[str, t.Any]) -> Answer:
        """Run a request in the app, or answer it from the app's answer to the same request before.

        Kept: 200 answers to GET and HEAD of :data:`NO_DATABASE_PATHS`, which depend only on the app and
        :data:`_PUBLIC_KEY` (no key, no rate-limit count, no database). A request with
        X-Correlation-Id (echoed) or a body always goes to the app. A kept answer is given a new
        X-Request-Id, as the app gives each answer.
        """
        key: tuple[t.Any, ...] | None = None
        if (environ["PATH_INFO"] in NO_DATABASE_PATHS and environ["REQUEST_METHOD"] in ("GET", "HEAD")
                and environ["CONTENT_LENGTH"] == "0" and "HTTP_X_CORRELATION_ID" not in environ):
            forwarded = tuple(environ.get(name) for name in _FORWARDED_KEY)
            peer = environ["REMOTE_ADDR"] if any(forwarded) else None
            key = (*(environ.get(name) for name in _PUBLIC_KEY), *forwarded, peer)
            kept = self.public_answers.pop(key, None)
            if kept is not None:
                self.public_answers[key] = kept  # now the most recently used
                headers = [(k, new_request_id() if k.lower() == "x-request-id" else v) for k, v in kept.headers]
                answer = Answer(kept.status, headers, kept.body, kept.reason)
                _log_answer(answer, environ["REQUEST_METHOD"], environ["PATH_INFO"], environ[audit.RECEIVED],
                            route=environ["PATH_INFO"])  # each of NO_DATABASE_PATHS is its own route
                return answer
        answer = await self.run_app(environ)
        if key is not None and answer.status == 200:
            if len(self.public_answers) >= PUBLIC_ANSWERS_KEPT:
                del self.public_answers[next(iter(self.public_answers))]
            self.public_answers[key] = Answer(answer.status, list(answer.headers), answer.body, answer.reason)
        return answer

    async def shutdown(self, grace_seconds: float) -> None:
        """Stop: idle connections at once, those with a request in hand after it (within ``grace_seconds``)."""
        self.alive = False
        for task, connection in list(self.connections.items()):
            if not connection.busy:
                task.cancel()
        deadline = time.monotonic() + grace_seconds
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in list(self.connections):
            task.cancel()
        if self.connections:
            await asyncio.wait(list(self.connections), timeout=1)
        self.app_pool.shutdown(wait=False, cancel_futures=True)
        self.no_database_pool.shutdown(wait=False, cancel_futures=True)
        self.probe_pool.shutdown(wait=False, cancel_futures=True)

    def url_scheme(self, headers: dict[bytes, bytes], client: tuple[str, int] | None) -> str:
        """The front speaks plain HTTP: a scheme a trusted proxy forwards is the app's to honour (http/hosts.py)."""
        return "http"


class ClientConnection:
    """One client connection: request after request (keep-alive) until it closes or is refused."""

    def __init__(self, front: Front, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.front = front
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.busy = False  # a request is in hand: a graceful stop waits for its answer
        self.held = 0  # bytes of the body budget this connection's request holds
        self.client = writer.get_extra_info("peername")
        sockname = writer.get_extra_info("sockname")
        self.server = (str(sockname[0]), int(sockname[1])) if sockname else ("", 0)

    async def serve(self) -> None:
        try:
            while self.front.alive:
                request: h11.Request | None = None
                started = time.monotonic()
                try:
                    request = await self._read_head()
                    if request is None:
                        return
                    self.busy = True
                    started = time.monotonic()
                    body = await self._read_body(request)
                except Refused as refused:
                    self._give_back()  # the body read so far is freed already (_read_body)
                    if refused.issue is not None:
                        await self._refuse(refused.issue, refused.request or request, refused.status, started)
                    return
                environ = build_environ(request, body, server=self.server, client=self.client,
                                        url_scheme=self.front.url_scheme(dict(request.headers), self.client))
                environ[audit.RECEIVED] = time.monotonic()
                del body
                answer = await self.front.answer_public(environ)
                await self._send(answer, head=request.method == b"HEAD")
                del environ  # the body: freed with its share of the budget
                self._give_back()
                if self.conn.our_state is not h11.DONE or self.conn.their_state is not h11.DONE:
                    return  # Connection: close, or HTTP/1.0 without keep-alive
                self.conn.start_next_cycle()
                self.busy = False
                # A pipelined next request is already read, and a kept answer needs no thread: without
                # this, one client's pipeline would be answered whole before any other connection's turn.
                await asyncio.sleep(0)
        except (OSError, h11.LocalProtocolError):  # ConnectionError, TimeoutError, ENOTCONN of a peer gone
            return  # the client went away, or would not take the answer in time
        finally:
            self._give_back()  # whatever ended the connection (a cancel, an error) ends its hold too
            self.writer.close()

    def _take(self, size: int) -> None:
        """Hold ``size`` more bytes of the worker's body budget, or refuse the request (503)."""
        if not self.front.bodies.take(size):
            raise Refused(issue(Msg.BODY_BUFFER_FULL))
        self.held += size

    def _give_back(self) -> None:
        self.front.bodies.give_back(self.held)
        self.held = 0

    async def _receive(self, deadline: float, late: Issue | None) -> None:
        """Read more of the request by ``deadline``, else refuse it with ``late`` (None: close unanswered)."""
        try:
            async with asyncio.timeout_at(deadline):
                data = await self.reader.read(_READ_SIZE)
        except TimeoutError:
            raise Refused(late) from None
        self.conn.receive_data(data)

    def _next_event(self) -> t.Any:
        try:
            return self.conn.next_event()
        except h11.RemoteProtocolError as e:
            if e.error_status_hint == 431:
                raise Refused(issue(Msg.HEADERS_TOO_LARGE, limit=MAX_HEAD_BYTES, fields=MAX_HEADER_FIELDS)) from None
            raise Refused(issue(Msg.BAD_HTTP, reason=str(e)), e.error_status_hint) from None

    async def _read_head(self) -> h11.Request | None:
        """The next request's line and headers, or None when the client closed or stayed idle too long."""
        seconds = self.front.settings.header_timeout_seconds
        deadline = asyncio.get_running_loop().time() + seconds
        late = issue(Msg.HEADER_TIMEOUT, seconds=f"{seconds:g}")
        received = bool(self.conn.trailing_data[0])
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                await self._receive(deadline, late if received else None)
                received = received or bool(self.conn.trailing_data[0])
                continue
            if isinstance(event, h11.ConnectionClosed):
                return None
            assert isinstance(event, h11.Request)
            if event.http_version not in (b"1.0", b"1.1"):
                raise Refused(issue(Msg.HTTP_VERSION, version=event.http_version.decode("ascii")), request=event)
            names = {name for name, _ in event.headers}
            if b"transfer-encoding" in names and b"content-length" in names:
                # RFC 9112 §6.3: a sign of request smuggling; h11 would go by Transfer-Encoding and keep
                # the connection, where a proxy in front may have gone by Content-Length.
                raise Refused(issue(Msg.BAD_HTTP_FRAMING), request=event)
            # h11 bounds only a head still arriving; one that came in a single read is measured here.
            head_bytes = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
            if len(event.headers) > MAX_HEADER_FIELDS or head_bytes > MAX_HEAD_BYTES:
                raise Refused(issue(Msg.HEADERS_TOO_LARGE, limit=MAX_HEAD_BYTES, fields=MAX_HEADER_FIELDS), request=event)
            return event

    async def _read_body(self, request: h11.Request) -> bytes:
        limit = self.front.settings.max_body_bytes
        length = dict(request.headers).get(b"content-length")
        if length is not None and int(length) > limit:
            raise Refused(issue(Msg.TOO_LARGE))  # before a byte of it is read (or asked for with 100)
        if length is not None:
            self._take(int(length))  # the whole declared length, before a byte is read (BodyBudget)
        if self.conn.they_are_waiting_for_100_continue:
            await self._write(self.conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        seconds = self.front.settings.body_timeout_seconds
        deadline = asyncio.get_running_loop().time() + seconds
        late = issue(Msg.BODY_TIMEOUT, seconds=f"{seconds:g}")
        received = bytearray()
        chunks = 0
        try:
            while True:
                event = self._next_event()
                if event is h11.NEED_DATA:
                    await self._receive(deadline, late)
                elif isinstance(event, h11.Data):
                    if len(received) + len(event.data) > limit:
                        raise Refused(issue(Msg.TOO_LARGE))  # chunked: counted as it comes, never cut
                    if length is None:
                        self._take(len(event.data))
                    received += event.data
                    chunks += event.chunk_start
                    if chunks > MAX_BODY_CHUNKS:
                        raise Refused(issue(Msg.TOO_MANY_CHUNKS, limit=MAX_BODY_CHUNKS))
                elif isinstance(event, h11.EndOfMessage):
                    return bytes(received)
                else:  # ConnectionClosed part-way: nobody to answer
                    raise Refused()
        finally:
            received.clear()  # the buffer's memory goes back now, not when a traceback holding it is freed

    async def _send(self, answer: Answer, *, head: bool = False) -> None:
        """Write a whole answer, framed by Content-Length (a HEAD's is the app's, for the GET it mirrors)."""
        headers = [(k, v) for k, v in answer.headers if k.lower() not in _HOP_BY_HOP]
        if not any(k.lower() == "date" for k, _ in headers):
            headers.append(("Date", email.utils.formatdate(usegmt=True)))
        if head:
            headers += [(k, v) for k, v in answer.headers if k.lower() == "content-length"]
            answer.body = b""
        elif answer.status >= 200 and answer.status not in (204, 304):
            headers.append(("Content-Length", str(len(answer.body))))
        if not self.front.alive or any(k.lower() == "connection" and v.lower() == "close" for k, v in answer.headers):
            headers.append(("Connection", "close"))
        reason = answer.reason or _reason(answer.status)
        data = self.conn.send(h11.Response(status_code=answer.status, headers=headers, reason=reason.encode("latin-1")))
        if answer.body:
            data += self.conn.send(h11.Data(data=answer.body))
        data += self.conn.send(h11.EndOfMessage())
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        self.writer.write(data)
        async with asyncio.timeout(self.front.settings.body_timeout_seconds):
            await self.writer.drain()

    async def _refuse(self, found: Issue, request: h11.Request | None, status: int | None, started: float) -> None:
        """Answer a refusal, then let the client read it: stop sending, drain what it still sends for a
        moment (closing with unread input would reset the connection and lose the answer), close."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        path = request_path(request.target) if request is not None else None
        answer = refusal(found, path=path, request_id=new_request_id(), status=status)
        _log_answer(answer, request.method.decode("latin-1") if request is not None else None, path, started)
        try:
            await self._send(answer)
            if self.writer.can_write_eof():
                self.writer.write_eof()
            async with asyncio.timeout(LINGER_SECONDS):
                while await self.reader.read(_READ_SIZE):
                    pass
        except (OSError, h11.LocalProtocolError):  # ConnectionError, TimeoutError, ENOTCONN of a peer gone
            pass


def _reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _log_answer(answer: Answer, method: str | None, path: str | None, started: float, *, route: str | None = None,
                db_round_trips: int | None = 0) -> None:
    """The request log's line, and the metrics, of an answer the front gave without the app: nobody
    is identified, and (but for an app's call that failed) no database command was sent."""
    request_id = next((v for k, v in answer.headers if k.lower() == "x-request-id"), None)
    seconds = time.monotonic() - started
    audit.log_request(request_id=request_id, correlation_id=None, client_id=None, key_id=None, userid=None,
                      interaction=None, method=method, route=route, path=path, status=answer.status,
                      latency_ms=round(seconds * 1000, 1), db_round_trips=db_round_trips, answered_by="front")
    metrics.observe_request(route, method or "-", answer.status, seconds)
