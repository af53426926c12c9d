"""RFC 9457 problem+json: one exception tree and one set of handlers for every service.

Every error a client can see is a :class:`Problem` (or is mapped to one here), so the body is
always ``application/problem+json`` with a stable ``type`` URI, a ``title``, a human ``detail``
and, for validation failures, a list of field ``errors``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_BASE = "https://rateline.dev/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

logger = logging.getLogger("rateline.errors")


def field_error(field: str, message: str, code: str = "invalid", location: str = "body") -> dict[str, Any]:
    """One entry of a problem's ``errors`` list: which field is wrong, and why."""
    return {"field": field, "location": location, "code": code, "message": message}


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class Problem(Exception):
    """A client-visible error. Subclasses fix status and type; ``detail`` says what happened."""

    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
        status: int | None = None,
        slug: str | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = list(errors or [])
        self.extra = dict(extra or {})
        if status is not None:
            self.status = status
        if slug is not None:
            self.slug = slug
        if title is not None:
            self.title = title

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": problem_type(self.slug),
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class BadRequest(Problem):
    status, slug, title = 400, "bad-request", "Bad request"


class Unauthorized(Problem):
    status, slug, title = 401, "unauthorized", "Unauthorized"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Forbidden"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict"


class PayloadTooLarge(Problem):
    status, slug, title = 413, "payload-too-large", "Payload too large"


class Unprocessable(Problem):
    status, slug, title = 422, "unprocessable", "Unprocessable request"


class ServiceUnavailable(Problem):
    status, slug, title = 503, "service-unavailable", "Service unavailable"


def problem_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _validation_errors(exc: RequestValidationError) -> tuple[int, str, str, list[dict[str, Any]]]:
    errors: list[dict[str, Any]] = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        loc = [str(p) for p in err.get("loc", ())]
        errors.append(
            {
                "field": ".".join(loc[1:] if loc and loc[0] in {"body", "query", "path"} else loc),
                "location": loc[0] if loc else "body",
                "code": err.get("type", "invalid"),
                "message": err.get("msg", "invalid value"),
            }
        )
    if malformed:
        return 400, "malformed-json", "The request body is not valid JSON", errors
    return 422, "validation-error", "The request did not validate", errors


def install_problem_handlers(app: FastAPI) -> None:
    """Register the one set of handlers that turns every error into problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.status, exc.body(request.url.path), headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        status, slug, detail, errors = _validation_errors(exc)
        title = "Malformed JSON" if slug == "malformed-json" else "Validation failed"
        problem = Problem(detail, errors=errors, status=status, slug=slug, title=title)
        return problem_response(status, problem.body(request.url.path))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(
            exc.status_code, "http-error"
        )
        problem = Problem(str(exc.detail), status=exc.status_code, slug=slug, title=str(exc.detail))
        return problem_response(exc.status_code, problem.body(request.url.path))

    async def on_integrity(request: Request, exc: Exception) -> JSONResponse:
        logger.info("integrity error mapped to 409: %s", exc)
        problem = Conflict("The request conflicts with existing data (a unique value is taken).")
        return problem_response(409, problem.body(request.url.path))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        problem = Problem(
            "An unexpected error occurred; it has been logged.",
            status=500,
            slug="internal-error",
            title="Internal error",
        )
        return problem_response(500, problem.body(request.url.path))

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(IntegrityError, on_integrity)
    app.add_exception_handler(Exception, on_unexpected)


class FieldError(BaseModel):
    field: str
    location: str
    code: str
    message: str


class ProblemDocument(BaseModel):
    """The RFC 9457 body every error carries (served as application/problem+json)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDocument, "description": desc}
    for status, desc in [
        (400, "Malformed request"),
        (401, "Missing or invalid bearer token"),
        (403, "Token lacks the required scope"),
        (404, "Not found"),
        (409, "Conflict"),
        (422, "Validation failed"),
    ]
}
