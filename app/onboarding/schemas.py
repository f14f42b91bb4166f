from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

from app.contracts import StatusReasonCode, status_reason_code
from app.kit.types import JsonInt
from app.models import StoreStatus

DEFAULT_TTL_SECONDS = 24 * 3600
MAX_TTL_SECONDS = 7 * 24 * 3600


class OnboardingLinkCreate(BaseModel):
    expires_in: JsonInt = Field(
        DEFAULT_TTL_SECONDS,
        ge=60,
        le=MAX_TTL_SECONDS,
        description="Seconds until the link expires (max 7 days).",
    )


class OnboardingLinkRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    expires_at: datetime
    created_at: datetime


class OnboardingLinkCreated(BaseModel):
    id: uuid.UUID
    url: str = Field(
        description="Hand it to the store's owner. Shown this once: only a hash of its token is kept."
    )
    expires_at: datetime


class OnboardingLinkList(BaseModel):
    items: list[OnboardingLinkRead]


class OnboardingStatus(BaseModel):
    status: StoreStatus
    store_name: str | None = Field(description="Null once connected: the link then shows nothing more.")
    status_reason: str | None = None
    expires_at: datetime | None = None

    @computed_field(  # type: ignore[prop-decorator]
        description="As `status_reason_code` of a store: `qr_expired`, `banned`, `logged_out`, "
        "`connection_error` or null."
    )
    @property
    def status_reason_code(self) -> StatusReasonCode | None:
        return status_reason_code(self.status.value, self.status_reason)
