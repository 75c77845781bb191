"""WAHA operation labels: one series per code path, and no phone number or message id in a label
(the client percent-encodes chat ids, so ``@`` arrives as ``%40``)."""

from __future__ import annotations

import pytest

from app.core.metrics import waha_operation


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/api/sessions/chip_0123abcd/start", "POST /api/sessions/{id}/start"),
        (
            "/api/chip_0123abcd/chats/5521999990000%40c.us/messages/true_5521999990000%40c.us_3EB04A1F6F12",
            "POST /api/{id}/chats/{id}/messages/{id}",
        ),
        ("/api/chip_0123abcd/chats/5521999990000@c.us/messages?limit=1", "POST /api/{id}/chats/{id}/messages"),
    ],
)
def test_waha_operation_labels_carry_no_ids(path, label):
    assert waha_operation("post", path) == label
