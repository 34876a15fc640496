"""FHIR's order of a transaction's entries (fhir_server/service/bundle.transaction_order): deletes,
creates (each after the creates whose urn:uuid it refers to), updates, reads."""

from __future__ import annotations

from fhir_server.service.bundle import Request, transaction_order


def create(index: int, *refers_to: int) -> Request:
    resource = {"resourceType": "Practitioner", "contained": [{"reference": f"urn:uuid:{i}"} for i in refers_to]}
    return Request(index, "POST", "Practitioner", f"urn:uuid:{index}", resource)


def test_a_chain_of_creates_runs_from_its_end_whatever_the_order_sent():
    chain = [create(i, *range(i + 1, 100)) for i in range(99)] + [create(99)]
    assert [r.index for r in transaction_order(chain)] == list(range(99, -1, -1))


def test_creates_after_deletes_and_before_updates_and_reads_and_a_cycle_runs_last_in_the_order_sent():
    requests = [Request(0, "GET", "Practitioner/1", None, None), Request(1, "PUT", "Practitioner/2", None, {}),
                create(2, 3), create(3, 2), Request(4, "DELETE", "Practitioner/3", None, None), create(5, 5)]
    assert [r.index for r in transaction_order(requests)] == [4, 5, 2, 3, 1, 0]
