"""The composition root: builds adapters from configuration, once per process, on first use.

Importing this module (or a function that uses it) connects to nothing, and the adapters that
only some functions need (Kafka, S3, order processing) are imported on first use, so a
function loads only what it uses: cold starts stay cheap.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from flask import Request

from boxoffice import errors
from boxoffice.adapters import postgres
from boxoffice.adapters.postgres import Database, PostgresUnitOfWork
from boxoffice.adapters.resilience import Breaker, FailurePredicate
from boxoffice.background import BackgroundWorker, Pass, in_turn
from boxoffice.config import Settings
from boxoffice.domain.identity import Principal
from boxoffice.services.ports import NoopOutboxNotifier, OutboxNotifier
from boxoffice.web.app import FunctionApp
from boxoffice.web.auth import bearer_token

# Imported on first use below (kafka-python, boto3, fpdf2, PyJWT are slow to import).
if TYPE_CHECKING:
    from boxoffice.adapters.admission_tokens import AdmissionSigner, AdmissionVerifier
    from boxoffice.adapters.housekeeping import PostgresHousekeeping
    from boxoffice.adapters.kafka import KafkaEventPublisher
    from boxoffice.adapters.keycloak import JwtVerifier
    from boxoffice.adapters.postgres_bookings import PostgresBookingStore
    from boxoffice.adapters.postgres_checkins import CheckInUnitOfWorks
    from boxoffice.adapters.postgres_orders import OrderUnitOfWorks, PostgresOrderStore
    from boxoffice.adapters.postgres_payments import PostgresPayments, RefundUnitOfWorks
    from boxoffice.adapters.postgres_waiting_room import PostgresWaitingRoom
    from boxoffice.adapters.s3 import S3DocumentStore
    from boxoffice.adapters.smtp_mail import SmtpTicketMailer
    from boxoffice.adapters.stripe_payments import StripePayments
    from boxoffice.domain.tickets import TicketKeys, TicketSigner
    from boxoffice.services.bookings import BookingPolicy
    from boxoffice.services.housekeeping import Policy as HousekeepingPolicy
    from boxoffice.services.payments import PaymentPolicy, Refunder
    from boxoffice.services.relay import OutboxRelay
    from boxoffice.services.waiting_room import AdmissionPolicy, LineCache


log = logging.getLogger("boxoffice")


class Container:
    def __init__(self, settings: Settings | None = None) -> None:
        self._given = settings

    @functools.cached_property
    def settings(self) -> Settings:
        return self._given or Settings.from_env()

    def _breaker(self, dependency: str, is_failure: FailurePredicate) -> Breaker:
        s = self.settings
        return Breaker(
            dependency,
            is_failure,
            failure_threshold=s.breaker_failure_threshold,
            recovery_timeout=s.breaker_open_seconds,
        )

    @functools.cached_property
    def database(self) -> Database:
        s = self.settings
        breaker = self._breaker(postgres.DEPENDENCY, postgres.connection_failure)
        return Database(s.database_url, s.db_pool_min, s.db_pool_max, s.db_timeout, breaker)

    @functools.cached_property
    def bookings(self) -> PostgresBookingStore:
        """The booking store (create_booking): each use case one round trip."""
        from boxoffice.adapters.postgres_bookings import PostgresBookingStore  # noqa: PLC0415

        return PostgresBookingStore(self.database)

    @functools.cached_property
    def booking_policy(self) -> BookingPolicy:
        """The booking limits and where booking events go (create_booking)."""
        from boxoffice.services.bookings import BookingPolicy  # noqa: PLC0415 - lazy

        s = self.settings
        return BookingPolicy(
            max_tickets_per_order=s.max_tickets_per_order,
            max_tickets_per_customer_per_event=s.max_tickets_per_customer_per_event,
            idempotency_ttl_hours=s.idempotency_ttl_hours,
            topic=s.booking_topic,
            source=s.event_source,
            hold_seconds=s.hold_seconds,
        )

    @functools.cached_property
    def payments(self) -> PostgresPayments:
        """A booking's payments (create_booking, payment_webhook, housekeeping)."""
        from boxoffice.adapters.postgres_payments import PostgresPayments  # noqa: PLC0415

        return PostgresPayments(self.database)

    @functools.cached_property
    def refund_uow(self) -> RefundUnitOfWorks:
        from boxoffice.adapters.postgres_payments import RefundUnitOfWorks  # noqa: PLC0415

        return RefundUnitOfWorks(self.database)

    @functools.cached_property
    def payment_provider(self) -> StripePayments | None:
        """The payment provider (Stripe's API, or the local stack's devpay that speaks it); None
        when BOXOFFICE_STRIPE_API_KEY is empty: no payment can be taken (503 on the payment
        routes), refunds wait."""
        s = self.settings
        if not s.stripe_api_key:
            return None
        from boxoffice.adapters.stripe_payments import StripePayments  # noqa: PLC0415 - lazy

        return StripePayments(
            s.stripe_api_key,
            s.stripe_webhook_secret,
            api_base=s.stripe_api_base,
            webhook_tolerance=s.stripe_webhook_tolerance,
        )

    def require_payment_provider(self) -> StripePayments:
        provider = self.payment_provider
        if provider is None:
            raise errors.ConfigurationError(
                "no payment provider is configured (BOXOFFICE_STRIPE_API_KEY is empty)"
            )
        return provider

    @functools.cached_property
    def payment_policy(self) -> PaymentPolicy:
        from boxoffice.services.payments import PaymentPolicy  # noqa: PLC0415 - lazy

        s = self.settings
        return PaymentPolicy(provider="stripe", topic=s.booking_topic, source=s.event_source)

    @functools.cached_property
    def refunder(self) -> Refunder | None:
        """Sends a cancelled booking's refunds at once; None without a provider (they wait)."""
        from boxoffice.services.payments import Refunder  # noqa: PLC0415 - lazy

        provider = self.payment_provider
        return None if provider is None else Refunder(self.refund_uow, provider)

    @functools.cached_property
    def admission_verifier(self) -> AdmissionVerifier:
        """Checks admission tokens (create_booking); ConfigurationError (503) without keys."""
        from boxoffice.adapters.admission_tokens import AdmissionVerifier  # noqa: PLC0415

        return AdmissionVerifier(self.settings.admission_verify_keys)

    # -- the waiting room (waiting_room, python -m boxoffice.processes.admission) ---------------

    @functools.cached_property
    def waiting_room(self) -> PostgresWaitingRoom:
        from boxoffice.adapters.postgres_waiting_room import PostgresWaitingRoom  # noqa: PLC0415

        return PostgresWaitingRoom(self.database)

    @functools.cached_property
    def line_cache(self) -> LineCache:
        """Public line status, reused for a second per process."""
        from boxoffice.services.waiting_room import LineCache  # noqa: PLC0415 - lazy

        return LineCache(lambda: self.waiting_room)

    @functools.cached_property
    def admission_signer(self) -> AdmissionSigner:
        """Signs admission tokens (waiting_room); ConfigurationError (503) without its key."""
        from boxoffice.adapters.admission_tokens import AdmissionSigner  # noqa: PLC0415

        return AdmissionSigner(self.settings.admission_signing_key)

    @functools.cached_property
    def admission_policy(self) -> AdmissionPolicy:
        """How the admission controller ticks, and what an automatic rate admits."""
        from boxoffice.domain.waiting_room import automatic_rate  # noqa: PLC0415 - lazy
        from boxoffice.services.waiting_room import AdmissionPolicy  # noqa: PLC0415 - lazy

        s = self.settings
        return AdmissionPolicy(
            tick_seconds=s.admission_tick_seconds,
            auto_capacity=automatic_rate(s.booking_capacity_per_second, s.admission_safety_factor),
        )

    @functools.cached_property
    def token_verifier(self) -> JwtVerifier:
        # PyJWT and cryptography: ~130 ms of imports a public catalogue read never needs.
        from boxoffice.adapters import keycloak  # noqa: PLC0415 - lazy

        s = self.settings
        keys = keycloak.JwksCache(
            s.jwks_url,
            min_refresh=s.jwks_min_refresh,
            timeout=s.db_timeout,
            breaker=self._breaker(keycloak.DEPENDENCY, keycloak.fetch_failure),
        )
        return keycloak.JwtVerifier(keys, s.oidc_issuer, s.oidc_audience, s.jwt_leeway)

    @functools.cached_property
    def event_publisher(self) -> KafkaEventPublisher:
        """Kafka producer behind a breaker; it connects on the first publish, not here."""
        from boxoffice.adapters.kafka import KafkaEventPublisher  # noqa: PLC0415 - lazy

        s = self.settings
        return KafkaEventPublisher(
            s.kafka_bootstrap_servers,
            failure_threshold=s.breaker_failure_threshold,
            recovery_timeout=s.breaker_open_seconds,
        )

    def check_event_publishing(self) -> None:
        """Readiness of a process that writes outbox rows: without Kafka bootstrap servers its
        events would wait in the outbox forever (accepted bookings never confirmed), so it is
        not ready (ConfigurationError, 503). A Kafka that is configured but down is no reason:
        the outbox is there to ride out outages (ADR 5)."""
        if not self.settings.kafka_servers:
            raise errors.ConfigurationError(
                "BOXOFFICE_KAFKA_BOOTSTRAP_SERVERS is empty: booking events would never be "
                "published, so bookings would never be confirmed"
            )

    @functools.cached_property
    def outbox_relay(self) -> OutboxRelay:
        from boxoffice.adapters.outbox import PostgresOutbox  # noqa: PLC0415 - lazy
        from boxoffice.services.relay import OutboxRelay  # noqa: PLC0415 - lazy

        # Only the topic this process writes: outbox rows of other topics (another service's,
        # or a test's) are left to the relays that own them.
        topics = [self.settings.booking_topic]
        return OutboxRelay(PostgresOutbox(self.database, topics), self.event_publisher)

    @functools.cached_property
    def outbox_relay_worker(self) -> BackgroundWorker:
        """The `OutboxNotifier` for writers of outbox rows: `kick()` after each commit starts
        (once) and wakes the relay thread; the thread also sweeps periodically."""
        from boxoffice.services.relay import MIN_PASS_INTERVAL, RelayPass  # noqa: PLC0415 - lazy

        sweep = self.settings.outbox_sweep_seconds
        return BackgroundWorker(
            "boxoffice-outbox-relay",
            RelayPass(self.outbox_relay, measure_seconds=sweep),
            sweep,
            min_pass_interval=MIN_PASS_INTERVAL,
        )

    @functools.cached_property
    def outbox_notifier(self) -> OutboxNotifier:
        """Told after each commit that wrote outbox rows (create_booking)."""
        return self.outbox_relay_worker

    # -- order processing (consume_order) and ticket documents ---------------------------------

    @functools.cached_property
    def orders(self) -> PostgresOrderStore:
        """Order processing: each booking event applied in one round trip."""
        from boxoffice.adapters.postgres_orders import PostgresOrderStore  # noqa: PLC0415 - lazy

        return PostgresOrderStore(self.database)

    @functools.cached_property
    def order_uow(self) -> OrderUnitOfWorks:
        """Transactions of ticket documents (claim, store, mark)."""
        from boxoffice.adapters.postgres_orders import OrderUnitOfWorks  # noqa: PLC0415 - lazy

        return OrderUnitOfWorks(self.database)

    @functools.cached_property
    def ticket_signer(self) -> TicketSigner:
        """The Ed25519 key that signs new ticket codes (consume_order); ConfigurationError (503)
        when unset or not an Ed25519 private key."""
        from boxoffice.domain.tickets import load_signer  # noqa: PLC0415 - lazy

        return load_signer(self.settings.ticket_signing_key)

    @functools.cached_property
    def ticket_keys(self) -> TicketKeys:
        """The public keys whose ticket codes are accepted (check_in); ConfigurationError (503)
        when none is configured."""
        from boxoffice.domain.tickets import load_public_keys  # noqa: PLC0415 - lazy

        return load_public_keys(self.settings.ticket_public_keys)

    @functools.cached_property
    def checkin_uow(self) -> CheckInUnitOfWorks:
        """Transactions of check-in (check_in)."""
        from boxoffice.adapters.postgres_checkins import CheckInUnitOfWorks  # noqa: PLC0415

        return CheckInUnitOfWorks(self.database)

    @functools.cached_property
    def document_store(self) -> S3DocumentStore:
        """S3 client for ticket documents; built here, connects on first use."""
        from boxoffice.adapters.s3 import S3DocumentStore  # noqa: PLC0415 - lazy

        s = self.settings
        return S3DocumentStore(
            s.s3_bucket,
            endpoint_url=s.s3_endpoint_url,
            region=s.s3_region,
            access_key_id=s.s3_access_key_id,
            secret_access_key=s.s3_secret_access_key,
        )

    @functools.cached_property
    def housekeeping_store(self) -> PostgresHousekeeping:
        from boxoffice.adapters.housekeeping import PostgresHousekeeping  # noqa: PLC0415 - lazy

        return PostgresHousekeeping(self.database)

    @functools.cached_property
    def housekeeping_policy(self) -> HousekeepingPolicy:
        from boxoffice.services.housekeeping import Policy  # noqa: PLC0415 - lazy

        s = self.settings
        return Policy(
            order_event_retention_days=s.order_event_retention_days,
            batch=s.prune_batch_size,
            outbox_retention_days=s.outbox_retention_days,
        )

    @functools.cached_property
    def document_worker(self) -> BackgroundWorker:
        """Renders (PDF) and stores ticket documents in a background thread: `kick()` after each
        commit that made or changed an order; it also sweeps for pending ones periodically."""
        from boxoffice.adapters.ticket_pdf import PdfTicketRenderer  # noqa: PLC0415 - lazy
        from boxoffice.services.orders import document_pass  # noqa: PLC0415 - lazy

        uow, store, renderer = self.order_uow, self.document_store, PdfTicketRenderer()
        return BackgroundWorker(
            "ticket-document-worker",
            self.document_and_email_pass(lambda: document_pass(uow, store, renderer)),
            self.settings.ticket_document_sweep_seconds,
        )

    @functools.cached_property
    def ticket_mailer(self) -> SmtpTicketMailer | None:
        """The SMTP sender of ticket emails; None when BOXOFFICE_SMTP_HOST is empty (no email is
        sent: they wait in the outbox). ConfigurationError for an invalid BOXOFFICE_SMTP_FROM."""
        s = self.settings
        if not s.smtp_host:
            return None
        from boxoffice.adapters.smtp_mail import SmtpTicketMailer  # noqa: PLC0415 - lazy

        return SmtpTicketMailer(
            s.smtp_host,
            s.smtp_port,
            s.smtp_from,
            username=s.smtp_username,
            password=s.smtp_password,
            starttls=s.smtp_starttls,
            timeout=s.smtp_timeout,
        )

    def document_and_email_pass(self, documents: Pass) -> Pass:
        """The document worker's pass: `documents`, then the due ticket emails (when sending is
        configured), so one worker (thread or process) does both (docs/adr/0019)."""
        from boxoffice.adapters.ticket_pdf import PdfTicketRenderer  # noqa: PLC0415 - lazy
        from boxoffice.services.ticket_emails import email_pass  # noqa: PLC0415 - lazy

        mailer = self.ticket_mailer
        if mailer is None:
            return documents
        uow, renderer = self.order_uow, PdfTicketRenderer()
        return in_turn(documents, lambda: email_pass(uow, mailer, renderer))

    @functools.cached_property
    def document_notifier(self) -> OutboxNotifier:
        """Told after each order commit (consume_order): the document worker thread, or nobody
        when a separate `python -m boxoffice.processes.documents` process renders the documents."""
        if self.settings.ticket_document_worker == "off":
            return NoopOutboxNotifier()
        return self.document_worker

    def uow(self, *, read_only: bool = False) -> AbstractContextManager[PostgresUnitOfWork]:
        return self.database.unit_of_work(read_only=read_only)

    def authenticate(self, request: Request) -> Principal:
        return self.token_verifier.verify(bearer_token(request))


