"""Provider of the message service (registered on the messages controller)."""

from __future__ import annotations

from uuid import UUID

from litestar.di import NamedDependency

from app.container import Container
from app.messages.service import MessageService


def provide_message_service(container: NamedDependency[Container], user_id: NamedDependency[UUID]) -> MessageService:
    # After ``user_id``: one chain, container → user_id → service (see app/chips/dependencies.py).
    return MessageService(container)
