"""Configuration from environment variables: each one is named here, once, and documented.

`Settings.from_env()` reads them; nothing else in the package reads the environment.
The README's configuration table is checked against `ENV_VARS` by a unit test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from boxoffice.errors import ConfigurationError

# Any variable below may be given instead as <NAME>_FILE: the path of a file holding its value
# (one trailing newline dropped), as secrets are mounted by OpenFaaS (/var/openfaas/secrets/...),
# Docker and Kubernetes. Setting both is an error.
FILE_SUFFIX = "_FILE"

# name -> (default or None when required, description)
ENV_VARS: dict[str, tuple[str | None, str]] = {
    "BOXOFFICE_DATABASE_URL": (None, "PostgreSQL connection URL (libpq format)."),
    "BOXOFFICE_DB_POOL_MIN": ("1", "Connections each process opens at first use."),
    "BOXOFFICE_DB_POOL_MAX": ("10", "Most connections each process holds."),
    "BOXOFFICE_DB_TIMEOUT_SECONDS": (
        "3",
        "Connect timeout, wait for a pooled connection, and statement timeout.",
    ),
    "BOXOFFICE_OIDC_ISSUER": (
        None,
        "Exact `iss` of accepted tokens, e.g. http://127.0.0.1:28080/realms/boxoffice.",
    ),
    "BOXOFFICE_OIDC_AUDIENCE": ("boxoffice-api", "Required `aud` of access tokens."),
    "BOXOFFICE_JWKS_URL": ("", "JWKS URL; default: <issuer>/protocol/openid-connect/certs."),
    "BOXOFFICE_JWKS_MIN_REFRESH_SECONDS": (
        "30",
        "At most one JWKS refresh per this many seconds (unknown `kid`).",
    ),
    "BOXOFFICE_JWT_LEEWAY_SECONDS": ("30", "Clock skew allowed on exp/iat/nbf."),
    "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS": ("", "Kafka bootstrap servers (host:port,...)."),
    "BOXOFFICE_BOOKING_TOPIC": ("booking", "Topic of booking CloudEvents."),
    "BOXOFFICE_DEAD_LETTER_TOPIC": ("booking-dlq", "Dead-letter topic for undeliverable events."),
    "BOXOFFICE_EVENT_SOURCE": ("/boxoffice/bookings", "CloudEvent `source` of booking events."),
    "BOXOFFICE_PUBLIC_BASE_URL": ("", "Base URL used in Location headers (default: request's)."),
    "BOXOFFICE_PROBLEM_BASE_URI": (
        "https://boxoffice.example/problems/",
        "Base of problem+json `type` URIs.",
    ),
    "BOXOFFICE_MAX_TICKETS_PER_ORDER": ("10", "Most tickets in one booking."),
    "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT": (
        "10",
        "Most tickets one customer may hold for one event.",
    ),
    "BOXOFFICE_IDEMPOTENCY_TTL_HOURS": ("24", "How long idempotency keys are kept."),
    "BOXOFFICE_CATALOGUE_MAX_AGE_SECONDS": ("5", "Cache-Control max-age of catalogue reads."),
    "BOXOFFICE_CATALOGUE_STALE_SECONDS": (
        "5",
        "Cache-Control stale-while-revalidate of catalogue reads: how long past max-age a shared"
        " cache may answer with its entry while one request refreshes it (0: never).",
    ),
    "BOXOFFICE_TICKET_SIGNING_KEY": (
        "",
        "Ed25519 private key that signs new ticket codes (consume_order): base64url seed or PEM.",
    ),
    "BOXOFFICE_TICKET_PUBLIC_KEYS": (
        "",
        "Ed25519 public keys (base64url, comma-separated) whose ticket codes check_in accepts.",
    ),
    "BOXOFFICE_S3_ENDPOINT_URL": ("", "S3 endpoint (empty: AWS default)."),
    "BOXOFFICE_S3_BUCKET": ("boxoffice-tickets", "Bucket of ticket documents."),
    "BOXOFFICE_S3_REGION": ("us-east-1", "Region of the S3 endpoint (request signing)."),
    "BOXOFFICE_S3_ACCESS_KEY_ID": ("", "S3 access key id (empty: boto3's credential chain)."),
    "BOXOFFICE_S3_SECRET_ACCESS_KEY": ("", "S3 secret key (empty: boto3's credential chain)."),
    "BOXOFFICE_TICKET_LINK_SECONDS": ("300", "Lifetime of presigned ticket document links."),
    "BOXOFFICE_TICKET_DOCUMENT_SWEEP_SECONDS": (
        "15",
        "consume_order: seconds between retries of ticket documents not yet stored in S3.",
    ),
    "BOXOFFICE_TICKET_DOCUMENT_WORKER": (
        "thread",
        "consume_order: `thread` renders ticket PDFs in a background thread of the function; "
        "`off` leaves them to `python -m boxoffice.processes.documents` (a process of their own).",
    ),
    # Tickets by email (the document worker; docs/adr/0019-tickets-by-email.md).
    "BOXOFFICE_SMTP_HOST": (
        "",
        "SMTP server of ticket emails; empty: none is sent (they wait in the outbox, pending).",
    ),
    "BOXOFFICE_SMTP_PORT": ("587", "Port of the SMTP server."),
    "BOXOFFICE_SMTP_FROM": (
        "Boxoffice <tickets@boxoffice.example>",
        "From of ticket emails (its domain is the Message-IDs' too).",
    ),
    "BOXOFFICE_SMTP_STARTTLS": ("on", "`on`: STARTTLS before sending (required); `off`: plain."),
    "BOXOFFICE_SMTP_USERNAME": ("", "SMTP login (empty: no authentication)."),
    "BOXOFFICE_SMTP_PASSWORD": ("", "SMTP password (with BOXOFFICE_SMTP_USERNAME)."),
    "BOXOFFICE_SMTP_TIMEOUT_SECONDS": ("10", "Timeout of each SMTP connection and reply."),
    "BOXOFFICE_OUTBOX_SWEEP_SECONDS": (
        "2",
        "Outbox relay: seconds between sweeps for unpublished events.",
    ),
    "BOXOFFICE_BREAKER_FAILURE_THRESHOLD": (
        "4",
        "Consecutive failures of a dependency (database, Kafka, JWKS) that open its breaker.",
    ),
    "BOXOFFICE_ORDER_EVENT_RETENTION_DAYS": (
        "35",
        "Housekeeping: days consumed booking events are kept for de-duplication (ADR 13).",
    ),
    "BOXOFFICE_OUTBOX_RETENTION_DAYS": (
        "7",
        "Housekeeping: days published outbox events are kept before they are pruned (ADR 5).",
    ),
    "BOXOFFICE_PRUNE_BATCH_SIZE": ("1000", "Housekeeping: rows deleted per transaction."),
    "BOXOFFICE_BREAKER_OPEN_SECONDS": (
        "1",
        "How long an open circuit breaker fails fast before one trial call.",
    ),
    # The waiting room (waiting_room, the admission controller, create_booking; ADR 14).
    "BOXOFFICE_ADMISSION_SIGNING_KEY": (
        "",
        "waiting_room: Ed25519 private key (32 bytes, base64url) that signs admission tokens.",
    ),
    "BOXOFFICE_ADMISSION_VERIFY_KEYS": (
        "",
        "create_booking: Ed25519 public keys (base64url, comma-separated) of admission tokens.",
    ),
    "BOXOFFICE_ADMISSION_TICK_SECONDS": (
        "1",
        "Admission controller: seconds between advances of the serving counters.",
    ),
    "BOXOFFICE_BOOKING_CAPACITY_PER_SECOND": (
        "200",
        "Sustainable bookings/s of the purchase path (measured with make bench): the base of "
        "the automatic admission rate.",
    ),
    "BOXOFFICE_ADMISSION_SAFETY_FACTOR": (
        "0.5",
        "Share of BOXOFFICE_BOOKING_CAPACITY_PER_SECOND that automatic queues admit (buyers/s).",
    ),
    # Checkout (ADR 20).
    "BOXOFFICE_HOLD_SECONDS": (
        "600",
        "How long a booking on an event paid online holds its seats while the buyer pays.",
    ),
    # Payments through Stripe (boxoffice.adapters.stripe_payments; ADR 18).
    "BOXOFFICE_STRIPE_API_KEY": ("", "Stripe secret API key (sk_...); required to take payments."),
    "BOXOFFICE_STRIPE_API_BASE": (
        "",
        "Base URL of Stripe's API (empty: Stripe's own); e.g. a stripe-mock for tests.",
    ),
    "BOXOFFICE_STRIPE_WEBHOOK_SECRET": (
        "",
        "Signing secret of the Stripe webhook endpoint (whsec_...); required to accept webhooks.",
    ),
    "BOXOFFICE_STRIPE_WEBHOOK_TOLERANCE_SECONDS": (
        "300",
        "Oldest signed timestamp of a Stripe webhook accepted, in seconds (older: refused).",
    ),
    # The HTTP server of every function (boxoffice.processes.server, docs/adr/0011-overload.md).
    "PORT": ("8080", "Port the function serves HTTP on (Knative and OpenFaaS set it)."),
    "WORKERS": ("1", "Server worker processes (granian; the local stack: one per CPU)."),
    "THREADS": (
        "8",
        "Requests one worker process runs at once (its slots); BOXOFFICE_DB_POOL_MAX should be at"
        " least this, so that a running request never waits for a connection.",
    ),
    "BOXOFFICE_MAX_QUEUE": (
        "0",
        "Requests one worker process lets wait for a slot, each no longer than its deadline; past"
        " it, or when the expected wait would pass the deadline, 503 overloaded at once."
        " 0: 32 x THREADS.",
    ),
    "BOXOFFICE_REQUEST_DEADLINE_SECONDS": (
        "1",
        "How long a request may wait for a slot, counted from its arrival (the front door's"
        " X-Request-Start, else when the server handed it over); one that cannot start within it"
        " is refused with 503 overloaded before any work.",
    ),
    "BOXOFFICE_OVERLOAD_RETRY_AFTER_SECONDS": ("1", "Retry-After of 503 overloaded answers."),
    "BOXOFFICE_GRACEFUL_TIMEOUT_SECONDS": (
        "20",
        "On SIGTERM: how long in-flight requests may take to finish before the workers are killed.",
    ),
}


def _get(env: Mapping[str, str], name: str) -> str:
    default, _ = ENV_VARS[name]
    value = env.get(name, "")
    path = env.get(f"{name}{FILE_SUFFIX}", "")
    if path:
        if value:
            raise ConfigurationError(f"set {name} or {name}{FILE_SUFFIX}, not both")
        value = _read_setting_file(name, path)
    if value == "":
        if default is None:
            raise ConfigurationError(f"environment variable {name} is required")
        return default
    return value


def _read_setting_file(name: str, path: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigurationError(
            f"{name}{FILE_SUFFIX}={path} cannot be read: {exc.strerror or exc}"
        ) from exc


def env_value(name: str, env: Mapping[str, str] | None = None) -> str:
    """One variable of ENV_VARS (its default when unset; ConfigurationError when required),
    for tools that need a single setting, e.g. `python -m boxoffice.processes.verify`."""
    return _get(os.environ if env is None else env, name)


def _int(env: Mapping[str, str], name: str, minimum: int = 0) -> int:
    raw = _get(env, name)
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


def _decimal(env: Mapping[str, str], name: str) -> Decimal:
    raw = _get(env, name)
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from exc
    if not value.is_finite() or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number, got {raw!r}")
    return value


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = _get(env, name)
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from exc
    if not value.is_finite() or value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of seconds, got {raw!r}")
    return float(value)


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _get(env, name)
    if value not in allowed:
        raise ConfigurationError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    db_pool_min: int
    db_pool_max: int
    db_timeout: float
    oidc_issuer: str
    oidc_audience: str
    jwks_url: str
    jwks_min_refresh: float
    jwt_leeway: int
    kafka_bootstrap_servers: str
    booking_topic: str
    dead_letter_topic: str
    event_source: str
    public_base_url: str
    problem_base_uri: str
    max_tickets_per_order: int
    max_tickets_per_customer_per_event: int
    idempotency_ttl_hours: int
    catalogue_max_age: int
    catalogue_stale: int
    ticket_signing_key: str
    s3_endpoint_url: str
    s3_bucket: str
    outbox_sweep_seconds: float = 2.0
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    ticket_link_seconds: int = 300
    ticket_document_sweep_seconds: float = 15.0
    breaker_failure_threshold: int = 4
    breaker_open_seconds: float = 1.0
    order_event_retention_days: int = 35
    outbox_retention_days: int = 7
    prune_batch_size: int = 1000
    ticket_public_keys: str = ""
    ticket_document_worker: str = "thread"
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_from: str = "Boxoffice <tickets@boxoffice.example>"
    smtp_starttls: bool = True
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout: float = 10.0
    admission_signing_key: str = ""
    admission_verify_keys: str = ""
    admission_tick_seconds: float = 1.0
    booking_capacity_per_second: Decimal = Decimal(200)
    admission_safety_factor: Decimal = Decimal("0.5")
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    stripe_webhook_tolerance: int = 300
    hold_seconds: int = 600

    @property
    def kafka_servers(self) -> list[str]:
        """BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS as a list (empty: Kafka is not configured)."""
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        issuer = _get(e, "BOXOFFICE_OIDC_ISSUER").rstrip("/")
        return cls(
            database_url=_get(e, "BOXOFFICE_DATABASE_URL"),
            db_pool_min=_int(e, "BOXOFFICE_DB_POOL_MIN"),
            db_pool_max=_int(e, "BOXOFFICE_DB_POOL_MAX", 1),
            db_timeout=_seconds(e, "BOXOFFICE_DB_TIMEOUT_SECONDS"),
            oidc_issuer=issuer,
            oidc_audience=_get(e, "BOXOFFICE_OIDC_AUDIENCE"),
            jwks_url=_get(e, "BOXOFFICE_JWKS_URL") or f"{issuer}/protocol/openid-connect/certs",
            jwks_min_refresh=float(_int(e, "BOXOFFICE_JWKS_MIN_REFRESH_SECONDS")),
            jwt_leeway=_int(e, "BOXOFFICE_JWT_LEEWAY_SECONDS"),
            kafka_bootstrap_servers=_get(e, "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS"),
            booking_topic=_get(e, "BOXOFFICE_BOOKING_TOPIC"),
            dead_letter_topic=_get(e, "BOXOFFICE_DEAD_LETTER_TOPIC"),
            event_source=_get(e, "BOXOFFICE_EVENT_SOURCE"),
            public_base_url=_get(e, "BOXOFFICE_PUBLIC_BASE_URL").rstrip("/"),
            problem_base_uri=_get(e, "BOXOFFICE_PROBLEM_BASE_URI"),
            max_tickets_per_order=_int(e, "BOXOFFICE_MAX_TICKETS_PER_ORDER", 1),
            max_tickets_per_customer_per_event=_int(
                e, "BOXOFFICE_MAX_TICKETS_PER_CUSTOMER_PER_EVENT", 1
            ),
            idempotency_ttl_hours=_int(e, "BOXOFFICE_IDEMPOTENCY_TTL_HOURS", 24),
            catalogue_max_age=_int(e, "BOXOFFICE_CATALOGUE_MAX_AGE_SECONDS"),
            catalogue_stale=_int(e, "BOXOFFICE_CATALOGUE_STALE_SECONDS"),
            ticket_signing_key=_get(e, "BOXOFFICE_TICKET_SIGNING_KEY"),
            s3_endpoint_url=_get(e, "BOXOFFICE_S3_ENDPOINT_URL"),
            s3_bucket=_get(e, "BOXOFFICE_S3_BUCKET"),
            outbox_sweep_seconds=_seconds(e, "BOXOFFICE_OUTBOX_SWEEP_SECONDS"),
            s3_region=_get(e, "BOXOFFICE_S3_REGION"),
            s3_access_key_id=_get(e, "BOXOFFICE_S3_ACCESS_KEY_ID"),
            s3_secret_access_key=_get(e, "BOXOFFICE_S3_SECRET_ACCESS_KEY"),
            ticket_link_seconds=_int(e, "BOXOFFICE_TICKET_LINK_SECONDS", 1),
            ticket_document_sweep_seconds=_seconds(e, "BOXOFFICE_TICKET_DOCUMENT_SWEEP_SECONDS"),
            breaker_failure_threshold=_int(e, "BOXOFFICE_BREAKER_FAILURE_THRESHOLD", 1),
            breaker_open_seconds=_seconds(e, "BOXOFFICE_BREAKER_OPEN_SECONDS"),
            order_event_retention_days=_int(e, "BOXOFFICE_ORDER_EVENT_RETENTION_DAYS", 1),
            outbox_retention_days=_int(e, "BOXOFFICE_OUTBOX_RETENTION_DAYS", 1),
            prune_batch_size=_int(e, "BOXOFFICE_PRUNE_BATCH_SIZE", 1),
            ticket_public_keys=_get(e, "BOXOFFICE_TICKET_PUBLIC_KEYS"),
            ticket_document_worker=_choice(
                e, "BOXOFFICE_TICKET_DOCUMENT_WORKER", ("thread", "off")
            ),
            smtp_host=_get(e, "BOXOFFICE_SMTP_HOST"),
            smtp_port=_int(e, "BOXOFFICE_SMTP_PORT", 1),
            smtp_from=_get(e, "BOXOFFICE_SMTP_FROM"),
            smtp_starttls=_choice(e, "BOXOFFICE_SMTP_STARTTLS", ("on", "off")) == "on",
            smtp_username=_get(e, "BOXOFFICE_SMTP_USERNAME"),
            smtp_password=_get(e, "BOXOFFICE_SMTP_PASSWORD"),
            smtp_timeout=_seconds(e, "BOXOFFICE_SMTP_TIMEOUT_SECONDS"),
            admission_signing_key=_get(e, "BOXOFFICE_ADMISSION_SIGNING_KEY"),
            admission_verify_keys=_get(e, "BOXOFFICE_ADMISSION_VERIFY_KEYS"),
            admission_tick_seconds=_seconds(e, "BOXOFFICE_ADMISSION_TICK_SECONDS"),
            booking_capacity_per_second=_decimal(e, "BOXOFFICE_BOOKING_CAPACITY_PER_SECOND"),
            admission_safety_factor=_decimal(e, "BOXOFFICE_ADMISSION_SAFETY_FACTOR"),
            stripe_api_key=_get(e, "BOXOFFICE_STRIPE_API_KEY"),
            stripe_api_base=_get(e, "BOXOFFICE_STRIPE_API_BASE"),
            stripe_webhook_secret=_get(e, "BOXOFFICE_STRIPE_WEBHOOK_SECRET"),
            stripe_webhook_tolerance=_int(e, "BOXOFFICE_STRIPE_WEBHOOK_TOLERANCE_SECONDS", 1),
            hold_seconds=_int(e, "BOXOFFICE_HOLD_SECONDS", 60),
        )


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The HTTP server's settings (boxoffice.processes.server); a function needs no others to
    start."""

    workers: int
    threads: int
    max_queue: int
    request_deadline: float
    overload_retry_after: int
    graceful_timeout: int
    problem_base: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerSettings:
        e = os.environ if env is None else env
        threads = _int(e, "THREADS", 1)
        return cls(
            workers=_int(e, "WORKERS", 1),
            threads=threads,
            max_queue=_int(e, "BOXOFFICE_MAX_QUEUE") or 32 * threads,
            request_deadline=_seconds(e, "BOXOFFICE_REQUEST_DEADLINE_SECONDS"),
            overload_retry_after=_int(e, "BOXOFFICE_OVERLOAD_RETRY_AFTER_SECONDS", 1),
            graceful_timeout=_int(e, "BOXOFFICE_GRACEFUL_TIMEOUT_SECONDS", 1),
            problem_base=_get(e, "BOXOFFICE_PROBLEM_BASE_URI"),
        )
