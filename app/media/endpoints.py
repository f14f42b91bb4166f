from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import StreamingResponse

from app.auth.dependencies import Authenticator
from app.auth.scopes import Scope
from app.auth.subject import AuthSubject
from app.dependencies import SessionDep, SettingsDep, StateDep
from app.media.limits import LIMITS, MediaType
from app.media.schemas import MediaSettings, MediaSettingsUpdate, UploadRead
from app.media.service import media as media_service
from app.media.storage import MediaStorage, create_storage
from app.stores.auth import MessagesRead, MessagesSend

router = APIRouter(tags=["media"])

# Tenant-wide settings: a key limited to one store may not change them.
MediaSettingsRead = Annotated[AuthSubject, Depends(Authenticator(required_scopes={Scope.stores_read}))]
MediaSettingsWrite = Annotated[
    AuthSubject, Depends(Authenticator(required_scopes={Scope.stores_write}, tenant_wide=True))
]


def get_storage(request: Request, state: StateDep) -> MediaStorage:
    """One storage client per API process, made at first use (boto3's client is thread-safe)."""
    storage: MediaStorage | None = getattr(request.app.state, "media_storage", None)
    if storage is None:
        storage = create_storage(state.settings)
        request.app.state.media_storage = storage
    return storage


StorageDep = Annotated[MediaStorage, Depends(get_storage)]

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The file's bytes as the body, its MIME type as the Content-Type "
        "(`curl --data-binary @foto.jpg -H 'Content-Type: image/jpeg'`).",
        # Every MIME type WhatsApp accepts (the document type takes them all), not `*/*`: others are a 415.
        "content": {
            mime: {"schema": {"type": "string", "format": "binary"}}
            for mime in sorted(LIMITS["document"].mimes)
        },
    }
}


@router.post(
    "/v1/uploads",
    status_code=status.HTTP_201_CREATED,
    summary="Upload media to send (image, video, audio, document)",
    description="WhatsApp's limits: image (JPEG, PNG) 5 MB; video (MP4, 3GPP) 16 MB; audio (AAC, MP4, MPEG, AMR, "
    "OGG/Opus) 16 MB; document 100 MB (PDF, Office, text, CSV, ZIP, or any of the above). The upload can be "
    'sent (`"media": {"upload_id": ...}`) until `expires_at`.',
    responses={
        413: {"description": "Larger than WhatsApp's limit for the type (or MOSTRADOR_MEDIA_MAX_BYTES)."},
        415: {"description": "A MIME type WhatsApp does not accept for the type."},
        422: {"description": "Empty, or the bytes are not of the declared type."},
    },
    openapi_extra=_UPLOAD_BODY,
)
async def create_upload(
    request: Request,
    auth: MessagesSend,
    session: SessionDep,
    settings: SettingsDep,
    storage: StorageDep,
    type: Annotated[
        MediaType | None, Query(description="Send it as this type (default: from the Content-Type).")
    ] = None,
    file_name: Annotated[
        str | None, Query(max_length=255, description="The file's name, shown with a document.")
    ] = None,
) -> UploadRead:
    length = request.headers.get("content-length")
    upload = await media_service.create_upload(
        session,
        storage,
        settings,
        subject=auth,
        chunks=request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=int(length) if length and length.isdigit() else None,
        kind=type,
        file_name=file_name,
    )
    return UploadRead.model_validate(upload, from_attributes=True)


@router.get(
    "/v1/stores/{store_id}/messages/{message_id}/media",
    summary="A message's media file (streamed; Range requests answered with 206)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"*/*": {}}, "description": "The file, with its content type."},
        206: {"content": {"*/*": {}}, "description": "The byte range asked for."},
        404: {"description": "No such message, no media, or not downloaded (yet): `details.state` says."},
        410: {"description": "Deleted by the tenant's retention setting."},
        416: {"description": "The range starts past the end."},
    },
)
async def message_media(
    store_id: str,
    message_id: str,
    request: Request,
    auth: MessagesRead,
    session: SessionDep,
    storage: StorageDep,
) -> StreamingResponse:
    found = await media_service.open_message_media(
        session,
        storage,
        tenant=auth.tenant,
        store_id=store_id,
        message_id=message_id,
        range_header=request.headers.get("range"),
    )
    return StreamingResponse(
        found.body, status_code=found.status_code, headers=found.headers, media_type=found.media_type
    )


@router.get("/v1/media/settings", summary="The tenant's media settings (retention)")
async def get_media_settings(auth: MediaSettingsRead) -> MediaSettings:
    return media_service.settings_of(auth.tenant)


@router.patch("/v1/media/settings", summary="Change the tenant's media settings (retention)")
async def update_media_settings(
    body: MediaSettingsUpdate, auth: MediaSettingsWrite, session: SessionDep
) -> MediaSettings:
    return await media_service.update_settings(session, tenant=auth.tenant, update=body)
