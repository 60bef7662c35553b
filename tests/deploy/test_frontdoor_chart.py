"""The chart's front door: the local stack's nginx template, rendered for the cluster.

Offline, like the rest of tests/deploy: the Deployment, Service, ConfigMap, PodDisruptionBudget
and (optional) HTTPRoute the chart renders and their invariants; that the ConfigMap's nginx.conf
is the one template with the cluster's values filled in; and that this very configuration, run by
a real nginx (the local stack's Debian package) in front of a stand-in for Kourier's internal
gateway, sends each path to Kourier with its Knative Service's Host and turns Kourier's
plain-text errors into problem+json.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import requests
import yaml

from deploy.conftest import CHART, ROOT, VALUES_FILES, Tools, docs

TEMPLATE = ROOT / "stack" / "frontdoor" / "nginx.conf.tmpl"
IDS = [p.name if p else "default" for p in VALUES_FILES]
KOURIER = "kourier-internal.kourier-system.svc.cluster.local:80"
HOSTS = {
    "get_event": "get-event.boxoffice.svc.cluster.local",
    "get_customer": "get-customer.boxoffice.svc.cluster.local",
    "create_booking": "create-booking.boxoffice.svc.cluster.local",
    "check_in": "check-in.boxoffice.svc.cluster.local",
    "waiting_room": "waiting-room.boxoffice.svc.cluster.local",
    "payment_webhook": "payment-webhook.boxoffice.svc.cluster.local",
}
Render = Callable[[Path | None], str]
STOREFRONT_ROOT = "/usr/share/boxoffice/storefront"
STOREFRONT_FILES = ROOT / "storefront" / "public"


def _frontdoor(rendered: str) -> dict[str, dict[str, Any]]:
    """The front door's objects by kind."""
    return {
        d["kind"]: d
        for d in docs(rendered)
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "frontdoor"
    }


