from __future__ import annotations

from typing import Literal

import msgspec

from app.chips.schemas import PhoneDigits


class ScanIn(msgspec.Struct, forbid_unknown_fields=True):
    # the number the emulated phone links as (random when omitted)
    phone_number: PhoneDigits | None = None


class FaultIn(msgspec.Struct, forbid_unknown_fields=True):
    # "zombie": WORKING, but nothing flows and liveness probes fail; null: back to normal
    fault: Literal["zombie"] | None
    survive_restart: bool = False
