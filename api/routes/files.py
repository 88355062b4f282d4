"""``/v1/files``: signed downloads of results kept by the local storage backend."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep
from api.schemas import ErrorBody
from api.streaming import open_stream
from shared.errors import JobNotFound
from shared.storage.destinations import default_storage
from shared.storage.local import LocalStorage, media_type

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
    expires: str = Query(description="Unix time the link expires at."),
    signature: str = Query(description="HMAC of the key and expiry."),
) -> StreamingResponse:
    """Stream a stored file; 403 when the link expired or was tampered with."""
    storage = default_storage(services.storage)
    if not isinstance(storage, LocalStorage):
        raise JobNotFound("files are served by the storage backend itself")
    storage.verify(key, expires, signature)
    body = await open_stream(storage, key, missing=f"no stored file {key!r}")
    return StreamingResponse(body, media_type=media_type(key),
                             headers={"Cache-Control": "private, max-age=300"})
