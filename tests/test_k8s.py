"""Kubernetes manifests under infra/k8s validated without a cluster.

What is validated, exactly: every core resource (Namespace, ServiceAccount, Role, RoleBinding, Service,
StatefulSet, Deployment) against the published Kubernetes 1.31 OpenAPI schemas bundled by the
kubernetes-validate package, in strict mode (unknown fields are errors). Every SparkApplication against
infra/k8s/schemas/sparkapplication-v1beta2.schema.json, a hand-written subset of the Spark operator's v1beta2
CRD schema whose core types (EnvVar, VolumeMount, ObjectMeta...) are the same bundled Kubernetes schemas.
Not validated: CEL rules and admission webhooks, that images exist, that referenced secrets exist.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

K8S_VERSION = "1.31.0"
K8S_DIR = ROOT / "infra" / "k8s"
CRD_SCHEMA = K8S_DIR / "schemas" / "sparkapplication-v1beta2.schema.json"
DOCUMENTS = [
    (path, index, doc)
    for path in sorted(K8S_DIR.rglob("*.yaml"))
    for index, doc in enumerate(yaml.safe_load_all(path.read_text()))
    if doc
]


def doc_id(item) -> str:
    path, index, doc = item
    return f"{path.relative_to(K8S_DIR)}#{index}:{doc.get('kind')}"


def spark_application_validator():
    from referencing import Registry, Resource

    bundled = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    definitions = json.loads((bundled / f"v{K8S_VERSION}-local-strict" / "_definitions.json").read_text())
    registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
    schema = json.loads(CRD_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def spark_applications():
    return [(p, i, d) for p, i, d in DOCUMENTS if d["kind"] == "SparkApplication"]


def test_manifests_cover_the_stack():
    kinds = {doc["kind"] for _, _, doc in DOCUMENTS}
    assert {"SparkApplication", "Deployment", "StatefulSet", "Service", "ServiceAccount", "Role"} <= kinds
    assert spark_applications(), "no SparkApplication manifests"


@pytest.mark.parametrize("item", [d for d in DOCUMENTS if d[2]["kind"] != "SparkApplication"], ids=doc_id)
def test_core_resources_match_the_kubernetes_schema(item):
    _, _, doc = item
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("item", spark_applications(), ids=doc_id)
def test_spark_applications_match_the_operator_crd_schema(item):
    _, _, doc = item
    errors = sorted(spark_application_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


@pytest.mark.parametrize("item", spark_applications(), ids=doc_id)
def test_spark_applications_run_a_job_of_this_repository(item):
    import pyspark

    _, _, doc = item
    spec = doc["spec"]
    job = spec["mainApplicationFile"].removeprefix("local:///opt/lakehouse/")
    assert (ROOT / job).is_file(), f"{spec['mainApplicationFile']} is not a file of this repository"
    assert spec["sparkVersion"] == pyspark.__version__
    for role in ("driver", "executor"):
        env = {e["name"]: e.get("value") for e in spec[role]["env"]}
        assert env["LAKEHOUSE_WAREHOUSE"].startswith("s3a://")
        assert env["LAKEHOUSE_METASTORE_URI"].startswith("thrift://"), (
            "pods need a shared metastore, not Derby"
        )
    accounts = {d["metadata"]["name"] for _, _, d in DOCUMENTS if d["kind"] == "ServiceAccount"}
    assert spec["driver"]["serviceAccount"] in accounts


def test_the_crd_schema_rejects_broken_applications():
    validator = spark_application_validator()
    [(_, _, good)] = spark_applications()[:1]

    def problems(mutate) -> list[str]:
        doc = copy.deepcopy(good)
        mutate(doc)
        return [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]

    assert any("'exectuor'" in p for p in problems(lambda d: d["spec"].update(exectuor={})))
    assert any(
        p.startswith("spec/executor/cores") for p in problems(lambda d: d["spec"]["executor"].update(cores=0))
    )
    assert any(p.startswith("spec/type") for p in problems(lambda d: d["spec"].update(type="Go")))
    assert any("sparkVersion" in p for p in problems(lambda d: d["spec"].pop("sparkVersion")))
    assert any(
        p.startswith("spec/driver/memory")
        for p in problems(lambda d: d["spec"]["driver"].update(memory="4 GB"))
    )
    # core types come from the Kubernetes schema: an EnvVar without a name is refused
    assert any(
        p.startswith("spec/driver/env/0")
        for p in problems(lambda d: d["spec"]["driver"]["env"].insert(0, {"value": "x"}))
    )


def test_the_kubernetes_schema_rejects_broken_core_resources():
    [deployment] = [copy.deepcopy(d) for _, _, d in DOCUMENTS if d["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError, match="imagePullPolcy"):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)
    [statefulset] = [copy.deepcopy(d) for _, _, d in DOCUMENTS if d["kind"] == "StatefulSet"]
    statefulset["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(statefulset, K8S_VERSION, strict=True)
