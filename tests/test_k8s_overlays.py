"""What ops get from k8s/ and docker/, checked offline with the tools they would use: each overlay
renders (``kubectl kustomize``) into objects that validate against the Kubernetes schemas
(kubernetes-validate), every container is hardened, sized and probed, the NATS configuration is
one nats-server accepts, the alerting rules pass ``promtool check rules``, the dashboards' queries
parse, every metric a rule, a panel or the autoscaler reads is one the code exports, and the
Dockerfiles pass hadolint. (tests/test_deploy_manifests.py checks what the pods run and who may
reach whom.)"""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
from pathlib import Path

import bcrypt
import kubernetes_validate
import pytest
import yaml
from prometheus_client import REGISTRY

import retina.services
from retina.services.core import service_auth
from retina.services.core.processes import nats_server_binary
from tests.kustomize import K8S, OVERLAYS, render, secret_data, tool

REPO = K8S.parent
MONITORING = K8S / "base" / "monitoring"
RULES = MONITORING / "retina-alerts.rules.yaml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cuda"]
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())  # native gRPC probes: 1.27+
WORKLOADS = ("Deployment", "StatefulSet", "Job")

# Secrets that ops create before applying production (k8s/README.md, "Install: production"); the
# single-node overlay generates every one but the optional and the TLS certificate.
CREATED_BY_OPS = {
    *(f"retina-token-{role}" for role in service_auth.ROLES),
    "retina-service-auth",
    "retina-nats-auth",
    "retina-database",
    "retina-gateway-database",
}
OPTIONAL = {"retina-gateway-oidc", "retina-gateway-tls"}

# Series that come from Kubernetes and Prometheus themselves, not from retina's code.
PLATFORM_METRICS = {"up", "kubelet_volume_stats_available_bytes", "kubelet_volume_stats_capacity_bytes"}


