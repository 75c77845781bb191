"""Message statuses, their order, and the WAHA ack codes that set them (api.md "Message")."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"


# A status only ever moves to a higher rank (acks arrive out of order and more than once).
# ``failed`` sits between sent and delivered: an ERROR after SERVER fails the message, but a
# DEVICE/READ ack proves it arrived, whatever an earlier ERROR said; nothing moves it back to sent.
RANK: dict[MessageStatus, int] = {
    MessageStatus.PENDING: 0,
    MessageStatus.SENT: 1,
    MessageStatus.FAILED: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.READ: 4,
}

# WAHA ack codes (waha.md §4.4): -1 ERROR, 0 PENDING, 1 SERVER, 2 DEVICE, 3 READ, 4 PLAYED.
ACK_TO_STATUS: dict[int, MessageStatus] = {
    -1: MessageStatus.FAILED,
    0: MessageStatus.PENDING,
    1: MessageStatus.SENT,
    2: MessageStatus.DELIVERED,
    3: MessageStatus.READ,
    4: MessageStatus.READ,
}


def rank_sql(column: str) -> str:
    """A SQL expression for the rank of ``column`` (constant text: spliced from the enum)."""
    whens = " ".join(f"WHEN '{status.value}' THEN {rank}" for status, rank in RANK.items())
    return f"(CASE {column} {whens} ELSE -1 END)"
