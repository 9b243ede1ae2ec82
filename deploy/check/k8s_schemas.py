#!/usr/bin/env python3
"""Builds the JSON schemas kubeconform validates deploy/k8s against, offline.

Core kinds come from the kubernetes-validate wheel (PyPI), whose "-local-strict"
schemas point into one shared _definitions.json by absolute URL; each kind we
use is written out standalone, with just the definitions it reaches copied in
under $defs, so kubeconform never tries the network. CRDs (KEDA, Prometheus
Operator) come from their CRD YAML files, converted the way kubeconform's
openapi2jsonschema.py does, strict (unknown fields are errors).

Layout written under OUT, matching the -schema-location templates in
deploy-check.sh:
  OUT/{kind}-{group}-{version}.json   core kinds (kubeconform's KindSuffix)
  OUT/{group}/{kind}_{version}.json   CRDs
"""
import argparse
import copy
import json
import os
import sys
import zipfile

import yaml

DEFS_PREFIX = "/api/_definitions.json#/$defs/"


def core_schemas(wheel, k8s_version, kinds, out):
    base = f"kubernetes_validate/kubernetes-json-schema/v{k8s_version}-local-strict/"
    with zipfile.ZipFile(wheel) as z:
        defs = json.loads(z.read(base + "_definitions.json"))["$defs"]
        for kind in kinds:
            schema = json.loads(z.read(base + kind + ".json"))
            needed = {}
            todo = []

            def rewrite(node):
                if isinstance(node, dict):
                    for k, v in list(node.items()):
                        if k == "$ref" and isinstance(v, str):
                            if v.startswith(DEFS_PREFIX):
                                v = "#/$defs/" + v[len(DEFS_PREFIX):]
                                node[k] = v
                            if v.startswith("#/$defs/"):
                                name = v[len("#/$defs/"):]
                                if name not in needed:
                                    if name not in defs:
                                        sys.exit(f"{kind}: $ref to unknown definition {name}")
                                    needed[name] = copy.deepcopy(defs[name])
                                    todo.append(needed[name])
                            elif not v.startswith("#"):
                                sys.exit(f"{kind}: $ref {v} would leave the file")
                        else:
                            rewrite(v)
                elif isinstance(node, list):
                    for v in node:
                        rewrite(v)

            rewrite(schema)
            while todo:
                rewrite(todo.pop())
            schema["$defs"] = needed
            with open(os.path.join(out, kind + ".json"), "w") as f:
                json.dump(schema, f, sort_keys=True)
            print(f"k8s_schemas: {kind}.json ({len(needed)} definitions)", file=sys.stderr)


def strict(node):
    """Mirror openapi2jsonschema.py: closed objects, int-or-string."""
    if isinstance(node, dict):
        if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
            node.pop("format", None)
            node.pop("type", None)
            node.pop("anyOf", None)
            node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for v in node.values():
            strict(v)
    elif isinstance(node, list):
        for v in node:
            strict(v)


def crd_schemas(paths, out):
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                group, kind = spec["group"], spec["names"]["kind"].lower()
                os.makedirs(os.path.join(out, group), exist_ok=True)
                for v in spec["versions"]:
                    schema = copy.deepcopy(v["schema"]["openAPIV3Schema"])
                    strict(schema)
                    # apiVersion and kind must be these exactly.
                    props = schema.setdefault("properties", {})
                    props["apiVersion"] = {"type": "string", "enum": [f"{group}/{v['name']}"]}
                    props["kind"] = {"type": "string", "enum": [spec["names"]["kind"]]}
                    name = f"{kind}_{v['name']}.json"
                    with open(os.path.join(out, group, name), "w") as f:
                        json.dump(schema, f, sort_keys=True)
                    print(f"k8s_schemas: {group}/{name} from {os.path.basename(path)}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", required=True, help="kubernetes_validate-*.whl")
    ap.add_argument("--k8s-version", required=True, help="e.g. 1.34.0")
    ap.add_argument("--kind", action="append", default=[], help="core schema file stem, e.g. deployment-apps-v1")
    ap.add_argument("--crd", action="append", default=[], help="CRD YAML file")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    core_schemas(a.wheel, a.k8s_version, a.kind, a.out)
    crd_schemas(a.crd, a.out)


if __name__ == "__main__":
    main()
