"""The portal at `GET /`: customers, providers and auditors see their contracts' service
levels, statements, derivations and disputes, and download CSV or a printable statement.

Server-side pages from the read model (the same store functions as the API); the pasted
token is kept in an HttpOnly, SameSite=Strict cookie (services/statements/session.py).
Reviews are summarised from the statements' review lines, so no page ever waits on
another service.
"""

from __future__ import annotations

from importlib import resources
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.statements import pages, session, store, views
from services.statements.markup import Html
from shared.runtime import RuntimeDep
from shared.web import Problem

router = APIRouter(include_in_schema=False)
MAX_FORM_BYTES = 16 * 1024
ASSETS = {"portal.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def page(body: Html, status: int = 200) -> HTMLResponse:
    """A portal page: never cached (it shows private data), no framing, no inline script."""
    return HTMLResponse(
        body,
        status,
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


@router.get("/")
async def home(request: Request, runtime: RuntimeDep) -> Response:
    """The sign-in form, or the contracts the signed-in token may see."""
    principal = session.signed_in(request)
    if principal is None:
        return page(pages.sign_in())
    contracts = await views.visible_contracts(runtime.engine, principal)
    listed = [(c, await store.list_statements(runtime.engine, c)) for c in contracts]
    return page(pages.index(principal, listed))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """Check the pasted token and keep it in the session cookie."""
    if not session.same_origin(request):
        return page(pages.sign_in("Sign in from this site's own page."), 403)
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return page(pages.sign_in("That is too long to be a token."), 413)
    fields = parse_qs(body.decode("utf-8", "replace"))
    token = fields.get("token", [""])[0].strip().removeprefix("Bearer ").strip()
    try:
        session.check_token(request, token)
    except Problem as problem:
        return page(pages.sign_in(f"{problem.title}: {problem.detail}"), problem.status)
    response = RedirectResponse("/", status_code=303)
    session.start(response, request, token)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    session.end(response, request)
    return response


@router.get("/contracts/{contract_id}")
async def contract(contract_id: str, request: Request, runtime: RuntimeDep) -> Response:
    """One contract's charts, statements, derivations and disputes."""
    principal = session.signed_in(request)
    if principal is None:
        return RedirectResponse("/", status_code=303)
    if not principal.may_see(contract_id):
        return page(pages.not_found(principal, f"No contract {contract_id!r}."), 404)
    statements = await store.list_statements(runtime.engine, contract_id)
    disputes = await store.list_disputes(runtime.engine, contract_id)
    breaches = await store.ticket_breaches(runtime.engine, contract_id)
    view = views.overview(contract_id, statements, disputes, breaches)
    return page(pages.contract(principal, view, request.app.state.keyring))


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    """The portal's own assets (no CDN): served from the package, cached for an hour."""
    if name not in ASSETS:
        raise Problem(404, "Not found", f"no asset {name!r}")
    content = resources.files("services.statements").joinpath("static", name).read_bytes()
    return Response(
        content,
        media_type=ASSETS[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
