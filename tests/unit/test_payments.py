"""Payment amounts in minor units: exact both ways, or refused (never rounded)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boxoffice import errors
from boxoffice.domain.money import Money
from boxoffice.domain.payments import (
    CURRENCY_EXPONENTS,
    booking_id_from_metadata,
    currency_exponent,
    from_minor_units,
    to_minor_units,
)


@pytest.mark.parametrize(
    ("amount", "currency", "units"),
    [
        ("25.50", "GBP", 2550),
        ("25.5", "GBP", 2550),
        ("25.500", "GBP", 2550),  # trailing zeros are exact
        ("0.01", "EUR", 1),
        ("0", "USD", 0),
        ("1E+2", "USD", 10000),
        ("999999.99", "USD", 99999999),
        ("2550", "JPY", 2550),  # no minor unit: yen are counted whole
        ("2550.0", "JPY", 2550),
        ("15000", "KRW", 15000),
    ],
)
def test_amounts_become_whole_minor_units(amount: str, currency: str, units: int) -> None:
    assert to_minor_units(Money(Decimal(amount), currency)) == units


@pytest.mark.parametrize(
    ("units", "currency", "amount"),
    [
        (2550, "GBP", "25.50"),
        (2550, "gbp", "25.50"),  # providers answer in lower case
        (1, "EUR", "0.01"),
        (0, "USD", "0.00"),
        (2550, "JPY", "2550"),
        (2550, "jpy", "2550"),
    ],
)
def test_minor_units_become_money_with_the_currencys_decimal_places(
    units: int, currency: str, amount: str
) -> None:
    money = from_minor_units(units, currency)
    assert money == Money(Decimal(amount), currency.upper())
    assert str(money.amount) == amount  # £25.50, not 25.5; ¥2550, not 2550.00


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        ("25.505", "GBP"),  # a tenth of a penny
        ("0.001", "USD"),
        ("10.5", "JPY"),  # yen have no minor unit
        ("0.1", "KRW"),
        ("-1.00", "GBP"),
        ("NaN", "GBP"),
        ("Infinity", "EUR"),
        ("1" * 45, "GBP"),  # more digits than exact arithmetic keeps
    ],
)
def test_amounts_that_are_not_whole_minor_units_are_refused_not_rounded(
    amount: str, currency: str
) -> None:
    with pytest.raises(errors.AmountNotRepresentable) as caught:
        to_minor_units(Money(Decimal(amount), currency))
    assert (caught.value.status, caught.value.slug) == (422, "amount-not-representable")


def test_an_unsupported_currency_is_refused_both_ways() -> None:
    with pytest.raises(errors.AmountNotRepresentable, match="XYZ"):
        to_minor_units(Money(Decimal(1), "XYZ"))
    with pytest.raises(errors.AmountNotRepresentable, match="xyz"):
        from_minor_units(100, "xyz")


def test_negative_minor_units_are_refused() -> None:
    with pytest.raises(errors.AmountNotRepresentable):
        from_minor_units(-1, "GBP")


def test_the_currencies_payments_take_include_pounds_euros_dollars_and_yen() -> None:
    assert {c: currency_exponent(c) for c in ("GBP", "EUR", "USD", "JPY")} == {
        "GBP": 2,
        "EUR": 2,
        "USD": 2,
        "JPY": 0,
    }


@given(
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    units=st.integers(min_value=0, max_value=10**12),
)
def test_minor_units_round_trip_exactly(currency: str, units: int) -> None:
    assert to_minor_units(from_minor_units(units, currency)) == units


@given(
    currency=st.sampled_from(sorted(CURRENCY_EXPONENTS)),
    amount=st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=4),
)
def test_an_amount_converts_exactly_or_is_refused(currency: str, amount: Decimal) -> None:
    money = Money(amount, currency)
    try:
        units = to_minor_units(money)
    except errors.AmountNotRepresentable:
        # Refused only when the amount has digits below the currency's minor unit.
        assert amount != amount.quantize(Decimal(1).scaleb(-CURRENCY_EXPONENTS[currency]))
    else:
        assert from_minor_units(units, currency).amount == amount


def test_booking_id_is_read_from_metadata_only_when_it_is_a_uuid() -> None:
    booking = uuid.uuid4()
    assert booking_id_from_metadata(str(booking)) == booking
    assert booking_id_from_metadata("not-a-booking") is None
    assert booking_id_from_metadata(None) is None
    assert booking_id_from_metadata(42) is None
