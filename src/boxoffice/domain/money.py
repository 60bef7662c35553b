"""Money is a Decimal amount in a currency; it is rendered as a string, never a float."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise TypeError("Money.amount must be a Decimal")

    def times(self, quantity: int) -> Money:
        return Money((self.amount * quantity).quantize(CENT, ROUND_HALF_EVEN), self.currency)

    def to_json(self) -> dict[str, str]:
        return {
            "amount": str(self.amount.quantize(CENT, ROUND_HALF_EVEN)),
            "currency": self.currency,
        }
