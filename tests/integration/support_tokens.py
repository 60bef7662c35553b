"""A signing key and a JWKS endpoint of the tests' own, for access tokens Keycloak will not sign
(expired, wrong issuer, a subject it has no user for, thousands of buyers): a JwtVerifier given
`LocalJwks.url` trusts `LocalKey`'s tokens (imported by the integration tests as
`support_tokens`; conftest.py's `local_key` and `jwks_server` fixtures wrap them)."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa


@dataclasses.dataclass
class LocalKey:
    """An RSA key of our own, published by `LocalJwks` so a JwtVerifier will trust it."""

    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> LocalKey:
        return cls(f"local-{uuid.uuid4().hex[:12]}", rsa.generate_private_key(65537, 2048))

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key())
        )
        data.update(kid=self.kid, use="sig", alg="RS256")
        return data

    def sign(self, claims: dict[str, Any], kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": kid or self.kid})


class LocalJwks:
    """A JWKS endpoint on 127.0.0.1 in a thread; counts fetches; can simulate an outage."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.outage = False
        self.hits = 0
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.hits += 1
                status, body = (
                    (503, b"{}") if jwks.outage else (200, json.dumps(jwks.document).encode())
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/certs"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
