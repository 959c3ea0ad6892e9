#!/usr/bin/env python3
"""Validates the Prometheus Operator resources in rendered manifests against the CRD
schemas beside this file (ServiceMonitor and PrometheusRule, openAPIV3Schema of v1, taken
from prometheus-operator's CRD definitions; each file's $comment names the release).

kubernetes-validate knows only the core Kubernetes kinds; this covers the two custom
ones. Unknown fields are rejected, as the API server's strict field validation does:
every object schema that lists properties gets additionalProperties: false unless it
preserves unknown fields. Usage: check.py RENDERED.yaml; exit 1 on any problem.
"""
import json
import pathlib
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).parent
SCHEMAS = {"ServiceMonitor": "servicemonitor.json", "PrometheusRule": "prometheusrule.json"}


def strict(schema):
    if isinstance(schema, dict):
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


def main(path):
    failed = False
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc.get("kind") not in SCHEMAS:
            continue
        schema = strict(json.loads((HERE / SCHEMAS[doc["kind"]]).read_text()))
        name = f'{doc["kind"]}/{doc["metadata"]["name"]}'
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=str)
        for e in errors:
            where = "/".join(str(p) for p in e.absolute_path)
            print(f"{name}: {where}: {e.message}")
            failed = True
        if not errors:
            print(f"{name}: valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
