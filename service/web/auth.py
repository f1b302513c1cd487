"""API keys the DA way: ``X-Api-Key`` (any case), ``X-Access-Token`` or legacy ``X-DA-Access-Key``.

None given -> 400; both X-Api-Key and X-Access-Token -> 400; an unknown key -> 401 "Access denied
due to invalid header". Keys are compared in constant time (``hmac.compare_digest`` against every
configured key, no early exit) and never logged; a job's owner is the key's SHA-256 digest. With
no keys configured authentication is off (``spinout serve`` logs a warning) and every request acts
as the owner "anonymous".
"""

from __future__ import annotations

import hmac

from fastapi import Request

from service.jobs.records import owner_of

from .errors import ApiError

__all__ = ["authenticate"]

DENIED = "Access denied due to invalid header"


async def authenticate(request: Request) -> str:
    """The owner of this request (the ``Owner`` dependency); raises ApiError 400/401."""
    headers = request.headers  # case-insensitive
    api_key = headers.get("x-api-key")
    token = headers.get("x-access-token")
    legacy = headers.get("x-da-access-key")
    if api_key is not None and token is not None:
        raise ApiError(400, "give either X-Api-Key or X-Access-Token, not both")
    keys: list[bytes] = request.app.state.service.api_keys
    if not keys:
        return "anonymous"
    given = api_key if api_key is not None else token if token is not None else legacy
    if given is None:
        raise ApiError(400, "missing authentication header: send X-Api-Key (or X-Access-Token)")
    candidate = given.encode()
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(candidate, key)
    if not matched:
        raise ApiError(401, DENIED)
    return owner_of(given)
