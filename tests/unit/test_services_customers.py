"""Customer use cases against in-memory fakes of the ports."""

from __future__ import annotations

import uuid

import pytest

from boxoffice import errors
from boxoffice.domain.customers import Address, Profile
from boxoffice.domain.identity import ADMIN_ROLE, CUSTOMER_ROLE, Principal
from boxoffice.services import customers

from .fakes import FakeUnitOfWorkFactory

ALICE = Principal("alice-subject", frozenset({CUSTOMER_ROLE}), "alice")
OLIVIA = Principal("olivia-subject", frozenset({ADMIN_ROLE}), "olivia")


def profile(name: str = "Alice") -> Profile:
    return Profile(
        name, f"{name.lower()}@example.com", Address("1 Road", "", "12345", "Town", "DE")
    )


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


def test_me_without_a_profile_is_not_found(uow: FakeUnitOfWorkFactory) -> None:
    with pytest.raises(errors.NotFound):
        customers.me(uow, ALICE)


def test_me_returns_the_callers_own_profile(uow: FakeUnitOfWorkFactory) -> None:
    customers.register_or_update(uow, OLIVIA, profile("Olivia"))
    mine, _ = customers.register_or_update(uow, ALICE, profile("Alice"))

    assert customers.me(uow, ALICE) == mine


def test_register_creates_the_profile_first_and_updates_it_afterwards(
    uow: FakeUnitOfWorkFactory,
) -> None:
    first, created_first = customers.register_or_update(uow, ALICE, profile("Alice"))
    second, created_second = customers.register_or_update(uow, ALICE, profile("Alicia"))

    assert (created_first, created_second) == (True, False)
    assert second.id == first.id
    assert customers.me(uow, ALICE).profile.name == "Alicia"
    assert uow.commits == 2


def test_get_by_id_is_not_found_for_a_non_admin_even_when_the_customer_exists(
    uow: FakeUnitOfWorkFactory,
) -> None:
    alice, _ = customers.register_or_update(uow, ALICE, profile())

    with pytest.raises(errors.NotFound):
        customers.get_by_id(uow, ALICE, alice.id)


def test_get_by_id_returns_any_customer_to_an_admin(uow: FakeUnitOfWorkFactory) -> None:
    alice, _ = customers.register_or_update(uow, ALICE, profile())

    assert customers.get_by_id(uow, OLIVIA, alice.id) == alice


def test_get_by_id_of_unknown_customer_is_not_found_for_an_admin(
    uow: FakeUnitOfWorkFactory,
) -> None:
    with pytest.raises(errors.NotFound):
        customers.get_by_id(uow, OLIVIA, uuid.uuid4())
