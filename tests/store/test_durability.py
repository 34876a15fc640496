"""What the store asks of the database whatever the connection string says, and
which pymongo errors are answered as "unavailable"."""

from __future__ import annotations

import pytest
from pymongo import MongoClient, ReadPreference
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    NotPrimaryError,
    OperationFailure,
    WaitQueueTimeoutError,
    WriteConcernError,
    WTimeoutError,
)

from fhir_server.store import Store
from fhir_server.store.client import deciding, on_primary
from fhir_server.store.errors import is_unavailable, unavailable

URI = "mongodb://127.0.0.1:1/?directConnection=true"  # never connected: options only


@pytest.mark.parametrize("options", ["", "&w=1", "&w=0", "&journal=false", "&w=1&journal=false", "&w=majority"])
def test_writes_are_majority_and_journaled_whatever_the_uri_says(options: str) -> None:
    store = Store(URI + options, "x")
    try:
        assert store.db.write_concern.document == {"w": "majority", "j": True}
    finally:
        store.close()


def test_a_custom_write_concern_tag_of_the_uri_is_kept_and_journaled() -> None:
    store = Store(URI + "&w=twoDataCentres", "x")
    try:
        assert store.db.write_concern.document == {"w": "twoDataCentres", "j": True}
    finally:
        store.close()


def test_reads_that_decide_a_write_go_to_the_primary_whatever_the_uri_says() -> None:
    client: MongoClient[dict[str, object]] = MongoClient(URI + "&readPreference=secondaryPreferred", connect=False)
    try:
        collection = client["x"]["practitioner_roles"]
        assert collection.read_preference == ReadPreference.SECONDARY_PREFERRED  # plain reads follow the URI
        assert deciding(collection).read_preference == ReadPreference.PRIMARY
        assert deciding(collection).read_concern.level == "majority"
        # What became of a write whose answer was lost is read from the primary as it stands, too.
        assert on_primary(collection).read_preference == ReadPreference.PRIMARY
        assert on_primary(collection).read_concern.level == "local"
    finally:
        client.close()


@pytest.mark.parametrize("error", [
    AutoReconnect("connection closed"), NetworkTimeout("timed out"), NotPrimaryError("not primary", {"code": 10107}),
    WaitQueueTimeoutError("pool full"), ExecutionTimeout("operation exceeded time limit", 50),
    WriteConcernError("waiting for replication timed out", 64), WTimeoutError("wtimeout", 64),
    *(OperationFailure("mongos", code) for code in (6, 7, 89, 91, 189, 262, 11600, 10107)),
    OperationFailure("labelled", 1, {"ok": 0, "code": 1, "errorLabels": ["RetryableWriteError"]}),
    BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64, "errmsg": "wtimeout"}], "nInserted": 1}),
], ids=repr)
def test_errors_that_leave_the_outcome_unknown_are_unavailable(error: Exception) -> None:
    assert is_unavailable(error)
    assert unavailable(error, wrote=True).may_be_applied
    assert not unavailable(error, wrote=False).may_be_applied
    assert unavailable(error, wrote=True).status == 503


def test_an_error_that_says_no_write_was_performed_is_not_answered_as_perhaps_applied() -> None:
    error = OperationFailure("shutting down", 91, {"ok": 0, "code": 91, "errorLabels": ["RetryableWriteError", "NoWritesPerformed"]})
    assert not unavailable(error, wrote=True).may_be_applied


@pytest.mark.parametrize("error", [DuplicateKeyError("E11000", 11000), OperationFailure("bad query", 2),
                                   BulkWriteError({"writeErrors": [{"code": 11000}], "writeConcernErrors": []})], ids=repr)
def test_errors_of_the_request_itself_are_not_unavailable(error: Exception) -> None:
    assert not is_unavailable(error)
