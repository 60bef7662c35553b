"""Access-token verification: RS256 against a cached JWKS, Keycloak's claims, strict refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from boxoffice import errors, metrics
from boxoffice.adapters.keycloak import JwksCache, JwtVerifier

ISSUER = "http://127.0.0.1:28080/realms/boxoffice"
AUDIENCE = "boxoffice-api"
JWKS_URL = f"{ISSUER}/protocol/openid-connect/certs"
LEEWAY = 30


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = _new_key()
OTHER_KEY = _new_key()


def jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {
        "kid": kid,
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "n": public["n"],
        "e": public["e"],
    }


class FakeJwks:
    """The identity provider's JWKS endpoint: counts fetches, can fail, can rotate keys."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.keys = list(keys)
        self.fetches = 0
        self.failing = False

    def __call__(self, url: str, timeout: float) -> dict[str, Any]:
        assert url == JWKS_URL
        self.fetches += 1
        if self.failing:
            raise OSError("connection refused")
        return {"keys": list(self.keys)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": [AUDIENCE, "account"],
        "sub": "a11ce000-0000-4000-8000-000000000001",
        "typ": "Bearer",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "alice",
        "realm_access": {"roles": ["customer", "offline_access"]},
        "resource_access": {
            AUDIENCE: {"roles": ["reporting"]},
            "account": {"roles": ["manage-account"]},
        },
    }
    base.update(changes)
    return {k: val for k, val in base.items() if val is not None}


