"""The production manifests match the code: images, commands, ports, probes, environment, secrets;
and nats-server accepts the cluster and authorization configurations.

Every environment name a container gets (its own `env`, or the shared ConfigMap through
`envFrom`) must be a setting of that component (its pydantic settings classes); every
ConfigMap key must be read by some component that loads it; every Secret key the manifests
reference must be in deploy/k8s/examples/secrets.yaml.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from deploy.local.servers import NATS_USERS, find_binary
from services.assignment.settings import AssignmentSettings
from services.audit.checkpoints import PUBLIC_KEY_FILE as AUDIT_PUBLIC_KEY_FILE
from services.audit.checkpoints import SIGNING_KEY_FILE
from services.audit.settings import AuditSettings
from services.notify.settings import NotifySettings
from services.progress.dashboard_sources import DashboardSettings
from services.progress.settings import ProgressSettings
from services.shared.auth import PUBLIC_KEY_FILE as JWT_PUBLIC_KEY_FILE
from services.shared.oidc import OidcSettings
from services.shared.signed_note import parse_vkey
from services.witness.api import router as witness_router
from services.witness.settings import WitnessSettings
from workflows.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
NATS_DIR = ROOT / "deploy" / "nats"
COMPONENTS: dict[str, list[type[BaseSettings]]] = {
    "assignment": [AssignmentSettings, OidcSettings],
    "progress": [ProgressSettings, DashboardSettings, OidcSettings],
    "audit": [AuditSettings, OidcSettings],
    "worker": [WorkerSettings],
    "notify": [NotifySettings, OidcSettings],
}
PORTS = {
    "assignment": ("ASSIGNMENT_PORT", 8101),
    "progress": ("PROGRESS_PORT", 8102),
    "audit": ("AUDIT_PORT", 8103),
    "notify": ("NOTIFY_PORT", 8104),
}


def env_names(classes: Iterable[type[BaseSettings]]) -> set[str]:
    """The environment variable names pydantic-settings reads for these classes."""
    names: set[str] = set()
    for cls in classes:
        prefix = str(cls.model_config.get("env_prefix") or "")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            if isinstance(alias, AliasChoices):
                names |= {c.upper() for c in alias.choices if isinstance(c, str)}
            elif isinstance(alias, str):
                names.add(alias.upper())
            else:
                names.add(f"{prefix}{name}".upper())
    return names


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]


def manifests() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in documents(p)]


def workloads() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in manifests() if d["kind"] in ("Deployment", "StatefulSet")}


def only(items: list[dict[str, Any]]) -> dict[str, Any]:
    assert len(items) == 1, items
    return items[0]


def container(name: str) -> dict[str, Any]:
    return only(workloads()[name]["spec"]["template"]["spec"]["containers"])


def config_map() -> dict[str, str]:
    cm = only([d for d in manifests() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "policyflow-config"])
    return dict(cm["data"])


def example_secrets() -> dict[str, set[str]]:
    return {
        d["metadata"]["name"]: set(d.get("stringData") or d.get("data") or {})
        for d in documents(K8S / "examples" / "secrets.yaml")
    }


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def test_every_manifest_parses_into_the_policyflow_namespace() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"ConfigMap", "Deployment", "StatefulSet", "Service"}
    assert {d["metadata"].get("namespace") for d in docs} == {"policyflow"}
    assert set(workloads()) == {*COMPONENTS, "nats"}
    for d in documents(ROOT / "deploy" / "temporal" / "helm-values.yaml"):
        stores = d["server"]["config"]["persistence"]["datastores"]
        assert {s["sql"]["pluginName"] for s in stores.values()} == {"postgres12"}  # Temporal on PostgreSQL


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_images_and_commands_run_this_code(name: str) -> None:
    c = container(name)
    assert c["image"] == f"policyflow:{project_version()}"  # the image deploy/Dockerfile builds
    python, flag, module = c["command"]
    assert (python, flag) == ("python", "-m")
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} does not exist"
    if spec.submodule_search_locations:  # a package: it needs a __main__
        assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
    else:
        assert 'if __name__ == "__main__"' in Path(str(spec.origin)).read_text()


@pytest.mark.parametrize("name", sorted(PORTS))
def test_ports_probes_and_services_agree_with_the_settings(name: str) -> None:
    c = container(name)
    env_var, default = PORTS[name]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    port = int(env.get(env_var) or default)
    assert [p["containerPort"] for p in c["ports"]] == [port]
    # Readiness checks the service's dependencies; liveness only that the process answers.
    probes = {probe: c[probe]["httpGet"]["path"] for probe in ("readinessProbe", "livenessProbe")}
    assert probes["readinessProbe"] == "/healthz"
    assert probes["livenessProbe"] in {"/healthz", "/livez"}
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] == port
    service = only([d for d in manifests() if d["kind"] == "Service" and d["metadata"]["name"] == name])
    assert service["spec"]["selector"] == {"app": name}
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(port, port)]
    # The probes' routes exist: the service's own router, or routes the app adds (/livez).
    app = importlib.import_module(f"services.{name}.app").create_app()
    router = importlib.import_module(f"services.{name}.api").router
    assert set(probes.values()) <= {getattr(r, "path", None) for r in [*app.routes, *router.routes]}


@pytest.mark.parametrize("name", sorted(COMPONENTS))
def test_every_environment_name_is_a_setting_of_the_component(name: str) -> None:
    c = container(name)
    known = env_names(COMPONENTS[name])
    own = {e["name"] for e in c.get("env", [])}
    assert own <= known, f"{name} sets {sorted(own - known)}, which its settings never read"
    maps = {ref["configMapRef"]["name"] for ref in c.get("envFrom", []) if "configMapRef" in ref}
    assert maps == {"policyflow-config"}


def test_every_shared_config_key_is_read_by_a_component_that_loads_it() -> None:
    readers = {name: env_names(classes) for name, classes in COMPONENTS.items()}
    for key in config_map():
        users = [name for name, names in readers.items() if key in names]
        assert users, f"ConfigMap key {key} is read by no component"
    cm = config_map()
    assert cm["NATS_REPLICAS"] == str(workloads()["nats"]["spec"]["replicas"]) == "3"
    assert cm["TEMPORAL_ADDRESS"].endswith(":7233")
    tls = {cm[k] for k in ("TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA")}
    for name in ("assignment", "progress", "worker"):  # every Temporal client mounts the certificate
        mounts = {m["mountPath"] for m in container(name).get("volumeMounts", [])}
        assert {str(Path(p).parent) for p in tls} <= mounts, name


def test_secrets_and_key_files_referenced_are_in_the_example() -> None:
    secrets = example_secrets()
    for name, w in workloads().items():
        pod = w["spec"]["template"]["spec"]
        for c in pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), (name, ref)
            for ref in c.get("envFrom", []):
                if "secretRef" in ref:
                    assert ref["secretRef"]["name"] in secrets, (name, ref)
        for volume in pod.get("volumes", []):
            sources = [volume["secret"]] if "secret" in volume else []
            sources += [{"secretName": s["secret"]["name"]} for s in volume.get("projected", {}).get("sources", [])]
            for source in sources:
                assert source["secretName"] in secrets, (name, source)
    assert JWT_PUBLIC_KEY_FILE in secrets["policyflow-jwt-public-key"]  # the file name load_public_key reads
    audit_keys = only([v for v in workloads()["audit"]["spec"]["template"]["spec"]["volumes"] if v["name"] == "keys"])
    mounted = {s["secret"]["name"] for s in audit_keys["projected"]["sources"]}
    assert mounted == {"policyflow-jwt-public-key", "policyflow-audit-signing-key"}  # replicas share one signer
    assert {SIGNING_KEY_FILE, AUDIT_PUBLIC_KEY_FILE} <= secrets["policyflow-audit-signing-key"]
    assert {f"PF_NATS_{u.upper()}_PASSWORD" for u in NATS_USERS} == secrets["nats-passwords"]
    assert (
        set(re.findall(r"\$(PF_NATS_\w+)", (NATS_DIR / "authorization.conf").read_text())) == secrets["nats-passwords"]
    )


def test_the_nats_statefulset_matches_the_cluster_configs() -> None:
    nats = workloads()["nats"]
    c = container("nats")
    installed = subprocess.run([find_binary("nats-server"), "--version"], capture_output=True, text=True).stdout
    assert c["image"] == f"nats:{installed.split('v')[-1].strip()}"  # the version the tests run
    assert c["args"] == ["-c", "/etc/nats/$(POD_NAME).conf"]
    assert {e["name"] for e in c["env"]} == {"POD_NAME"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"client": 4222, "cluster": 6222, "monitor": 8222}
    service = only([d for d in manifests() if d["kind"] == "Service" and d["metadata"]["name"] == "nats"])
    assert nats["spec"]["serviceName"] == "nats" and service["spec"]["clusterIP"] == "None"
    replicas = nats["spec"]["replicas"]
    routes = {f"nats-route://nats-{i}.nats:{ports['cluster']}" for i in range(replicas)}
    for i in range(replicas):
        conf = (NATS_DIR / "cluster" / f"nats-{i}.conf").read_text()  # the pod's config file
        assert f"server_name: nats-{i}" in conf
        assert f"listen: 0.0.0.0:{ports['client']}" in conf and f"http: 0.0.0.0:{ports['monitor']}" in conf
        assert set(re.findall(r"nats-route://[\w.-]+:\d+", conf)) == routes
        assert "sync_interval: always" in conf and 'include "authorization.conf"' in conf
    assert sorted(p.name for p in (NATS_DIR / "cluster").glob("*.conf")) == [f"nats-{i}.conf" for i in range(replicas)]


@pytest.fixture
def nats_conf_dir(tmp_path: Path) -> Path:
    for conf in [*(NATS_DIR / "cluster").glob("*.conf"), NATS_DIR / "authorization.conf"]:
        shutil.copy(conf, tmp_path / conf.name)  # as in the nats-config ConfigMap: side by side
    return tmp_path


def nats_test(conf: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [find_binary("nats-server"), "-t", "-c", conf.name], cwd=conf.parent, env=env, capture_output=True, text=True
    )


@pytest.mark.parametrize("conf", ["nats-0.conf", "nats-1.conf", "nats-2.conf", "authorization.conf"])
def test_nats_server_accepts_the_configs(nats_conf_dir: Path, conf: str) -> None:
    env = dict(os.environ)
    env.update({f"PF_NATS_{u.upper()}_PASSWORD": f"pf{u}0123456789" for u in NATS_USERS})
    checked = nats_test(nats_conf_dir / conf, env)
    assert checked.returncode == 0, checked.stderr + checked.stdout
    assert "is valid" in checked.stderr + checked.stdout
    without = {k: v for k, v in env.items() if not k.startswith("PF_NATS_")}
    assert nats_test(nats_conf_dir / conf, without).returncode != 0  # the passwords are required


def test_the_example_witness_runs_this_code_apart_and_the_audit_service_names_it() -> None:
    """Another party's witness (deploy/k8s/examples/witness.yaml): its own namespace and volume, its
    settings read from its environment as the process would, probes on its routes, and the audit
    service's WITNESS_URLS / WITNESS_KEYS and AUDIT_ORIGIN consistent with it."""
    docs = documents(K8S / "examples" / "witness.yaml")
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Namespace", "StatefulSet", "Service"}
    assert {d["metadata"].get("namespace", d["metadata"]["name"]) for d in docs} == {"witness"}
    sts = kinds["StatefulSet"]
    assert sts["spec"]["replicas"] == 1  # one holder of the witness's state
    c = only(sts["spec"]["template"]["spec"]["containers"])
    assert c["image"] == f"policyflow:{project_version()}" and c["command"] == ["python", "-m", "services.witness"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert set(env) <= env_names([WitnessSettings])
    settings = WitnessSettings(**env)
    assert str(settings.var_dir) == only(c["volumeMounts"])["mountPath"] == "/var/lib/witness"
    assert settings.database_url.endswith("/var/lib/witness/witness/witness.sqlite")
    assert [p["containerPort"] for p in c["ports"]] == [settings.port]
    routes = {getattr(r, "path", None) for r in witness_router.routes}
    assert {c[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe")} <= routes
    assert kinds["Service"]["spec"]["ports"] == [{"port": settings.port, "targetPort": settings.port}]
    audit = {e["name"]: e.get("value") for e in container("audit")["env"]}
    audit_settings = AuditSettings(
        **{k: v for k, v in audit.items() if v is not None and k.startswith(("AUDIT_", "WITNESS_"))}
    )
    assert audit_settings.witnesses == [f"http://witness.witness.svc:{settings.port}"]
    assert parse_vkey(audit["WITNESS_KEYS"] or "").name == settings.name
    assert list(settings.trusted_logs()) == [audit_settings.origin]
