"""A FHIR R4 server for New Zealand HPI PractitionerRole records, stored in MongoDB."""

from .app import create_app

__all__ = ["create_app"]
