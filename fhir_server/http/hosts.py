"""Which host the server answers to, and whose ``X-Forwarded-*`` headers it believes: the one home of both rules.

Every absolute URL the server writes (``Location``, ``Content-Location``, paging links, ``fullUrl``,
the CapabilityStatement, the OpenAPI document, SMART discovery, and so the audience a client
assertion must name at the token endpoint) starts with :func:`public_base_url`: ``BASE_URL`` when
set, else the request's own scheme and host. A client must never choose that host, so:

- ``ALLOWED_HOSTS`` set: the request's host must be one of its ``host[:port]`` entries (an entry
  without a port allows any port), else 400 :attr:`Msg.HOST_NOT_ALLOWED`, which does not repeat it;
- ``ALLOWED_HOSTS`` unset and ``BASE_URL`` set: any host, which then makes no URL;
- neither: :data:`DEVELOPMENT_HOSTS` and the configured ``HOST``, on any port.

Names are compared without regard to case and exactly otherwise: ``localhost.`` (the trailing dot)
is not ``localhost``. The check is the first hook after the request is given its id, so it comes
before negotiation, keys, tokens and rate limits, on every route, public ones included.

``X-Forwarded-For``, ``-Proto``, ``-Host`` and ``-Port`` are honoured (Werkzeug's ProxyFix, counting
``TRUSTED_PROXY_HOPS`` proxies) only from a peer in ``TRUSTED_PROXIES``; from any other peer they are
removed before the app sees them. A forwarded host is the request's host: it must be allowed too.
``X-Forwarded-Prefix`` and ``Forwarded`` (RFC 7239) are not read from anyone.

A production start should call :func:`require_public_origin`: there the development default is no
answer, and the server's public address must be configured.
"""

from __future__ import annotations

import functools
import ipaddress
import typing as t
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from ..outcome import Msg, RequestRejected, issue

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from ..config import Settings

__all__ = ["DEVELOPMENT_HOSTS", "HostRules", "check_host", "install", "public_base_url", "require_public_origin", "rules"]

#: The hosts a server with neither ``BASE_URL`` nor ``ALLOWED_HOSTS`` answers to (with ``HOST``), on any port.
DEVELOPMENT_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_FORWARDED = "HTTP_X_FORWARDED_"
_EXTENSION = "fhir_server.hosts"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _host_and_port(text: str) -> tuple[str, int | None] | None:
    """``text`` as ``host[:port]`` (RFC 9110 §7.2), the name lower-cased and an IPv6 literal's
    brackets removed; None if it is anything else (user info, a path, a bad port, nothing)."""
    try:
        parts = urlsplit("//" + text)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query or parts.fragment or "#" in text:
        return None
    return parts.hostname, port


@functools.lru_cache(maxsize=256)  # asked twice a request, of the few hosts clients name (bounded: any Host may come)
def _allows(allowed: frozenset[tuple[str, int | None]], host: str, scheme: str) -> bool:
    if scheme not in _DEFAULT_PORTS:
        return False  # a scheme a proxy forwarded ("javascript"): no URL of the server may start with it
    found = _host_and_port(host)
    if found is None:
        return False
    name, port = found
    return (name, None) in allowed or (name, _DEFAULT_PORTS.get(scheme) if port is None else port) in allowed


@dataclass(frozen=True)
class HostRules:
    """The rules, read from the settings once (:func:`rules`)."""

    #: Absolute base of every URL the server writes, without a trailing slash; "" to take the request's.
    base_url: str
    #: (host, port or None for any) the server answers to; None for any host (``BASE_URL`` makes the URLs).
    allowed: frozenset[tuple[str, int | None]] | None
    proxies: tuple[Network, ...]
    hops: int

    def allows(self, host: str, scheme: str) -> bool:
        """Whether a request for ``host`` (a Host header's value) over ``scheme`` is one to answer."""
        if self.allowed is None:
            return True
        return _allows(self.allowed, host, scheme)

    def trusts(self, peer: str) -> bool:
        """Whether the peer at address ``peer`` (``REMOTE_ADDR``) is a trusted proxy."""
        if not self.proxies:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False  # a Unix socket's peer, or none
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # an IPv4 peer of a dual-stack socket
        return any(address in network for network in self.proxies)


