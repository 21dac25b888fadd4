"""The agent protocol v1 as an OpenAPI 3.1 document, served at /v1/openapi.json."""

from pools.agent import AGENT_VERSION

_error = {"$ref": "#/components/schemas/Error"}


def _json(schema, description):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_CLAIM_ID = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string", "format": "uuid"}}}


def _batch_call(summary: str, key: str, item: dict, answer: dict) -> dict:
    """A batch call: ``{key: [...]}`` with 1 to 500 items in; per item, in order, the status and body its single call would answer."""
    batch = {"type": "object", "required": [key], "properties": {key: {"type": "array", "minItems": 1, "maxItems": 500, "items": item}}}
    result = {"type": "object", "required": ["status", "body"], "properties": {"id": {}, "status": {"type": "integer"}, "body": answer}}
    results = {"type": "object", "required": ["results"], "properties": {"results": {"type": "array", "items": result}}}
    return {
        "post": {
            "summary": summary,
            "requestBody": {"required": True, "content": {"application/json": {"schema": batch}}},
            "responses": {
                "200": _json(results, "Each item's answer, in order"),
                "400": _json(_error, f'Not {{"{key}": [...]}} with 1 to 500 items'),
                **_errors,
            },
        }
    }


_errors = {
    "401": _json(_error, "Missing or wrong bearer token"),
    "503": _json(_error, "Injected fault (error_rate)"),
}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {
        "title": "oCenter pool agent",
        "version": AGENT_VERSION,
        "description": (
            "Protocol v1 between oCenter and the agent beside one GPU pool. "
            "Every call but this document needs 'Authorization: Bearer <pool token>'. "
            "Allocation ids are oCenter's allocation UUIDs, so claims are idempotent."
        ),
    },
    "components": {
        "securitySchemes": {"pool_token": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["status", "detail"],
                "properties": {
                    "status": {"type": "integer"},
                    "detail": {"type": "string", "description": "what went wrong and what to change"},
                    "code": {"type": "string", "enum": ["does_not_fit", "gpu_unknown", "gpu_unhealthy", "id_in_use"]},
                    "errors": {"type": "object", "additionalProperties": {"type": "string"}},
                    "free_compute_units": {"type": "integer"},
                    "free_memory_mib": {"type": "integer"},
                },
            },
            "Accelerator": {
                "type": "object",
                "required": ["uuid", "index", "vendor", "model", "memory_mib", "health"],
                "properties": {
                    "uuid": {"type": "string"},
                    "index": {"type": "integer", "minimum": 0},
                    "vendor": {"type": "string"},
                    "model": {"type": "string"},
                    "memory_mib": {"type": "integer", "minimum": 1},
                    "health": {"type": "string", "enum": ["healthy", "unhealthy"]},
                    "templates": {
                        "type": "array",
                        "description": "the shapes the device is cut to (Ascend vNPU templates), smallest first: a claim is one or whole",
                        "items": {
                            "type": "object",
                            "required": ["name", "compute_units", "memory_mib"],
                            "properties": {
                                "name": {"type": "string"},
                                "compute_units": {"type": "integer"},
                                "memory_mib": {"type": "integer"},
                            },
                        },
                    },
                },
            },
            "Inventory": {
                "type": "object",
                "required": ["pool", "generation", "nodes"],
                "properties": {
                    "pool": {"type": "string"},
                    "generation": {"type": "integer", "description": "grows whenever the inventory changes"},
                    "nodes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name", "accelerators"],
                            "properties": {
                                "name": {"type": "string"},
                                "accelerators": {"type": "array", "items": {"$ref": "#/components/schemas/Accelerator"}},
                            },
                        },
                    },
                },
            },
            "ClaimRequest": {
                "type": "object",
                "required": ["gpu_uuid", "compute_units", "memory_mib"],
                "additionalProperties": False,
                "properties": {
                    "gpu_uuid": {"type": "string"},
                    "compute_units": {"type": "integer", "minimum": 1, "maximum": 100},
                    "memory_mib": {"type": "integer", "minimum": 1},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
            "Claim": {
                "type": "object",
                "required": ["id", "gpu_uuid", "compute_units", "memory_mib", "claimed_at", "env"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "gpu_uuid": {"type": "string"},
                    "node": {"type": ["string", "null"]},
                    "compute_units": {"type": "integer"},
                    "memory_mib": {"type": "integer"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "claimed_at": {"type": "number", "description": "Unix time, the agent's clock"},
                    "env": {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "description": "launch environment that enforces the slice",
                    },
                    "template": {"type": "string", "description": "the template the slice is, on a device cut to templates"},
                    "launch": {
                        "type": "object",
                        "description": "kubernetes backend: what the workload's pod carries (namespace, labels, annotations, nodeSelector, "
                        "resources)",
                    },
                },
            },
        },
    },
    "security": [{"pool_token": []}],
    "paths": {
        "/v1/health": {
            "get": {
                "summary": "Status, version, backend and inventory generation",
                "responses": {"200": _json({"type": "object"}, "The agent's health"), **_errors},
            }
        },
        "/v1/inventory": {
            "get": {
                "summary": "Nodes and their GPUs",
                "responses": {"200": _json({"$ref": "#/components/schemas/Inventory"}, "The inventory"), **_errors},
            }
        },
        "/v1/allocations": {
            "get": {
                "summary": "Every claim the agent holds",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"allocations": {"type": "array", "items": {"$ref": "#/components/schemas/Claim"}}},
                        },
                        "The claims",
                    ),
                    **_errors,
                },
            }
        },
        "/v1/allocations/{id}": {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
            "get": {
                "summary": "One claim the agent holds",
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Claim"}, "The claim"),
                    "404": _json(_error, "The agent holds no such claim"),
                    **_errors,
                },
            },
            "put": {
                "summary": "Claim a slice of a named GPU (idempotent by id)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ClaimRequest"}}},
                },
                "responses": {
                    "201": _json({"$ref": "#/components/schemas/Claim"}, "Claimed"),
                    "200": _json({"$ref": "#/components/schemas/Claim"}, "Already held: the same slice was asked before"),
                    "400": _json(_error, "The body is not JSON"),
                    "409": _json(_error, "The GPU cannot hold the slice, is unknown or unhealthy, or the id holds another slice"),
                    "422": _json(_error, "The id or a field is not valid"),
                    **_errors,
                },
            },
            "delete": {
                "summary": "Release a claim (idempotent: releasing twice is not an error)",
                "responses": {
                    "200": _json(
                        {"type": "object", "properties": {"id": {"type": "string"}, "released": {"type": "boolean"}}},
                        "released is false when the agent held no such claim",
                    ),
                    **_errors,
                },
            },
        },
        "/v1/claims": _batch_call(
            "Claim several slices in one call (up to 500), each as PUT /v1/allocations/{id} would (idempotent by id)",
            "claims",
            {"allOf": [{"$ref": "#/components/schemas/ClaimRequest"}, _CLAIM_ID]},
            {"oneOf": [{"$ref": "#/components/schemas/Claim"}, _error]},
        ),
        "/v1/releases": _batch_call(
            "Release several claims in one call (up to 500), each as DELETE /v1/allocations/{id} would",
            "ids",
            {"type": "string"},
            {"type": "object"},
        ),
        "/v1/metrics": {
            "get": {
                "summary": "Per-GPU utilization, memory, power, temperature; per-claim usage",
                "responses": {"200": _json({"type": "object"}, "Figures now"), **_errors},
            }
        },
        "/metrics": {
            "get": {
                "summary": "The same figures in Prometheus' text format (version 0.0.4), for a scrape with the pool token",
                "responses": {"200": {"description": "Figures now", "content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors},
            }
        },
        "/v1/faults": {
            "put": {
                "summary": "Set fault knobs (tests and demos): latency, error rate, unhealthy GPUs, refuse connections",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "latency_ms": {"type": "integer", "minimum": 0, "maximum": 60000},
                                    "error_rate": {"type": "number", "minimum": 0, "maximum": 1},
                                    "unhealthy_gpus": {"type": "array", "items": {"type": "string"}},
                                    "lost_claim_answer_rate": {"type": "number", "minimum": 0, "maximum": 1},
                                    "outside_use_mib": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                                    "refuse_connections_seconds": {"type": "number", "minimum": 0, "maximum": 3600},
                                },
                            }
                        }
                    }
                },
                "responses": {"200": _json({"type": "object"}, "The knobs now"), "422": _json(_error, "A knob is not valid"), **_errors},
            }
        },
    },
}
