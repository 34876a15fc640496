"""The audit trail: who made each write (a FHIR R4 Provenance, https://hl7.org/fhir/R4/provenance.html)
and one structured log line for every request.

A write's record (:func:`record`: version, time, activity, userid, client, key; some 150 bytes) is
made here and stored by the store in the same document, in the same write, as the version it
describes (DESIGN.md "Trust"): a role's with its current document and copied into its version
document; a Practitioner's, Organization's or Location's in an array of its one document (a record
that kept every version's whole Provenance, about 1 KB, would reach MongoDB's 16 MB after some 15,000
updates; the HPI's own Practitioner 98ZZQJ is at version 10,594). :func:`provenance` serves a record
as the FHIR Provenance of its version.

How a Provenance says who made the write:

``id``
    ``{type}-{id}-{version}`` of its target, e.g. ``PractitionerRole-R00000001-A-2``: one lookup, and
    the same Provenance however often a lost version is written again.
``target``
    the version written, ``PractitionerRole/R00000001-A/_history/2``; ``recorded`` is its lastUpdated.
``activity``
    v3-DataOperation ``CREATE`` or ``UPDATE``.
``agent`` (``type`` → ``who``)
    provenance-participant-type ``author``: the person, ``who.identifier`` the request's ``userid``
    (system hpi-person-id when it is a well-formed CPN, else no system); left out when the request
    named nobody (the plain-JSON API, the server's own commands).

    DICOM ``110150`` "Application": the client, ``who.identifier`` its client_id (system
    :data:`CLIENT_SYSTEM`), ``who.display`` its name, and the id of the API key it used in the
    extension :data:`API_KEY_EXTENSION` (``valueString``). For the server's own commands (``fhir-server
    load``, first-start data) the client has only its display, the command's name.

The request log is the logger ``fhir_server.requests``: one line a request (one JSON object with
``LOG_FORMAT=json``, see logs.py) with ``time``, ``level``, ``message`` ("request") and
``request_id`` (the X-Request-Id answered), ``correlation_id`` (the X-Correlation-Id echoed),
``client_id``, ``key_id``, ``userid``, ``interaction`` (``Type.interaction`` of the route table, else
the endpoint), ``method``, ``route`` (Flask's rule, ``/PractitionerRole/<rid>``; null when none
matched), ``path`` (without query), ``status``, ``latency_ms`` (from the request's arrival, read whole,
to its answer) and ``db_round_trips`` (database commands the request sent); ``bundle_entry`` marks
the line of a Bundle's entry (under the Bundle's request id), ``answered_by: "front"`` an answer the
front gave without the app (refusals before the app, kept public answers). Query strings, headers,
tokens and keys are never written; the userid only once it passed its check.
"""

from __future__ import annotations

import logging
import typing as t

from . import identifiers as ids
from . import logs

if t.TYPE_CHECKING:
    from .auth import Access

_NS = "https://fhir-server.example/fhir/"
CLIENT_SYSTEM = _NS + "ns/client-id"
API_KEY_EXTENSION = _NS + "StructureDefinition/api-key-id"
DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
CREATE, UPDATE = "CREATE", "UPDATE"
_ACTIVITY_DISPLAY = {CREATE: "create", UPDATE: "revise"}  # as v3-DataOperation displays them
# Resource types whose writes are audited: the types a Provenance may target.
TARGET_TYPES = ("PractitionerRole", "Practitioner", "Organization", "Location")


# --- Provenance --------------------------------------------------------------------------------------

def provenance_id(rtype: str, rid: str, vid: int | str) -> str:
    return f"{rtype}-{rid}-{vid}"


def parse_provenance_id(pid: str) -> tuple[str, str, int] | None:
    """``(type, id, version)`` of the target a Provenance id names; None if it names none."""
    rtype, _, rest = pid.partition("-")
    rid, _, vid = rest.rpartition("-")
    if rtype not in TARGET_TYPES or not rid or not (vid.isascii() and vid.isdigit()) or len(vid) > 9:
        return None
    return rtype, rid, int(vid)


def parse_target(value: str) -> tuple[str, str, int | None] | None:
    """``(type, id, version or None)`` of a ``target`` search value: ``Type/id`` or
    ``Type/id/_history/n``, relative or absolute; None if it is neither."""
    parts = value.rstrip("/").split("/")
    vid: int | None = None
    if len(parts) >= 4 and parts[-2] == "_history":
        if not (parts[-1].isascii() and parts[-1].isdigit()) or len(parts[-1]) > 9:
            return None
        vid, parts = int(parts[-1]), parts[:-2]
    if len(parts) < 2 or parts[-2] not in TARGET_TYPES or not parts[-1]:
        return None
    return parts[-2], parts[-1], vid


def target_type(value: str) -> str | None:
    """The resource type a Provenance id or ``target`` value is about, for the scope it needs."""
    parsed = parse_target(value) or parse_provenance_id(value)
    return parsed[0] if parsed else None


def record(resource: t.Mapping[str, t.Any], access: Access, activity: str) -> dict[str, t.Any]:
    """What is stored of writing ``resource`` (a version just made) by ``access``'s caller."""
    meta = resource["meta"]
    written = {"vid": int(meta["versionId"]), "at": meta["lastUpdated"], "op": activity}
    caller = (("user", access.userid), ("client", access.client_id), ("name", access.client_name), ("key", access.key_id))
    return {**written, **{name: value for name, value in caller if value}}


def provenance(rtype: str, rid: str, written: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """The Provenance of version ``written["vid"]`` of ``rtype/rid``, from its :func:`record`."""
    vid, recorded, activity = written["vid"], written["at"], written["op"]
    agents = [_person(written["user"])] if written.get("user") else []
    agents.append(_client(written))
    return {
        "resourceType": "Provenance",
        "id": provenance_id(rtype, rid, vid),
        "meta": {"versionId": "1", "lastUpdated": recorded},
        "target": [{"reference": f"{rtype}/{rid}/_history/{vid}"}],
        "recorded": recorded,
        "activity": {"coding": [{"system": DATA_OPERATION, "code": activity, "display": _ACTIVITY_DISPLAY[activity]}]},
        "agent": agents,
    }


def _person(userid: str) -> dict[str, t.Any]:
    identifier = {"system": ids.PERSON_SYSTEM, "value": userid} if ids.is_valid_cpn(userid) else {"value": userid}
    return {"type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]},
            "who": {"identifier": identifier}}


def _client(written: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    who: dict[str, t.Any] = {}
    if written.get("client"):
        who["identifier"] = {"system": CLIENT_SYSTEM, "value": written["client"]}
    who["display"] = written.get("name") or written.get("client") or "unknown"
    agent: dict[str, t.Any] = {}
    if written.get("key"):
        agent["extension"] = [{"url": API_KEY_EXTENSION, "valueString": written["key"]}]
    agent["type"] = {"coding": [{"system": DICOM, "code": "110150", "display": "Application"}]}
    agent["who"] = who
    return agent


# --- the request log ---------------------------------------------------------------------------------

REQUEST_LOG = logging.getLogger("fhir_server.requests")


#: The WSGI environ's key for when a request arrived whole (``time.monotonic()``), set by the serving
#: front (else when the app first saw it): its latency counts the wait for an app thread.
RECEIVED = "fhir_server.received"


def log_request(**fields: t.Any) -> None:
    """One line for one request, formatted as logs.py says (LOG_FORMAT). The caller passes only what
    was checked: never a token, an API key, a query string or an unchecked header."""
    REQUEST_LOG.info("request", extra={logs.FIELDS: fields})