def rules(settings: Settings) -> HostRules:
    """The rules of ``settings``.

    :raises ValueError: naming the setting, if ``BASE_URL``, ``ALLOWED_HOSTS``, ``TRUSTED_PROXIES`` or
        ``TRUSTED_PROXY_HOPS`` cannot be read.
    """
    base = settings.base_url.strip().rstrip("/")
    if base:
        parts = urlsplit(base)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.query or parts.fragment:
            raise ValueError(f"BASE_URL must be an absolute http or https URL without user, query or fragment, not {base!r}")
    allowed: frozenset[tuple[str, int | None]] | None
    if settings.allowed_hosts:
        allowed = frozenset(_allowed_entry(text) for text in settings.allowed_hosts)
    elif base:
        allowed = None
    else:
        allowed = frozenset(_development_hosts(settings.host))
    try:
        proxies = tuple(ipaddress.ip_network(text, strict=False) for text in settings.trusted_proxies)
    except ValueError as e:
        raise ValueError(f"TRUSTED_PROXIES must list IP addresses or networks (CIDR), comma-separated: {e}") from None
    if settings.trusted_proxy_hops < 1:
        raise ValueError("TRUSTED_PROXY_HOPS must be 1 or more: the proxies in front of the server that add X-Forwarded-*")
    return HostRules(base, allowed, proxies, settings.trusted_proxy_hops)


def _allowed_entry(text: str) -> tuple[str, int | None]:
    found = _host_and_port(text)
    if found is None or "*" in text:
        raise ValueError(f"ALLOWED_HOSTS lists host[:port] entries, comma-separated (no patterns: set BASE_URL to "
                         f"answer under any host); {text!r} is not one")
    return found


def _development_hosts(host: str) -> t.Iterator[tuple[str, int | None]]:
    for text in DEVELOPMENT_HOSTS:
        found = _host_and_port(text)
        assert found is not None
        yield found[0], None
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return  # 0.0.0.0 or :: is where the server listens, never a name a client asks for
        host = f"[{host}]" if ":" in host else host
    except ValueError:
        pass  # a name
    found = _host_and_port(host)
    if found is not None:
        yield found[0], None


def require_public_origin(settings: Settings) -> None:
    """For a production start: the server's public address must be configured, not left to the
    development default.

    :raises ValueError: unless ``BASE_URL`` or ``ALLOWED_HOSTS`` is set.
    """
    if not settings.base_url.strip() and not settings.allowed_hosts:
        raise ValueError("set BASE_URL (the server's public base URL) or ALLOWED_HOSTS (the host[:port] names "
                         "clients reach it by): absolute URLs are made from one of them")


def install(app: Flask) -> None:
    """Honour forwarded headers from trusted proxies only, and refuse a request for a host not
    allowed before every hook registered after this one.

    :raises ValueError: if the settings cannot be read (:func:`rules`).
    """
    found = rules(app.extensions["settings"])
    app.extensions[_EXTENSION] = found
    app.wsgi_app = _behind_proxies(app.wsgi_app, found)  # type: ignore[method-assign,assignment]
    app.before_request(check_host)


def _behind_proxies(wsgi_app: WSGIApplication, found: HostRules) -> WSGIApplication:
    hops = found.hops
    fixed = ProxyFix(wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        if found.trusts(environ.get("REMOTE_ADDR", "")):
            return fixed(environ, start_response)
        for name in [k for k in environ if k.startswith(_FORWARDED)]:
            del environ[name]  # from anyone else, nothing forwarded is believed
        return wsgi_app(environ, start_response)

    return app


#: Blueprints that answer whatever the host (http/probes.py): they write no URL, and an orchestrator's
#: probes and a scraper name the pod's address, which no list of public hosts holds.
_ANY_HOST = ("probes", "metrics")


def check_host() -> None:
    """400 unless the request's host (forwarded by a trusted proxy, or its own Host) is allowed."""
    if request.blueprint in _ANY_HOST and request.url_rule is not None:
        return
    if not current_app.extensions[_EXTENSION].allows(request.host, request.scheme):
        raise RequestRejected(issue(Msg.HOST_NOT_ALLOWED))


def public_base_url() -> str:
    """The absolute base of every URL the server writes: ``BASE_URL``, else the request's scheme and
    host, which :func:`check_host` has allowed (checked again here, so that no hook order can make
    an unchecked host into a URL)."""
    found: HostRules = current_app.extensions[_EXTENSION]
    if found.base_url:
        return found.base_url
    check_host()
    return request.host_url.rstrip("/")
