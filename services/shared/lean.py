"""`LeanRoute`: an APIRoute for hot read endpoints, same declarations, less work per request.

FastAPI's request handler solves every route through its general machinery: for each
dependant it inspects each parameter's annotation again (sequence? parameter model? aliases?)
and validates every declared query parameter, present or not. On `GET /v1/status` (eight query
parameters and the principal dependency) that was over half the CPU of a request, more than
the read-model query itself.

A LeanRoute keeps everything FastAPI derives from the endpoint's signature (the Dependant, the
OpenAPI operation, the ModelFields with their pydantic validators) and replaces only the
per-request solving, for the shapes it supports: path and query parameters of scalar types,
the Request, and sub-dependencies that are coroutine functions of the same shapes. What it
does per request is what `fastapi.dependencies.utils.solve_dependencies` does for those shapes,
in the same order (sub-dependencies first, each skipped once one of its own parameters fails,
then path, then query parameters), with the fields' own `validate`, so the values and the 422
errors are the same; a parameter that is absent gets its default without a validator call, as
FastAPI does unless `validate_default` is set. Anything else (a body, headers, cookies,
security scopes, generator or plain-function dependencies, sequence or model parameters,
aliases) is refused when the route is built, and while the app has `dependency_overrides` the
route uses FastAPI's own handler. The endpoint must return a Response (it has serialised its
document itself).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from copy import deepcopy
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import params
from fastapi import routing as fastapi_routing
from fastapi._compat import ModelField, field_annotation_is_scalar
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_missing_field_error
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = Callable[..., Awaitable[Response]]
IMMUTABLE = (type(None), str, int, float, bool, Enum)


@dataclass(frozen=True)
class _Param:
    name: str
    loc: tuple[str, str]
    field: ModelField
    required: bool
    validate_default: bool
    default: Any
    copy_default: bool  # deepcopy returns an immutable default itself: skip the call

    @classmethod
    def of(cls, field: ModelField, where: str) -> _Param:
        info = field.field_info
        annotation = info.annotation
        if not isinstance(info, params.Param) or field.alias != field.name or info.validation_alias is not None:
            raise TypeError(f"LeanRoute: parameter {field.name!r} has an alias or is not a plain {where} parameter")
        if not field_annotation_is_scalar(annotation) or (
            inspect.isclass(annotation) and issubclass(annotation, BaseModel)
        ):
            raise TypeError(f"LeanRoute: parameter {field.name!r} is not a scalar")
        default = None if info.is_required() else field.default
        return cls(field.name, (where, field.alias), field, info.is_required(), bool(info.validate_default),
                   default, not isinstance(default, IMMUTABLE))  # fmt: skip

    def value(self, received: Mapping[str, Any], values: dict[str, Any], errors: list[Any]) -> None:
        raw = received.get(self.loc[1])
        if raw is None:
            if self.required:
                errors.append(get_missing_field_error(loc=self.loc))
                return
            # as FastAPI does: a mutable default is never shared between requests
            default = deepcopy(self.default) if self.copy_default else self.default
            if not self.validate_default:
                values[self.name] = default
                return
            raw = default
        value, errs = self.field.validate(raw, values, loc=self.loc)
        if errs:
            errors.extend(errs)
        else:
            values[self.name] = value


@dataclass(frozen=True)
class _Plan:
    """What one Dependant needs per request, checked once when the route is built."""

    call: Callable[..., Awaitable[Any]]
    name: str | None
    use_cache: bool
    subs: tuple[_Plan, ...]
    path: tuple[_Param, ...]
    query: tuple[_Param, ...]
    request_names: tuple[str, ...]

    @classmethod
    def of(cls, d: Dependant) -> _Plan:
        call = d.call
        what = getattr(call, "__qualname__", repr(call))
        unsupported = {
            "a body": d.body_params, "headers": d.header_params, "cookies": d.cookie_params,
            "a websocket": d.websocket_param_name, "background tasks": d.background_tasks_param_name,
            "the Response": d.response_param_name, "security scopes": d.security_scopes_param_name,
            "a concurrency limit": d.concurrency,
        }  # fmt: skip
        used = [k for k, v in unsupported.items() if v]
        if used:
            raise TypeError(f"LeanRoute: {what} takes {', '.join(used)}")
        if call is None or not inspect.iscoroutinefunction(call):
            raise TypeError(f"LeanRoute: {what} is not a coroutine function (FastAPI would run it in a thread)")
        names = tuple(n for n in (d.request_param_name, d.http_connection_param_name) if n)
        return cls(call, d.name, d.use_cache, tuple(cls.of(s) for s in d.dependencies),
                   tuple(_Param.of(f, "path") for f in d.path_params),
                   tuple(_Param.of(f, "query") for f in d.query_params), names)  # fmt: skip

    async def solve(self, request: Request, cache: dict[Any, Any]) -> tuple[dict[str, Any], list[Any]]:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for sub in self.subs:
            sub_values, sub_errors = await sub.solve(request, cache)
            if sub_errors:
                errors.extend(sub_errors)
                continue
            if sub.use_cache and sub.call in cache:
                solved = cache[sub.call]
            else:
                solved = await sub.call(**sub_values)
                cache.setdefault(sub.call, solved)
            if sub.name is not None:
                values[sub.name] = solved
        if self.path:
            path_params = request.path_params
            for p in self.path:
                p.value(path_params, values, errors)
        if self.query:
            query = request.query_params
            for p in self.query:
                p.value(query, values, errors)
        for name in self.request_names:
            values[name] = request
        return values, errors


class LeanRoute(APIRoute):
    """An APIRoute solved by `_Plan` (see the module's docstring); OpenAPI is APIRoute's own."""

    def get_route_handler(self) -> Handler:
        fastapi_handler = super().get_route_handler()
        # The handler is built per inclusion; FastAPI's dependant for it is the one that
        # super() just used (the router's and the inclusion's dependencies included).
        effective = _effective(self)
        plan = _Plan.of(effective.dependant)
        overrides = effective.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return await fastapi_handler(request)
            values, errors = await plan.solve(request, {})
            if errors:
                raise RequestValidationError(errors, body=None)
            response = await plan.call(**values)
            if not isinstance(response, Response):
                raise TypeError(f"LeanRoute: {self.path} returned {type(response).__name__}, not a Response")
            return response

        return handler


def _effective(route: APIRoute) -> Any:
    """The route as included (APIRoute.get_route_handler reads the same context variable): its
    dependant and its app's dependency_overrides provider."""
    context_var = getattr(fastapi_routing, "_effective_route_context_var", None)
    context = context_var.get() if context_var is not None else None
    if context is not None and context.original_route is route and context.dependant is not None:
        return context
    return route


def lean_get(router: APIRouter, path: str, **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
    """`@router.get(path, **kwargs)` with a LeanRoute (registered in place, so the routes' order,
    and the OpenAPI document's, stays the order of the module)."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=["GET"], route_class_override=LeanRoute, **kwargs)
        return endpoint

    return register