def token(key: rsa.RSAPrivateKey = KEY, kid: str | None = "k1", **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**changes), key, algorithm="RS256", headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def hand_made(header: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A JWT assembled by hand, for algorithms PyJWT rightly refuses to produce."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def rejected(reason: str) -> float:
    value = metrics.REGISTRY.get_sample_value("boxoffice_tokens_rejected_total", {"reason": reason})
    return value or 0.0


@pytest.fixture
def jwks() -> FakeJwks:
    return FakeJwks(jwk(KEY, "k1"))


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def cache(jwks: FakeJwks, clock: Clock) -> JwksCache:
    return JwksCache(JWKS_URL, min_refresh=30.0, fetch=jwks, clock=clock)


@pytest.fixture
def verifier(cache: JwksCache) -> JwtVerifier:
    return JwtVerifier(cache, ISSUER, AUDIENCE, leeway=LEEWAY)


def refused(verifier: JwtVerifier, raw: str, reason: str) -> errors.InvalidToken:
    before = rejected(reason)
    with pytest.raises(errors.InvalidToken) as caught:
        verifier.verify(raw)
    assert caught.value.status == 401
    assert rejected(reason) == before + 1, f"not refused for {reason!r}: {caught.value.detail}"
    return caught.value


# --- accepted ---------------------------------------------------------------------------------


def test_valid_token_gives_principal_with_subject_and_realm_and_api_client_roles(
    verifier: JwtVerifier,
) -> None:
    principal = verifier.verify(token())

    assert principal.subject == "a11ce000-0000-4000-8000-000000000001"
    assert principal.username == "alice"
    assert principal.roles == {"customer", "offline_access", "reporting"}


def test_roles_of_other_clients_are_ignored(verifier: JwtVerifier) -> None:
    principal = verifier.verify(
        token(realm_access=None, resource_access={"account": {"roles": ["admin"]}})
    )
    assert principal.roles == frozenset()
    assert not principal.is_admin


def test_realm_admin_role_makes_an_admin(verifier: JwtVerifier) -> None:
    assert verifier.verify(token(realm_access={"roles": ["admin"]})).is_admin


def test_audience_given_as_a_single_string_is_accepted(verifier: JwtVerifier) -> None:
    assert verifier.verify(token(aud=AUDIENCE)).subject


def test_clock_skew_within_leeway_is_tolerated(verifier: JwtVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(token(iat=now + LEEWAY - 5, nbf=now + LEEWAY - 5)).subject
    assert verifier.verify(token(iat=now - 600, exp=now - LEEWAY + 5)).subject


def test_keys_are_fetched_once_and_then_served_from_the_cache(
    verifier: JwtVerifier, jwks: FakeJwks
) -> None:
    for _ in range(3):
        verifier.verify(token())
    assert jwks.fetches == 1


# --- refused: claims --------------------------------------------------------------------------


def test_expired_token_is_refused(verifier: JwtVerifier) -> None:
    now = int(time.time())
    error = refused(verifier, token(iat=now - 900, exp=now - LEEWAY - 5), "expired")
    assert "expired" in error.detail


def test_token_issued_in_the_future_beyond_leeway_is_refused(verifier: JwtVerifier) -> None:
    refused(verifier, token(iat=int(time.time()) + LEEWAY + 60), "not_yet_valid")


def test_token_not_valid_before_a_future_time_beyond_leeway_is_refused(
    verifier: JwtVerifier,
) -> None:
    refused(verifier, token(nbf=int(time.time()) + LEEWAY + 60), "not_yet_valid")


def test_token_from_another_issuer_is_refused(verifier: JwtVerifier) -> None:
    refused(verifier, token(iss="http://127.0.0.1:28080/realms/master"), "issuer")


def test_token_for_another_audience_is_refused(verifier: JwtVerifier) -> None:
    refused(verifier, token(aud="account"), "audience")


@pytest.mark.parametrize("typ", ["ID", "Refresh", "Offline", None])
def test_tokens_other_than_access_tokens_are_refused(
    verifier: JwtVerifier, typ: str | None
) -> None:
    refused(verifier, token(typ=typ), "not_access_token")


@pytest.mark.parametrize("claim", ["sub", "exp", "iat", "iss", "aud"])
def test_token_missing_a_required_claim_is_refused(verifier: JwtVerifier, claim: str) -> None:
    refused(verifier, token(KEY, "k1", **{claim: None}), "invalid")


def test_token_with_empty_subject_is_refused(verifier: JwtVerifier) -> None:
    with pytest.raises(errors.InvalidToken):
        verifier.verify(token(sub=""))


# --- refused: signature and header ------------------------------------------------------------


def test_token_signed_by_another_key_under_a_known_kid_is_refused(verifier: JwtVerifier) -> None:
    refused(verifier, token(key=OTHER_KEY), "signature")


def test_tampered_payload_is_refused(verifier: JwtVerifier) -> None:
    header, _, signature = token().split(".")
    forged = _b64(json.dumps(claims(realm_access={"roles": ["admin"]})).encode())
    refused(verifier, f"{header}.{forged}.{signature}", "signature")


def test_unsigned_token_with_alg_none_is_refused(verifier: JwtVerifier, jwks: FakeJwks) -> None:
    raw = hand_made({"alg": "none", "typ": "JWT", "kid": "k1"}, lambda _: b"")
    refused(verifier, raw, "algorithm")
    assert jwks.fetches == 0  # refused before any key is looked up


def test_hs256_token_keyed_with_the_public_key_pem_is_refused(verifier: JwtVerifier) -> None:
    pem = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    raw = hand_made(
        {"alg": "HS256", "typ": "JWT", "kid": "k1"},
        lambda data: hmac.new(pem, data, hashlib.sha256).digest(),
    )
    refused(verifier, raw, "algorithm")


def test_rs512_token_is_refused_even_with_the_right_key(verifier: JwtVerifier) -> None:
    raw = jwt.encode(claims(), KEY, algorithm="RS512", headers={"kid": "k1"})
    refused(verifier, raw, "algorithm")


def test_token_without_kid_is_refused(verifier: JwtVerifier, jwks: FakeJwks) -> None:
    refused(verifier, token(kid=None), "no_kid")
    assert jwks.fetches == 0


@pytest.mark.parametrize("raw", ["", "abc", "a.b.c", "Bearer x.y.z"])
def test_malformed_token_is_refused(verifier: JwtVerifier, raw: str) -> None:
    refused(verifier, raw, "malformed")


# --- key cache --------------------------------------------------------------------------------


def test_unknown_kid_refreshes_once_then_is_refused(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    verifier.verify(token())  # warm-up: first fetch
    clock.now += 30
    refused(verifier, token(key=OTHER_KEY, kid="k2"), "unknown_kid")
    assert jwks.fetches == 2


def test_unknown_kid_refreshes_at_most_once_per_interval(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    verifier.verify(token())
    clock.now += 30
    with pytest.raises(errors.InvalidToken):
        verifier.verify(token(key=OTHER_KEY, kid="k2"))
    assert jwks.fetches == 2

    clock.now += 29
    with pytest.raises(errors.InvalidToken):
        verifier.verify(token(key=OTHER_KEY, kid="k3"))
    assert jwks.fetches == 2

    clock.now += 1
    with pytest.raises(errors.InvalidToken):
        verifier.verify(token(key=OTHER_KEY, kid="k3"))
    assert jwks.fetches == 3


def test_first_fetch_counts_towards_the_refresh_interval(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    verifier.verify(token())
    clock.now += 29
    with pytest.raises(errors.InvalidToken):
        verifier.verify(token(key=OTHER_KEY, kid="k2"))
    assert jwks.fetches == 1


def test_rotated_key_is_picked_up_by_the_refresh_an_unknown_kid_triggers(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    verifier.verify(token())
    jwks.keys = [jwk(OTHER_KEY, "k2")]
    clock.now += 30

    assert verifier.verify(token(key=OTHER_KEY, kid="k2")).subject
    assert jwks.fetches == 2


def test_failed_refresh_after_warm_up_keeps_the_old_keys(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    verifier.verify(token())
    jwks.failing = True
    clock.now += 60

    with pytest.raises(errors.InvalidToken):  # 401, not 503: we still have keys
        verifier.verify(token(key=OTHER_KEY, kid="k2"))
    assert jwks.fetches == 2
    assert verifier.verify(token()).subject


def test_empty_cache_and_failing_fetch_is_service_unavailable(
    verifier: JwtVerifier, jwks: FakeJwks
) -> None:
    jwks.failing = True

    with pytest.raises(errors.ServiceUnavailable) as caught:
        verifier.verify(token())

    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "1"


def test_empty_cache_retries_the_fetch_after_a_second(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    jwks.failing = True
    with pytest.raises(errors.ServiceUnavailable):
        verifier.verify(token())
    with pytest.raises(errors.ServiceUnavailable):
        verifier.verify(token())
    assert jwks.fetches == 1

    jwks.failing = False
    clock.now += 1
    assert verifier.verify(token()).subject
    assert jwks.fetches == 2


def test_jwks_without_usable_signing_keys_leaves_the_cache_empty(
    cache: JwksCache, jwks: FakeJwks
) -> None:
    jwks.keys = [
        {**jwk(KEY, "k1"), "use": "enc"},
        {"kid": "ec", "kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        {k: val for k, val in jwk(KEY, "nokid").items() if k != "kid"},
    ]
    with pytest.raises(errors.ServiceUnavailable):
        cache.key("k1")


def test_garbage_jwks_document_counts_as_a_failed_fetch(cache: JwksCache, jwks: FakeJwks) -> None:
    jwks.keys = [{"kid": "k1", "kty": "RSA", "n": "!!", "e": "!!"}]
    with pytest.raises(errors.ServiceUnavailable):
        cache.key("k1")


# --- verified tokens remembered -----------------------------------------------------------------


def test_the_same_token_again_is_not_verified_again(
    verifier: JwtVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []
    decode = jwt.decode

    def counting(raw: str, *args: Any, **kwargs: Any) -> Any:
        decoded.append(raw)
        return decode(raw, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    raw, other = token(), token(sub="b0b00000-0000-4000-8000-000000000002")
    first = verifier.verify(raw)
    assert verifier.verify(raw) == first
    assert verifier.verify(other).subject != first.subject
    assert decoded == [raw, other]


def test_a_remembered_token_is_refused_once_it_has_expired(cache: JwksCache) -> None:
    now = [time.time()]
    verifier = JwtVerifier(cache, ISSUER, AUDIENCE, leeway=LEEWAY, clock=lambda: now[0])
    raw = token(exp=int(now[0]) + 60)
    assert verifier.verify(raw).subject
    now[0] += 60 + LEEWAY - 1  # still within the leeway
    assert verifier.verify(raw).subject
    now[0] += 1
    refused(verifier, raw, "expired")


def test_a_remembered_token_whose_key_left_the_jwks_is_refused(
    verifier: JwtVerifier, jwks: FakeJwks, clock: Clock
) -> None:
    raw = token()
    assert verifier.verify(raw).subject
    jwks.keys = [jwk(OTHER_KEY, "k2")]  # k1 retired at the identity provider
    clock.now += 30
    assert verifier.verify(token(key=OTHER_KEY, kid="k2")).subject  # the refresh that learns it
    refused(verifier, raw, "unknown_kid")


def test_a_refused_token_is_not_remembered(verifier: JwtVerifier) -> None:
    forged = token(key=OTHER_KEY)
    refused(verifier, forged, "signature")
    refused(verifier, forged, "signature")
