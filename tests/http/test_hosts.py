"""Hosts and proxies (fhir_server/http/hosts.py): absolute URLs come from BASE_URL or an allowed host,
a host not allowed gets 400 on every route and is never repeated back, and X-Forwarded-* count only
from a trusted proxy."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import typing as t
from urllib.parse import urlencode, urlsplit

import pytest
import requests

from fhir_server.auth.assertion import ClientCredentials, token_request
from fhir_server.auth.scopes import HPI_SCOPE_PREFIX
from fhir_server.config import Settings
from fhir_server.envelope import CODES
from fhir_server.http.hosts import require_public_origin, rules
from fhir_server.outcome import Msg

from ..support import FHIR_JSON, ROOT, Server, fresh_role, start_server

PUBLIC = "https://fhir.example.org/r4"  # BASE_URL of public_server
FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "allowed.example"}
# Hosts not allowed (with what of each must never come back), and the allowed ones they imitate.
NOT_ALLOWED = [("evil.example", "evil.example"), ("evil.example:8080", "evil.example"), ("EVIL.Example", "evil.example"),
               ("evil.example.", "evil.example"), ("[2001:db8::e]:8080", "2001:db8::e"), ("localhost.", "localhost."),
               ("localhost.evil.example", "evil.example"), ("localhost:8080@evil.example", "evil.example")]


def scope(*short: str) -> str:
    return " ".join(HPI_SCOPE_PREFIX + s for s in short)


# ---- the rules, from settings -------------------------------------------------------------------------

@pytest.mark.parametrize(("host", "scheme", "allowed"), [
    ("localhost", "http", True), ("LocalHost:8080", "http", True), ("127.0.0.1:1", "http", True), ("[::1]:5", "http", True),
    ("localhost.", "http", False), ("[::2]", "http", False), ("::1", "http", False), ("evil.example", "http", False),
    ("localhost,evil.example", "http", False), ("user@localhost", "http", False), ("localhost/x", "http", False),
    ("", "http", False),
])
def test_the_development_default_is_loopback_on_any_port(host, scheme, allowed):
    assert rules(Settings(base_url="", allowed_hosts=(), host="127.0.0.1")).allows(host, scheme) is allowed


@pytest.mark.parametrize(("host", "scheme", "allowed"), [
    ("api.example", "https", True), ("API.example:443", "https", True), ("api.example", "http", False),
    ("api.example:8443", "https", False), ("other.example:9", "http", True), ("[2001:db8::1]", "http", True),
    ("localhost", "http", False), ("evil.example", "https", False),
])
def test_allowed_hosts_name_hosts_and_ports(host, scheme, allowed):
    settings = Settings(base_url="", allowed_hosts=("api.example:443", "Other.example", "[2001:db8::1]"))
    assert rules(settings).allows(host, scheme) is allowed


def test_base_url_allows_any_host_unless_allowed_hosts_is_set():
    assert rules(Settings(base_url=PUBLIC, allowed_hosts=())).allows("evil.example", "http")
    assert not rules(Settings(base_url=PUBLIC, allowed_hosts=("api.example",))).allows("evil.example", "http")


def test_a_named_host_setting_is_allowed_and_an_unspecified_address_is_not():
    assert rules(Settings(base_url="", allowed_hosts=(), host="fhir.internal")).allows("fhir.internal:8080", "http")
    assert not rules(Settings(base_url="", allowed_hosts=(), host="0.0.0.0")).allows("0.0.0.0:8080", "http")
    assert rules(Settings(base_url="", allowed_hosts=(), host="::1")).allows("[::1]", "http")


def test_production_needs_base_url_or_allowed_hosts():
    with pytest.raises(ValueError, match="BASE_URL"):
        require_public_origin(Settings(base_url="", allowed_hosts=()))
    require_public_origin(Settings(base_url=PUBLIC, allowed_hosts=()))
    require_public_origin(Settings(base_url="", allowed_hosts=("api.example",)))


def test_only_the_configured_proxies_are_trusted():
    found = rules(Settings(base_url="", trusted_proxies=("10.0.0.0/8", "2001:db8::1")))
    assert [found.trusts(p) for p in ("10.1.2.3", "::ffff:10.0.0.1", "2001:db8::1", "127.0.0.1", "11.0.0.1", "")] == \
        [True, True, True, False, False, False]
    assert not rules(Settings(base_url="", trusted_proxies=())).trusts("127.0.0.1")


@pytest.mark.parametrize("env", [{"ALLOWED_HOSTS": "*"}, {"ALLOWED_HOSTS": "https://api.example"}, {"TRUSTED_PROXIES": "proxy"},
                                 {"BASE_URL": "fhir.example.org"}, {"TRUSTED_PROXY_HOPS": "0"}])
def test_serve_refuses_settings_it_cannot_read_before_starting_anything(tmp_path, env):
    done = subprocess.run([sys.executable, "-m", "fhir_server", "serve"], check=False, cwd=ROOT, capture_output=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path), **env})
    assert done.returncode == 2
    assert next(iter(env)) in done.stderr.decode()
    assert not (tmp_path / "db").exists()


# ---- a host not allowed: 400 everywhere, never repeated ---------------------------------------------

@pytest.fixture(scope="module")
def role_id(api, person) -> str:
    created = api.create(fresh_role(practitioner={"reference": f"Practitioner/{person}"}))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


Call = tuple[str, str, dict[str, str], bytes]


def calls(creds: ClientCredentials, role_id: str, auth: dict[str, str], person: str = "") -> dict[str, Call]:
    """Every kind of answer: public documents, OAuth, each FHIR interaction, Bundles, /v1, errors."""
    fhir = {**auth, "Content-Type": FHIR_JSON}
    role = json.dumps(fresh_role()).encode()
    batch = json.dumps({"resourceType": "Bundle", "type": "batch",
                        "entry": [{"request": {"method": "GET", "url": f"PractitionerRole/{role_id}"}}]}).encode()
    token = token_request(creds.client_id, creds.private_jwk,
                          "http://evil.example/auth/token", scope("PractitionerRole.r"))
    return {
        "metadata": ("GET", "/metadata", {}, b""),
        "metadata-head": ("HEAD", "/metadata", {}, b""),
        "metadata-xml": ("GET", "/metadata", {"Accept": "application/fhir+xml"}, b""),
        "openapi": ("GET", "/openapi.json", {}, b""),
        "smart-configuration": ("GET", "/.well-known/smart-configuration", {}, b""),
        "jwks": ("GET", "/auth/jwks", {}, b""),
        "token": ("POST", "/auth/token", {"Content-Type": "application/x-www-form-urlencoded"},
                  urlencode(token).encode()),
        "create": ("POST", "/PractitionerRole", fhir, role),
        "create-invalid": ("POST", "/PractitionerRole", fhir, b'{"resourceType": "PractitionerRole"}'),
        "read": ("GET", f"/PractitionerRole/{role_id}", auth, b""),
        "read-no-credentials": ("GET", f"/PractitionerRole/{role_id}", {}, b""),
        "vread": ("GET", f"/PractitionerRole/{role_id}/_history/1", auth, b""),
        "read-unknown": ("GET", "/PractitionerRole/R99999999-X", auth, b""),
        "search": ("GET", f"/PractitionerRole?practitioner={person}&_count=1", auth, b""),
        "history": ("GET", f"/PractitionerRole/{role_id}/_history", auth, b""),
        "history-type": ("GET", "/PractitionerRole/_history", auth, b""),
        "batch": ("POST", "/", fhir, batch),
        "v1-create": ("POST", "/v1/practitioner-roles", {"x-api-key": auth["x-api-key"], "Content-Type": "application/json"}, b"{}"),
        "v1-read": ("GET", "/v1/practitioner-roles/x", {"x-api-key": auth["x-api-key"]}, b""),
        "no-route": ("GET", "/nowhere", {}, b""),
        "method": ("DELETE", "/metadata", {}, b""),
        "options": ("OPTIONS", "/metadata", {}, b""),
    }


def v1_create(auth: dict[str, str], person: str, role: str) -> Call:
    body = {"practitionerId": person, "role": role, "organizationName": "Harbour Health"}
    return ("POST", "/v1/practitioner-roles", {"x-api-key": auth["x-api-key"], "Content-Type": "application/json"},
            json.dumps(body).encode())


def send(server: Server, call: Call, headers: dict[str, str]) -> requests.Response:
    method, path, own, body = call
    return requests.request(method, server.base_url + path, headers={**own, **headers}, data=body or None, timeout=30)


def everything(response: requests.Response) -> str:
    """All a client sees of an answer, lower-cased: its status line, headers and body."""
    lines = [f"{response.status_code} {response.reason}", *(f"{k}: {v}" for k, v in response.headers.items())]
    return "\n".join([*lines, response.content.decode("latin-1")]).lower()


@pytest.fixture(scope="module")
def auth(server: Server) -> dict[str, str]:
    return {**server.headers(), "User-Agent": "hosts-tests/1"}


@pytest.mark.parametrize(("host", "secret"), NOT_ALLOWED)
def test_a_host_not_allowed_gets_400_on_every_route_and_never_sees_itself(server, role_id, auth, person, host, secret):
    for name, call in calls(server.credentials, role_id, auth, person).items():
        response = send(server, call, {"Host": host})
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert secret not in everything(response), name
        assert response.headers["X-Request-Id"]
        if call[0] == "HEAD":
            continue
        if call[1].startswith("/v1/"):
            assert response.headers["Content-Type"].startswith("application/json")
            error = response.json()["error"]
            assert (error["code"], error["message"]) == (CODES[400], Msg.HOST_NOT_ALLOWED.value.text), name
        else:
            assert response.headers["Content-Type"].startswith(FHIR_JSON), name
            issue = response.json()["issue"]
            assert [i["diagnostics"] for i in issue] == [Msg.HOST_NOT_ALLOWED.value.text], name


def test_probes_and_metrics_answer_whatever_the_host_and_never_repeat_it(server):
    # An orchestrator's probes and a scraper name the pod's address: no list of public hosts holds it.
    for path in ("/healthz", "/readyz", "/metrics"):
        for _ in range(2):  # the second /healthz is the front's kept answer
            response = requests.get(server.base_url + path, headers={"Host": "10.1.2.3:8080"}, timeout=10)
            assert response.status_code == 200, (path, response.text)
            assert "10.1.2.3" not in everything(response), path


def test_a_kept_public_answer_is_never_given_to_another_host(server):
    url = server.base_url + "/metadata"
    for _ in range(3):  # the serving front keeps the answer to the same request
        assert requests.get(url, timeout=10).status_code == 200
    refused = requests.get(url, headers={"Host": "evil.example"}, timeout=10)
    assert refused.status_code == 400 and "evil.example" not in everything(refused)


def test_an_allowed_host_is_the_base_of_the_urls_in_any_case(server, api):
    port = urlsplit(server.base_url).port
    for host in (f"localhost:{port}", f"LOCALHOST:{port}", f"[::1]:{port}"):
        statement = requests.get(server.base_url + "/metadata", headers={"Host": host}, timeout=10)
        assert statement.status_code == 200
        assert statement.json()["implementation"]["url"].lower() == f"http://{host}".lower()
    created = api.create(fresh_role())
    assert created.headers["Location"].startswith(f"{server.base_url}/PractitionerRole/")


def test_a_request_without_host_is_answered_for_the_address_it_reached(server):
    """HTTP/1.0 needs no Host: the URLs are then made of the listening address, which is allowed."""
    parts = urlsplit(server.base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as c:
        c.sendall(b"GET /metadata HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := c.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["implementation"]["url"] == server.base_url


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(server, api, person):
    """The session server trusts no proxy: X-Forwarded-* from the test (on 127.0.0.1) change nothing."""
    plain = requests.get(server.base_url + "/metadata", timeout=10)
    for headers in (FORWARDED, {"X-Forwarded-Host": "evil.example", "X-Forwarded-Port": "8443"}):
        statement = requests.get(server.base_url + "/metadata", headers=headers, timeout=10)
        assert statement.status_code == 200 and statement.json()["implementation"] == plain.json()["implementation"]
        assert "evil.example" not in everything(statement) and "allowed.example" not in everything(statement)
        created = api.post("/PractitionerRole", fresh_role(), headers=headers)
        assert created.status_code == 201 and created.headers["Location"].startswith(f"{server.base_url}/PractitionerRole/")
        found = api.get("/PractitionerRole", params={"practitioner": person, "_count": "1"}, headers=headers)
        assert all(link["url"].startswith(server.base_url + "/") for link in found.json()["link"])
        assert "evil.example" not in everything(found) and "allowed.example" not in everything(found)


# ---- BASE_URL: every URL starts with it, whatever the Host --------------------------------------------

@pytest.fixture(scope="module")
def public_server(database, server, tmp_path_factory) -> t.Iterator[Server]:
    """A second server on the session's database (so the session's credentials work) with BASE_URL set."""
    running = start_server(tmp_path_factory.mktemp("public"), MONGODB_URI=database.uri, MONGODB_DATABASE="fhir_test",
                           WEB_CONCURRENCY="1", API_KEY_CACHE_SECONDS="0", RATE_LIMIT="1000000/hour", BASE_URL=PUBLIC + "/")
    yield running
    running.stop()


def urls_written(response: requests.Response) -> list[str]:
    """The absolute URLs of the server's own that an answer carries, where FHIR, SMART and OpenAPI put them."""
    found = [response.headers[h] for h in ("Location", "Content-Location") if h in response.headers]
    body = response.json() if response.content else {}
    found += [link["url"] for link in body.get("link", [])]
    found += [e["fullUrl"] for e in body.get("entry", []) if "fullUrl" in e]
    found += [body[k] for k in ("token_endpoint", "jwks_uri") if k in body]
    found += [s["url"] for s in body.get("servers", [])]
    if "implementation" in body:
        found.append(body["implementation"]["url"])
    return found


