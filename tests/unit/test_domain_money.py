"""Money: Decimal amounts, banker's rounding to cents, rendered as strings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from boxoffice.domain.money import Money


def test_money_refuses_a_float_amount() -> None:
    with pytest.raises(TypeError):
        Money(25.5, "EUR")  # type: ignore[arg-type]


def test_money_refuses_an_int_amount() -> None:
    with pytest.raises(TypeError):
        Money(25, "EUR")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("amount", "rendered"),
    [
        ("25", "25.00"),
        ("25.5", "25.50"),
        ("2.675", "2.68"),  # half to even: 7 is odd, goes up
        ("2.665", "2.66"),  # half to even: 6 is even, stays
        ("0.005", "0.00"),
        ("0.015", "0.02"),
        ("1234567890.99", "1234567890.99"),
    ],
)
def test_to_json_renders_amount_as_a_string_rounded_half_even(amount: str, rendered: str) -> None:
    assert Money(Decimal(amount), "EUR").to_json() == {"amount": rendered, "currency": "EUR"}


def test_times_multiplies_exactly_without_float_error() -> None:
    assert Money(Decimal("19.99"), "EUR").times(3) == Money(Decimal("59.97"), "EUR")
    assert Money(Decimal("0.10"), "EUR").times(3).amount == Decimal("0.30")


def test_times_rounds_half_even_to_cents() -> None:
    assert Money(Decimal("0.125"), "EUR").times(3).amount == Decimal("0.38")  # 0.375
    assert Money(Decimal("0.0025"), "EUR").times(1).amount == Decimal("0.00")
    assert Money(Decimal("0.0025"), "EUR").times(6).amount == Decimal("0.02")  # 0.015


def test_times_keeps_the_currency() -> None:
    assert Money(Decimal("1"), "CHF").times(2).currency == "CHF"
