"""Customer use cases. Identity is always the verified token subject."""

from __future__ import annotations

import uuid

from boxoffice import errors
from boxoffice.domain.customers import Customer, Profile
from boxoffice.domain.identity import Principal
from boxoffice.services.ports import UnitOfWorkFactory


def me(uow: UnitOfWorkFactory, principal: Principal) -> Customer:
    with uow(read_only=True) as tx:
        customer = tx.customers.by_subject(principal.subject)
    if customer is None:
        raise errors.NotFound("no customer profile yet: register with PUT /customers/me")
    return customer


def register_or_update(
    uow: UnitOfWorkFactory, principal: Principal, profile: Profile
) -> tuple[Customer, bool]:
    with uow() as tx:
        customer, created = tx.customers.upsert(principal.subject, profile)
        tx.commit()
    return customer, created


def get_by_id(uow: UnitOfWorkFactory, principal: Principal, customer_id: uuid.UUID) -> Customer:
    """Admins read any customer; anyone else gets 404, so ids cannot be probed."""
    if not principal.is_admin:
        raise errors.NotFound(f"customer {customer_id} does not exist")
    with uow(read_only=True) as tx:
        customer = tx.customers.by_id(customer_id)
    if customer is None:
        raise errors.NotFound(f"customer {customer_id} does not exist")
    return customer
