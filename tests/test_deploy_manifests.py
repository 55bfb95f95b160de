"""The Kubernetes manifests, as each overlay renders them (``kubectl kustomize``): every retina
command they run is one the CLI accepts, and the settings each service's manifest passes (args and
environment) are accepted by that service's own settings loader, as are those `retina up` passes.
Every address a pod dials is a Service of the manifests that its NetworkPolicies admit, and they
admit nothing the access table refuses."""

import os
from urllib.parse import urlsplit

import pytest
import yaml

from retina.services.cli import check_args
from retina.services.cli.common import settings_from_args
from retina.services.core import service_auth
from retina.services.core.config import parse_config
from retina.services.core.settings import SERVICES
from tests.kustomize import OVERLAYS, render, secret_data

RETINA_IMAGES = ("retina:", "retina-cuda:")  # docker/Dockerfile and docker/Dockerfile.cuda
# The retina containers of each overlay: worker(s), incident store, search, scheduler, gateway, import.
RETINA_CONTAINERS = {"single-node": 6, "production": 7}  # production: a GPU and a CPU worker pool

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)


def documents(overlay):
    """(kind/name, object) of every object the overlay renders."""
    for doc in render(overlay):
        assert {"apiVersion", "kind", "metadata"} <= doc.keys(), f"{overlay}: incomplete object"
        yield f"{doc['kind']}/{doc['metadata']['name']}", doc


def is_retina(container) -> bool:
    return container["image"].startswith(RETINA_IMAGES)


def containers(doc):
    spec = doc.get("spec", {})
    template = spec.get("template", {}).get("spec", {})
    return template.get("containers", [])


def test_retina_containers_run_valid_commands(overlay):
    seen = 0
    for name, doc in documents(overlay):
        for container in containers(doc):
            if is_retina(container):
                check_args(container["args"])  # raises (fails the test) on a bad flag
                seen += 1
                assert doc["metadata"]["namespace"] == "retina", name
    assert seen == RETINA_CONTAINERS[overlay]


def test_config_map_is_a_valid_retina_config(overlay):
    (config_map,) = [d for _, d in documents(overlay) if d["metadata"]["name"] == "retina-config"]
    loaded = parse_config(yaml.safe_load(config_map["data"]["cameras.yaml"]))
    assert loaded.camera_errors == [] and loaded.config.cameras


# The settings each manifest passes, as args and environment, go through the service's own loader.

STAND_INS = {  # values a secret holds in a real cluster (where the overlay does not generate it)
    "RETINA_SCHEDULER_DATABASE_URL": "postgresql+psycopg://retina:secret@db.example/retina",
    "RETINA_INCIDENTS_DATABASE_URL": "postgresql+psycopg://retina:secret@db.example/retina",
    "RETINA_GATEWAY_DATABASE_URL": "postgresql+psycopg://gateway:secret@db.example/retina",
    "RETINA_GATEWAY_OIDC_STATE_SECRET": "a-state-signing-key",
}


def pod_environment(container, name, overlay):
    """The container's environment: values, the pod name, and what a Secret holds — the Secret the
    overlay generates, else a stand-in for the one ops create."""
    generated = {
        d["metadata"]["name"]: secret_data(d) for _, d in documents(overlay) if d["kind"] == "Secret"
    }
    env = {}
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        elif "fieldRef" in entry.get("valueFrom", {}):
            env[entry["name"]] = "retina-worker-0"
        else:
            reference = entry["valueFrom"]["secretKeyRef"]
            if reference["key"] in generated.get(reference["name"], {}):
                env[entry["name"]] = generated[reference["name"]][reference["key"]]
            elif reference.get("optional") and reference["name"] not in STAND_INS_SECRETS:
                continue
            else:
                assert entry["name"] in STAND_INS, f"{name}: no stand-in for the secret {entry['name']}"
                env[entry["name"]] = STAND_INS[entry["name"]]
    return env


STAND_INS_SECRETS = {"retina-gateway-oidc"}  # optional, and given a stand-in to check it is read


