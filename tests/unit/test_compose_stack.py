"""The docker-compose stack cannot run here (no Docker engine); it is validated instead: `docker-compose config`,
its shape, its healthchecks, and its agreement with prometheus/prometheus.yml and with the tested Milvus."""

from __future__ import annotations

import importlib.util
import os
import random
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from embguard.config import loader as config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"


def test_docker_compose_config_is_valid() -> None:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing in CI: `make test` installs Debian's docker-compose package")
        pytest.skip("Debian's docker-compose is not installed here; `make test` installs it")
    res = subprocess.run([exe, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 0, res.stderr


def test_stack_shape() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert {"etcd", "minio", "milvus-standalone", "embguard", "prometheus", "alertmanager", "grafana"} <= set(services)
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    milvus = services["milvus-standalone"]
    assert "9091/healthz" in " ".join(milvus["healthcheck"]["test"])
    assert services["embguard"]["build"]["dockerfile"] == "Dockerfile" and (REPO / "Dockerfile").is_file()
    assert "--index-url https://download.pytorch.org/whl/cpu torch" in (REPO / "Dockerfile").read_text()


def test_stack_uses_the_files_the_tests_run_against() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    # Prometheus mounts prometheus/ (config + the rules that test_daemon_live.py loads into a real Prometheus).
    assert "./prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"]
    prom = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    assert prom["rule_files"] == ["rules/*.yml"]
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    assert jobs["embguard"] == ["embguard:9464"] and jobs["milvus"] == ["milvus-standalone:9091"]
    assert "./prometheus/alertmanager.yml:/etc/alertmanager/alertmanager.yml:ro" in services["alertmanager"]["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in services["grafana"]["volumes"]
    assert "./grafana/dashboards:/var/lib/grafana/dashboards/embguard:ro" in services["grafana"]["volumes"]
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/embguard.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/embguard"
    # The sidecar's sample config is valid and points at the stack's Milvus.
    mount = next(v for v in services["embguard"]["volumes"] if v.endswith("/etc/embguard/embguard.toml:ro"))
    settings = config.load(REPO / mount.split(":")[0], environ={})
    assert settings.milvus_uri == "http://milvus-standalone:19530" and settings.metrics.port == 9464


def test_milvus_image_is_the_version_the_suite_tests() -> None:
    """The stack's Milvus is the server the integration tests run (PyPI `milvus`, pinned in the test extra)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["test"]
    (pin,) = [re.fullmatch(r"milvus==([\d.]+)", e).group(1) for e in extras if re.fullmatch(r"milvus==[\d.]+", e)]
    assert services["milvus-standalone"]["image"] == f"milvusdb/milvus:v{pin}"


# What each image can run in a healthcheck: busybox wget in Prometheus', Alertmanager's and Grafana's (Alpine)
# images, curl in Milvus', MinIO's and etcd's own tooling, Python in embguard's.
HEALTH_TOOLS = {
    "prom/prometheus:": {"wget"},
    "prom/alertmanager:": {"wget"},
    "grafana/grafana:": {"wget", "curl"},
    "milvusdb/milvus:": {"curl"},
    "minio/minio:": {"curl"},
    "quay.io/coreos/etcd:": {"etcdctl"},
    "embguard:": {"python"},
}


def test_every_service_has_a_healthcheck_its_image_can_run() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    dockerfile = (REPO / "Dockerfile").read_text()
    for name, svc in services.items():
        check = svc.get("healthcheck")
        if check is None:  # the sidecar's is in its Dockerfile
            assert name == "embguard" and "HEALTHCHECK" in dockerfile and "9464/healthz" in dockerfile, name
            continue
        test = check["test"]
        assert test[0] == "CMD", f"{name}: exec form, no shell needed"
        tools = next(t for prefix, t in HEALTH_TOOLS.items() if svc["image"].startswith(prefix))
        assert test[1] in tools, f"{name}: {test[1]} is not in {svc['image']}"
        assert re.search(r"https?://(localhost|127\.0\.0\.1):\d+/", " ".join(test)) or test[1] == "etcdctl", name
        assert {"interval", "timeout", "retries"} <= set(check), name
    for name in ("prometheus", "alertmanager", "grafana"):
        assert "-/healthy" in " ".join(services[name]["healthcheck"]["test"]) or name == "grafana"
    assert "/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def _service_ports(svc: dict) -> set[int]:
    """Container ports a service listens on, as compose declares them (expose, ports)."""
    out = {int(str(p)) for p in svc.get("expose", [])}
    for port in svc.get("ports", []):
        out.add(int(str(port).rsplit(":", 1)[1].split("/")[0]))
    return out


def test_every_scrape_target_is_a_service_of_the_stack() -> None:
    """prometheus.yml scrapes only what docker-compose.yml runs, on a port that service declares (no dead
    targets), and the application job scrapes the example application's metrics port."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    prom = yaml.safe_load((REPO / "prometheus" / "prometheus.yml").read_text())
    for job in prom["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.rsplit(":", 1)
            name = "prometheus" if host == "localhost" else host  # Prometheus scraping itself
            assert name in services, f"job {job['job_name']}: {target} is no service of docker-compose.yml"
            declared = _service_ports(services[name])
            assert int(port) in declared, f"job {job['job_name']}: {name} declares ports {declared}, not {port}"
    app = services["app"]
    assert app["environment"]["APP_METRICS_PORT"] == "9465"
    script = next(v for v in app["volumes"] if v.split(":")[1] == app["command"][-1])
    assert (REPO / script.split(":")[0]).is_file()


def _example_app():
    spec = importlib.util.spec_from_file_location("example_app", REPO / "deploy" / "example_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app_retries_with_jittered_exponential_backoff() -> None:
    backoff_delays = _example_app().backoff_delays
    delays = [d for d, _ in zip(backoff_delays(1.0, 30.0, random.Random(1)), range(400), strict=False)]
    assert all(0.0 <= d <= 30.0 for d in delays)
    assert all(d <= 2**i for i, d in enumerate(delays[:5]))  # the ceiling doubles: 1, 2, 4, 8, 16 s
    assert max(delays[10:]) > 20.0 and min(delays[10:]) < 10.0  # capped at 30 s, spread over [0, 30]
    other = [d for d, _ in zip(backoff_delays(1.0, 30.0, random.Random(2)), range(400), strict=False)]
    assert delays != other  # replicas do not retry in lock-step
