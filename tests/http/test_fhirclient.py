"""The server driven by fhirclient (https://github.com/smart-on-fhir/client-py), SMART's Python FHIR
client, a second library written elsewhere: paging by its next links, ``_revinclude`` and
``_summary``, each parsed into fhirclient's R4 models (which refuse what R4 does not define).

fhirclient's FHIRServer is used without SMART launch (no ``auth``); the server's headers (token,
API key, userid) ride on its requests session.
"""

from __future__ import annotations

import pytest
from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirsearch import FHIRSearch
from fhirclient.models.practitioner import Practitioner
from fhirclient.models.practitionerrole import PractitionerRole
from fhirclient.server import FHIRServer

from fhir_server.service.subsets import SUBSETTED

from ..support import Server, fresh_cpn, fresh_role, practitioner

ROLES = 5


@pytest.fixture(scope="module")
def fhir(server: Server) -> FHIRServer:
    client = FHIRServer(None, base_uri=server.base_url + "/")
    client.session.headers.update(server.headers())
    return client


@pytest.fixture(scope="module")
def person(api) -> tuple[str, set[str]]:
    """A practitioner of these tests alone, and the ids of its roles."""
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    made = set()
    for _ in range(ROLES):
        response = api.create(fresh_role(practitioner={"reference": f"Practitioner/{cpn}"}))
        assert response.status_code == 201, response.text
        made.add(response.json()["id"])
    return cpn, made


def test_paging_follows_the_next_links_to_every_role(fhir, person):
    cpn, made = person
    search = PractitionerRole.where(struct={"practitioner": cpn, "_count": "2", "_sort": "-_lastUpdated"})
    pages = list(search.perform_iter(fhir))
    assert len(pages) == 3 and all(isinstance(p, Bundle) and p.total == ROLES for p in pages)
    found = [e.resource.id for p in pages for e in p.entry]
    assert sorted(found) == sorted(made) and len(found) == len(set(found))
    assert {link.relation for link in pages[0].link} >= {"self", "first", "next", "last"}


def test_revinclude_brings_the_roles_of_a_practitioner(fhir, person):
    cpn, made = person
    search = FHIRSearch(Practitioner, {"identifier": cpn}).include("practitioner", PractitionerRole, reverse=True)
    assert "_revinclude=PractitionerRole:practitioner" in search.construct()
    bundle = next(search.perform_iter(fhir))
    matches = [e.resource for e in bundle.entry if e.search.mode == "match"]
    included = [e.resource for e in bundle.entry if e.search.mode == "include"]
    assert [type(r) for r in matches] == [Practitioner] and matches[0].id == cpn
    assert all(isinstance(r, PractitionerRole) for r in included)
    assert {r.id for r in included} == made


def test_summary_is_parsed_and_tagged(fhir, person):
    cpn, made = person
    bundle = next(PractitionerRole.where(struct={"practitioner": cpn, "_summary": "true"}).perform_iter(fhir))
    roles = [e.resource for e in bundle.entry]
    assert {r.id for r in roles} <= made and roles
    for role in roles:
        assert role.extension is None and role.identifier
        assert [(tag.system, tag.code) for tag in role.meta.tag] == [(SUBSETTED["system"], SUBSETTED["code"])]
    counted = next(PractitionerRole.where(struct={"practitioner": cpn, "_summary": "count"}).perform_iter(fhir))
    assert counted.total == ROLES and counted.entry is None
