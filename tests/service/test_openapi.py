"""The committed OpenAPI document is the one the application generates."""

from __future__ import annotations

import json

from examples.service.openapi import PATH, main, openapi_document, render


def test_the_committed_openapi_document_is_current() -> None:
    assert PATH.read_text(encoding="utf-8") == render(), "run: python -m examples.service.openapi"
    assert main(["--check"]) == 0


def test_the_document_describes_bearer_auth_the_policy_schema_and_problem_responses() -> None:
    doc = openapi_document()
    assert doc["info"]["title"] == "snapvault service"
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    put = doc["paths"]["/policies/{name}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Policy"}
    assert set(doc["components"]["schemas"]["Policy"]["required"]) == {"name", "sources"}
    # Every authenticated operation names the bearer scheme and documents its refusals as
    # problem documents; /health alone needs no token.
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemDoc"}}}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("security" in op) == (path != "/health"), path
            if path != "/health":
                for status in ("401", "403", "422", "429"):
                    assert op["responses"][status]["content"] == problem, (path, status)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    json.dumps(doc)  # serialisable as committed
