"""Mapping of domain errors to problems."""

from __future__ import annotations

from rateline_invoicing.domain.errors import PeriodError
from rateline_shared.errors import Unprocessable


def period_problem(err: PeriodError, location: str) -> Unprocessable:
    return Unprocessable(
        err.message,
        slug="invalid-period",
        title="Invalid billing period",
        errors=[{"field": err.field, "location": location, "code": err.code, "message": err.message}],
    )
