"""Access-token verification, end to end: tokens from the real Keycloak (and forgeries made from
them) sent to the real get_customer entrypoint, plus tokens Keycloak will not sign (expired, wrong
issuer, ...) made with a key of our own that a local JWKS server publishes.

Every refusal is 401 + problem+json + `WWW-Authenticate: Bearer ..., error="invalid_token"`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from boxoffice import errors
from boxoffice.adapters.keycloak import JwksCache, JwtVerifier, fetch_jwks
from boxoffice.config import Settings

pytestmark = pytest.mark.integration

ALICE_CUSTOMER = "c0000000-0000-4000-8000-000000000001"
ME = "/customers/me"

TokenFor = Callable[..., dict[str, str]]
Problem = Callable[..., dict[str, Any]]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_b64(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data, separators=(",", ":")).encode())


def _parts(token: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    header, payload, signature = token.split(".")
    return json.loads(_unb64(header)), json.loads(_unb64(payload)), signature


def _get_me(client: FlaskClient, token: str) -> TestResponse:
    return client.get(ME, headers={"Authorization": f"Bearer {token}"})


def _assert_refused(response: TestResponse, assert_problem: Problem) -> dict[str, Any]:
    body = assert_problem(response, 401, "invalid-token")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge
    return body


@pytest.fixture(scope="module")
def keycloak_jwks(base_settings: Settings) -> dict[str, Any]:
    response = requests.get(base_settings.jwks_url, timeout=10)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture
def alice_token(access_token: Callable[[str], str]) -> str:
    return access_token("alice")


# -- control: a real access token is accepted ---------------------------------------------------


def test_a_keycloak_access_token_is_accepted(
    customer_client: FlaskClient, alice_token: str
) -> None:
    response = _get_me(customer_client, alice_token)
    assert response.status_code == 200
    assert response.get_json()["id"] == ALICE_CUSTOMER


# -- real Keycloak tokens, and forgeries made from them -----------------------------------------


def test_an_id_token_is_refused(
    customer_client: FlaskClient, token_for: TokenFor, assert_problem: Problem
) -> None:
    id_token = token_for("alice", "openid")["id_token"]
    header, claims, _ = _parts(id_token)
    assert header["alg"] == "RS256"  # signed with the realm key: only its kind gives it away
    assert claims["typ"] == "ID"
    _assert_refused(_get_me(customer_client, id_token), assert_problem)


def test_a_refresh_token_is_refused(
    customer_client: FlaskClient, token_for: TokenFor, assert_problem: Problem
) -> None:
    refresh = token_for("alice", "openid")["refresh_token"]
    assert _parts(refresh)[1]["typ"] == "Refresh"
    _assert_refused(_get_me(customer_client, refresh), assert_problem)


def test_an_unsigned_alg_none_token_is_refused(
    customer_client: FlaskClient, alice_token: str, assert_problem: Problem
) -> None:
    header, claims, _ = _parts(alice_token)
    for alg in ("none", "None", "NONE"):
        forged = f"{_json_b64({**header, 'alg': alg})}.{_json_b64(claims)}."
        _assert_refused(_get_me(customer_client, forged), assert_problem)


def test_hs256_signed_with_the_realm_public_key_is_refused(
    customer_client: FlaskClient,
    alice_token: str,
    keycloak_jwks: dict[str, Any],
    assert_problem: Problem,
) -> None:
    header, claims, _ = _parts(alice_token)
    jwk = next(k for k in keycloak_jwks["keys"] if k["kid"] == header["kid"])
    public_key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(jwk))
    pem = public_key.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (pem, pem.strip()):
        signing_input = f"{_json_b64({**header, 'alg': 'HS256'})}.{_json_b64(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{_b64(mac)}"
        _assert_refused(_get_me(customer_client, forged), assert_problem)


def test_a_token_signed_with_an_unknown_key_id_is_refused(
    customer_client: FlaskClient,
    alice_token: str,
    local_key: Any,
    assert_problem: Problem,
) -> None:
    _, claims, _ = _parts(alice_token)  # genuine claims, our own key
    forged = local_key.sign(claims, kid=f"unknown-{uuid.uuid4().hex}")
    body = _assert_refused(_get_me(customer_client, forged), assert_problem)
    assert "unknown key" in body["detail"]


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: {**c, "realm_access": {"roles": [*c["realm_access"]["roles"], "admin"]}},
        lambda c: {**c, "sub": "b0b00000-0000-4000-8000-000000000002"},
        lambda c: {**c, "exp": c["exp"] + 86400},
    ],
    ids=["add-admin-role", "other-subject", "extend-expiry"],
)
def test_a_tampered_payload_with_the_original_signature_is_refused(
    customer_client: FlaskClient,
    alice_token: str,
    assert_problem: Problem,
    tamper: Callable[[dict[str, Any]], dict[str, Any]],
) -> None:
    header_b64, _, signature = alice_token.split(".")
    forged = f"{header_b64}.{_json_b64(tamper(_parts(alice_token)[1]))}.{signature}"
    body = _assert_refused(_get_me(customer_client, forged), assert_problem)
    assert "signature does not verify" in body["detail"]


def test_a_token_with_its_signature_stripped_is_refused(
    customer_client: FlaskClient, alice_token: str, assert_problem: Problem
) -> None:
    header_b64, payload_b64, _ = alice_token.split(".")
    for forged in (f"{header_b64}.{payload_b64}.", f"{header_b64}.{payload_b64}"):
        _assert_refused(_get_me(customer_client, forged), assert_problem)


def test_an_oversized_authorization_header_is_refused_unparsed_with_431(
    customer_client: FlaskClient, alice_token: str, assert_problem: Problem
) -> None:
    padded = alice_token + "A" * 9000
    response = customer_client.get(ME, headers={"Authorization": f"Bearer {padded}"})
    body = assert_problem(response, 431, "header-too-large")
    assert "too large" in body["detail"]


@pytest.mark.parametrize("header", ["Basic YWxpY2U6cGFzc3dvcmQ=", "Bearer", "Bearer    ", "token"])
def test_an_authorization_header_that_is_not_a_bearer_token_is_refused(
    customer_client: FlaskClient, assert_problem: Problem, header: str
) -> None:
    _assert_refused(customer_client.get(ME, headers={"Authorization": header}), assert_problem)


# -- tokens Keycloak will not sign: our own key behind a local JWKS server ----------------------


@pytest.fixture
def local_issuer(
    use_settings: Callable[..., Any],
    jwks_server: Callable[[dict[str, Any]], Any],
    local_key: Any,
) -> Any:
    """The functions' composition root trusting our key (same issuer and audience as Keycloak's,
    so only the claim under test differs)."""
    server = jwks_server({"keys": [local_key.jwk()]})
    use_settings(jwks_url=server.url)
    return server


def test_control_a_well_formed_token_from_the_local_key_is_accepted(
    customer_client: FlaskClient, local_issuer: Any, local_key: Any, claims_for: Any
) -> None:
    response = _get_me(customer_client, local_key.sign(claims_for("alice")))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json()["id"] == ALICE_CUSTOMER
    assert local_issuer.hits == 1


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        pytest.param(lambda s: {"exp": _now() - 120, "iat": _now() - 420}, "expired", id="expired"),
        pytest.param(lambda s: {"nbf": _now() + 600}, "not valid yet", id="not-yet-valid"),
        pytest.param(
            lambda s: {"iat": _now() + 600, "exp": _now() + 900},
            "not valid yet",
            id="issued-in-the-future",
        ),
        pytest.param(
            lambda s: {"iss": "http://127.0.0.1:28080/realms/other"},
            "untrusted issuer",
            id="wrong-issuer",
        ),
        pytest.param(
            lambda s: {"iss": s.oidc_issuer + "/"}, "untrusted issuer", id="issuer-trailing-slash"
        ),
        pytest.param(lambda s: {"aud": "some-other-api"}, "not meant for", id="wrong-audience"),
        pytest.param(
            lambda s: {"aud": ["account", "boxoffice-web"]}, "not meant for", id="audience-list"
        ),
        pytest.param(lambda s: {"typ": "ID"}, "only access tokens", id="not-an-access-token"),
        pytest.param(lambda s: {"exp": None}, "invalid", id="no-expiry"),
        pytest.param(lambda s: {"sub": None}, "invalid", id="no-subject"),
    ],
)
def test_tokens_with_bad_claims_are_refused(
    customer_client: FlaskClient,
    local_issuer: Any,
    local_key: Any,
    claims_for: Any,
    base_settings: Settings,
    assert_problem: Problem,
    overrides: Callable[[Settings], dict[str, Any]],
    reason: str,
) -> None:
    # Control: the same token without the bad claim is accepted by this composition root.
    assert _get_me(customer_client, local_key.sign(claims_for("alice"))).status_code == 200
    claims = claims_for("alice", **overrides(base_settings))
    claims = {k: v for k, v in claims.items() if v is not None}
    body = _assert_refused(_get_me(customer_client, local_key.sign(claims)), assert_problem)
    assert reason in body["detail"]


def test_clock_skew_within_the_leeway_is_tolerated(
    customer_client: FlaskClient, local_issuer: Any, local_key: Any, claims_for: Any
) -> None:
    token = local_key.sign(claims_for("alice", exp=_now() - 5, nbf=_now() + 5))
    assert _get_me(customer_client, token).status_code == 200


def test_an_rs256_token_carrying_an_embedded_jwk_is_still_checked_against_the_jwks(
    customer_client: FlaskClient,
    local_issuer: Any,
    claims_for: Any,
    assert_problem: Problem,
) -> None:
    attacker = rsa.generate_private_key(65537, 2048)
    attacker_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key()))
    token = jwt.encode(
        claims_for("alice"), attacker, algorithm="RS256", headers={"jwk": attacker_jwk}
    )
    _assert_refused(_get_me(customer_client, token), assert_problem)


# -- when the identity provider is unreachable ---------------------------------------------------


def test_cached_keys_keep_verifying_after_the_identity_provider_goes_away(
    base_settings: Settings, access_token: Callable[[str], str], local_key: Any, dead_url: str
) -> None:
    """A verifier warmed against the real Keycloak JWKS; then its JWKS URL stops answering."""
    target = {"url": base_settings.jwks_url}
    fetches: list[str] = []
    clock = [1000.0]

    def fetch(_url: str, timeout: float) -> dict[str, Any]:
        fetches.append(target["url"])
        return fetch_jwks(target["url"], timeout)

    cache = JwksCache(
        base_settings.jwks_url, min_refresh=30.0, timeout=2.0, fetch=fetch, clock=lambda: clock[0]
    )
    verifier = JwtVerifier(cache, base_settings.oidc_issuer, base_settings.oidc_audience)
    token = access_token("alice")
    assert verifier.verify(token).subject == "a11ce000-0000-4000-8000-000000000001"
    assert len(fetches) == 1

    target["url"] = dead_url  # the identity provider is gone

    clock[0] += 5
    assert verifier.verify(token).subject == "a11ce000-0000-4000-8000-000000000001"
    unknown = local_key.sign({**_parts(token)[1]}, kid=f"rotated-{uuid.uuid4().hex[:8]}")
    with pytest.raises(errors.InvalidToken):
        verifier.verify(unknown)
    clock[0] += 20  # 25 s after the warm-up: still no second fetch
    with pytest.raises(errors.InvalidToken):
        verifier.verify(unknown)
    assert len(fetches) == 1, "an unknown kid refetched the JWKS within 30 s"

    clock[0] += 10  # 35 s: one refresh is allowed; it fails, and the good keys are kept
    with pytest.raises(errors.InvalidToken):
        verifier.verify(unknown)
    assert fetches == [base_settings.jwks_url, dead_url]
    assert verifier.verify(token).subject == "a11ce000-0000-4000-8000-000000000001"
    with pytest.raises(errors.InvalidToken):
        verifier.verify(unknown)
    assert len(fetches) == 2


def test_through_the_entrypoint_cached_keys_survive_a_jwks_outage(
    customer_client: FlaskClient,
    use_settings: Callable[..., Any],
    jwks_server: Callable[[dict[str, Any]], Any],
    keycloak_jwks: dict[str, Any],
    access_token: Callable[[str], str],
    local_key: Any,
    assert_problem: Problem,
) -> None:
    """The functions' JWKS URL is a local copy of Keycloak's keys, which then goes down."""
    server = jwks_server(keycloak_jwks)
    use_settings(jwks_url=server.url, jwks_min_refresh=30.0)
    token = access_token("alice")
    assert _get_me(customer_client, token).status_code == 200
    assert server.hits == 1

    server.outage = True  # answers 503 from now on (and counts attempts)
    assert _get_me(customer_client, token).status_code == 200
    unknown = local_key.sign(_parts(token)[1], kid=f"rotated-{uuid.uuid4().hex[:8]}")
    _assert_refused(_get_me(customer_client, unknown), assert_problem)
    _assert_refused(_get_me(customer_client, unknown), assert_problem)
    assert server.hits == 1, "the JWKS was refetched within 30 s of the last fetch"

    server.stop()  # gone altogether
    assert _get_me(customer_client, token).status_code == 200


def test_with_no_keys_at_all_requests_get_503_with_retry_after(
    customer_client: FlaskClient,
    use_settings: Callable[..., Any],
    dead_url: str,
    access_token: Callable[[str], str],
    assert_problem: Problem,
) -> None:
    use_settings(jwks_url=dead_url)
    for _ in range(2):
        response = _get_me(customer_client, access_token("alice"))
        assert_problem(response, 503, "service-unavailable")
        assert int(response.headers["Retry-After"]) >= 1
        assert "WWW-Authenticate" not in response.headers
