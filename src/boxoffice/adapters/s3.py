"""S3 adapter (boto3): ticket documents are PUT here and read through presigned links.

The client is built on first use (never at import), with short timeouts and a single attempt:
a failed upload is retried by order processing later (docs/adr/0007-order-processing.md), not
by blocking the request that confirmed the order.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from boxoffice.services.ports import DocumentStoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3DocumentStore:
    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        access_key_id: str = "",
        secret_access_key: str = "",
        timeout: float = 2.0,
    ) -> None:
        self.bucket = bucket
        self._endpoint_url = endpoint_url or None
        self._region = region
        self._key_id = access_key_id or None
        self._secret = secret_access_key or None
        self._timeout = timeout
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    def _s3(self) -> S3Client:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = boto3.session.Session().client(
                        "s3",
                        endpoint_url=self._endpoint_url,
                        region_name=self._region,
                        aws_access_key_id=self._key_id,
                        aws_secret_access_key=self._secret,
                        config=Config(
                            connect_timeout=self._timeout,
                            read_timeout=self._timeout,
                            retries={"max_attempts": 1, "mode": "standard"},
                            s3={"addressing_style": "path"},
                            signature_version="s3v4",
                        ),
                    )
        return self._client

    def put(self, key: str, body: bytes, content_type: str) -> None:
        filename = key.rsplit("/", 1)[-1]
        try:
            self._s3().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ContentDisposition=f'inline; filename="{filename}"',
            )
        except (BotoCoreError, ClientError) as exc:
            raise DocumentStoreError(f"{type(exc).__name__}: {exc}") from exc

    def get(self, key: str) -> bytes:
        """The stored document (operators and tests)."""
        try:
            return self._s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (BotoCoreError, ClientError) as exc:
            raise DocumentStoreError(f"{type(exc).__name__}: {exc}") from exc

    def link(self, key: str, seconds: int) -> str:
        try:
            return self._s3().generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
            )
        except (BotoCoreError, ClientError) as exc:
            raise DocumentStoreError(f"{type(exc).__name__}: {exc}") from exc
