"""The duplicate rule holds under concurrency, across gunicorn workers, with no transactions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from .support import Api, fresh_role


def test_20_parallel_identical_creates_give_one_201(server, mongo):
    role = fresh_role()
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: Api(server).create(role), range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [422] * 19
    code = role["code"][0]["coding"][0]["code"]
    assert mongo["practitioner_roles"].count_documents({"resource.code.coding.code": code}) == 1
