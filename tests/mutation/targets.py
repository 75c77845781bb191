"""Module → the test files that cover it (each mutant runs only these, with ``-x``)."""

from __future__ import annotations

TARGETS: dict[str, list[str]] = {
    # the webhook apply path: statuses (test_webhooks), chip.status/chip.qr events (test_events),
    # message.ack (test_messages)
    "app/webhooks/service.py": ["tests/api/test_webhooks.py", "tests/api/test_events.py", "tests/api/test_messages.py"],
    "app/webhooks/queries.py": ["tests/api/test_webhooks.py", "tests/api/test_events.py", "tests/api/test_messages.py"],
    "app/chips/transitions.py": [
        "tests/api/test_transitions.py",
        "tests/api/test_chips.py",
        "tests/api/test_chip_actions.py",
        "tests/api/test_events.py",
    ],
    "app/chips/queries.py": [
        "tests/api/test_chip_queries.py",
        "tests/api/test_chips.py",
        "tests/api/test_pagination.py",
        "tests/api/test_chip_actions.py",
    ],
    "app/chips/service.py": [
        "tests/api/test_chip_service.py",
        "tests/api/test_chips.py",
        "tests/api/test_pagination.py",
        "tests/api/test_chip_actions.py",
    ],
    "app/core/security.py": ["tests/api/test_auth.py", "tests/api/test_security.py", "tests/api/test_tokens.py"],
    "app/auth/service.py": [
        "tests/api/test_auth.py",
        "tests/api/test_security.py",
        "tests/api/test_revocation_cache.py",
    ],
    "app/core/ratelimit.py": ["tests/api/test_ratelimit.py", "tests/api/test_security.py", "tests/api/test_auth.py"],
    "app/reconciler/service.py": ["tests/worker/test_reconciler.py"],
}
