"""The webhook receiver's SQL: one statement per event (raw SQL: the hot path).

Each statement inserts the envelope id (the unique key makes redelivery a no-op, across restarts),
locks the chip row and decides on the locked, latest row (apply / same / stale / deleting), so
concurrent deliveries of one event, and concurrent events for one chip, stay race-free. Times
written use clock_timestamp() (taken after the row lock), not now() (the statement's start,
possibly before waiting on the lock), so history order is apply order. Status values are spliced
from the enum so the text stays one constant prepared statement.

Liveness: every apply that finds its chip also sets ``last_seen_at`` (the time WHAGO last heard
of it, our clock) in the statement it already runs: the liveness job probes only chips quiet for
WHAGO_LIVENESS_QUIET_SECONDS, so this is what keeps busy chips from ever being probed.

Tenant scope: the last parameter of each apply (``$11`` / ``$6``) is the tenant of the
per-tenant route the event arrived on (NULL on the platform-key route). The chip must belong to
it, whatever the envelope's metadata says: a tenant's key can never move another tenant's chip.
"""

from __future__ import annotations

from app.chips.status import ChipStatus, Source
from app.messages.status import MessageStatus, rank_sql

_DELETING = ChipStatus.DELETING.value

APPLY_STATUS = f"""
WITH ev AS (
    INSERT INTO webhook_events (event_id, event, session_name, outcome)
    VALUES ($1, 'session.status', $2, $3)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), prev AS (
    SELECT c.id, c.user_id, c.status, c.last_status_event_at, c.created_at
    FROM chips c
    WHERE c.session_name = $2
      AND ($4::uuid IS NULL OR c.id = $4)
      AND ($5::uuid IS NULL OR c.user_id = $5)
      AND ($11::uuid IS NULL OR c.user_id = $11)
      AND EXISTS (SELECT 1 FROM ev)
    FOR UPDATE
), decision AS (
    SELECT p.*,
        CASE
            WHEN p.status = '{_DELETING}' THEN 'deleting'
            WHEN $6::varchar IS NULL THEN 'unmapped'
            WHEN p.last_status_event_at IS NOT NULL AND $7 < p.last_status_event_at THEN 'stale'
            WHEN p.status = $6 THEN 'same'
            ELSE 'apply'
        END AS action
    FROM prev p
), changed AS (
    UPDATE chips c SET
        status = $6,
        status_changed_at = CASE WHEN d.action = 'apply' THEN clock_timestamp() ELSE c.status_changed_at END,
        last_status_event_at = $7,
        phone_number = coalesce($8, c.phone_number),
        error = CASE WHEN d.action = 'apply' THEN $9 ELSE c.error END,
        last_seen_at = clock_timestamp(),
        updated_at = clock_timestamp()
    FROM decision d
    WHERE c.id = d.id AND d.action IN ('apply', 'same')
    RETURNING c.id
), history AS (
    INSERT INTO chip_events (chip_id, at, from_status, to_status, source, detail)
    SELECT d.id, clock_timestamp(), d.status, coalesce($6, d.status), '{Source.WEBHOOK.value}',
        CASE d.action
            WHEN 'apply' THEN $10
            WHEN 'stale' THEN 'ignored: older than the last applied status event (' || $10 || ')'
            WHEN 'deleting' THEN 'ignored: chip is being deleted (' || $10 || ')'
            ELSE 'ignored: unhandled WAHA status (' || $10 || ')'
        END
    FROM decision d
    WHERE d.action IN ('apply', 'stale', 'deleting', 'unmapped')
)
SELECT (SELECT count(*) FROM ev) AS fresh, d.id, d.user_id, d.status AS previous, d.action, d.created_at
FROM (SELECT 1) AS one LEFT JOIN decision d ON true
"""

APPLY_MESSAGE = f"""
WITH ev AS (
    INSERT INTO webhook_events (event_id, event, session_name, outcome)
    VALUES ($1, 'message', $2, 'activity')
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), touched AS (
    UPDATE chips c SET last_activity_at = greatest(coalesce(c.last_activity_at, $5), $5),
        last_seen_at = clock_timestamp()
    WHERE c.session_name = $2
      AND ($3::uuid IS NULL OR c.id = $3)
      AND ($4::uuid IS NULL OR c.user_id = $4)
      AND ($6::uuid IS NULL OR c.user_id = $6)
      AND c.status <> '{_DELETING}'
      AND EXISTS (SELECT 1 FROM ev)
    RETURNING c.id
)
SELECT (SELECT count(*) FROM ev) AS fresh, (SELECT count(*) FROM touched) AS touched
"""

# message.ack: dedup, activity (the chip heard from WhatsApp: a liveness signal too), then the
# message's status, forward only. The message is matched by WAHA's id, or by the id we asked WAHA
# to use (``waha_ref``) when our write of WAHA's answer failed after the send. The UPDATE's rank
# condition is re-checked by PostgreSQL on the row's latest version, so concurrent acks of one
# message settle on the highest status whatever their order.
_MESSAGE_RANK = rank_sql("m.status")

APPLY_ACK = f"""
WITH ev AS (
    INSERT INTO webhook_events (event_id, event, session_name, outcome)
    VALUES ($1, 'message.ack', $2, $3)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING 1
), chip AS (
    UPDATE chips c SET last_activity_at = greatest(coalesce(c.last_activity_at, $6), $6),
        last_seen_at = clock_timestamp()
    WHERE c.session_name = $2
      AND ($4::uuid IS NULL OR c.id = $4)
      AND ($5::uuid IS NULL OR c.user_id = $5)
      AND ($12::uuid IS NULL OR c.user_id = $12)  -- a tenant route's events touch that tenant only
      AND c.status <> '{_DELETING}'
      AND EXISTS (SELECT 1 FROM ev)
    RETURNING c.id, c.user_id
), target AS (
    -- two index lookups (an OR would walk the whole chip's log by time)
    SELECT x.id FROM (
        SELECT m.id, m.created_at FROM messages m JOIN chip ON m.chip_id = chip.id WHERE m.waha_message_id = $7
        UNION ALL
        SELECT m.id, m.created_at FROM messages m JOIN chip ON m.chip_id = chip.id WHERE m.waha_ref = $8
    ) x
    ORDER BY x.created_at DESC
    LIMIT 1
), changed AS (
    UPDATE messages m SET
        status = $9::varchar,
        waha_message_id = coalesce(m.waha_message_id, $7),
        error = CASE WHEN $9::varchar = '{MessageStatus.FAILED.value}' THEN $10 ELSE m.error END,
        updated_at = clock_timestamp()
    FROM target t
    WHERE m.id = t.id AND {_MESSAGE_RANK} < $11::int
    RETURNING m.id, m.updated_at
)
SELECT (SELECT count(*) FROM ev) AS fresh, chip.id AS chip_id, chip.user_id,
       (SELECT id FROM target) AS message_id, changed.updated_at AS changed_at
FROM (SELECT 1) AS one LEFT JOIN chip ON true LEFT JOIN changed ON true
"""