def objects(overlay: str, kind: str | None = None) -> list[dict]:
    return [doc for doc in render(overlay) if kind is None or doc["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> dict:
    (found,) = [doc for doc in objects(overlay, kind) if doc["metadata"]["name"] == name]
    return found


def pod_specs(overlay: str) -> list[tuple[str, dict]]:
    return [
        (f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"])
        for doc in render(overlay)
        if doc["kind"] in WORKLOADS
    ]


# -- the rendered objects -------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay):
    custom = []
    for doc in render(overlay):
        assert doc["metadata"].get("namespace", "retina") == "retina" or doc["kind"] == "Namespace"
        if "." in doc["apiVersion"].split("/")[0] and not doc["apiVersion"].endswith(".k8s.io/v1"):
            custom.append(doc)  # a custom resource (KEDA): checked below, against its target
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)  # raises naming the field
    assert [f"{d['kind']}/{d['metadata']['name']}" for d in custom] == (
        ["ScaledObject/retina-worker-gpu"] if overlay == "production" else []
    )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_hardened_sized_and_probed(overlay):
    for workload, spec in pod_specs(overlay):
        pod_security = spec.get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True and pod_security.get("runAsUser", 0) > 0, workload
        assert pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, workload
        for container in spec.get("initContainers", []) + spec["containers"]:
            what = f"{workload} {container['name']}"
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, what
            assert security.get("readOnlyRootFilesystem") is True, what
            assert security.get("capabilities") == {"drop": ["ALL"]}, what
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= resources.get(bound, {}).keys(), f"{what}: no {bound}"
            image = container["image"]
            assert ":" in image and not image.endswith(":latest"), f"{what}: unpinned image {image}"
            if workload.startswith("Job/"):
                continue
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, f"{what}: no {probe}"
            grpc_ports = [p["containerPort"] for p in container.get("ports", []) if p["name"] == "grpc"]
            if grpc_ports:  # gRPC services: native gRPC probes (grpc.health.v1, open without a token)
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    assert container[probe].get("grpc") == {"port": grpc_ports[0]}, f"{what}: {probe}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_secret_and_config_map_a_pod_uses_is_there_or_made_by_ops(overlay):
    present = {doc["metadata"]["name"] for doc in render(overlay) if doc["kind"] in ("Secret", "ConfigMap")}
    used = set()
    for _, spec in pod_specs(overlay):
        for volume in spec.get("volumes", []):
            used.add(volume.get("secret", {}).get("secretName") or volume.get("configMap", {}).get("name"))
        for container in spec["containers"]:
            for entry in container.get("env", []):
                used.add(entry.get("valueFrom", {}).get("secretKeyRef", {}).get("name"))
    for ingress in objects(overlay, "Ingress"):
        used |= {tls["secretName"] for tls in ingress["spec"].get("tls", [])}
    used.discard(None)
    missing = used - present - OPTIONAL
    assert missing == (CREATED_BY_OPS if overlay == "production" else set())


def test_single_node_trial_credentials_are_consistent():
    """The trial's generated Secrets: each role's token matches its digest in the auth file and its
    bcrypt hash in the NATS users (a NATS login as that role succeeds)."""
    auth = json.loads(
        secret_data(named("single-node", "ConfigMap", "retina-service-auth"))["service-auth.json"]
    )
    nats_auth = secret_data(named("single-node", "Secret", "retina-nats-auth"))["auth.conf"]
    users = {u["user"]: u["password"] for u in json.loads(nats_auth.removeprefix("authorization: "))["users"]}
    assert set(users) == set(service_auth.nats_permissions())  # the roles with a NATS connection
    for role in service_auth.ROLES:
        token = secret_data(named("single-node", "Secret", f"retina-token-{role}"))["token"].strip()
        assert auth[role] == service_auth.digest(token), role
        if role in users:
            assert bcrypt.checkpw(token.encode(), users[role].encode()), role


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_nats_server_accepts_the_overlay_configuration(overlay, tmp_path):
    config = tmp_path / "nats.conf"
    config.write_text(
        secret_data(named(overlay, "ConfigMap", "nats-config"))["nats.conf"].replace(
            "/data/jetstream", str(tmp_path / "jetstream")
        )
    )
    (tmp_path / "auth").mkdir()
    if overlay == "single-node":
        auth_conf = secret_data(named(overlay, "Secret", "retina-nats-auth"))["auth.conf"]
    else:  # made by ops with the credentials tool (k8s/README.md)
        service_auth.create_credentials(tmp_path / "secrets")
        auth_conf = service_auth.nats_config(tmp_path / "secrets", rounds=4)
    (tmp_path / "auth" / "auth.conf").write_text(auth_conf)
    checked = subprocess.run(
        [nats_server_binary(), "-c", str(config), "-t"],
        capture_output=True,
        text=True,
        env={"POD_NAME": "nats-0"},
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    nats = named(overlay, "StatefulSet", "nats")
    assert nats["spec"]["replicas"] == (3 if overlay == "production" else 1)
    assert ("cluster {" in config.read_text()) == (overlay == "production")


def test_production_runs_a_gpu_pool_beside_a_cpu_pool_and_scales_the_gpu_pool_on_demand():
    gpu = named("production", "StatefulSet", "retina-worker-gpu")
    cpu = named("production", "StatefulSet", "retina-worker")
    gpu_pod, cpu_pod = gpu["spec"]["template"]["spec"], cpu["spec"]["template"]["spec"]
    (gpu_worker,) = gpu_pod["containers"]
    assert gpu_worker["image"].startswith("retina-cuda:")
    assert gpu_worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert gpu_pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in gpu_pod["tolerations"]
    terms = cpu_pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert {"key": "nvidia.com/gpu.present", "operator": "DoesNotExist"} in terms["nodeSelectorTerms"][0][
        "matchExpressions"
    ]
    # Both pools run one model file: the scheduler places cameras by one model key.
    models = {
        next(e["value"] for e in pod["containers"][0]["env"] if e["name"] == "RETINA_MODEL")
        for pod in (gpu_pod, cpu_pod)
    }
    assert len(models) == 1
    # KEDA owns the GPU pool's size; scale-in is slow and one worker at a time (each drains first).
    assert "replicas" not in gpu["spec"]
    scaled = named("production", "ScaledObject", "retina-worker-gpu")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": gpu["metadata"]["name"],
    }
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "Value"
    assert promql_metrics(trigger["metadata"]["query"]) == {"retina_scheduler_demand_ratio"}
    assert 0 < float(trigger["metadata"]["threshold"]) < 1
    scale_down = scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    # a worker's grace period covers the drain (30 s) and the outbox flush
    assert gpu_pod["terminationGracePeriodSeconds"] >= 60 and cpu_pod["terminationGracePeriodSeconds"] >= 60


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_autoscalers(overlay):
    budgets = {doc["metadata"]["name"]: doc["spec"] for doc in objects(overlay, "PodDisruptionBudget")}
    assert budgets["nats"] == {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "nats"}}}
    assert budgets["retina-worker"]["maxUnavailable"] == 1
    assert budgets["retina-gateway"]["minAvailable"] == 1
    # the scheduler is kept up during node maintenance, except on a single node (nowhere else to go)
    assert ("retina-scheduler" in budgets) == (overlay == "production")
    autoscalers = {
        doc["metadata"]["name"]: doc["spec"] for doc in objects(overlay, "HorizontalPodAutoscaler")
    }
    assert set(autoscalers) == {"retina-gateway", "retina-search"}
    for name, kind in (("retina-gateway", "Deployment"), ("retina-search", "StatefulSet")):
        spec = autoscalers[name]
        assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": kind, "name": name}
        assert spec["metrics"][0]["resource"]["name"] == "cpu"
        assert "replicas" not in named(overlay, kind, name)["spec"]  # the HPA owns it
    # search replicas each keep their own index: a volume per pod, none shared
    search = named(overlay, "StatefulSet", "retina-search")
    assert [t["metadata"]["name"] for t in search["spec"]["volumeClaimTemplates"]] == ["data"]
    assert not any(
        d["metadata"]["name"] == "retina-search" for d in objects(overlay, "PersistentVolumeClaim")
    )


