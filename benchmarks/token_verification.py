"""(6) Token verification: what verifying a JWT costs, in process (per call, remembered, unsigned)
and over HTTP (an anonymous read against an authenticated one)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bench import Bench
from benchmarks.load import Target, write_targets


def token(b: Bench) -> dict[str, Any]:
    import jwt  # noqa: PLC0415

    from boxoffice.adapters.keycloak import JwksCache, JwtVerifier  # noqa: PLC0415
    from boxoffice.config import Settings  # noqa: PLC0415

    p = b.profile
    settings = Settings.from_env(b.env)
    keys = JwksCache(settings.jwks_url)
    # The control: every call verifies (no remembered tokens), as on 24 November; and the same
    # token again through the verifier the functions use (remembered after its first use).
    verifier = JwtVerifier(
        keys, settings.oidc_issuer, settings.oidc_audience, settings.jwt_leeway, cache_size=0
    )
    remembering = JwtVerifier(
        keys, settings.oidc_issuer, settings.oidc_audience, settings.jwt_leeway
    )
    token = b.tokens.ensure(300)[0][1]
    verifier.verify(token)  # fetch the JWKS once

    def per_call_us(fn: Callable[[], object]) -> list[float]:
        batches = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(p.token_iterations // 5):
                fn()
            batches.append(1e6 * (time.perf_counter() - t0) / (p.token_iterations // 5))
        return batches

    full = per_call_us(lambda: verifier.verify(token))
    again = per_call_us(lambda: remembering.verify(token))
    unsigned = per_call_us(lambda: jwt.decode(token, options={"verify_signature": False}))
    micro = {
        "verify_us": {"median": statistics.median(full), "min": min(full), "max": max(full)},
        "verify_remembered_us": {
            "median": statistics.median(again),
            "min": min(again),
            "max": max(again),
        },
        "decode_without_signature_us": {
            "median": statistics.median(unsigned),
            "min": min(unsigned),
            "max": max(unsigned),
        },
        "iterations": p.token_iterations,
    }
    # HTTP: an anonymous one-row read vs an authenticated one-row read, same rate, same config.
    tokens = b.tokens.ensure(600)
    ge, gc = b.servers["get_event"], b.servers["get_customer"]

    def anonymous(path: Path, rate: float, duration: float) -> bool:
        write_targets(path, (Target("GET", f"{ge.url}/events/{e}") for e in b.spread[:200]))
        return False

    def authenticated(path: Path, rate: float, duration: float) -> bool:
        write_targets(
            path,
            (
                Target("GET", f"{gc.url}/customers/me", {"Authorization": f"Bearer {t}"})
                for _, t in tokens
            ),
        )
        return False

    rate = [p.token_http_rate]
    http = {
        "anonymous GET /events/{id}": b.sweep("token-anonymous", rate, ge, anonymous),
        "authenticated GET /customers/me": b.sweep("token-authenticated", rate, gc, authenticated),
    }
    return {"micro": micro, "http": http}
