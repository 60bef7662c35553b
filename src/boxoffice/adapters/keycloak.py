"""Access-token verification against Keycloak's JWKS (PyJWT does the cryptography).

Policy (docs/adr/0003-token-verification.md):
- RS256 only: the algorithm is ours to pick, never the token's (`none` and HS* are refused);
- exact issuer, audience = the API client, `exp`/`iat`/`sub` required, small leeway;
- access tokens only: Keycloak's `typ` claim must be `Bearer` (ID and refresh tokens are refused);
- keys fetched lazily on first use and cached per process; an unknown `kid` triggers at most
  one refresh per `min_refresh` seconds; a failed refresh keeps the last good keys; with no
  keys at all the caller gets 503, not 401;
- fetches go through a circuit breaker (docs/adr/0006-resilience.md): while it is open no fetch
  is attempted, the cached keys keep serving, and with none the caller gets 503 at once;
- a token that verified is remembered per process (the last `VERIFIED_CACHE_SIZE` distinct
  tokens, as Envoy's jwt_authn caches them): the same bytes again cost a dictionary lookup, not
  an RSA verification, until the token's `exp` (checked on every use, with the leeway) or until
  its key leaves the JWKS. Refused tokens are never remembered.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from boxoffice import errors, metrics
from boxoffice.adapters.resilience import Breaker
from boxoffice.domain.identity import Principal

ALGORITHM = "RS256"
EMPTY_CACHE_RETRY_SECONDS = 1.0
# Verified tokens remembered per process: a Keycloak access token is about 1 KB, so about 1 MB.
VERIFIED_CACHE_SIZE = 1024
DEPENDENCY = "jwks"


def fetch_failure(exc: BaseException) -> bool:
    """Every failed fetch or unusable document counts against the JWKS breaker."""
    return isinstance(exc, Exception) and not isinstance(exc, errors.ServiceUnavailable)


def fetch_jwks(url: str, timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - URL is configuration
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        data: dict[str, Any] = json.load(response)
    return data


class JwksCache:
    def __init__(
        self,
        url: str,
        min_refresh: float = 30.0,
        timeout: float = 3.0,
        fetch: Callable[[str, float], dict[str, Any]] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
        breaker: Breaker | None = None,
    ) -> None:
        self._url = url
        self._breaker = breaker or Breaker(DEPENDENCY, fetch_failure)
        self._open_retry_after: str | None = None  # set while the breaker refuses fetches
        self._min_refresh = min_refresh
        self._timeout = timeout
        self._fetch = fetch
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    def knows(self, kid: str) -> bool:
        """Whether `kid` is among the current keys (no fetch)."""
        return kid in self._keys

    def key(self, kid: str) -> jwt.PyJWK:
        found = self._keys.get(kid)
        if found is not None:
            return found
        with self._lock:
            found = self._keys.get(kid)
            if found is None and self._may_refresh():
                self._refresh()
                found = self._keys.get(kid)
        if found is not None:
            return found
        if not self._keys:
            refused = errors.ServiceUnavailable("signing keys are unavailable; try again")
            if self._open_retry_after is not None:  # the breaker is open: say for how long
                refused.headers["Retry-After"] = self._open_retry_after
            raise refused
        metrics.TOKENS_REJECTED.labels("unknown_kid").inc()
        raise errors.InvalidToken("token signed with an unknown key")

    def _may_refresh(self) -> bool:
        if self._last_attempt is None:
            return True
        interval = self._min_refresh if self._keys else EMPTY_CACHE_RETRY_SECONDS
        return self._clock() - self._last_attempt >= interval

    def _refresh(self) -> None:
        self._last_attempt = self._clock()
        self._open_retry_after = None
        try:
            with self._breaker.guard():
                document = self._fetch(self._url, self._timeout)
                keys = {
                    str(k["kid"]): jwt.PyJWK.from_dict(k)
                    for k in document.get("keys", [])
                    if k.get("kid") and k.get("kty") == "RSA" and k.get("use", "sig") == "sig"
                }
        except errors.ServiceUnavailable as open_breaker:  # failing fast: no fetch attempted
            self._open_retry_after = open_breaker.headers["Retry-After"]
            metrics.JWKS_REFRESHES.labels("skipped").inc()
            return
        except Exception:  # noqa: BLE001 - any fetch/parse failure keeps the last good keys
            metrics.JWKS_REFRESHES.labels("failure").inc()
            return
        if keys:
            self._keys = keys
            metrics.JWKS_REFRESHES.labels("success").inc()
        else:
            metrics.JWKS_REFRESHES.labels("empty").inc()


@dataclass(frozen=True, slots=True)
class _Verified:
    principal: Principal
    kid: str
    expires_at: float


class JwtVerifier:
    def __init__(
        self,
        keys: JwksCache,
        issuer: str,
        audience: str,
        leeway: int = 30,
        cache_size: int = VERIFIED_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._clock = clock
        self._verified = functools.lru_cache(maxsize=cache_size)(self._verify)

    def verify(self, token: str) -> Principal:
        found = self._verified(token)
        if found.expires_at <= self._clock() - self._leeway:  # expired since it was verified
            raise self._reject("expired", "token has expired")
        if not self._keys.knows(found.kid):  # its key was retired since: verify it afresh
            found = self._verify(token)
        return found.principal

    def _verify(self, token: str) -> _Verified:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise self._reject("malformed", "token is not a well-formed JWT") from exc
        if header.get("alg") != ALGORITHM:
            raise self._reject("algorithm", f"token must be signed with {ALGORITHM}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise self._reject("no_kid", "token header has no key id")
        key = self._keys.key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise self._reject("expired", "token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise self._reject("not_yet_valid", "token is not valid yet") from exc
        except jwt.InvalidAudienceError as exc:
            raise self._reject("audience", "token is not meant for this API") from exc
        except jwt.InvalidIssuerError as exc:
            raise self._reject("issuer", "token was issued by an untrusted issuer") from exc
        except jwt.InvalidSignatureError as exc:
            raise self._reject("signature", "token signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise self._reject("invalid", "token is invalid") from exc
        if claims.get("typ") != "Bearer":
            raise self._reject("not_access_token", "only access tokens are accepted")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise self._reject("invalid", "token has no subject")
        principal = Principal(
            subject=subject,
            roles=frozenset(self._roles(claims)),
            username=str(claims.get("preferred_username", "")),
        )
        return _Verified(principal, kid, float(claims["exp"]))

    def _roles(self, claims: dict[str, Any]) -> set[str]:
        roles: set[str] = set()
        realm = claims.get("realm_access")
        if isinstance(realm, dict):
            roles.update(r for r in realm.get("roles", []) if isinstance(r, str))
        resource = claims.get("resource_access")
        if isinstance(resource, dict):
            client = resource.get(self._audience)
            if isinstance(client, dict):
                roles.update(r for r in client.get("roles", []) if isinstance(r, str))
        return roles

    @staticmethod
    def _reject(reason: str, detail: str) -> errors.InvalidToken:
        metrics.TOKENS_REJECTED.labels(reason).inc()
        return errors.InvalidToken(detail)