def test_with_base_url_every_absolute_url_starts_with_it(server, public_server, role_id, auth, person):
    port = urlsplit(public_server.base_url).port
    for host in ("evil.example", f"127.0.0.1:{port}"):
        own = {k: v for k, v in calls(server.credentials, role_id, auth, person).items()
               if k in ("metadata", "openapi", "smart-configuration", "create", "read", "vread", "search", "history",
                        "history-type", "batch")}
        for name, call in own.items():
            response = send(public_server, call, {"Host": host})
            assert response.status_code in (200, 201), (name, response.text)
            written = urls_written(response)
            assert written or name == "batch", name
            assert all(url.startswith(PUBLIC + "/") or url == PUBLIC for url in written), (name, written)
            assert not any("//" in url.removeprefix("https://") for url in written), (name, written)
            assert "evil.example" not in everything(response) and f"127.0.0.1:{port}" not in everything(response), name
    v1 = send(public_server, v1_create(auth, person, "nurse"), {"Host": "evil.example"})
    assert v1.status_code == 201, v1.text
    assert v1.headers["Location"].startswith(PUBLIC + "/v1/practitioner-roles/") and "evil.example" not in everything(v1)


def test_the_token_endpoint_expects_the_public_token_url(server, public_server):
    creds = server.credentials
    for audience, host, status in ((PUBLIC + "/auth/token", "evil.example", 200),
                                   (f"{public_server.base_url}/auth/token", None, 401),
                                   ("http://evil.example/auth/token", "evil.example", 401)):
        form = token_request(creds.client_id, creds.private_jwk, audience, scope("PractitionerRole.r"))
        answer = requests.post(public_server.base_url + "/auth/token", data=form, timeout=30,
                               headers={"Host": host} if host else {})
        assert answer.status_code == status, (audience, answer.text)
        assert "evil.example" not in everything(answer)
        if status == 401:
            assert answer.json()["error"] == "invalid_client"


