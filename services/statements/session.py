"""Who is calling the statements service: a bearer token, or the portal's session cookie.

The portal keeps the pasted token in an HttpOnly, SameSite=Strict cookie; the read-only
API routes accept that cookie in place of the `Authorization` header, so the portal's
download links work in a browser. The token is checked exactly as shared.web does it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.auth import READER_ROLES, InvalidToken, Principal
from shared.web import Problem, current_principal, require, verify_request_token

COOKIE = "slapay_session"
_bearer = HTTPBearer(auto_error=False)
_readers = require(*READER_ROLES)


def reader(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """A dependency: the caller, by bearer token or session cookie; readers only (403)."""
    if credentials is None and (token := request.cookies.get(COOKIE)):
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    return _readers(current_principal(request, credentials))


Reader = Annotated[Principal, Depends(reader)]


def signed_in(request: Request) -> Principal | None:
    """The portal's visitor, or None without a valid reader's session cookie."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        principal = verify_request_token(request, token)
    except InvalidToken:
        return None
    return principal if principal.role in READER_ROLES else None


def check_token(request: Request, token: str) -> Principal:
    """A pasted token, verified; `Problem` (401/403) says what is wrong with it."""
    try:
        principal = verify_request_token(request, token)
    except InvalidToken as exc:
        raise Problem(401, "Invalid token", str(exc)) from exc
    if principal.role not in READER_ROLES:
        raise Problem(403, "Forbidden", f"role {principal.role!r} may not read statements")
    return principal


def start(response: Response, request: Request, token: str) -> None:
    """Keep the token in the session cookie (Secure where the request came over HTTPS)."""
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=_https(request),
        path="/",
    )


def end(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=_https(request)
    )


def _https(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    return request.url.scheme == "https" or forwarded == "https"


def same_origin(request: Request) -> bool:
    """A form post from our own pages (a login-CSRF guard): its `Origin` is ours; without
    one (or `null`), the browser's `Sec-Fetch-Site` must say so; a client that sends
    neither is no browser, so no victim of forged requests."""
    origin = request.headers.get("origin")
    if origin and origin != "null":
        host = request.headers.get("host", "")
        return origin in (f"http://{host}", f"https://{host}")
    site = request.headers.get("sec-fetch-site")
    return site in ("same-origin", "none") if site else origin is None