# -- observability --------------------------------------------------------------------------------

PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", expr):
        if not expr[match.end() :].lstrip().startswith("(") and match.group() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def exported_metrics() -> set[str]:
    """Every series name the services' code can export: each module under retina.services imported,
    Prometheus' registry read (counters' ``_total``, histograms' ``_bucket``/``_sum``/``_count``...)."""
    for module in pkgutil.walk_packages(retina.services.__path__, "retina.services."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return {name for name in REGISTRY._names_to_collectors if name.startswith("retina_")}


def rule_expressions() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_expressions(path: Path) -> list[str]:
    board = json.loads(path.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def test_promql_metrics_finds_the_names_and_nothing_else():
    assert promql_metrics(
        'histogram_quantile(0.99, sum by (le) (rate(retina_x_bucket{event="new"}[5m]))) > 1e-9'
        ' unless on (camera_id) max by (camera_id) (up{app=~"a|b"} == bool 1)'
    ) == {"retina_x_bucket", "up"}


def test_alerting_rules_pass_promtool_and_cover_what_ops_watch(tmp_path):
    checked = subprocess.run([tool("promtool"), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = {
        rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    }
    assert {
        "RetinaCameraOffline", "RetinaCameraStalled", "RetinaWorkerDown", "RetinaCamerasUnplaced",
        "RetinaOutboxBacklogGrowing", "RetinaAlertLatencyHigh", "RetinaSearchSlow",
        "RetinaMediaDiskFilling", "RetinaJetStreamDiskFilling",
    } <= alerts  # fmt: skip


def test_dashboard_queries_parse(tmp_path):
    """promtool checks each panel's query, given to it as a recording rule."""
    assert {p.stem for p in DASHBOARDS} == {
        "retina-cluster-overview", "retina-cameras", "retina-incidents", "retina-latency", "retina-search"
    }  # fmt: skip
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] and board["panels"] and board["templating"]["list"][0]["type"] == "datasource"
        rules = [
            {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(dashboard_expressions(path))
        ]
        as_rules = tmp_path / f"{path.stem}.rules.yaml"
        as_rules.write_text(yaml.safe_dump({"groups": [{"name": path.stem, "rules": rules}]}))
        checked = subprocess.run(
            [tool("promtool"), "check", "rules", str(as_rules)], capture_output=True, text=True
        )
        assert checked.returncode == 0, f"{path.name}: {checked.stdout}{checked.stderr}"


def test_every_metric_the_rules_dashboards_and_autoscaler_read_exists_in_the_code():
    exported = exported_metrics()
    assert {"retina_scheduler_demand_ratio", "retina_alert_latency_seconds_bucket"} <= exported
    queries = {f"{RULES.name}": rule_expressions()}
    queries |= {path.name: dashboard_expressions(path) for path in DASHBOARDS}
    queries["scaledobject"] = [
        trigger["metadata"]["query"]
        for doc in objects("production", "ScaledObject")
        for trigger in doc["spec"]["triggers"]
    ]
    for source, expressions in queries.items():
        read = set().union(*map(promql_metrics, expressions))
        assert read, source
        unknown = read - exported - PLATFORM_METRICS
        assert not unknown, f"{source} reads metrics no code exports: {sorted(unknown)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlays_provision_the_rules_and_dashboards(overlay):
    rules = named(overlay, "ConfigMap", "retina-prometheus-rules")
    assert rules["data"] == {RULES.name: RULES.read_text()}
    dashboards = named(overlay, "ConfigMap", "retina-grafana-dashboards")
    assert dashboards["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboards["data"] == {path.name: path.read_text() for path in DASHBOARDS}


# -- images ---------------------------------------------------------------------------------------


def test_dockerfiles_pass_hadolint():
    linted = subprocess.run([tool("hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: path.name)
def test_images_are_multi_stage_pinned_unprivileged_checked_and_carry_no_weights(dockerfile):
    text = dockerfile.read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert len(bases) >= 2, "multi-stage"
    assert all(re.search(r":\d+\.\d+\.\d+", base) for base in bases), f"pinned base images: {bases}"
    assert re.search(r"^USER 10001", text, re.MULTILINE), "the manifests run as 10001"
    assert re.search(r"^HEALTHCHECK .*\n?.*healthcheck\.py", text, re.MULTILINE)
    instructions = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\.(pt|onnx|engine)\b", instructions), "weights come from the /models volume"
    assert 'VOLUME ["/var/lib/retina", "/models"]' in text
