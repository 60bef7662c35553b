"""The one error hierarchy. Every error a caller can see is a `BoxofficeError`.

Each class has a stable `slug`: the problem+json `type` is `<problem base URI><slug>`.
`boxoffice.web.problems` maps these to RFC 9457 responses, in one place. The OpenAPI spec
lists every slug under `components.responses`; a unit test keeps the two in step.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class FieldError:
    """One offending input: `field` is a JSON-pointer-like path (`ticketCount`, `address.city`)."""

    field: str
    message: str


class BoxofficeError(Exception):
    slug: ClassVar[str] = "internal-error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str = "", **extensions: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extensions = extensions
        self.headers: dict[str, str] = {}


class ConfigurationError(BoxofficeError):
    """Misconfiguration: the process cannot serve; surfaces as 503 on readiness."""

    slug = "service-misconfigured"
    status = 503
    title = "Service misconfigured"


class BadRequest(BoxofficeError):
    slug = "bad-request"
    status = 400
    title = "Bad request"


class MalformedJson(BadRequest):
    slug = "malformed-json"
    title = "Request body is not valid JSON"


class IdempotencyKeyRequired(BadRequest):
    slug = "idempotency-key-required"
    title = "Idempotency-Key header required"


class ValidationFailed(BoxofficeError):
    slug = "validation-failed"
    status = 422
    title = "Request failed validation"

    def __init__(self, errors: list[FieldError], detail: str = "") -> None:
        first = errors[0] if errors else FieldError("", "invalid")
        super().__init__(
            detail or f"{first.field or 'body'}: {first.message}",
            errors=[{"field": e.field, "message": e.message} for e in errors],
        )
        self.errors = errors


class InvalidParameter(ValidationFailed):
    """A query or path parameter that is malformed (400, not 422: the URL itself is wrong)."""

    slug = "invalid-parameter"
    status = 400
    title = "Invalid parameter"


class Unauthorized(BoxofficeError):
    slug = "unauthorized"
    status = 401
    title = "Authentication required"


class InvalidToken(Unauthorized):
    slug = "invalid-token"
    title = "Invalid access token"


class Forbidden(BoxofficeError):
    slug = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(BoxofficeError):
    slug = "not-found"
    status = 404
    title = "Not found"


class MethodNotAllowed(BoxofficeError):
    slug = "method-not-allowed"
    status = 405
    title = "Method not allowed"


class NotAcceptable(BoxofficeError):
    slug = "not-acceptable"
    status = 406
    title = "Not acceptable"


class Conflict(BoxofficeError):
    slug = "conflict"
    status = 409
    title = "Conflict"


class RegistrationRequired(Conflict):
    slug = "registration-required"
    title = "Customer profile required"


class SoldOut(Conflict):
    slug = "sold-out"
    title = "Not enough tickets left"


class EventNotOnSale(Conflict):
    slug = "event-not-on-sale"
    title = "Event is not on sale"


class TicketLimitExceeded(Conflict):
    slug = "ticket-limit-exceeded"
    title = "Ticket limit per customer exceeded"


class BookingNotCancellable(Conflict):
    slug = "booking-not-cancellable"
    title = "Booking cannot be cancelled"


class CategoryRequired(BoxofficeError):
    """The event sells tickets in several categories and the booking names none."""

    slug = "category-required"
    status = 422
    title = "Ticket category required"


class BookingNotPayable(Conflict):
    """Only a HELD booking whose hold has not lapsed can be paid (a paid, cancelled or expired
    one, or one booked without online payment, cannot)."""

    slug = "booking-not-payable"
    title = "Booking cannot be paid"


class RefundExceedsPayment(Conflict):
    """The refunds of a payment would add up to more than was paid."""

    slug = "refund-exceeds-payment"
    title = "Refund exceeds what is left of the payment"


class AdmissionRequired(BoxofficeError):
    """The event sells through its waiting room and the booking carries no valid admission of
    this customer for this event (none, forged, for another event or customer)."""

    slug = "admission-required"
    status = 403
    title = "Admission from the waiting room required"


class AdmissionExpired(BoxofficeError):
    """The buyer's admission window has ended; its seats went back to the line."""

    slug = "admission-expired"
    status = 403
    title = "Admission expired"


class IdempotencyKeyInUse(Conflict):
    slug = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is still being processed"


class IdempotencyKeyReused(BoxofficeError):
    slug = "idempotency-key-reused"
    status = 422
    title = "Idempotency-Key was used with a different request"


class PreconditionFailed(BoxofficeError):
    slug = "precondition-failed"
    status = 412
    title = "Precondition failed"


class PayloadTooLarge(BoxofficeError):
    slug = "payload-too-large"
    status = 413
    title = "Request too large"


class UnsupportedMediaType(BoxofficeError):
    slug = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"


class HeaderTooLarge(BoxofficeError):
    slug = "header-too-large"
    status = 431
    title = "Request header too large"


class ExpectationFailed(BoxofficeError):
    slug = "expectation-failed"
    status = 417
    title = "Expectation failed"


class Overloaded(BoxofficeError):
    """The function is at its limit of requests in flight, or the request waited past its
    deadline: refused before any work (docs/adr/0011-overload.md); retry after Retry-After."""

    slug = "overloaded"
    status = 503
    title = "Service overloaded"