def created_by_hand(root):
    """Stand-ins for the config map and secrets that k8s/README.md has ops create (credentials):
    name → file → text."""
    folder = root / "credentials"
    auth_file = service_auth.create_credentials(folder)
    tokens = {
        f"retina-token-{role}": {"token": service_auth.token_path(folder, role).read_text()}
        for role in service_auth.ROLES
    }
    return {"retina-service-auth": {"service-auth.json": auth_file.read_text()}, **tokens}


def mounted_files(doc, container, root, overlay):
    """The config maps and secrets a container mounts, written under ``root``: mount path → local
    folder. Those the overlay does not generate are made as ops make them (created_by_hand)."""
    volumes = {v["name"]: v for v in doc["spec"]["template"]["spec"].get("volumes", [])}
    maps = created_by_hand(root)
    maps |= {
        d["metadata"]["name"]: secret_data(d)
        for _, d in documents(overlay)
        if d["kind"] in ("ConfigMap", "Secret")
    }
    mounts = {}
    for mount in container.get("volumeMounts", []):
        volume = volumes.get(mount["name"], {})  # else a StatefulSet's volume claim
        name = volume.get("configMap", {}).get("name") or volume.get("secret", {}).get("secretName")
        if name is not None:
            folder = root / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            for file, text in maps[name].items():
                (folder / file).write_text(text)
            mounts[mount["mountPath"]] = str(folder)
    return mounts


# Secrets read from the environment that are not service credentials: database URLs, the gateway's
# single sign-on state key.
ENVIRONMENT_SECRETS = {"retina-database", "retina-gateway-database", "retina-gateway-oidc"}


def replicas(doc, overlay):
    """The most replicas a workload runs at once: its own count, or its autoscaler's bounds."""
    count = doc["spec"].get("replicas", 1)
    for _, scaler in documents(overlay):
        target = scaler.get("spec", {}).get("scaleTargetRef", {})
        if target.get("name") == doc["metadata"]["name"] and target.get("kind", doc["kind"]) == doc["kind"]:
            count = max(count, scaler["spec"].get("maxReplicas", scaler["spec"].get("maxReplicaCount", 1)))
    return count


