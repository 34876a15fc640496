"""The CapabilityStatement: what this server does, for clients that ask at ``/metadata``."""

from __future__ import annotations

import typing as t

from .validation.profile import PROFILE_URL

SOFTWARE_VERSION = "0.1.0"

# Interactions per resource type, as the HTTP layer offers them.
RESOURCES = {
    "PractitionerRole": {
        "profile": PROFILE_URL,
        "interactions": {
            "create": "Create a PractitionerRole under the HPI rules; the server issues its hpi-practitionerrole-id",
            "read": "Read the current version of a PractitionerRole by its hpi-practitionerrole-id",
        },
    },
}


def capability_statement(base_url: str, started: str) -> dict[str, t.Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": started,
        "publisher": "fhir-server",
        "kind": "instance",
        "software": {"name": "fhir-server", "version": SOFTWARE_VERSION},
        "implementation": {"description": "HPI PractitionerRole FHIR server", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Every request but /metadata needs an x-api-key header (403 without) "
                                        "and a userid header naming the person making it (401 without)."},
            "resource": [
                {
                    "type": rtype,
                    "profile": spec["profile"],
                    "supportedProfile": [spec["profile"]],
                    "interaction": [{"code": code, "documentation": doc} for code, doc in spec["interactions"].items()],
                    "versioning": "versioned",
                    "readHistory": False,
                    "updateCreate": False,
                }
                for rtype, spec in RESOURCES.items()
            ],
        }],
    }
