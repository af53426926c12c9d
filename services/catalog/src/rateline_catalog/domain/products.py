"""Product validation as pure functions (same Issue/PlanInvalid style as plans)."""

from __future__ import annotations

from rateline_catalog.domain.plans import Issue, PlanInvalid, check_code


def check_product(code: str, name: str, description: str | None) -> list[Issue]:
    """Every issue of a new product: a plan-style code, a name that is not blank."""
    issues = check_code(code)
    if not name.strip():
        issues.append(Issue("name", "blank", "must not be blank"))
    if description is not None and not description.strip():
        issues.append(Issue("description", "blank", "omit it or write something"))
    return issues


def validate_product(code: str, name: str, description: str | None) -> None:
    issues = check_product(code, name, description)
    if issues:
        raise PlanInvalid(issues)