# ---- a trusted proxy ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def proxied_server(database, server, tmp_path_factory) -> t.Iterator[Server]:
    """A server behind a proxy on 127.0.0.1 (the test itself), answering to allowed.example and 127.0.0.1."""
    running = start_server(tmp_path_factory.mktemp("proxied"), MONGODB_URI=database.uri, MONGODB_DATABASE="fhir_test",
                           WEB_CONCURRENCY="1", API_KEY_CACHE_SECONDS="0", RATE_LIMIT="1000000/hour",
                           TRUSTED_PROXIES="127.0.0.1/32", ALLOWED_HOSTS="allowed.example, 127.0.0.1")
    yield running
    running.stop()


def test_a_trusted_proxy_sets_scheme_and_host(server, proxied_server, role_id, auth, person):
    own = calls(server.credentials, role_id, auth, person)
    plain = send(proxied_server, own["metadata"], {})
    assert plain.json()["implementation"]["url"] == proxied_server.base_url
    for name in ("metadata", "openapi", "smart-configuration", "create", "read", "search", "history", "batch"):
        response = send(proxied_server, own[name], FORWARDED)
        assert response.status_code in (200, 201), (name, response.text)
        written = urls_written(response)
        public = [url for url in written if url.startswith("https://allowed.example/") or url == "https://allowed.example"]
        assert (written or name == "batch") and public == written, (name, written)
    v1 = send(proxied_server, v1_create(auth, person, "pharmacist"), FORWARDED)
    assert v1.status_code == 201 and v1.headers["Location"].startswith("https://allowed.example/v1/practitioner-roles/")
    # The forwarded host replaces the proxy's own Host, and the forwarded port is the URL's.
    moved = send(proxied_server, own["metadata"], {**FORWARDED, "Host": "internal.example", "X-Forwarded-Port": "8443"})
    assert moved.json()["implementation"]["url"] == "https://allowed.example:8443"
    assert send(proxied_server, own["metadata"], {}).content == plain.content  # the kept answer is the proxy-less one


