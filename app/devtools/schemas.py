from __future__ import annotations

import msgspec

from app.chips.schemas import PhoneDigits


class ScanIn(msgspec.Struct, forbid_unknown_fields=True):
    # the number the emulated phone links as (random when omitted)
    phone_number: PhoneDigits | None = None
