"""The baseline app: the same stack as the server (Flask under gunicorn, pymongo to the same database)
doing the least a create can do, so that the benchmark can say what the server adds to it.

    POST /store      parse the JSON body, insert it into a collection, answer 201   (baseline A: receive and store)
    GET  /nothing    answer 204                                                     (baseline B: the framework's ceiling)
    GET  /find/<id>  find one stored role by ``_id``, answer its resource as JSON   (baseline C: the least a read does)
    GET  /metrics    the database commands the app sent (``PROMETHEUS_MULTIPROC_DIR`` sums the workers')

Served as ``fhir_server.bench.baseline:create_app()``; never part of the production app.
"""

from __future__ import annotations

import json

from flask import Flask, Response, request
from pymongo import MongoClient

from .. import metrics
from ..config import Settings
from ..store.client import client_options

COLLECTION = "bench_baseline"
#: Where the server keeps its roles: baseline C reads the documents the server's read reads.
ROLES = "practitioner_roles"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    # connect=False: no connection before gunicorn forks, as the server's own client.
    client: MongoClient[dict[str, object]] = MongoClient(
        settings.mongodb_uri, connect=False, **client_options(settings.db_timeout_ms, "fhir-bench-baseline"))
    collection, roles = client[settings.database][COLLECTION], client[settings.database][ROLES]
    app = Flask(__name__)

    @app.post("/store")
    def store() -> Response:
        result = collection.insert_one(json.loads(request.get_data()))
        return Response(json.dumps({"id": str(result.inserted_id)}), 201, content_type="application/json")

    @app.get("/nothing")
    def nothing() -> Response:
        return Response(status=204)

    @app.get("/find/<rid>")
    def find(rid: str) -> Response:
        doc = roles.find_one({"_id": rid}, {"resource": 1})
        if doc is None:
            return Response(status=404)
        return Response(json.dumps(doc["resource"], default=str), 200, content_type="application/json")

    @app.get("/metrics")
    def exposition() -> Response:
        return Response(metrics.exposition(), 200, content_type=metrics.CONTENT_TYPE)

    return app
