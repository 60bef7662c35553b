"""The storefront as the front door serves it (no browser: the HTTP answers themselves).

Its pages are index.html, its files are storefront/public as committed, anything else under `/`
is the front door's 404 problem; every answer carries the storefront's security headers (a
Content-Security-Policy without inline script or style, framing only of the silent sign-in page by
the storefront itself, no referrer), and /config.json names the local Keycloak and the storefront's
realm client. The committed copies of the npm libraries are the locked packages' files.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
PUBLIC = ROOT / "storefront" / "public"
PAGES = [
    "/",
    "/event/e0e00000-0000-4000-8000-000000000001",
    "/line/e0e00000-0000-4000-8000-000000000001",
    "/account/bookings",
    "/account/profile",
    "/auth/callback",
]


@pytest.fixture(scope="module")
def storefront() -> str:
    value = os.environ.get("BOXOFFICE_STOREFRONT_URL", "")
    if not value:
        pytest.fail("BOXOFFICE_STOREFRONT_URL is not set: `make up`, then `make test`")
    return value.rstrip("/")


def _policy(response: requests.Response) -> dict[str, str]:
    directives = response.headers["Content-Security-Policy"].split(";")
    return {d.split()[0]: d.strip() for d in directives if d.strip()}


@pytest.mark.parametrize("path", PAGES)
def test_each_page_is_index_html_with_a_strict_policy(storefront: str, path: str) -> None:
    response = requests.get(f"{storefront}{path}", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.content == (PUBLIC / "index.html").read_bytes()
    policy = _policy(response)
    assert policy["default-src"] == "default-src 'none'"
    assert policy["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == "style-src 'self'"
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert policy["base-uri"] == "base-uri 'none'"
    assert policy["require-trusted-types-for"] == "require-trusted-types-for 'script'"
    keycloak = os.environ["BOXOFFICE_KEYCLOAK_URL"]
    assert policy["connect-src"] == f"connect-src 'self' {keycloak}"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["ETag"]


def test_the_files_are_the_committed_ones_with_their_types(storefront: str) -> None:
    types = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css"}
    types |= {".svg": "image/svg+xml", ".html": "text/html", ".txt": "text/plain"}
    files = [p for p in PUBLIC.rglob("*") if p.is_file()]
    assert len(files) > 10
    for file in files:
        path = "/" + str(file.relative_to(PUBLIC))
        response = requests.get(f"{storefront}{path}", timeout=10)
        assert response.status_code == 200, path
        assert response.content == file.read_bytes(), path
        assert response.headers["Content-Type"] == f"{types[file.suffix]}; charset=utf-8", path
    compressed = requests.get(
        f"{storefront}/assets/vendor/oidc-client-ts.min.js",
        headers={"Accept-Encoding": "gzip"},
        timeout=10,
        stream=True,
    )
    assert compressed.headers["Content-Encoding"] == "gzip"


def test_only_the_silent_sign_in_page_may_be_framed_and_only_by_the_storefront(
    storefront: str,
) -> None:
    silent = requests.get(f"{storefront}/auth/silent.html", timeout=10)
    assert silent.status_code == 200
    assert _policy(silent)["frame-ancestors"] == "frame-ancestors 'self'"
    assert silent.headers["X-Frame-Options"] == "SAMEORIGIN"


@pytest.mark.parametrize(
    "path",
    ["/event/not-an-id", "/account", "/account/bookings/x", "/assets/", "/assets", "/nope.html"],
)
def test_anything_else_is_the_front_doors_404_problem(storefront: str, path: str) -> None:
    response = requests.get(f"{storefront}{path}", timeout=10)
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-found")


def test_writing_to_the_storefront_is_a_405_problem(storefront: str) -> None:
    response = requests.post(f"{storefront}/account/bookings", data=b"x", timeout=10)
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/problem+json"


def test_config_names_the_local_keycloak_and_the_storefront_client(storefront: str) -> None:
    response = requests.get(f"{storefront}/config.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json() == {
        "issuer": os.environ["BOXOFFICE_OIDC_ISSUER"],
        "clientId": "boxoffice-storefront",
        "url": storefront,
    }


def test_keycloak_lets_the_storefront_sign_in_only_with_its_own_exact_addresses(
    storefront: str,
) -> None:
    """The realm's storefront client: the stack's own URL is accepted as redirect_uri, the same
    path on another port or host is refused (no wildcards)."""
    issuer = os.environ["BOXOFFICE_OIDC_ISSUER"]

    def authorize(redirect_uri: str) -> requests.Response:
        return requests.get(
            f"{issuer}/protocol/openid-connect/auth",
            params={
                "client_id": "boxoffice-storefront",
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            },
            timeout=10,
            allow_redirects=False,
        )

    assert authorize(f"{storefront}/auth/callback").status_code == 200  # the login page
    host, port = storefront.rsplit(":", 1)
    for wrong in (f"{host}:{int(port) + 1}/auth/callback", f"{storefront}/auth/callbackx"):
        refused = authorize(wrong)
        assert refused.status_code == 400, wrong
        assert "Invalid parameter: redirect_uri" in refused.text
    no_pkce = requests.get(
        f"{issuer}/protocol/openid-connect/auth",
        params={
            "client_id": "boxoffice-storefront",
            "redirect_uri": f"{storefront}/auth/callback",
            "response_type": "code",
            "scope": "openid",
        },
        timeout=10,
        allow_redirects=False,
    )
    assert no_pkce.status_code == 302
    assert "error=invalid_request" in no_pkce.headers["Location"]  # PKCE is required
    # No password grant for the storefront's client.
    token = requests.post(
        f"{issuer}/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "boxoffice-storefront",
            "username": "alice",
            "password": "alice-dev-password",
        },
        timeout=10,
    )
    assert token.status_code in (400, 401)
    assert token.json()["error"] == "unauthorized_client"


def test_the_committed_libraries_are_the_locked_npm_packages() -> None:
    """storefront/vendor.sh --check: `npm ci` from package-lock.json, then byte-for-byte."""
    result = subprocess.run(
        [str(ROOT / "storefront" / "vendor.sh"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
