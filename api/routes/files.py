"""``/v1/files``: signed downloads of results kept by the local storage backend."""

from __future__ import annotations

import mimetypes

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep
from api.schemas import ErrorBody
from shared.errors import JobNotFound
from shared.storage.local import LocalStorage

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.get(
    "/{key:path}",
    response_class=StreamingResponse,
    responses={403: {"model": ErrorBody}, 404: {"model": ErrorBody}},
    summary="Download a stored result (signed link)",
)
async def get_file(
    key: str,
    services: ServicesDep,
    expires: int = Query(description="Unix time the link expires at."),
    signature: str = Query(description="HMAC of the key and expiry."),
) -> StreamingResponse:
    """Stream a stored file; 403 when the link expired or was tampered with."""
    storage = services.storage
    if not isinstance(storage, LocalStorage):
        raise JobNotFound("files are served by the storage backend itself")
    storage.verify(key, expires, signature)
    chunks = storage.stream(key)
    first = await anext(chunks)  # raises StorageError before the 200 goes out if missing
    content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"

    async def body():  # type: ignore[no-untyped-def]
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type=content_type,
                             headers={"Cache-Control": "private, max-age=300"})
