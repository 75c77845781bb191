"""The chip state machine's vocabulary: statuses, history sources, and WAHA's statuses mapped onto ours.

Pure values (no I/O) so schemas, queries, the webhook receiver and the reconciler share one
spelling of every status. Changing a chip's status is ``app.chips.transitions``' job alone.
"""

from __future__ import annotations

from enum import StrEnum


class ChipStatus(StrEnum):
    PROVISIONING = "provisioning"
    STARTING = "starting"
    WAITING_QR = "waiting_qr"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    FAILED = "failed"
    DELETING = "deleting"


class ChipHealth(StrEnum):
    """WHAGO's liveness verdict on a connected chip (its own columns; not a status)."""

    OK = "ok"
    DEGRADED = "degraded"
    UNKNOWN = "unknown"


class Source(StrEnum):
    """Who changed a chip (the history row's ``source``)."""

    API = "api"
    WEBHOOK = "webhook"
    WORKER = "worker"
    RECONCILER = "reconciler"
    ADMIN = "admin"
    LIVENESS = "liveness"


# The one mapping from WAHA session status to chip status. Anything else WAHA may report
# (PASSKEY_* on GOWS) is recorded in history but does not move the chip.
WAHA_TO_CHIP_STATUS: dict[str, ChipStatus] = {
    "STARTING": ChipStatus.STARTING,
    "SCAN_QR_CODE": ChipStatus.WAITING_QR,
    "WORKING": ChipStatus.CONNECTED,
    "STOPPED": ChipStatus.DISCONNECTED,
    "FAILED": ChipStatus.FAILED,
}

# Statuses only WHAGO sets: WAHA's reports never move a chip out of them through the reconciler
# (provisioning and teardown own them), and a webhook never leaves DELETING.
OURS = frozenset({ChipStatus.PROVISIONING, ChipStatus.DELETING})
# Statuses after which a restart means a fresh start (the pre-restart state is not news).
STOPPED_STATES = frozenset({ChipStatus.DISCONNECTED, ChipStatus.FAILED})
