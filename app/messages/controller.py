from __future__ import annotations

from typing import Annotated
from uuid import UUID

from litestar import Controller, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter

from app.messages.dependencies import provide_message_service
from app.messages.schemas import MessageIn, MessageOut, MessagePage
from app.messages.service import MessageService

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="The same key on the same chip within 24 hours returns the first message without sending again.",
    ),
]
MessageLimit = Annotated[int, QueryParameter(ge=1, le=100, description="Page size, 1 to 100.")]
Before = Annotated[UUID | None, QueryParameter(description="The last message id of the previous page.")]


class MessagesController(Controller):
    path = "/api/v1/chips/{chip_id:uuid}/messages"
    tags = ["Messages"]
    dependencies = {"message_service": Provide(provide_message_service, sync_to_thread=False)}

    @post("/", status_code=202, operation_id="SendChipMessage")
    async def send_message(
        self,
        chip_id: FromPath[UUID],
        data: JSONBody[MessageIn],
        user_id: NamedDependency[UUID],
        message_service: NamedDependency[MessageService],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[MessageOut]:
        """202 with the new message; 200 with the first one for a repeated ``Idempotency-Key``."""
        message, created = await message_service.send(user_id, chip_id, data, idempotency_key)
        return Response(message, status_code=202 if created else 200)

    @get("/", operation_id="ListChipMessages")
    async def list_messages(
        self,
        chip_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        message_service: NamedDependency[MessageService],
        limit: MessageLimit = 50,
        before: Before = None,
    ) -> MessagePage:
        return await message_service.list(user_id, chip_id, limit=limit, before=before)

    @get("/{message_id:uuid}", operation_id="GetChipMessage")
    async def get_message(
        self,
        chip_id: FromPath[UUID],
        message_id: FromPath[UUID],
        user_id: NamedDependency[UUID],
        message_service: NamedDependency[MessageService],
    ) -> MessageOut:
        return await message_service.get(user_id, chip_id, message_id)