class ServiceUnavailable(BoxofficeError):
    """A dependency (database, Kafka, Keycloak keys) is down or its breaker is open."""

    slug = "service-unavailable"
    status = 503
    title = "Service temporarily unavailable"

    def __init__(self, detail: str = "", retry_after: int = 1) -> None:
        super().__init__(detail)
        self.headers["Retry-After"] = str(retry_after)


# -- HTTP-layer problems: raised by no function; the front door (stack/frontdoor/nginx.conf.tmpl)
# and the functions' server (granian) answer them. Listed here so that their slugs are stable and
# documented like the rest.


class LengthRequired(BoxofficeError):
    """A chunked request body: the front door wants a Content-Length."""

    slug = "length-required"
    status = 411
    title = "Length required"


class UriTooLong(BoxofficeError):
    slug = "uri-too-long"
    status = 414
    title = "Request URI too long"


class NotImplementedByServer(BoxofficeError):
    """A Transfer-Encoding (or protocol feature) the front door or the server does not implement."""

    slug = "not-implemented"
    status = 501
    title = "Not implemented"


class BadGateway(ServiceUnavailable):
    """The function serving the path is not reachable (or answered with garbage)."""

    slug = "bad-gateway"
    status = 502
    title = "Bad gateway"


class GatewayTimeout(ServiceUnavailable):
    """The function serving the path did not answer in time."""

    slug = "gateway-timeout"
    status = 504
    title = "Gateway timeout"


class HttpVersionNotSupported(BoxofficeError):
    slug = "http-version-not-supported"
    status = 505
    title = "HTTP version not supported"


# -- order processing (consume_order: the KafkaSource sink) ----------------------------------


class MalformedCloudEvent(BadRequest):
    """The request is not a CloudEvent (binary or structured mode) at all."""

    slug = "malformed-cloudevent"
    title = "Not a valid CloudEvent"


class UnsupportedEventType(BoxofficeError):
    """A CloudEvent this function does not process (e.g. a KafkaSource-wrapped raw record)."""

    slug = "unsupported-event-type"
    status = 422
    title = "CloudEvent type not supported"


class BookingEventInvalid(ValidationFailed):
    """The CloudEvent's data is not a valid booking event (or contradicts the booking)."""

    slug = "invalid-booking-event"
    title = "Booking event failed validation"


class UnknownBooking(BoxofficeError):
    """The event names a booking that does not exist (the outbox row is written in the booking's
    own transaction, so it can never appear later: retrying cannot help)."""

    slug = "unknown-booking"
    status = 422
    title = "Booking does not exist"


# -- check-in (check_in: scanning tickets at the door) -------------------------------------------


class InvalidTicketCode(BoxofficeError):
    """The scanned code is not one of ours: malformed, forged, or signed with a key that is not
    (or no longer) trusted."""

    slug = "invalid-ticket-code"
    status = 422
    title = "Invalid ticket code"


class TicketNotFound(NotFound):
    """The code is well-formed (and, for a signed code, correctly signed) but names no ticket."""

    slug = "ticket-not-found"
    title = "No such ticket"


class AlreadyCheckedIn(Conflict):
    """The ticket was admitted before (by another scan); the extensions say when and where."""

    slug = "already-checked-in"
    title = "Ticket already checked in"


class TicketCancelled(Conflict):
    """The ticket, its order or booking, or its event is cancelled: not valid for entry."""

    slug = "ticket-cancelled"
    title = "Ticket cancelled"


class WrongEvent(Conflict):
    """The ticket is for another event than the one the scanner checks in."""

    slug = "wrong-event"
    title = "Ticket is for another event"


# -- payments (the PaymentProvider port and its adapters; docs/adr/0018-payment-provider-port.md) --


class AmountNotRepresentable(BoxofficeError):
    """An amount that the currency's minor units cannot hold exactly (more decimal places than the
    currency has, negative, not finite), or a currency payments do not support: never rounded."""

    slug = "amount-not-representable"
    status = 422
    title = "Amount cannot be paid in this currency"


class InvalidWebhookSignature(BadRequest):
    """A payment provider's webhook whose signature does not match its body and the endpoint
    secret, or whose signed timestamp is outside the tolerance: nothing in it is believed."""

    slug = "invalid-webhook-signature"
    title = "Webhook signature invalid"


class PaymentRejected(Conflict):
    """The payment provider refused the request (a refund over what is left, an intent in a state
    that does not allow it, a declined card); `providerCode` says the provider's reason."""

    slug = "payment-rejected"
    title = "Payment provider rejected the request"


class PaymentProviderUnavailable(ServiceUnavailable):
    """The payment provider is unreachable, timed out, limits our rate, or answered with an error
    of its own or with something we cannot read; retry after Retry-After (same idempotency key)."""

    slug = "payment-provider-unavailable"
    title = "Payment provider unavailable"


def all_error_classes() -> list[type[BoxofficeError]]:
    """Every concrete error class (used by the docs/spec consistency test)."""
    seen: list[type[BoxofficeError]] = []
    stack: list[type[BoxofficeError]] = [BoxofficeError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen


def by_slug(slug: str) -> type[BoxofficeError] | None:
    """The error class whose problem type ends in `slug` (None if there is none)."""
    return _slug_table().get(slug)


@functools.cache
def _slug_table() -> dict[str, type[BoxofficeError]]:
    return {cls.slug: cls for cls in reversed(all_error_classes())}
