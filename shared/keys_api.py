"""`GET /.well-known/slapay-keys.json`: the public keys that verify final statements, as a
JWK set. The ledger and the statements service both serve it (public: no token)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shared.signing import KEYS_PATH, Keyring

router = APIRouter(tags=["signatures"])


@router.get(KEYS_PATH)
async def published_keys(request: Request) -> JSONResponse:
    """The public keys that verify final statements; `status` says which one signs."""
    keyring: Keyring = request.app.state.keyring
    return JSONResponse(keyring.jwks(), headers={"Cache-Control": "public, max-age=300"})
