"""A FHIR R4 server for New Zealand HPI PractitionerRole records, stored in MongoDB."""

from .app import create_app
from .version import VERSION as __version__

__all__ = ["__version__", "create_app"]
