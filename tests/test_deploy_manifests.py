"""deploy/kuberay/*.yaml must be RayServices KubeRay accepts, for this server as it is.

Each RayService is validated against KubeRay's RayService CRD schema (tests/data/kuberay: the v1
``openAPIV3Schema`` of KubeRay v1.7.0), translated from Kubernetes' structural schema to JSON Schema,
and its ``serveConfigV2`` against Ray Serve's own config schema. Then against the code: the Serve
application and its deployments exist, and every ``ORCH_*`` variable is a setting.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator

from orchestrator.config import Settings

ROOT = Path(__file__).resolve().parents[1]
MANIFEST_DIR = ROOT / "deploy" / "kuberay"
SCHEMA_PATH = ROOT / "tests" / "data" / "kuberay" / "rayservice_v1_schema.json"

# Never a literal in the manifest, never in serveConfigV2 (Ray shows runtime_env to anyone who can
# read the dashboard): from a Secret on the pods only.
SECRET_VARIABLES = {"ORCH_DATABASE_URL", "ORCH_ADMIN_KEY", "ORCH_LLM_API_KEY"}
# KubeRay: a RayCluster name is at most 53 characters, and a RayService's clusters add "-xxxxx".
MAX_RAYSERVICE_NAME = 47
DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
MIN_RAY_FOR_TOKEN_AUTH = (2, 52, 0)  # KubeRay rejects authOptions.mode token on older Ray
DEFAULT_SERVE_PORT = 8000  # Serve's http_options.port and KubeRay's `serve` port when unset
SERVE_DEFAULT_MAX_ONGOING = 5  # Serve's max_ongoing_requests when neither code nor config sets it


# --------------------------------------------------------------------------- structural schema -> JSON Schema

LIST_MAP_KEYS = "x-kubernetes-list-map-keys"
INT_FORMAT_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


def to_json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes structural schema (OpenAPI v3 with ``x-kubernetes-*`` extensions) as JSON Schema.

    - ``x-kubernetes-int-or-string``: an integer or a string (quantities like ``cpu: 2`` or ``"500m"``);
    - ``nullable``: ``null`` allowed too;
    - ``format: int32/int64``: the integer's range (the apiserver rejects overflow);
    - objects with ``properties`` and no ``x-kubernetes-preserve-unknown-fields``: no other fields.
      The apiserver would prune them (and ``kubectl apply`` rejects them): in a manifest they are typos;
    - ``x-kubernetes-embedded-resource``: ``apiVersion``, ``kind`` and ``metadata`` allowed;
    - ``x-kubernetes-list-type: set``: unique items; ``map``: unique keys (:func:`_unique_map_keys`);
    - ``x-kubernetes-validations`` (CEL, only ``managedBy`` and immutability rules in this CRD) and the
      ``atomic``/``granular`` merge strategies are not checked: they say nothing a manifest could break.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "not") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = to_json_schema(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key.startswith("x-kubernetes-") or key == "nullable":
            continue  # translated below
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"]
        if "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    bounds = INT_FORMAT_BOUNDS.get(schema.get("format", ""))
    if bounds and schema.get("type") == "integer":
        out.setdefault("minimum", bounds[0])
        out.setdefault("maximum", bounds[1])
    if schema.get("x-kubernetes-embedded-resource"):
        properties = out.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string"})
        properties.setdefault("kind", {"type": "string"})
        properties.setdefault("metadata", {"type": "object"})
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    list_type = schema.get("x-kubernetes-list-type")
    if list_type == "set":
        out["uniqueItems"] = True
    elif list_type == "map":
        out[LIST_MAP_KEYS] = schema[LIST_MAP_KEYS]
    return out


def _unique_map_keys(
    validator: Validator, keys: list[str], instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``x-kubernetes-list-type: map``: no two items with the same keys (a missing key takes its default,
    as the apiserver fills it in first: ``protocol: TCP`` of a port)."""
    if not validator.is_type(instance, "array"):
        return
    defaults = {key: sub.get("default") for key, sub in schema.get("items", {}).get("properties", {}).items()}
    seen: dict[str, int] = {}
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        identity = json.dumps([item.get(key, defaults.get(key)) for key in keys])
        if identity in seen:
            yield ValidationError(
                f"items {seen[identity]} and {index} have the same {'/'.join(keys)} {identity} "
                "(x-kubernetes-list-type: map)"
            )
        else:
            seen[identity] = index


