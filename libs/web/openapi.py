"""The OpenAPI document of each HTTP service says what its server answers.

Litestar documents a 400 with its own exception body (`status_code`, `detail`, `extra`), which
`libs.web.errors` never sends, and nothing of what the guard, a lookup or an outage answers; it
also drops the constraints of optional parameters (and any `ge=0`). `document` rewrites every
operation from what its route is:

- public routes answer no error; the others can answer 401 (no valid key or admin token), 403
  (a revoked key; admin routes take a token, not a key) and 503 with Retry-After (the database,
  or the service that owns what is asked, cannot answer now);
- a path parameter can name nothing the caller may see: 404;
- query or header parameters and bodies are checked: 400; a body can be too large: 413;
- whatever else a route answers it says in `opt={"errors": {status: why}}`.

Each error status carries the one error body of the product's API families, `ErrorBody`.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.params import ParameterKwarg
from litestar.routes import HTTPRoute

from contracts.agent_runtime import DiagnosticError
from contracts.tasks import ErrorBody
from libs.web.diagnostics import AGENT_PREFIX
from libs.web.errors import RETRY_AFTER_S, WWW_AUTHENTICATE
from libs.web.session import COOKIE, accepts_session

# A route handler's `opt` key: the error statuses it answers beyond those its kind implies.
ERRORS = "errors"

COMPONENTS = "#/components/schemas/{name}"
API_KEY, ADMIN_TOKEN, SESSION_TOKEN = "apiKey", "adminToken", "sessionToken"
SIGN_IN_COOKIE = "githubSignIn"

WHY = {
    400: "The request is not valid: a parameter or the body breaks the schema, or what it asks is not "
    "possible now. `error` says which.",
    401: "No API key, or one that is not valid: send `Authorization: Bearer <key>`.",
    403: "The API key was revoked.",
    404: "Not found: no such id, or one of another workspace.",
    413: "The body is larger than this server takes, or than an event may be.",
    503: "The database, or the service that owns what is asked, cannot answer now: try again after "
    "`Retry-After` seconds.",
}
ADMIN_401 = "No admin token or a wrong one (`Authorization: Bearer <admin token>`), or the admin API is off."

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document(app: Litestar) -> None:
    """Rewrites the app's document in place; call it in `create_app`, before the document is
    first served (Litestar renders it once, on first use)."""
    openapi = app.openapi_schema
    handlers = _handlers(app)
    error_body = register(openapi, ErrorBody)
    # The agent runtime family (spec 002) answers its errors in its own envelope.
    agent_paths = any(path.startswith(AGENT_PREFIX) for path in openapi.paths or {})
    diagnostic_body = register(openapi, DiagnosticError) if agent_paths else error_body
    schemes = {
        API_KEY: SecurityScheme(type="http", scheme="bearer", description="An API key of the workspace."),
        ADMIN_TOKEN: SecurityScheme(type="http", scheme="bearer", description="The admin token (ADMIN_TOKEN)."),
    }
    if agent_paths:
        described = "An agent session's token (`ags_...`), shown once, when it is made."
        schemes[SESSION_TOKEN] = SecurityScheme(type="http", scheme="bearer", description=described)
    if any(accepts_session(path) for path in openapi.paths or {}):
        schemes[SIGN_IN_COOKIE] = SecurityScheme(
            type="apiKey",
            security_scheme_in="cookie",
            name=COOKIE,
            description="The GitHub sign-in cookie (GET /api/auth/github); a change made with it alone also needs "
            "the X-Requested-With header.",
        )
    _components(openapi).security_schemes = schemes
    for path, item in (openapi.paths or {}).items():
        agent = path.startswith(AGENT_PREFIX)
        for method in _METHODS:
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            handler = handlers.get((path, method))
            if handler is not None:
                _optional_parameters(operation, handler)
                operation.security = _security(handler, agent)
                if operation.security and accepts_session(path):
                    operation.security.append({SIGN_IN_COOKIE: []})
            _errors(operation, handler, diagnostic_body if agent else error_body)


def register(openapi: OpenAPI, struct: type[msgspec.Struct]) -> Reference:
    """`struct`'s JSON Schema (msgspec's, the one the server validates with) as a component,
    with those it refers to; a reference to it."""
    (found,), definitions = msgspec.json.schema_components([struct], ref_template=COMPONENTS)
    components = _components(openapi)
    schemas = components.schemas = dict(components.schemas or {})
    for name, schema in definitions.items():
        if name not in schemas:
            component = as_spec(schema)
            assert isinstance(component, Schema), "a component is a schema, not a reference"
            schemas[name] = component
    return Reference(ref=found["$ref"])


def _components(openapi: OpenAPI) -> Components:
    if not isinstance(openapi.components, Components):
        openapi.components = Components()
    return openapi.components


_ALIASES = Schema.field_aliases()
# Keywords whose value is a schema, a list of schemas, or schemas by name.
_ONE = {"items", "not", "if", "then", "else", "additionalProperties", "contains", "propertyNames"}
_LIST = {"allOf", "anyOf", "oneOf", "prefixItems"}
_MAP = {"properties", "patternProperties", "dependentSchemas"}


def as_spec(schema: dict[str, Any]) -> Schema | Reference:
    """A JSON Schema (as msgspec writes one, or by hand) as Litestar's OpenAPI objects."""
    if "$ref" in schema:
        return Reference(ref=schema["$ref"])
    fields: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ONE and isinstance(value, dict):
            value = as_spec(value)
        elif key in _LIST:
            value = [as_spec(v) for v in value]
        elif key in _MAP:
            value = {k: as_spec(v) for k, v in value.items()}
        elif key == "type":
            value = [OpenAPIType(t) for t in value] if isinstance(value, list) else OpenAPIType(value)
        fields[_ALIASES.get(key) or re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()] = value
    return Schema(**fields)