def test_a_host_forwarded_by_a_trusted_proxy_must_be_allowed(server, proxied_server, role_id, auth):
    own = calls(server.credentials, role_id, auth)
    for name in ("metadata", "smart-configuration", "create", "read", "v1-create", "no-route"):
        for forwarded in ("evil.example", "allowed.example, evil.example"):
            response = send(proxied_server, own[name], {"X-Forwarded-Proto": "https", "X-Forwarded-Host": forwarded})
            assert response.status_code == 400, (name, response.text)
            assert "evil.example" not in everything(response)


def test_a_scheme_forwarded_by_a_trusted_proxy_must_be_http_or_https(server, proxied_server, role_id, auth):
    own = calls(server.credentials, role_id, auth)
    for name in ("metadata", "read"):
        for scheme in ("javascript", "https, javascript", "data"):
            response = send(proxied_server, own[name], {"X-Forwarded-Proto": scheme, "X-Forwarded-Host": "allowed.example"})
            assert response.status_code == 400, (name, scheme, response.text)
            assert [i["diagnostics"] for i in response.json()["issue"]] == [Msg.HOST_NOT_ALLOWED.value.text]
            assert "javascript" not in everything(response) and "data:" not in everything(response)


def test_behind_a_trusted_proxy_the_assertion_names_the_forwarded_token_url(proxied_server, server):
    creds = server.credentials
    discovered = requests.get(proxied_server.base_url + "/.well-known/smart-configuration", headers=FORWARDED, timeout=10)
    token_url = discovered.json()["token_endpoint"]
    assert token_url == "https://allowed.example/auth/token"
    for audience, status in ((token_url, 200), (proxied_server.base_url + "/auth/token", 401)):
        form = token_request(creds.client_id, creds.private_jwk, audience, scope("PractitionerRole.r"))
        answer = requests.post(proxied_server.base_url + "/auth/token", data=form, headers=FORWARDED, timeout=30)
        assert answer.status_code == status, answer.text