# OpenAPI v3.0's schema objects are a dialect of JSON Schema draft 4: draft 4 and one more keyword.
_DRAFT4 = jsonschema.Draft4Validator
KubernetesValidator = jsonschema.validators.create(
    meta_schema=_DRAFT4.META_SCHEMA,
    validators={**_DRAFT4.VALIDATORS, LIST_MAP_KEYS: _unique_map_keys},
    type_checker=_DRAFT4.TYPE_CHECKER,
    format_checker=_DRAFT4.FORMAT_CHECKER,
)  # (the CRD has no $ref or id, so draft 4's id_of and $ref rules do not matter)


@functools.cache
def rayservice_validator() -> Validator:
    schema = to_json_schema(json.loads(SCHEMA_PATH.read_text()))
    KubernetesValidator.check_schema(schema)
    return KubernetesValidator(schema)


def schema_errors(document: dict[str, Any]) -> list[str]:
    errors = rayservice_validator().iter_errors(document)
    return sorted(f"{'/'.join(map(str, error.absolute_path)) or '.'}: {error.message}" for error in errors)


# --------------------------------------------------------------------------- the manifests


def load_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(MANIFEST_DIR.glob("*.yaml")):
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            if document is not None:
                documents.append((f"{path.name}[{index}]", document))
    return documents


DOCUMENTS = load_documents()
RAYSERVICES = [(name, document) for name, document in DOCUMENTS if document.get("kind") == "RayService"]
RAYSERVICE_IDS = [name for name, _ in RAYSERVICES]


def serve_config(rayservice: dict[str, Any]) -> dict[str, Any]:
    config = yaml.safe_load(rayservice["spec"]["serveConfigV2"])
    assert isinstance(config, dict), "serveConfigV2 is not a YAML mapping"
    return config


def ray_cluster(rayservice: dict[str, Any]) -> dict[str, Any]:
    cluster: dict[str, Any] = rayservice["spec"]["rayClusterConfig"]
    return cluster


