"""gzip: answers above GZIP_MIN_BYTES are compressed for clients that accept gzip; ETags stay weak and
name the version."""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from fhir_server.config import Settings

from ..support import Server

ROLE = "/PractitionerRole/R00000029-P"
SEARCH = "/PractitionerRole?practitioner=90ZZLP&_include=PractitionerRole:practitioner&_include=PractitionerRole:organization"
THRESHOLD = Settings().gzip_min_bytes


def raw_get(server: Server, path: str, encoding: str, method: str = "GET", **headers: str) -> tuple[requests.Response, bytes]:
    """The answer as sent, not decoded by the client."""
    response = requests.request(method, server.base_url + path, timeout=30, stream=True,
                                headers={**server.headers(), "Accept-Encoding": encoding, **headers})
    return response, response.raw.read(decode_content=False)


def vary(response: requests.Response) -> set[str]:
    return {v.strip().lower() for v in response.headers.get("Vary", "").split(",")}


def test_large_answers_are_gzipped_for_clients_that_accept_it(server):
    plain, plain_body = raw_get(server, SEARCH, "identity")
    zipped, zipped_body = raw_get(server, SEARCH, "gzip, deflate")
    assert plain.status_code == zipped.status_code == 200
    assert len(plain_body) >= THRESHOLD
    assert zipped.headers["Content-Encoding"] == "gzip" and "Content-Encoding" not in plain.headers
    assert int(zipped.headers["Content-Length"]) == len(zipped_body) < len(plain_body)
    assert "accept-encoding" in vary(zipped) and "accept-encoding" in vary(plain)
    assert json.loads(gzip.decompress(zipped_body))["total"] == json.loads(plain_body)["total"]
    assert zipped.headers["Content-Type"] == plain.headers["Content-Type"]


@pytest.mark.parametrize("encoding", ["identity", "gzip;q=0", "deflate", ""])
def test_no_gzip_unless_accepted(server, encoding):
    response, body = raw_get(server, SEARCH, encoding)
    assert response.status_code == 200 and "Content-Encoding" not in response.headers
    assert json.loads(body)["resourceType"] == "Bundle"


def test_small_answers_are_sent_as_they_are(server):
    response, body = raw_get(server, "/PractitionerRole/R99999999-X", "gzip")
    assert response.status_code == 404 and len(body) < THRESHOLD
    assert "Content-Encoding" not in response.headers and "accept-encoding" not in vary(response)
    assert json.loads(body)["resourceType"] == "OperationOutcome"


def test_etag_is_the_same_and_if_none_match_still_works(server):
    plain, _ = raw_get(server, ROLE, "identity")
    zipped, _ = raw_get(server, ROLE, "gzip")
    assert plain.headers["ETag"] == zipped.headers["ETag"] and plain.headers["ETag"].startswith('W/"')
    not_modified, body = raw_get(server, ROLE, "gzip", **{"If-None-Match": zipped.headers["ETag"]})
    assert not_modified.status_code == 304 and body == b"" and "Content-Encoding" not in not_modified.headers


def test_head_says_what_get_sends(server):
    got, got_body = raw_get(server, SEARCH, "gzip")
    head, head_body = raw_get(server, SEARCH, "gzip", method="HEAD")
    assert head.status_code == 200 and head_body == b""
    assert head.headers["Content-Encoding"] == "gzip"
    assert abs(int(head.headers["Content-Length"]) - len(got_body)) < 64  # the same Bundle, but its id and timestamp


def test_kept_metadata_answers_follow_accept_encoding(server):
    # The front keeps /metadata answers: one kept gzipped is not given to a client that did not ask for gzip.
    for _ in range(2):
        for encoding, coded in [("gzip", True), ("identity", False), ("gzip, br", True)]:
            response = requests.get(server.base_url + "/metadata", headers={"Accept-Encoding": encoding}, timeout=30, stream=True)
            body = response.raw.read(decode_content=False)
            assert response.status_code == 200
            assert (response.headers.get("Content-Encoding") == "gzip") is coded
            assert json.loads(gzip.decompress(body) if coded else body)["resourceType"] == "CapabilityStatement"