def _handlers(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    """Each documented operation's route handler, by (path as documented, method)."""
    found = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            for method, (handler, _) in route.route_handler_map.items():
                found[(route.path_format or "/", method.lower())] = handler
    return found


def _security(handler: HTTPRouteHandler, agent: bool = False) -> list[dict[str, list[str]]]:
    if handler.opt.get("public"):
        return []
    if agent:
        return [{SESSION_TOKEN: []}]
    return [{ADMIN_TOKEN if handler.opt.get("admin") else API_KEY: []}]


def _statuses(operation: Operation, handler: HTTPRouteHandler) -> dict[int, str]:
    """What the route can answer besides its success, and why."""
    statuses: dict[int, str] = {}
    if handler.opt.get("admin"):
        statuses |= {401: ADMIN_401, 503: WHY[503]}
    elif not handler.opt.get("public"):
        statuses |= {401: WHY[401], 403: WHY[403], 503: WHY[503]}
    parameters = [p for p in operation.parameters or [] if isinstance(p, Parameter)]
    if any(p.param_in == "path" for p in parameters):
        statuses[404] = WHY[404]
    if operation.request_body is not None or any(p.param_in in ("query", "header") for p in parameters):
        statuses[400] = WHY[400]
    if operation.request_body is not None:
        statuses[413] = WHY[413]
    return statuses | handler.opt.get(ERRORS, {})


def _errors(operation: Operation, handler: HTTPRouteHandler | None, error_body: Reference) -> None:
    responses = {status: r for status, r in (operation.responses or {}).items() if int(status) < 400}
    # Litestar's own 400 describes a body the server never sends, and is there whenever a route
    # has a parameter: a route's errors are what it is, and what it declares.
    declared = {int(status): r.description for status, r in (operation.responses or {}).items() if int(status) >= 400}
    if handler is not None:
        declared = _statuses(operation, handler)
    for status, why in sorted(declared.items()):
        responses[str(status)] = _error_response(status, why or WHY.get(status, ""), error_body)
    operation.responses = dict(sorted(responses.items()))


def _error_response(status: int, why: str, error_body: Reference) -> OpenAPIResponse:
    headers = None
    if status == 503:
        headers = {
            "Retry-After": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.INTEGER, minimum=RETRY_AFTER_S, maximum=RETRY_AFTER_S),
                required=True,
                description="Seconds to wait before trying again.",
            )
        }
    elif status == 401:
        headers = {
            "WWW-Authenticate": OpenAPIHeader(
                schema=Schema(type=OpenAPIType.STRING, const=WWW_AUTHENTICATE),
                required=True,
                description="How to authenticate: a bearer key (or, for the admin API, the admin token).",
            )
        }
    return OpenAPIResponse(
        description=why, headers=headers, content={"application/json": OpenAPIMediaType(schema=error_body)}
    )


def _optional_parameters(operation: Operation, handler: HTTPRouteHandler) -> None:
    """An optional parameter is either sent, as its type, or not: never null, as Litestar
    writes it (`oneOf: [T, null]`), dropping its constraints on the way."""
    kwargs = _parameter_kwargs(handler)
    for parameter in operation.parameters or []:
        if not isinstance(parameter, Parameter) or parameter.required or not isinstance(parameter.schema, Schema):
            continue
        parameter.schema = _not_null(parameter.schema)
        kwarg = kwargs.get(parameter.name)
        if kwarg is not None and isinstance(parameter.schema, Schema):
            for name, keyword in _CONSTRAINTS.items():
                if getattr(kwarg, name) is not None:
                    setattr(parameter.schema, keyword, getattr(kwarg, name))


_CONSTRAINTS = {
    "ge": "minimum",
    "gt": "exclusive_minimum",
    "le": "maximum",
    "lt": "exclusive_maximum",
    "min_length": "min_length",
    "max_length": "max_length",
    "pattern": "pattern",
}


def _parameter_kwargs(handler: HTTPRouteHandler) -> dict[str, ParameterKwarg]:
    found = {}
    for name, field in handler.parsed_fn_signature.parameters.items():
        kwarg = field.kwarg_definition
        if isinstance(kwarg, ParameterKwarg):
            found[kwarg.name or kwarg.query or kwarg.header or kwarg.cookie or name] = kwarg
    return found


def _not_null(schema: Schema) -> Schema | Reference:
    if schema.one_of:
        kept = [s for s in schema.one_of if not (isinstance(s, Schema) and s.type == OpenAPIType.NULL)]
        if len(kept) == 1:
            inner = kept[0]
            if isinstance(inner, Reference):
                return inner
            # What Litestar put beside the oneOf (a description, a pattern) belongs to the value.
            for name in ("description", "pattern", "title", "default"):
                if getattr(inner, name) is None and getattr(schema, name) is not None:
                    setattr(inner, name, getattr(schema, name))
            return inner
    if isinstance(schema.type, list) and OpenAPIType.NULL in schema.type:
        types = [t for t in schema.type if t != OpenAPIType.NULL]
        schema.type = types[0] if len(types) == 1 else types
        if schema.enum is not None:
            schema.enum = [v for v in schema.enum if v is not None]
    return schema