def pod_specs(rayservice: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(group, pod spec) of the head and of every worker group."""
    cluster = ray_cluster(rayservice)
    groups = [("head", cluster["headGroupSpec"])]
    groups += [(group["groupName"], group) for group in cluster.get("workerGroupSpecs", [])]
    return [(name, group["template"]["spec"]) for name, group in groups]


def ray_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec["containers"][0]  # KubeRay's Ray container is the first
    return container


def container_env(rayservice: dict[str, Any]) -> list[dict[str, Any]]:
    """Every env entry of every container of every pod, and of the autoscaler's sidecar."""
    entries = []
    for _, spec in pod_specs(rayservice):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            entries += container.get("env", [])
    entries += (ray_cluster(rayservice).get("autoscalerOptions") or {}).get("env", [])
    return entries


def runtime_env_vars(config: dict[str, Any]) -> dict[str, Any]:
    """The env_vars of the applications' and the deployments' runtime_env in a Serve config."""
    found: dict[str, Any] = {}
    for app in config.get("applications", []):
        found |= (app.get("runtime_env") or {}).get("env_vars", {})
        for deployment in app.get("deployments", []):
            actor_options = deployment.get("ray_actor_options") or {}
            found |= (actor_options.get("runtime_env") or {}).get("env_vars", {})
    return found


# --------------------------------------------------------------------------- the code


def module_has_global(path: Path, name: str) -> bool:
    tree = ast.parse(path.read_text())
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            return True
    return False


def serve_deployments() -> dict[str, dict[str, Any]]:
    """Deployment name -> the literal options of its ``@serve.deployment(...)`` decorator, read with
    ``ast`` (importing serve_app builds the whole application)."""
    found: dict[str, dict[str, Any]] = {}
    for path in (ROOT / "serve_app.py", ROOT / "planner" / "deployment.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef):
                continue
            for decorator in node.decorator_list:
                if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "serve.deployment":
                    options = {
                        keyword.arg: ast.literal_eval(keyword.value)
                        for keyword in decorator.keywords
                        if keyword.arg and isinstance(keyword.value, ast.Constant)
                    }
                    found[str(options.get("name", node.name))] = options
    return found


def pinned_ray_version() -> str:
    dependencies: list[str] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [dependency for dependency in dependencies if re.match(r"ray(\[.*\])?==", dependency)]
    return pin.split("==", 1)[1]


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


# --------------------------------------------------------------------------- tests


def test_the_manifests_are_rayservices_of_ray_io_v1() -> None:
    assert RAYSERVICES, f"no RayService in {MANIFEST_DIR}"
    for name, document in DOCUMENTS:
        assert isinstance(document.get("apiVersion"), str) and isinstance(document.get("kind"), str), name
        if document["apiVersion"].startswith("ray.io/"):
            # the vendored schema is the RayService's: any other ray.io kind would go unchecked
            assert document["kind"] == "RayService", name
    for name, document in RAYSERVICES:
        assert document["apiVersion"] == "ray.io/v1", name


@pytest.mark.parametrize(("name", "rayservice"), RAYSERVICES, ids=RAYSERVICE_IDS)
def test_rayservice_matches_kuberay_crd_schema(name: str, rayservice: dict[str, Any]) -> None:
    assert schema_errors(rayservice) == []
    metadata_name = rayservice["metadata"]["name"]
    assert DNS_1035_LABEL.fullmatch(metadata_name), metadata_name
    assert len(metadata_name) <= MAX_RAYSERVICE_NAME


@pytest.mark.parametrize(("name", "rayservice"), RAYSERVICES, ids=RAYSERVICE_IDS)
def test_serve_config_is_valid_and_names_the_real_app_and_deployments(
    name: str, rayservice: dict[str, Any]
) -> None:
    from ray.serve.config import AutoscalingConfig
    from ray.serve.schema import (
        DeploymentSchema,
        HTTPOptionsSchema,
        ServeApplicationSchema,
        ServeDeploySchema,
    )

    config = serve_config(rayservice)
    ServeDeploySchema.model_validate(config)  # what KubeRay hands to Serve's REST API
    # Serve's schemas ignore fields they do not know: a misspelt option would silently do nothing
    assert set(config) <= set(ServeDeploySchema.model_fields)
    assert set(config.get("http_options") or {}) <= set(HTTPOptionsSchema.model_fields)
    for application in config["applications"]:
        assert set(application) <= set(ServeApplicationSchema.model_fields), application["name"]
        for deployment in application.get("deployments", []):
            assert set(deployment) <= set(DeploymentSchema.model_fields), deployment["name"]

    apps = [app for app in config["applications"] if app["import_path"] == "serve_app:app"]
    assert len(apps) == 1, "no application serve_app:app"
    (app,) = apps
    assert app["route_prefix"] == "/"
    assert module_has_global(ROOT / "serve_app.py", "app")

    real = serve_deployments()
    assert {"ingress", "planner"} <= set(real)  # what the ast reading must find in the code
    configured = {deployment["name"]: deployment for deployment in app.get("deployments", [])}
    assert set(configured) <= set(real), f"not deployments of serve_app:app: {set(configured) - set(real)}"
    for deployment_name, deployment in configured.items():
        if "autoscaling_config" not in deployment:
            continue
        unknown = set(deployment["autoscaling_config"]) - set(AutoscalingConfig.model_fields)
        assert not unknown, f"{deployment_name}: not autoscaling options: {unknown}"
        autoscaling = AutoscalingConfig(**deployment["autoscaling_config"])
        code_max = real[deployment_name].get("max_ongoing_requests", SERVE_DEFAULT_MAX_ONGOING)
        max_ongoing = deployment.get("max_ongoing_requests", code_max)
        # Serve only scales up when a replica may hold more than the target
        assert autoscaling.get_target_ongoing_requests() <= max_ongoing, deployment_name
        assert deployment.get("num_replicas", "auto") == "auto", deployment_name


@pytest.mark.parametrize(("name", "rayservice"), RAYSERVICES, ids=RAYSERVICE_IDS)
def test_every_orch_variable_is_a_setting_and_credentials_come_from_secrets(
    name: str, rayservice: dict[str, Any]
) -> None:
    settings = set(Settings.model_fields)
    runtime_vars = runtime_env_vars(serve_config(rayservice))
    pod_env = container_env(rayservice)
    named = set(runtime_vars) | {entry["name"] for entry in pod_env}
    orch = {variable for variable in named if variable.startswith("ORCH_")}
    assert orch
    assert {variable.removeprefix("ORCH_").lower() for variable in orch} <= settings, sorted(orch)

    assert all(isinstance(value, str) for value in runtime_vars.values()), runtime_vars  # Ray's rule
    assert not SECRET_VARIABLES & set(runtime_vars)
    for entry in pod_env:
        if entry["name"] in SECRET_VARIABLES:
            assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry
    for group, spec in pod_specs(rayservice):
        database_url = [e for e in ray_container(spec).get("env", []) if e["name"] == "ORCH_DATABASE_URL"]
        assert database_url == [
            {
                "name": "ORCH_DATABASE_URL",
                "valueFrom": {"secretKeyRef": {"name": "orchestrator-db", "key": "url"}},
            }
        ], group


@pytest.mark.parametrize(("name", "rayservice"), RAYSERVICES, ids=RAYSERVICE_IDS)
def test_ray_token_auth_is_kuberays(name: str, rayservice: dict[str, Any]) -> None:
    """RAY_AUTH_MODE=token without authOptions would start Ray without a token, and KubeRay could not
    reach the dashboard to deploy the application."""
    cluster = ray_cluster(rayservice)
    kuberay_token_auth = (cluster.get("authOptions") or {}).get("mode") == "token"  # KubeRay's test
    modes = {entry.get("value") for entry in container_env(rayservice) if entry["name"] == "RAY_AUTH_MODE"}
    assert modes <= {"token"}
    if modes:
        assert kuberay_token_auth, "RAY_AUTH_MODE=token needs rayClusterConfig.authOptions.mode: token"
    if kuberay_token_auth:
        assert version_tuple(cluster["rayVersion"]) >= MIN_RAY_FOR_TOKEN_AUTH
    assert cluster["rayVersion"] == pinned_ray_version()  # the Ray the image installs


@pytest.mark.parametrize(("name", "rayservice"), RAYSERVICES, ids=RAYSERVICE_IDS)
def test_ports_probes_and_exposure(name: str, rayservice: dict[str, Any]) -> None:
    serve_port = (serve_config(rayservice).get("http_options") or {}).get("port", DEFAULT_SERVE_PORT)
    cluster = ray_cluster(rayservice)
    for group, spec in pod_specs(rayservice):
        container = ray_container(spec)
        ports = {port.get("name"): port["containerPort"] for port in container.get("ports", [])}
        # KubeRay's Serve Service (head) and readiness probe (workers) use the port named `serve`
        assert ports.get("serve") == serve_port, group
        assert "readinessProbe" not in container and "livenessProbe" not in container, group  # KubeRay's
    head_ports = {
        port.get("name"): port["containerPort"]
        for port in ray_container(pod_specs(rayservice)[0][1])["ports"]
    }
    # the head's Service has exactly these ports: workers join through gcs-server, KubeRay uses the dashboard
    assert head_ports.get("gcs-server") == 6379 and head_ports.get("dashboard") == 8265
    head = cluster["headGroupSpec"]
    assert head.get("serviceType", "ClusterIP") == "ClusterIP" and not head.get("enableIngress", False)
    assert cluster.get("enableInTreeAutoscaling") is True
    for group in cluster["workerGroupSpecs"]:
        assert group["minReplicas"] <= group.get("replicas", group["minReplicas"]) <= group["maxReplicas"]


# --------------------------------------------------------------------------- the schema check can fail


def a_rayservice() -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(RAYSERVICES[0][1])
    return document


def test_a_wrongly_typed_field_fails_validation() -> None:
    document = a_rayservice()
    document["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"] = ["num-cpus=0"]
    errors = schema_errors(document)
    assert errors and all("rayStartParams" in error for error in errors), errors

    document = a_rayservice()
    document["spec"]["rayClusterConfig"]["headGroupSpec"]["rayStartParams"] = {"num-cpus": 0}
    assert schema_errors(document)  # rayStartParams values are strings


def test_an_unknown_field_fails_validation() -> None:
    document = a_rayservice()
    document["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]["minReplica"] = 2
    assert any("minReplica" in error for error in schema_errors(document))


def test_int_or_string_fields_take_both_and_nothing_else() -> None:
    for good in (2, "2", "500m", "1.5"):
        document = a_rayservice()
        ray_container(pod_specs(document)[0][1])["resources"]["limits"]["cpu"] = good
        assert schema_errors(document) == [], good
    for bad in (True, [2], "two cores"):
        document = a_rayservice()
        ray_container(pod_specs(document)[0][1])["resources"]["limits"]["cpu"] = bad
        assert schema_errors(document), bad


def test_list_map_keys_must_be_unique() -> None:
    document = a_rayservice()
    ports = ray_container(pod_specs(document)[0][1])["ports"]
    ports.append({"name": "serve-again", "containerPort": ports[0]["containerPort"]})
    assert any("x-kubernetes-list-type: map" in error for error in schema_errors(document))

    document = a_rayservice()
    ports = ray_container(pod_specs(document)[0][1])["ports"]
    ports.append({"name": "udp", "containerPort": ports[0]["containerPort"], "protocol": "UDP"})
    assert schema_errors(document) == []  # the key is containerPort and protocol (default TCP)
