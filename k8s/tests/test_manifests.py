"""The rendered Kubernetes manifests against what the `warden` binary actually serves and reads.

Facts about the binary are read from its source where they live (config fields, service
roles, gRPC health names, gateway routes, Dockerfile), so a change there that the manifests
do not follow fails here. Run by .ci/k8s; on its own:

    target/k8s-venv/bin/python -m pytest k8s/tests

WARDEN_K8S_RENDERED=DIR reads DIR/dev.yaml and DIR/prod.yaml (as .ci/k8s renders them);
otherwise the overlays are rendered here (kustomize when present, else render.py's own).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
import render  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = {"dev": "warden-dev", "prod": "warden"}  # overlay -> its namespace


def source(path: str) -> str:
    return (REPO / path).read_text()


# --- facts about the binary, from its source ------------------------------------------------


def config_env_names() -> set[str]:
    """Every environment variable the binary reads."""
    text = source("shared/common/src/config.rs")
    # Config::load: figment maps WARDEN_<FIELD> onto each field of `Config`.
    assert 'Env::prefixed("WARDEN_")' in text, "config.rs no longer maps WARDEN_* onto Config"
    body = re.search(r"pub struct Config \{(.*?)\n\}", text, re.S).group(1)
    fields = re.findall(r"^\s*pub (\w+):", body, re.M)
    assert len(fields) > 20, fields
    names = {f"WARDEN_{f.upper()}" for f in fields}
    assert 'std::env::var("WARDEN_CONFIG")' in text
    names.add("WARDEN_CONFIG")
    telemetry = source("shared/common/src/telemetry.rs")
    assert "EnvFilter::try_from_default_env" in telemetry  # reads RUST_LOG
    names.add("RUST_LOG")
    assert '"OTEL_EXPORTER_OTLP_ENDPOINT"' in telemetry
    names.add("OTEL_EXPORTER_OTLP_ENDPOINT")
    return names


def service_roles() -> set[str]:
    """Values `serve --service` accepts, other than the all-in-one default."""
    roles = set(re.findall(r'"(\w+)" => Ok\(ServiceRole::', source("services/warden/src/role.rs")))
    assert roles >= {"auth", "token", "key", "rbac", "gateway"}, roles
    return roles - {"all"}


GATEWAY = "gateway"


def grpc_health_names() -> dict[str, str]:
    """Component -> the grpc.health.v1 service name its process reports."""
    names = re.findall(r'set_service_status\("(warden\.(\w+)\.v1\.\w+)"', source("services/warden/src/app.rs"))
    assert names, "no per-service health names in app.rs"
    return {component: name for name, component in names}


def gateway_get_routes() -> set[str]:
    return set(re.findall(r'route\(M::GET, "([^"]+)"', source("services/gateway/src/routes.rs")))


# What each role needs, from `build()` in services/warden/src/app.rs (the assertions in
# test_needs_table_matches_app_rs keep this table honest).
NEEDS_DATABASE = {"auth", "token", "key", "rbac"}
NEEDS_REDIS = {"auth", "key", "rbac", GATEWAY}
PEERS = {"auth": {"token", "key", "rbac"}, GATEWAY: {"auth", "token", "key", "rbac"}}


def test_needs_table_matches_app_rs():
    app = source("services/warden/src/app.rs")
    assert "let needs_db = role != ServiceRole::Gateway;" in app
    # redis: sessions (auth), key state (key), the change epoch (rbac), shared per-client
    # throttling (gateway): every role but the token service
    assert "let redis = if role != ServiceRole::Token { open_redis(config).await? } else { None };" in app
    # token, key and rbac clients for auth and gateway; an auth client for the gateway.
    assert app.count("None if matches!(role, ServiceRole::Auth | ServiceRole::Gateway)") == 3
    assert "None if role == ServiceRole::Gateway => Some(Arc::new(warden_auth::grpc::RemoteAuth" in app
    for peer in ("AUTH", "TOKEN", "KEY", "RBAC"):
        assert f'"WARDEN_{peer}_ENDPOINTS"' in app
    assert set(grpc_health_names()) == service_roles() - {GATEWAY}


# --- the manifests ----------------------------------------------------------------------------


def load(overlay: str) -> list[dict]:
    rendered = os.environ.get("WARDEN_K8S_RENDERED")
    if rendered:
        with open(Path(rendered) / f"{overlay}.yaml") as f:
            return [d for d in yaml.safe_load_all(f) if d]
    docs, _ = render.render(REPO / "k8s" / "overlays" / overlay)
    return docs


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request):
    return request.param


_cache: dict[str, list[dict]] = {}


@pytest.fixture
def docs(overlay):
    if overlay not in _cache:
        _cache[overlay] = load(overlay)
    return _cache[overlay]


def of_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(deployment) -> str:
    return deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"]


def pod(deployment) -> dict:
    return deployment["spec"]["template"]["spec"]


def main_container(deployment) -> dict:
    containers = pod(deployment)["containers"]
    assert len(containers) == 1, "one container per pod: the warden binary"
    return containers[0]


def all_containers(deployment):
    spec = pod(deployment)
    return [*(spec.get("initContainers") or []), *spec["containers"]]


def env_of(container, docs) -> dict[str, object]:
    """The container's environment as the process sees it: envFrom first, env overriding."""
    configmaps = of_kind(docs, "ConfigMap")
    env: dict[str, object] = {}
    for source_ in container.get("envFrom") or []:
        assert set(source_) == {"configMapRef"}, "envFrom only from ConfigMaps (secret names stay visible)"
        env.update(configmaps[source_["configMapRef"]["name"]]["data"])
    for var in container.get("env") or []:
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def secret_ref(value) -> dict | None:
    return value.get("secretKeyRef") if isinstance(value, dict) else None