_container: Container | None = None


def container() -> Container:
    global _container  # noqa: PLW0603 - the one process-wide composition root
    if _container is None:
        _container = Container()
    return _container


def shutdown() -> None:
    """Stop what the process started (background threads, the database pool): called when a
    server worker exits, after granian has drained its requests (boxoffice.processes.server)."""
    c = _container
    if c is None:
        return
    started = c.__dict__  # cached_property: only what was ever used
    stopped = []
    if "outbox_relay_worker" in started:
        c.outbox_relay_worker.stop()
        stopped.append("outbox relay")
    if "document_worker" in started:
        c.document_worker.stop()
        stopped.append("document worker")
    if "event_publisher" in started:
        c.event_publisher.close()
        stopped.append("Kafka producer")
    if "database" in started:
        c.database.close()
        stopped.append("database pool")
    log.info("process %d stopped: %s", os.getpid(), ", ".join(stopped) or "nothing to stop")


def set_container(new: Container | None) -> None:
    """Swap the composition root (tests)."""
    global _container  # noqa: PLW0603
    _container = new


def function_app(
    name: str,
    needs_database: bool = True,
    publishes_events: bool = False,
    needs: Callable[[Container], object] | None = None,
) -> FunctionApp:
    """A function's HTTP app wired to the process's composition root (resolved per request).
    Its readiness: what the function `needs` from the container is configured (e.g. its ticket
    keys: reading them raises ConfigurationError, 503, when missing), Kafka is configured when
    the function writes outbox rows (`publishes_events`: its relay publishes them), and the
    database answers (`needs_database`)."""

    def authenticate(request: Request) -> Principal:
        return container().authenticate(request)

    def ready() -> None:
        c = container()
        if needs is not None:
            needs(c)
        if publishes_events:
            c.check_event_publishing()
        if needs_database:
            c.database.ping()

    def problem_base() -> str:
        return container().settings.problem_base_uri

    return FunctionApp(
        name,
        authenticate=authenticate,
        readiness=ready if needs_database or publishes_events or needs else None,
        problem_base=problem_base,
    )
