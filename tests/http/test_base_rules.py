"""FHIR R4's base rules over HTTP: create and $validate refuse what R4 does not allow (422), storing nothing."""

from __future__ import annotations

import pytest

from fhir_server.outcome import Msg, issue

from ..support import fresh_role, outcome_expressions, outcome_messages, stored_counts
from .test_reference_resources import new_record

XHTML = "http://www.w3.org/1999/xhtml"

CASES = [
    (dict(telecom=[{"system": "carrier-pigeon", "value": "coo", "use": "work"}]), "PractitionerRole.telecom[0].system"),
    (dict(period={}), "PractitionerRole.period"),
    (dict(text={"status": "generated", "div": f'<div xmlns="{XHTML}"><script>alert(1)</script>hi</div>'}),
     "PractitionerRole.text.div"),
    (dict(implicitRules="http://example.org/rules"), "PractitionerRole.implicitRules"),
    (dict(modifierExtension=[{"url": "http://example.org/means-the-opposite", "valueBoolean": True}]),
     "PractitionerRole.modifierExtension[0]"),
]


@pytest.mark.parametrize("changes, expression", CASES)
def test_create_refuses_what_r4_does_not_allow_and_stores_nothing(api, mongo, changes, expression):
    before = stored_counts(mongo)
    response = api.create(fresh_role(**changes))
    assert response.status_code == 422, response.text
    assert expression in outcome_expressions(response)
    assert stored_counts(mongo) == before


def test_validate_lists_every_r4_problem(api, mongo):
    before = stored_counts(mongo)
    role = fresh_role(identifier=[{}], text={"status": "bogus", "div": f'<div xmlns="{XHTML}">x</div>'},
                      extension=[*fresh_role()["extension"], {"url": "http://example.org/x"}])
    response = api.post("/PractitionerRole/$validate", role)
    assert response.status_code == 200
    messages = outcome_messages(response)
    assert issue(Msg.BASE_INVARIANT, key="ele-1", human="All FHIR elements must have a @value or children").diagnostics in messages
    assert issue(Msg.BASE_INVARIANT, key="ext-1", human="Must have either extensions or value[x], not both").diagnostics in messages
    assert {"PractitionerRole.identifier[0]", "PractitionerRole.text.status"} <= set(outcome_expressions(response))
    assert stored_counts(mongo) == before


@pytest.mark.parametrize("changes, expression", [
    (dict(gender="robot"), "Practitioner.gender"),
    (dict(name=[{"use": "bogus", "family": "X"}]), "Practitioner.name[0].use"),
])
def test_a_practitioner_outside_r4_is_refused(api, changes, expression):
    record = {**new_record("Practitioner"), **changes}
    response = api.post("/Practitioner", record)
    assert response.status_code == 422, response.text
    assert outcome_expressions(response) == [expression]
    assert api.get(f"/Practitioner/{record['identifier'][0]['value']}").status_code == 404