def port_of(addr: str) -> int:
    host, _, port = addr.rpartition(":")
    assert host in ("0.0.0.0", "[::]"), f"{addr}: pods must listen on all interfaces"
    return int(port)


def deployments_by_component(docs) -> dict[str, dict]:
    return {component(d): d for d in of_kind(docs, "Deployment").values()}


# --- tests -----------------------------------------------------------------------------------


def test_one_deployment_and_service_per_role(docs):
    deployments = deployments_by_component(docs)
    services = of_kind(docs, "Service")
    assert set(deployments) == service_roles()
    for name, deployment in deployments.items():
        assert deployment["metadata"]["name"] == f"warden-{name}"
        service = services[f"warden-{name}"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
        port_names = {p["name"] for p in main_container(deployment)["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in port_names


def test_service_argument_matches_deployment(docs):
    for name, deployment in deployments_by_component(docs).items():
        assert main_container(deployment)["args"] == ["serve", "--service", name]
        assert name in service_roles()


def test_every_env_name_is_read_by_the_binary(docs):
    known = config_env_names()
    for deployment in of_kind(docs, "Deployment").values():
        for container in all_containers(deployment):
            unknown = set(env_of(container, docs)) - known
            assert not unknown, f"{deployment['metadata']['name']}/{container['name']}: {sorted(unknown)}"
    for configmap in of_kind(docs, "ConfigMap").values():
        assert set(configmap["data"]) <= known


def test_grpc_services_ports_and_probes(docs):
    health = grpc_health_names()
    for name, deployment in deployments_by_component(docs).items():
        if name == GATEWAY:
            continue
        container = main_container(deployment)
        port = port_of(env_of(container, docs)["WARDEN_GRPC_ADDR"])
        assert port == 50051
        metrics = port_of(env_of(container, docs)["WARDEN_METRICS_ADDR"])
        # Probes use the plaintext health-only listener: the kubelet cannot do mTLS.
        health_port = port_of(env_of(container, docs)["WARDEN_HEALTH_ADDR"])
        ports = [(p["name"], p["containerPort"]) for p in container["ports"]]
        assert ports == [("grpc", port), ("health", health_port), ("metrics", metrics)]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(metrics), "/metrics")
        assert '"/metrics"' in source("shared/common/src/metrics.rs")
        for probe_kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            probe = container[probe_kind]
            assert set(probe) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe_kind
            assert probe["grpc"]["port"] == health_port, probe_kind
        # The per-service name proves the process runs the right service; "" also drains.
        assert container["startupProbe"]["grpc"]["service"] == health[name]
        # Liveness uses the always-serving name, so a database outage does not restart pods.
        assert container["livenessProbe"]["grpc"]["service"] == "warden.liveness"
        assert 'LIVENESS_SERVICE: &str = "warden.liveness"' in source("services/warden/src/app.rs")
        assert container["readinessProbe"]["grpc"].get("service", "") == ""


def test_gateway_ports_and_probes(docs):
    container = main_container(deployments_by_component(docs)[GATEWAY])
    env = env_of(container, docs)
    port = port_of(env["WARDEN_HTTP_ADDR"])
    assert [(p["name"], p["containerPort"]) for p in container["ports"]] == [("http", port)]
    routes = gateway_get_routes()
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe_kind, path in expected.items():
        probe = container[probe_kind]["httpGet"]
        assert (probe["path"], probe["port"]) == (path, port), probe_kind
        assert path in routes


def test_each_service_gets_what_it_needs_and_no_more(docs):
    services = of_kind(docs, "Service")
    for name, deployment in deployments_by_component(docs).items():
        env = env_of(main_container(deployment), docs)
        assert ("WARDEN_DATABASE_URL" in env) == (name in NEEDS_DATABASE), name
        assert ("WARDEN_REDIS_URL" in env) == (name in NEEDS_REDIS), name
        peers = {v[len("WARDEN_") : -len("_ENDPOINTS")].lower() for v in env if v.endswith("_ENDPOINTS")}
        assert peers == PEERS.get(name, set()), name
        for peer in peers:
            for url in env[f"WARDEN_{peer.upper()}_ENDPOINTS"].split(","):
                parts = urlsplit(url.strip())
                assert parts.scheme == "http" and parts.hostname == f"warden-{peer}", url
                service_ports = {p["port"] for p in services[f"warden-{peer}"]["spec"]["ports"]}
                assert parts.port in service_ports, url


def prod_required_secrets() -> set[str]:
    """The settings Config::validate refuses to start without in prod mode."""
    validate = source("shared/common/src/config.rs").split("pub fn validate", 1)[1].split("\n    }\n", 1)[0]
    fields = re.findall(r"self\.mode == Mode::Prod && self\.(\w+)", validate)
    assert "api_key_pepper" in fields, "config.rs no longer requires the pepper in prod?"
    return {f"WARDEN_{f.upper()}" for f in fields}


def test_secrets_come_from_secret_references(docs):
    secret_names = prod_required_secrets() | {
        "WARDEN_DATABASE_URL",
        "WARDEN_REDIS_URL",
        "WARDEN_BOOTSTRAP_ADMIN_USERNAME",
        "WARDEN_BOOTSTRAP_ADMIN_PASSWORD",
    }
    for configmap in of_kind(docs, "ConfigMap").values():
        assert not secret_names & set(configmap["data"])
    assert not of_kind(docs, "Secret"), "secrets are created by the operator, never committed"
    for deployment in of_kind(docs, "Deployment").values():
        for container in all_containers(deployment):
            for var, value in env_of(container, docs).items():
                if var in secret_names:
                    assert secret_ref(value), f"{var} must come from a Secret"


def test_mode_and_prod_secrets(docs, overlay):
    required = prod_required_secrets()
    for deployment in of_kind(docs, "Deployment").values():
        for container in all_containers(deployment):
            where = f"{deployment['metadata']['name']}/{container['name']}"
            env = env_of(container, docs)
            assert env["WARDEN_MODE"] == overlay
            for var in required:
                ref = secret_ref(env.get(var))
                if overlay == "prod":
                    # Every prod process validates them at start, `warden migrate` included.
                    assert ref and not ref.get("optional"), f"{where}: {var}"
                else:
                    assert ref is None, f"{where}: {var} is for prod"


def test_migrations_run_in_an_init_container(docs):
    for name, deployment in deployments_by_component(docs).items():
        init = pod(deployment).get("initContainers") or []
        if name in NEEDS_DATABASE:
            assert [c["args"] for c in init] == [["migrate"]], name
            assert init[0]["image"] == main_container(deployment)["image"]
            assert secret_ref(env_of(init[0], docs)["WARDEN_DATABASE_URL"])
        else:
            assert init == [], name
        assert env_of(main_container(deployment), docs)["WARDEN_AUTO_MIGRATE"] == "false"


def test_pods_are_locked_down(docs):
    images = set()
    for deployment in of_kind(docs, "Deployment").values():
        spec = pod(deployment)
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False  # no injected WARDEN_*_PORT variables
        assert spec["terminationGracePeriodSeconds"] == 30
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] >= 10000
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns replicas"
        for container in all_containers(deployment):
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["runAsNonRoot"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), container["name"]
            images.add(container["image"])
    assert len(images) == 1, f"one image for every service: {images}"
    (image,) = images
    name, tag = render._split_image(image)
    assert tag.startswith(":") and tag != ":latest", image


def quantity(value: str) -> float:
    """CPU cores or bytes."""
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for unit, factor in units.items():
        if str(value).endswith(unit):
            return float(str(value)[: -len(unit)]) * factor
    return float(value)


def test_auth_has_room_for_its_password_hashes(docs):
    container = main_container(deployments_by_component(docs)["auth"])
    workers = int(env_of(container, docs)["WARDEN_HASH_CONCURRENCY"])
    limits = container["resources"]["limits"]
    assert 1 <= workers <= quantity(limits["cpu"]), "one Argon2id hash per core at most"
    # 19 MiB per concurrent hash plus 64 MiB for everything else.
    assert quantity(limits["memory"]) >= workers * 19 * 2**20 + 64 * 2**20
    assert quantity(container["resources"]["requests"]["cpu"]) >= 0.5


def test_autoscalers_and_disruption_budgets(docs, overlay):
    deployments = of_kind(docs, "Deployment")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(docs, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == set(deployments)
    for hpa in hpas.values():
        lo, hi = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
        if overlay == "dev":
            assert (lo, hi) == (1, 1)
        else:
            assert lo >= 3 and hi > lo, (lo, hi)
    budgets = of_kind(docs, "PodDisruptionBudget").values()
    for deployment in deployments.values():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        matching = [b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(matching) == 1, deployment["metadata"]["name"]
        assert matching[0]["spec"].get("maxUnavailable") == 1


def selects(selector: dict, labels: dict) -> bool:
    assert set(selector) <= {"matchLabels"}, selector
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_network_policies_admit_only_callers(docs):
    deployments = deployments_by_component(docs)
    policies = list(of_kind(docs, "NetworkPolicy").values())
    pod_labels = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    callers: dict[str, set[str]] = {name: set() for name in deployments}
    for name, peers in PEERS.items():
        for peer in peers:
            callers[peer].add(name)
    for name, labels in pod_labels.items():
        applied = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert any(not p["spec"].get("ingress") for p in applied), f"{name}: no default deny"
        port = main_container(deployments[name])["ports"][0]["containerPort"]
        rules = [r for p in applied for r in p["spec"].get("ingress") or []]
        assert rules, name
        admitted = set()
        for rule in rules:
            if name != GATEWAY and [p["port"] for p in rule["ports"]] == [9090]:
                # The metrics port, to opted-in Prometheus pods only (never the gRPC port).
                assert rule["from"] == [
                    {"namespaceSelector": {}, "podSelector": {"matchLabels": {"warden-metrics-scraper": "true"}}}
                ], name
                continue
            assert [p["port"] for p in rule["ports"]] == [port], name
            if name == GATEWAY:
                assert "from" not in rule, "the gateway is reachable from anywhere"
                continue
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    # Opt-in clients of AuthService elsewhere in the cluster.
                    assert name == "auth" and peer["podSelector"]["matchLabels"] == {"warden-auth-client": "true"}
                    continue
                assert set(peer) == {"podSelector"}, peer
                admitted |= {c for c, l in pod_labels.items() if selects(peer["podSelector"], l)}
        assert admitted == callers[name], name


def test_namespace(docs, overlay):
    namespaces = of_kind(docs, "Namespace")
    assert set(namespaces) == {OVERLAYS[overlay]}
    assert namespaces[OVERLAYS[overlay]]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for d in docs:
        if d["kind"] != "Namespace":
            assert d["metadata"]["namespace"] == OVERLAYS[overlay], (d["kind"], d["metadata"]["name"])


def test_image_runs_the_binary_as_the_pod_user(docs):
    dockerfile = source("deploy/Dockerfile")
    entrypoint = re.search(r"^ENTRYPOINT\s+(\[.*\])", dockerfile, re.M).group(1)
    assert yaml.safe_load(entrypoint) == ["/usr/local/bin/warden"]
    assert re.search(r"^USER\s+65532:65532\s*$", dockerfile, re.M)
    for deployment in of_kind(docs, "Deployment").values():
        assert pod(deployment)["securityContext"]["runAsUser"] == 65532


def test_checkov_waivers_give_reasons():
    lines = source("k8s/checkov-waivers.yaml").splitlines()
    config = yaml.safe_load("\n".join(lines))
    waived = config["skip-check"]
    assert waived
    for check in waived:
        at = next(i for i, l in enumerate(lines) if l.strip() == f"- {check}")
        comment = []
        for line in reversed(lines[:at]):
            if not line.strip().startswith("#"):
                break
            comment.insert(0, line.strip())
        assert comment and comment[0].startswith(f"# {check} "), f"{check}: no reason above it"
        assert len(" ".join(comment)) > 60, f"{check}: the reason is too short to be one"


def test_builtin_renderer_agrees_with_kustomize(overlay):
    build_cmd = render.find_kustomize()
    if not build_cmd:
        pytest.skip("no kustomize v4+ on this machine")

    def keyed(docs):
        out = {}
        for d in render.normalize_generated_names(docs):
            out[(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])] = canonical(d)
        return out

    directory = REPO / "k8s" / "overlays" / overlay
    assert keyed(render.render_with_kustomize(build_cmd, directory)) == keyed(render.render_builtin(directory))


def canonical(value):
    """Lists of named items compared as sets (merge order is not meaningful)."""
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [canonical(v) for v in value]
        if all(isinstance(i, dict) and "name" in i for i in items):
            items.sort(key=lambda i: i["name"])
        return items
    return value


def test_prod_services_talk_mutual_tls(docs, overlay):
    """Prod refuses a split service without TLS: every process gets the cert-manager files."""
    for name, deployment in deployments_by_component(docs).items():
        container = main_container(deployment)
        env = env_of(container, docs)
        if overlay == "dev":
            assert "WARDEN_TLS_CERT" not in env, name
            continue
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        assert volumes["tls"]["secret"]["secretName"] == "warden-tls", name
        assert mounts["tls"]["readOnly"] is True, name
        # Renewals reach a whole-volume mount only (a subPath mount never sees them), and the
        # services reload the files when they change.
        assert "subPath" not in mounts["tls"], name
        directory = mounts["tls"]["mountPath"]
        files = {"WARDEN_TLS_CERT": "tls.crt", "WARDEN_TLS_KEY": "tls.key", "WARDEN_TLS_CA": "ca.crt"}
        for variable, file in files.items():
            assert env[variable] == f"{directory}/{file}", (name, variable)
    assert "tls.connector()" in source("shared/common/src/grpc.rs")
    assert "tls.incoming(listener)" in source("services/warden/src/app.rs")