def _values(path: Path | None) -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    if path is not None:
        override = yaml.safe_load(path.read_text()) or {}
        values["frontdoor"] = {**values["frontdoor"], **override.get("frontdoor", {})}
    return values


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_the_front_door_deployment_is_hardened_and_probed(
    render: Render, values: Path | None
) -> None:
    objects = _frontdoor(render(values))
    assert {"ConfigMap", "Deployment", "Service"} <= set(objects)
    deployment = objects["Deployment"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/_frontdoor/healthz", "port": "http"}
    assert container["resources"]["limits"]["memory"]
    assert container["resources"]["requests"]["cpu"]
    image = container["image"]
    assert re.fullmatch(r"docker\.io/library/nginx:[0-9][\w.-]*", image), image
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    state = volumes[mounts["/tmp/frontdoor"]["name"]]  # noqa: S108 - the emptyDir
    assert state["emptyDir"]["sizeLimit"]
    assert mounts["/etc/frontdoor"]["readOnly"] is True
    assert container["args"] == [
        "-p",
        "/tmp/frontdoor",  # noqa: S108
        "-e",
        "/dev/stderr",
        "-c",
        "/etc/frontdoor/nginx.conf",
    ]
    # A new configuration rolls the pods.
    config = objects["ConfigMap"]["data"]["nginx.conf"]
    digest = pod["metadata"]["annotations"]["boxoffice.dev/config-sha256"]
    assert digest == hashlib.sha256(config.encode()).hexdigest()
    # The Service and the disruption budget select exactly these pods.
    labels = pod["metadata"]["labels"]
    service = objects["Service"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"
    if deployment["spec"]["replicas"] >= 2:
        budget = objects["PodDisruptionBudget"]
        assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    else:
        assert "PodDisruptionBudget" not in objects


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_the_http_route_sends_every_path_to_the_front_door(
    render: Render, values: Path | None
) -> None:
    objects = _frontdoor(render(values))
    enabled = _values(values)["frontdoor"]["httpRoute"]["enabled"]
    assert ("HTTPRoute" in objects) == enabled
    if not enabled:
        return
    route = objects["HTTPRoute"]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    (rule,) = route["spec"]["rules"]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    (backend,) = rule["backendRefs"]
    service = objects["Service"]
    assert backend == {
        "name": service["metadata"]["name"],
        "port": service["spec"]["ports"][0]["port"],
    }
    assert route["spec"]["parentRefs"]
    assert route["spec"]["hostnames"]


def _fill(template: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        template = template.replace(f"@{placeholder}@", value)
    return template


def test_the_configmap_is_the_one_template_filled_in_for_the_cluster(render: Render) -> None:
    """Comments dropped, placeholders filled in, nothing else changed."""
    config = _frontdoor(render(None))["ConfigMap"]["data"]["nginx.conf"]
    directives = "".join(
        line for line in TEMPLATE.read_text().splitlines(True) if not line.lstrip().startswith("#")
    )
    expected = _fill(
        directives,
        {
            "DIR": "/tmp/frontdoor",  # noqa: S108
            "LOG": "/dev/stderr",
            "LISTEN": "8080",
            "PROBLEM_BASE": "https://boxoffice.example/problems/",
            **{f"{fn.upper()}_ADDR": KOURIER for fn in HOSTS},
            **{f"{fn.upper()}_HOST": host for fn, host in HOSTS.items()},
            "STOREFRONT_ROOT": STOREFRONT_ROOT,
            "STOREFRONT_URL": "http://127.0.0.1:8000",
            "STOREFRONT_CLIENT_ID": "boxoffice-storefront",
            "OIDC_ISSUER": "http://127.0.0.1:8180/realms/boxoffice",
            "OIDC_ORIGIN": "http://127.0.0.1:8180",
        },
    )
    assert config == expected.rstrip("\n")


def _storefront(rendered: str) -> dict[str, Any] | None:
    found = [
        d
        for d in docs(rendered)
        if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "storefront"
    ]
    assert len(found) <= 1
    return found[0] if found else None


@pytest.mark.parametrize("values", VALUES_FILES, ids=IDS)
def test_the_storefront_reaches_the_pods_byte_for_byte_where_nginx_serves_it(
    render: Render, values: Path | None
) -> None:
    """storefront/public, each file a key of one ConfigMap, mounted back at its path under the
    root the nginx configuration serves; a change of any file rolls the pods."""
    rendered = render(values)
    configmap = _storefront(rendered)
    assert configmap is not None
    files = {
        str(p.relative_to(STOREFRONT_FILES)): p.read_text()
        for p in sorted(STOREFRONT_FILES.rglob("*"))
        if p.is_file()
    }
    assert {"index.html", "assets/app.js", "assets/vendor/oidc-client-ts.min.js"} <= set(files)
    data = configmap["data"]
    assert data == {path.replace("/", "__"): text for path, text in files.items()}
    objects = _frontdoor(rendered)
    pod = objects["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == STOREFRONT_ROOT)
    assert mount["readOnly"] is True
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    assert {i["key"]: i["path"] for i in volume["configMap"]["items"]} == {
        path.replace("/", "__"): path for path in files
    }
    assert f"root {STOREFRONT_ROOT};" in objects["ConfigMap"]["data"]["nginx.conf"]
    annotations = pod["metadata"]["annotations"]
    assert annotations["boxoffice.dev/storefront-sha256"]
    assert sum(len(t.encode()) for t in data.values()) < 900_000  # a ConfigMap holds 1 MiB


def test_the_storefront_signs_in_where_the_values_say_and_its_policy_names_that_origin(
    render: Render,
) -> None:
    production = CHART / "examples" / "values-production.yaml"
    config = _frontdoor(render(production))["ConfigMap"]["data"]["nginx.conf"]
    settings = json.loads(re.search(r"return 200 '(\{\"issuer\".*?)';", config).group(1))  # type: ignore[union-attr]
    assert settings == {
        "issuer": "https://id.boxoffice.example/realms/boxoffice",
        "clientId": "boxoffice-storefront",
        "url": "https://boxoffice.example",
    }
    assert "connect-src 'self' https://id.boxoffice.example;" in config
    assert "frame-src 'self' https://id.boxoffice.example;" in config
    route = _frontdoor(render(production))["HTTPRoute"]
    assert "boxoffice.example" in route["spec"]["hostnames"]


def test_the_storefront_can_be_left_out(tools: Tools) -> None:
    proc = subprocess.run(
        [tools.helm, "template", "x", str(CHART), "--set", "frontdoor.storefront.enabled=false"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert _storefront(proc.stdout) is None
    deployment = _frontdoor(proc.stdout)["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert STOREFRONT_ROOT not in [m["mountPath"] for m in container["volumeMounts"]]


def test_the_chart_refuses_a_front_door_to_a_disabled_function(tools: Tools) -> None:
    proc = subprocess.run(
        [tools.helm, "template", "x", str(CHART), "--set", "functions.get_customer.enabled=false"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "frontdoor routes to get_customer" in proc.stderr
    alone = subprocess.run(
        [
            tools.helm,
            "template",
            "x",
            str(CHART),
            "--set",
            "functions.get_customer.enabled=false",
            "--set",
            "frontdoor.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert alone.returncode == 0, alone.stderr
    assert _frontdoor(alone.stdout) == {}


# -- the rendered configuration, run by nginx in front of a stand-in Kourier ----------------------


class _Kourier(BaseHTTPRequestHandler):
    """Kourier's internal gateway as nginx sees it: it routes by Host; here it answers with the
    Host and path it got, or with Kourier's plain-text 503 for /events/unhealthy."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append((self.headers["Host"], self.path))
        if self.path == "/events/unhealthy":
            body, status, ctype = b"no healthy upstream", 503, "text/plain"
        else:
            body = json.dumps({"host": self.headers["Host"], "path": self.path}).encode()
            status, ctype = 200, "application/json"
        self._send(status, ctype, body)

    def do_POST(self) -> None:
        """Also echoes the body and the Stripe-Signature header it got."""
        self.seen.append((self.headers["Host"], self.path))
        received = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        answer = {"host": self.headers["Host"], "path": self.path, "body": received}
        answer["signature"] = self.headers.get("Stripe-Signature", "")
        self._send(200, "application/json", json.dumps(answer).encode())

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def _nginx() -> str:
    """The local stack's nginx (installed by it when missing)."""
    subprocess.run(
        [
            "bash",
            "-c",
            "source stack/lib.sh && source stack/services/frontdoor.sh && frontdoor_install",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=600,
    )
    return os.environ.get("BOXOFFICE_NGINX_BIN", "/usr/sbin/nginx")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@contextlib.contextmanager
def _cluster_frontdoor(config: str, kourier: str) -> Iterator[str]:
    """The ConfigMap's nginx.conf, with only what a pod provides swapped for local equivalents:
    Kourier's address, the emptyDir, the port, the log."""
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="boxoffice-chart-frontdoor-") as name:
        directory = Path(name)
        directory.chmod(0o755)  # nginx's workers (nobody, when started as root) live here
        local = (
            config.replace(KOURIER, kourier)
            .replace("/tmp/frontdoor", str(directory))  # noqa: S108
            .replace("/dev/stderr", str(directory / "frontdoor.log"))
            .replace("listen 8080;", f"listen 127.0.0.1:{port};")
            .replace(STOREFRONT_ROOT, str(STOREFRONT_FILES))
        )
        (directory / "nginx.conf").write_text(local)
        args = [_nginx(), "-p", str(directory), "-e", str(directory / "frontdoor.log")]
        process = subprocess.Popen(
            [*args, "-c", str(directory / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    requests.get(f"{base}/_frontdoor/healthz", timeout=1).raise_for_status()
                    break
                except requests.RequestException:
                    log = directory / "frontdoor.log"
                    assert process.poll() is None, log.read_text() if log.exists() else ""
                    assert time.monotonic() < deadline, "nginx did not start"
                    time.sleep(0.1)
            yield base
        finally:
            process.terminate()
            process.wait(10)


@pytest.fixture(scope="module")
def cluster_frontdoor(render: Render) -> Iterator[str]:
    config = _frontdoor(render(None))["ConfigMap"]["data"]["nginx.conf"]
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Kourier)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with _cluster_frontdoor(config, f"127.0.0.1:{server.server_address[1]}") as base:
            yield base
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("path", "function"),
    [
        ("/events?limit=2", "get_event"),
        ("/venues/v1", "get_event"),
        ("/customers/me", "get_customer"),
        ("/bookings/b1", "create_booking"),
        ("/events/e1/queue/me", "waiting_room"),
    ],
)
def test_the_cluster_front_door_reaches_each_function_through_kourier_by_its_host(
    cluster_frontdoor: str, path: str, function: str
) -> None:
    response = requests.get(
        f"{cluster_frontdoor}{path}", headers={"Authorization": "Bearer t"}, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"host": HOSTS[function], "path": path}


def test_the_payment_providers_webhook_reaches_payment_webhook_without_a_token(
    cluster_frontdoor: str,
) -> None:
    """Stripe calls /payments/webhook from the internet (the HTTPRoute sends every path to the
    front door): no Authorization, the signed body and its signature passed on unchanged."""
    event = '{"id": "evt_1", "type": "payment_intent.succeeded"}'
    signature = "t=1700000000,v1=" + "ab" * 32
    response = requests.post(
        f"{cluster_frontdoor}/payments/webhook",
        data=event,
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "host": HOSTS["payment_webhook"],
        "path": "/payments/webhook",
        "body": event,
        "signature": signature,
    }


def test_the_cluster_front_door_serves_the_storefront_itself(cluster_frontdoor: str) -> None:
    """The pages and files from the mounted ConfigMap (here: the same files), never Kourier."""
    before = len(_Kourier.seen)
    page = requests.get(f"{cluster_frontdoor}/account/bookings", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.text == (STOREFRONT_FILES / "index.html").read_text()
    script = requests.get(f"{cluster_frontdoor}/assets/app.js", timeout=10)
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert script.text == (STOREFRONT_FILES / "assets" / "app.js").read_text()
    settings = requests.get(f"{cluster_frontdoor}/config.json", timeout=10).json()
    assert settings["url"] == "http://127.0.0.1:8000"
    assert len(_Kourier.seen) == before


def test_the_cluster_front_door_words_kourier_errors_and_its_own_as_problems(
    cluster_frontdoor: str,
) -> None:
    unhealthy = requests.get(f"{cluster_frontdoor}/events/unhealthy", timeout=10)
    assert unhealthy.status_code == 503
    assert unhealthy.headers["Content-Type"] == "application/problem+json"
    assert unhealthy.json()["type"] == "https://boxoffice.example/problems/service-unavailable"
    assert unhealthy.headers["Retry-After"] == "5"
    token = {"Authorization": f"Bearer {'a' * 9000}"}
    oversized = requests.get(f"{cluster_frontdoor}/customers/me", headers=token, timeout=10)
    assert oversized.status_code == 431
    assert oversized.json()["type"].endswith("/header-too-large")
    missing = requests.get(f"{cluster_frontdoor}/metrics", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["X-Content-Type-Options"] == "nosniff"
