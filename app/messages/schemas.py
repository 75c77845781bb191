"""Message bodies (api.md "Message"): one of text, image or file, media by https URL."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit
from uuid import UUID

import msgspec

from app.messages.status import MessageStatus

# digits, or a WhatsApp chat id such as 5511999999999@c.us / …@g.us
Recipient = Annotated[
    str, msgspec.Meta(pattern=r"^(\+?[0-9]{6,15}|[0-9A-Za-z._:-]{1,64}@(c|g|s)\.(us|whatsapp\.net))$")
]
MAX_URL = 2048
# WAHA downloads the file itself; we only check the shape: https, a host, no spaces or credentials
MediaUrl = Annotated[str, msgspec.Meta(min_length=9, max_length=MAX_URL, pattern=r"^https://[^\s@/?#]+(?:[/?#]\S*)?$")]
Mimetype = Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+$")]
Filename = Annotated[str, msgspec.Meta(min_length=1, max_length=255, pattern=r"^[^/\\\x00-\x1f]+$")]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
Caption = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]


class MediaIn(msgspec.Struct, forbid_unknown_fields=True):
    url: MediaUrl
    mimetype: Mimetype | None = None
    filename: Filename | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise ValueError("media url must be an https URL with a host")


class MessageIn(msgspec.Struct, forbid_unknown_fields=True):
    to: Recipient
    text: Text | None = None
    image: MediaIn | None = None
    file: MediaIn | None = None
    caption: Caption | None = None

    def __post_init__(self) -> None:
        given = [name for name in ("text", "image", "file") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, image or file")
        if self.caption is not None and self.text is not None:
            raise ValueError("caption goes with an image or a file, not with text")

    @property
    def kind(self) -> str:
        return "text" if self.text is not None else "image" if self.image is not None else "file"

    @property
    def media(self) -> MediaIn | None:
        return self.image or self.file


class MediaOut(msgspec.Struct):
    url: str
    mimetype: str | None
    filename: str | None


class MessageOut(msgspec.Struct):
    id: UUID
    chip_id: UUID
    to: str
    kind: str
    text: str | None
    media: MediaOut | None
    status: MessageStatus
    error: str | None
    waha_message_id: str | None
    created_at: datetime
    updated_at: datetime


class MessagePage(msgspec.Struct):
    """Newest first; pass ``next_before`` as ``before`` for the next (older) page, null at the end."""

    items: list[MessageOut]
    next_before: UUID | None
