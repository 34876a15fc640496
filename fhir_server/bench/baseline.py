"""The baseline app: the same stack as the server (Flask under gunicorn, pymongo to the same database)
doing the least a create can do, so that the benchmark can say what the server adds to it.

    POST /store   parse the JSON body, insert it into a collection, answer 201   (baseline A: receive and store)
    GET  /nothing answer 204                                                     (baseline B: the framework's ceiling)

Served as ``fhir_server.bench.baseline:create_app()``; never part of the production app.
"""

from __future__ import annotations

import json

from flask import Flask, Response, request
from pymongo import MongoClient

from ..config import Settings
from ..store.client import client_options

COLLECTION = "bench_baseline"


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings()
    # connect=False: no connection before gunicorn forks, as the server's own client.
    client: MongoClient[dict[str, object]] = MongoClient(
        settings.mongodb_uri, connect=False, **client_options(settings.db_timeout_ms, "fhir-bench-baseline"))
    collection = client[settings.database][COLLECTION]
    app = Flask(__name__)

    @app.post("/store")
    def store() -> Response:
        result = collection.insert_one(json.loads(request.get_data()))
        return Response(json.dumps({"id": str(result.inserted_id)}), 201, content_type="application/json")

    @app.get("/nothing")
    def nothing() -> Response:
        return Response(status=204)

    return app