def secrets_used(doc):
    """The secrets a pod template mounts or reads into its environment."""
    spec = doc["spec"]["template"]["spec"]
    used = {v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    for container in spec.get("containers", []):
        used |= {e["secretRef"]["name"] for e in container.get("envFrom", []) if "secretRef" in e}
        for entry in container.get("env", []):
            if "secretKeyRef" in entry.get("valueFrom", {}):
                used.add(entry["valueFrom"]["secretKeyRef"]["name"])
    return used


def manifest_settings(tmp_path, monkeypatch, overlay):
    """(object name, object, command, settings) of each service container, its settings loaded as
    the pod would: its args and environment, the config maps and secrets it mounts."""
    for name, doc in documents(overlay):
        for container in containers(doc):
            args = container.get("args", [])
            command = next((c for c in SERVICES if args[: len(c.split())] == c.split()), None)
            if not is_retina(container) or command is None:
                continue
            env = pod_environment(container, name, overlay)
            mounts = mounted_files(doc, container, tmp_path / doc["metadata"]["name"], overlay)
            for variable in env:  # Kubernetes expands $(VAR) in args from the container's env
                args = [arg.replace(f"$({variable})", env[variable]) for arg in args]
            for mount_path, folder in mounts.items():
                args = [
                    folder + arg[len(mount_path) :] if arg.startswith(mount_path + "/") else arg
                    for arg in args
                ]
            for variable in [v for v in os.environ if v.upper().startswith("RETINA_")]:
                monkeypatch.delenv(variable)
            for variable, value in env.items():
                monkeypatch.setenv(variable, value)
            model = SERVICES[command]
            unknown = {v for v in env if v.startswith("RETINA_")} - set(model.env_names())
            assert not unknown, f"{name}: {command} does not read {sorted(unknown)}"
            settings = settings_from_args(args)  # raises ConfigError naming a bad setting
            assert type(settings) is model, name
            yield name, doc, command, settings


def test_each_service_accepts_the_settings_its_manifest_passes(tmp_path, monkeypatch, overlay):
    checked = set()
    for name, doc, command, settings in manifest_settings(tmp_path, monkeypatch, overlay):
        assert settings.listen == "0.0.0.0", name
        # it checks callers, and holds its own role's token and no other
        authenticator = service_auth.Authenticator.from_file(settings.auth_file)
        assert authenticator.role_of(service_auth.read_token(settings.token_file)) == settings.role, name
        assert secrets_used(doc) - ENVIRONMENT_SECRETS == {f"retina-token-{settings.role}"}, name
        if doc["kind"] == "Deployment" and replicas(doc, overlay) > 1:
            # replicas share their state only through a database, never SQLite in a pod's data dir
            assert settings.database_url, f"{name}: {replicas(doc, overlay)} replicas without a database"
        checked.add(command)
    assert checked == set(SERVICES)


def test_retina_up_passes_the_same_settings(tmp_path, monkeypatch, overlay):
    """`retina up` starts each service with settings its loader accepts, named as in the manifests."""
    from retina.services.cli.cluster import LocalCluster

    for variable in [v for v in os.environ if v.upper().startswith("RETINA_")]:
        monkeypatch.delenv(variable)
    (config_map,) = [d for _, d in documents(overlay) if d["metadata"]["name"] == "retina-config"]
    config = tmp_path / "cameras.yaml"
    config.write_text(config_map["data"]["cameras.yaml"])
    cluster = LocalCluster(config, tmp_path / "data", workers=2)
    for child, args in cluster.service_args().items():
        settings = settings_from_args(args)
        assert settings.data_dir == tmp_path / "data" / child
        assert settings.auth_file == cluster.auth_file and not settings.allow_unauthenticated
        assert settings.listen == "127.0.0.1", child  # gRPC and metrics: this machine only
        assert settings.token_file == cluster.token_file(settings.role), child  # its own token only
        if hasattr(settings, "nats_url"):
            assert settings.nats_url == cluster.nats_url, child


def test_no_setting_is_shadowed_by_kubernetes_service_variables(overlay):
    """Kubernetes gives every pod <SERVICE>_SERVICE_HOST, <SERVICE>_PORT... for each Service, e.g.
    RETINA_SEARCH_PORT for retina-search: none of them may be read as a setting."""
    services = [d["metadata"]["name"] for _, d in documents(overlay) if d["kind"] == "Service"]
    for service in services:
        prefix = service.upper().replace("-", "_")
        for model in SERVICES.values():
            for variable in model.env_names():
                injected = variable == f"{prefix}_PORT" or variable.startswith(
                    (f"{prefix}_SERVICE_", f"{prefix}_PORT_")
                )
                assert not injected, f"{variable} ({model.NAME}) is also set by Kubernetes for {service}"


# Who may reach whom: the Services and NetworkPolicies, checked against what the pods dial and the
# access table of service_auth.

NAMESPACE = {"kubernetes.io/metadata.name": "retina"}
INGRESS_CONTROLLER = {"kubernetes.io/metadata.name": "ingress-nginx"}  # the namespace the policy names
ELSEWHERE = {"kubernetes.io/metadata.name": "monitoring"}  # any other namespace (Prometheus, say)
SERVES = {  # the gRPC services each role's server hosts, as service_auth.ACCESS names them
    "scheduler": ("RegistryService", "SchedulerService"),
    "worker": ("WorkerService",),
    "incidents": ("IncidentService",),
    "search": ("SearchService",),
}
DIAL_ADVERTISED = {"scheduler", "gateway"}  # reach a worker at the address it advertises
DIALLED = ("scheduler", "incidents_address", "search_address", "scheduler_address", "nats_url")
DATABASE_ROLES = {"scheduler", "incidents", "gateway"}  # the services with a database URL


def pods(overlay):
    """Each pod template: (workload, labels, retina role by the token it mounts or None, container
    port name → number, metrics port or None)."""
    out = []
    for _, doc in documents(overlay):
        template = doc.get("spec", {}).get("template")
        if template is None:
            continue
        tokens = sorted(s for s in secrets_used(doc) if s.startswith("retina-token-"))
        role = tokens[0].removeprefix("retina-token-") if tokens else None
        ports = {p["name"]: p["containerPort"] for c in containers(doc) for p in c.get("ports", [])}
        metadata = template.get("metadata", {})
        metrics = metadata.get("annotations", {}).get("prometheus.io/port")
        out.append((doc["metadata"]["name"], metadata.get("labels", {}), role, ports, metrics))
    return out


def selects(selector, labels):
    """Whether a Kubernetes label selector matches ``labels``."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        matched = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not matched:
            return False
    return True


def admitted(namespace, labels, target, port, overlay):
    """Whether a pod with ``labels``, in the namespace labelled ``namespace``, may connect to ``port``
    of the pod template ``target`` (a :func:`pods` entry) under the NetworkPolicies."""
    _, target_labels, _, target_ports, _ = target
    policies = [
        d["spec"] for _, d in documents(overlay)
        if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "retina"
        and "Ingress" in d["spec"].get("policyTypes", ["Ingress"])
        and selects(d["spec"]["podSelector"], target_labels)
    ]  # fmt: skip
    if not policies:
        return True  # a pod no policy selects is not isolated

    def peer_matches(peer):
        if "ipBlock" in peer:
            return False
        if "namespaceSelector" in peer:
            same = selects(peer["namespaceSelector"], namespace)
        else:
            same = namespace == NAMESPACE
        return same and selects(peer.get("podSelector", {}), labels)

    for policy in policies:
        for rule in policy.get("ingress", []):
            ports = [target_ports.get(p["port"], p["port"]) for p in rule.get("ports", [])]
            if (not ports or port in ports) and ("from" not in rule or any(map(peer_matches, rule["from"]))):
                return True
    return False


def resolve(address, overlay):
    """The pod templates, and their container port, that ``host:port`` (or nats://host:port) reaches
    through a Service of the manifests (``service.namespace.svc`` or ``pod.service.namespace.svc``)."""
    parts = urlsplit(address if "://" in address else f"grpc://{address}")
    assert parts.hostname.endswith(".svc"), f"{address}: not a Service address"
    service_name, namespace = parts.hostname.removesuffix(".svc").split(".")[-2:]
    services = {d["metadata"]["name"]: d["spec"] for _, d in documents(overlay) if d["kind"] == "Service"}
    assert namespace == "retina" and service_name in services, f"{address}: no such Service"
    service = services[service_name]
    service_ports = [p for p in service["ports"] if p["port"] == parts.port]
    assert service_ports, f"{address}: Service {service_name} has no port {parts.port}"
    target_port = service_ports[0].get("targetPort", parts.port)
    targets = [pod for pod in pods(overlay) if selects({"matchLabels": service["selector"]}, pod[1])]
    assert targets, f"{address}: Service {service_name} selects no pod"
    ports = {target[3].get(target_port, target_port) for target in targets}
    assert len(ports) == 1 and ports <= set(targets[0][3].values()), f"{address}: no pod listens on it"
    return targets, ports.pop()


def dials(tmp_path, monkeypatch, overlay):
    """(caller's labels, caller's role, address) for every address a pod of the manifests dials: the
    services' settings, the cameras import's --scheduler, and the workers' advertised addresses."""
    by_name = {name: (labels, role) for name, labels, role, _, _ in pods(overlay)}
    out = []
    for _, doc, _, settings in manifest_settings(tmp_path, monkeypatch, overlay):
        labels, role = by_name[doc["metadata"]["name"]]
        out += [(labels, role, getattr(settings, f)) for f in DIALLED if getattr(settings, f, None)]
        database = getattr(settings, "database_url", None)
        if database and urlsplit(database).hostname.endswith(".svc"):  # the overlay's own PostgreSQL
            out.append((labels, role, database))
        if getattr(settings, "advertise", None):
            callers = [caller for caller in by_name.values() if caller[1] in DIAL_ADVERTISED]
            assert {role for _, role in callers} == DIAL_ADVERTISED
            out += [(*caller, settings.advertise) for caller in callers]
    for _, doc in documents(overlay):
        for container in containers(doc):
            args = container.get("args", [])
            if args[:2] == ["cameras", "import"]:
                out.append((*by_name[doc["metadata"]["name"]], args[args.index("--scheduler") + 1]))
    return out


def test_every_address_a_pod_dials_is_a_service_its_network_policy_admits(tmp_path, monkeypatch, overlay):
    calls = dials(tmp_path, monkeypatch, overlay)
    assert {role for _, role, _ in calls} == set(service_auth.ROLES)  # every role dials something
    for labels, role, address in calls:
        targets, port = resolve(address, overlay)
        for target in targets:
            assert admitted(NAMESPACE, labels, target, port, overlay), (
                f"{role} may not reach {target[0]} at {address}"
            )


def test_network_policies_admit_only_what_the_access_table_allows(overlay):
    nats_users = set(service_auth.nats_permissions())
    stranger = {"app": "something-else"}  # a pod of the namespace that no policy names
    for target in pods(overlay):
        target_name, target_labels, target_role, target_ports, metrics = target
        for port_name, port in target_ports.items():
            if str(port) == metrics:
                continue  # scraped from anywhere (test_only_the_gateway_is_reached_from_outside)
            assert not admitted(NAMESPACE, stranger, target, port, overlay), (
                f"{target_name}:{port}: no default deny"
            )
            for source_name, source_labels, source_role, _, _ in pods(overlay):
                if not admitted(NAMESPACE, source_labels, target, port, overlay):
                    continue
                what = f"{source_name} ({source_role}) → {target_name}:{port} ({port_name})"
                if port_name == "grpc":
                    allowed = {
                        role for method, roles in service_auth.ACCESS.items() for role in roles
                        if method.split("/")[1].removeprefix("retina.v1.") in SERVES[target_role]
                    }  # fmt: skip
                    assert source_role in allowed, f"{what}: the access table allows it no method"
                elif target_labels.get("app") == "nats" and port_name == "client":
                    assert source_role in nats_users, f"{what}: not a NATS user"
                elif port_name == "postgres":
                    assert source_role in DATABASE_ROLES, f"{what}: has no database URL"
                else:
                    assert target_labels.get("app") == source_labels.get("app") == "nats", f"{what}: admitted"
                    assert port_name == "cluster", what


def test_only_the_gateway_is_reached_from_outside(overlay):
    for target in pods(overlay):
        name, _, role, ports, metrics = target
        for port_name, port in ports.items():
            outside = admitted(ELSEWHERE, {}, target, port, overlay)
            from_ingress = admitted(INGRESS_CONTROLLER, {}, target, port, overlay)
            if str(port) == metrics:
                assert outside, f"{name}: Prometheus cannot scrape port {port}"
            elif role == "gateway" and port_name == "http":
                assert from_ingress and not outside, f"{name}: HTTP from the Ingress controller only"
            else:
                assert not outside and not from_ingress, f"{name}: {port_name} {port} reachable from outside"
    services = [d for _, d in documents(overlay) if d["kind"] == "Service"]
    assert all(d["spec"].get("type", "ClusterIP") == "ClusterIP" for d in services)
    ingresses = [d for _, d in documents(overlay) if d["kind"] == "Ingress"]
    backends = {
        path["backend"]["service"]["name"]
        for d in ingresses for rule in d["spec"]["rules"] for path in rule["http"]["paths"]
    }  # fmt: skip
    assert backends == {"retina-gateway"} and all(d["spec"].get("tls") for d in ingresses)
