"""Fixtures shared by the HTTP tests."""

from __future__ import annotations

import pytest

from ..support import fresh_cpn, practitioner


@pytest.fixture(scope="module")
def person(api) -> str:
    """A practitioner of the module's tests alone, so that searches by it see only their roles."""
    cpn = fresh_cpn()
    assert api.post("/Practitioner", practitioner(cpn)).status_code == 201
    return cpn
