"""Money: a ``Decimal`` amount that always travels with its ISO 4217 currency.

Floats never touch money. Amounts keep whatever precision the step that produced them has
(rated usage keeps the tariff's precision); rounding to the currency's minor unit happens only
at the named steps that call :meth:`Money.round_minor` (invoice lines; see docs/architecture.md).

The minor unit of a currency comes from CLDR through Babel, a maintained table, rather than a
hand-written list that would drift (JPY has 0 decimals, BHD 3, EUR 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Any

from babel.numbers import get_currency_precision, list_currencies
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

_KNOWN_CURRENCIES = frozenset(list_currencies())
_DECIMAL_RE = re.compile(r"^-?\d{1,15}(\.\d{1,12})?$")

# The one rounding rule for amounts that reach an invoice (ISO minor unit, half up).
INVOICE_ROUNDING = ROUND_HALF_UP


class MoneyError(ValueError):
    """Raised on an unknown currency, a currency mismatch or a malformed amount."""


def is_currency(code: str) -> bool:
    return code in _KNOWN_CURRENCIES


def minor_units(currency: str) -> int:
    """Number of decimals of the currency's minor unit (EUR 2, JPY 0, BHD 3)."""
    if not is_currency(currency):
        raise MoneyError(f"unknown currency {currency!r}")
    return int(get_currency_precision(currency))


def parse_decimal(value: Any) -> Decimal:
    """Parse a decimal *string*. Floats and ints are refused: JSON numbers lose precision."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("must be a decimal string such as \"12.50\", not a JSON number")
    if not _DECIMAL_RE.match(value.strip()):
        raise ValueError(f"{value!r} is not a decimal string such as \"12.50\"")
    try:
        return Decimal(value.strip())
    except InvalidOperation as exc:  # pragma: no cover - the regex guards this
        raise ValueError(f"{value!r} is not a decimal") from exc


def _format_decimal(value: Decimal) -> str:
    return format(value, "f")


DecimalString = Annotated[
    Decimal,
    BeforeValidator(parse_decimal),
    PlainSerializer(_format_decimal, return_type=str, when_used="always"),
    Field(json_schema_extra={"type": "string", "pattern": _DECIMAL_RE.pattern}),
]
"""A Decimal that is a string on the wire, in both directions."""


def _check_currency(value: Any) -> str:
    if not isinstance(value, str) or not is_currency(value):
        raise ValueError(f"{value!r} is not an ISO 4217 currency code")
    return value


CurrencyCode = Annotated[
    str,
    BeforeValidator(_check_currency),
    Field(min_length=3, max_length=3, examples=["EUR"]),
]


@dataclass(frozen=True, slots=True)
class Money:
    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal):
            raise MoneyError("Money.amount must be a Decimal")
        if not is_currency(self.currency):
            raise MoneyError(f"unknown currency {self.currency!r}")

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def of(cls, amount: str | Decimal, currency: str) -> Money:
        return cls(parse_decimal(amount), currency)

    def _same(self, other: Money) -> None:
        if self.currency != other.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        if isinstance(factor, float):
            raise MoneyError("refusing to multiply money by a float")
        return Money(self.amount * factor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def round_minor(self, rounding: str = INVOICE_ROUNDING) -> Money:
        """Round to the currency's minor unit: the named step used for invoice lines."""
        exp = Decimal(1).scaleb(-minor_units(self.currency))
        return Money(self.amount.quantize(exp, rounding=rounding), self.currency)

    def to_json(self) -> dict[str, str]:
        return {"amount": _format_decimal(self.amount), "currency": self.currency}


class MoneyModel(BaseModel):
    """Money on the wire: ``{"amount": "12.3400", "currency": "EUR"}``."""

    model_config = ConfigDict(extra="forbid")

    amount: DecimalString
    currency: CurrencyCode

    def to_money(self) -> Money:
        return Money(self.amount, self.currency)

    @classmethod
    def from_money(cls, money: Money) -> MoneyModel:
        return cls(amount=money.amount, currency=money.currency)
