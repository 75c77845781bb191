"""The proxy pool: admin CRUD over HTTP, encryption at rest and key rotation, race-free
assignment, health checks, and moving chips off proxies that are disabled, shrunk or removed.

HTTP tests go through the served API; service tests (assign, check_health, reencrypt_all) call
``ProxyService`` on the test's own loop with its own pool, against the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections import Counter

import msgspec
import pytest
import redis as sync_redis
from cryptography.fernet import Fernet, InvalidToken

from tests.support.api import register
from tests.support.env import TEST_REDIS_URL
from tests.support.errors import assert_error

pytestmark = pytest.mark.anyio

PATH = "/api/v1/admin/proxies"
SECRET = "pa$$-Sup3r-s3cret-9f1c"  # must never leave the database except towards WAHA
USERNAME = "proxy-user-7d2e"


# ---------------------------------------------------------------------------- fixtures / helpers
@pytest.fixture
async def proxies(settings, clean_state):
    """A ProxyService on the test loop (db.fetch uses the running loop's pool)."""
    from app.container import Container
    from app.core import db
    from app.proxies.service import ProxyService

    await db.start_pool(settings)
    container = Container.build(settings)
    try:
        yield ProxyService(container)
    finally:
        await container.aclose()
        await db.close_pool()


async def add_proxy(
    conn,
    *,
    country: str | None = None,
    max_chips: int = 10,
    port: int = 3128,
    enabled: bool = True,
    healthy: bool = True,
    password: str | None = None,
    box=None,
) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO proxies (scheme, host, port, username, password_encrypted, country, max_chips, enabled, healthy)"
        " VALUES ('http', '127.0.0.1', $1, $2, $3, $4, $5, $6, $7) RETURNING id",
        port,
        USERNAME if password else None,
        box.encrypt(password) if password else None,
        country,
        max_chips,
        enabled,
        healthy,
    )


async def add_user(conn) -> uuid.UUID:
    return await conn.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
        f"seed-{uuid.uuid4().hex[:12]}@example.com",
    )


async def add_chip(
    conn,
    user_id: uuid.UUID,
    *,
    proxy_id: uuid.UUID | None = None,
    country: str | None = None,
    status: str = "connected",
) -> uuid.UUID:
    chip_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO chips (id, user_id, alias, status, session_name, proxy_id, proxy_country)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        chip_id,
        user_id,
        f"chip-{chip_id.hex[:6]}",
        status,
        "chip_" + chip_id.hex,
        proxy_id,
        country,
    )
    return chip_id


async def chip_row(conn, chip_id):
    return await conn.fetchrow("SELECT proxy_id, proxy_dirty FROM chips WHERE id = $1", chip_id)


def rotation_job(chip_id) -> dict | None:
    raw = sync_redis.Redis.from_url(TEST_REDIS_URL).get(f"saq:job:whago:rotate:{chip_id}")
    return json.loads(raw) if raw else None


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert "gAAAAA" not in text  # nor the Fernet token


# ---------------------------------------------------------------------------- CRUD over HTTP
async def test_admin_crud_never_reveals_the_password(client, admin, conn, settings):
    body = {
        "scheme": "http",
        "host": "proxy.example.net",
        "port": 3128,
        "username": USERNAME,
        "password": SECRET,
        "country": "BR",
        "max_chips": 5,
    }
    created = await client.post(PATH, json=body, headers=admin["headers"])
    assert created.status_code == 201, created.text
    assert_no_secret(created.text)
    proxy = created.json()
    assert "password" not in proxy
    assert "password_encrypted" not in proxy
    assert proxy["has_password"] is True
    assert proxy["chips"] == 0
    assert (proxy["scheme"], proxy["host"], proxy["port"], proxy["username"], proxy["country"], proxy["max_chips"]) == (
        "http",
        "proxy.example.net",
        3128,
        USERNAME,
        "br",
        5,
    )
    assert proxy["enabled"] is True
    assert proxy["healthy"] is True

    # at rest: a Fernet token under the configured key, not the plaintext
    stored = await conn.fetchval("SELECT password_encrypted FROM proxies WHERE id = $1", uuid.UUID(proxy["id"]))
    assert stored != SECRET
    assert SECRET not in stored
    assert stored.startswith("gAAAAA")
    assert Fernet(settings.encryption_key.split(",")[0]).decrypt(stored.encode()).decode() == SECRET

    # chip counts: two chips on it
    owner = await add_user(conn)
    for _ in range(2):
        await add_chip(conn, owner, proxy_id=uuid.UUID(proxy["id"]))
    listing = await client.get(PATH, headers=admin["headers"])
    assert listing.status_code == 200
    assert_no_secret(listing.text)
    assert [(p["id"], p["chips"], p["has_password"]) for p in listing.json()] == [(proxy["id"], 2, True)]

    # PATCH without the password keeps it; PATCH password=null clears it
    patched = await client.patch(
        f"{PATH}/{proxy['id']}", json={"max_chips": 7, "country": "pt"}, headers=admin["headers"]
    )
    assert patched.status_code == 200, patched.text
    assert_no_secret(patched.text)
    assert patched.json()["max_chips"] == 7
    assert patched.json()["country"] == "pt"
    assert patched.json()["has_password"] is True
    assert await conn.fetchval("SELECT password_encrypted FROM proxies WHERE id = $1", uuid.UUID(proxy["id"])) == stored

    new_secret = SECRET + "-2"
    patched = await client.patch(f"{PATH}/{proxy['id']}", json={"password": new_secret}, headers=admin["headers"])
    assert patched.status_code == 200
    assert new_secret not in patched.text
    cleared = await client.patch(f"{PATH}/{proxy['id']}", json={"password": None}, headers=admin["headers"])
    assert cleared.json()["has_password"] is False
    assert await conn.fetchval("SELECT password_encrypted FROM proxies WHERE id = $1", uuid.UUID(proxy["id"])) is None

    socks = await client.post(
        PATH, json={"scheme": "socks5", "host": "10.0.0.7", "port": 1080}, headers=admin["headers"]
    )
    assert socks.status_code == 201
    assert socks.json()["has_password"] is False
    assert socks.json()["max_chips"] == 10
    assert [p["id"] for p in (await client.get(PATH, headers=admin["headers"])).json()] == [
        proxy["id"],
        socks.json()["id"],
    ]

    deleted = await client.delete(f"{PATH}/{socks.json()['id']}", headers=admin["headers"])
    assert deleted.status_code == 204
    assert [p["id"] for p in (await client.get(PATH, headers=admin["headers"])).json()] == [proxy["id"]]


BAD_PROXIES = [
    {"scheme": "https", "host": "p.example", "port": 3128},
    {"scheme": "ftp", "host": "p.example", "port": 3128},
    {"scheme": "http", "host": "p.example", "port": 0},
    {"scheme": "http", "host": "p.example", "port": 65536},
    {"scheme": "http", "host": "p.example", "port": 3128, "country": "BRA"},
    {"scheme": "http", "host": "p.example", "port": 3128, "country": "b1"},
    {"scheme": "http", "host": "p.example", "port": 3128, "max_chips": -1},
    {"scheme": "http", "host": "", "port": 3128},
    {"scheme": "http", "host": "bad host/with path", "port": 3128},
    {"scheme": "http", "host": "p.example", "port": 3128, "enabled": False},  # unknown on create
    {"scheme": "http", "host": "p.example", "port": 3128, "password_encrypted": "x"},
    {"host": "p.example", "port": 3128},
]


@pytest.mark.parametrize("body", BAD_PROXIES)
async def test_bad_proxy_bodies_are_400_and_create_nothing(client, admin, body):
    assert_error(await client.post(PATH, json=body, headers=admin["headers"]), 400, "validation_error")
    assert (await client.get(PATH, headers=admin["headers"])).json() == []


@pytest.mark.parametrize(
    "body",
    [
        {"scheme": "https"},
        {"port": 70000},
        {"country": "xyz"},
        {"host": None},
        {"chips": 3},
        {"has_password": False},
        {"max_chips": "many"},
    ],
)
async def test_bad_proxy_patches_are_400_and_change_nothing(client, admin, body):
    proxy = (
        await client.post(PATH, json={"scheme": "http", "host": "p.example", "port": 3128}, headers=admin["headers"])
    ).json()
    assert_error(
        await client.patch(f"{PATH}/{proxy['id']}", json=body, headers=admin["headers"]), 400, "validation_error"
    )
    assert (await client.get(PATH, headers=admin["headers"])).json() == [proxy]


async def test_non_admins_are_forbidden_and_unknown_ids_are_404(client, admin):
    user = await register(client)
    proxy = (
        await client.post(PATH, json={"scheme": "http", "host": "p.example", "port": 3128}, headers=admin["headers"])
    ).json()
    for method, path, body in [
        ("GET", PATH, None),
        ("POST", PATH, {"scheme": "http", "host": "x", "port": 1}),
        ("PATCH", f"{PATH}/{proxy['id']}", {"max_chips": 1}),
        ("DELETE", f"{PATH}/{proxy['id']}", None),
    ]:
        assert_error(await client.request(method, path, json=body, headers=user["headers"]), 403, "forbidden")
        assert_error(await client.request(method, path, json=body), 401, "not_authenticated")
    assert (await client.get(PATH, headers=admin["headers"])).json() == [proxy]  # untouched

    unknown = f"{PATH}/{uuid.uuid4()}"
    assert_error(await client.patch(unknown, json={"max_chips": 1}, headers=admin["headers"]), 404, "not_found")
    assert_error(await client.patch(unknown, json={}, headers=admin["headers"]), 404, "not_found")
    assert_error(await client.delete(unknown, headers=admin["headers"]), 404, "not_found")
    assert_error(await client.patch(f"{PATH}/not-a-uuid", json={}, headers=admin["headers"]), 404, "not_found")


# ---------------------------------------------------------------------------- chips moved by admin actions
async def test_disabling_or_shrinking_a_proxy_releases_chips_and_enqueues_rotation(client, admin, conn):
    proxy_id = await add_proxy(conn, max_chips=5)
    owner = await add_user(conn)
    chips = []
    for _ in range(4):
        chips.append(await add_chip(conn, owner, proxy_id=proxy_id))
        await asyncio.sleep(0.002)  # distinct created_at: the oldest stay, the newest move

    # an edit that keeps it under capacity moves nobody
    same = await client.patch(f"{PATH}/{proxy_id}", json={"country": "br"}, headers=admin["headers"])
    assert same.status_code == 200
    assert same.json()["chips"] == 4
    assert all(rotation_job(c) is None for c in chips)

    shrunk = await client.patch(f"{PATH}/{proxy_id}", json={"max_chips": 2}, headers=admin["headers"])
    assert shrunk.status_code == 200
    assert shrunk.json()["chips"] == 2
    kept, released = chips[:2], chips[2:]
    for chip in kept:
        assert (await chip_row(conn, chip))["proxy_id"] == proxy_id
        assert rotation_job(chip) is None
    for chip in released:
        row = await chip_row(conn, chip)
        assert row["proxy_id"] is None
        assert row["proxy_dirty"] is True
        job = rotation_job(chip)
        assert job is not None
        assert job["function"] == "rotate_proxy"
        assert job["kwargs"] == {"chip_id": str(chip)}

    disabled = await client.patch(f"{PATH}/{proxy_id}", json={"enabled": False}, headers=admin["headers"])
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False
    assert disabled.json()["chips"] == 0
    for chip in kept:
        row = await chip_row(conn, chip)
        assert row["proxy_id"] is None
        assert row["proxy_dirty"] is True
        assert rotation_job(chip) is not None


async def test_changing_a_proxy_address_makes_its_chips_follow(client, admin, conn):
    proxy_id = await add_proxy(conn, max_chips=5)
    owner = await add_user(conn)
    chip = await add_chip(conn, owner, proxy_id=proxy_id)
    moved = await client.patch(f"{PATH}/{proxy_id}", json={"port": 8080}, headers=admin["headers"])
    assert moved.status_code == 200
    assert moved.json()["port"] == 8080
    assert moved.json()["chips"] == 1
    row = await chip_row(conn, chip)
    # still on the proxy, but the WAHA session config (host:port) must be rewritten
    assert row["proxy_id"] == proxy_id
    assert row["proxy_dirty"] is True
    assert rotation_job(chip) is not None


async def test_deleting_a_proxy_moves_its_chips(client, admin, conn):
    doomed = await add_proxy(conn, max_chips=5)
    other = await add_proxy(conn, max_chips=5, port=3129)
    owner = await add_user(conn)
    on_doomed = [await add_chip(conn, owner, proxy_id=doomed) for _ in range(3)]
    on_other = await add_chip(conn, owner, proxy_id=other)
    assert (await client.delete(f"{PATH}/{doomed}", headers=admin["headers"])).status_code == 204
    assert await conn.fetchval("SELECT count(*) FROM proxies WHERE id = $1", doomed) == 0
    for chip in on_doomed:
        row = await chip_row(conn, chip)
        assert row["proxy_id"] is None
        assert row["proxy_dirty"] is True
        assert rotation_job(chip)["function"] == "rotate_proxy"
    assert (await chip_row(conn, on_other))["proxy_id"] == other
    assert rotation_job(on_other) is None
    assert_error(await client.delete(f"{PATH}/{doomed}", headers=admin["headers"]), 404, "not_found")


# ---------------------------------------------------------------------------- encryption and key rotation
async def test_key_rotation_reencrypts_every_password(proxies, conn, settings):
    from app.proxies.crypto import SecretBox

    old_key = settings.encryption_key
    new_key = Fernet.generate_key().decode()
    ids = [await add_proxy(conn, password=f"{SECRET}-{i}", port=3000 + i, box=proxies.box) for i in range(3)]
    plain = await add_proxy(conn, port=3999)  # no password: nothing to re-encrypt
    before = {r["id"]: r["password_encrypted"] for r in await conn.fetch("SELECT id, password_encrypted FROM proxies")}

    proxies.box = SecretBox(msgspec.structs.replace(settings, encryption_key=f"{new_key},{old_key}"))  # new first
    assert (await proxies.waha_config(ids[0])).password == f"{SECRET}-0"  # old tokens still readable
    assert await proxies.reencrypt_all() == 3

    after = {r["id"]: r["password_encrypted"] for r in await conn.fetch("SELECT id, password_encrypted FROM proxies")}
    assert after[plain] is None
    for i, proxy_id in enumerate(ids):
        assert after[proxy_id] != before[proxy_id]
        assert Fernet(new_key).decrypt(after[proxy_id].encode()).decode() == f"{SECRET}-{i}"
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(after[proxy_id].encode())

    proxies.box = SecretBox(msgspec.structs.replace(settings, encryption_key=new_key))  # old key dropped
    for i, proxy_id in enumerate(ids):
        config = await proxies.waha_config(proxy_id)
        assert config.password == f"{SECRET}-{i}"
        assert config.username == USERNAME
        assert config.server == f"127.0.0.1:{3000 + i}"


async def test_waha_config_shapes_the_server(proxies, conn):
    http = await add_proxy(conn, port=3128)
    socks = await conn.fetchval(
        "INSERT INTO proxies (scheme, host, port) VALUES ('socks5', '10.1.2.3', 1080) RETURNING id"
    )
    assert (await proxies.waha_config(http)).server == "127.0.0.1:3128"  # WAHA: host:port, no scheme
    assert (await proxies.waha_config(socks)).server == "socks5://10.1.2.3:1080"
    assert await proxies.waha_config(None) is None
    assert await proxies.waha_config(uuid.uuid4()) is None


# ---------------------------------------------------------------------------- assignment
async def test_assign_picks_the_least_loaded_and_prefers_the_country(proxies, conn):
    owner = await add_user(conn)
    busy = await add_proxy(conn, max_chips=10, port=1)
    quiet = await add_proxy(conn, max_chips=10, port=2)
    brazil = await add_proxy(conn, max_chips=10, port=3, country="br")
    for _ in range(3):
        await add_chip(conn, owner, proxy_id=busy)
    await add_chip(conn, owner, proxy_id=brazil)
    await add_chip(conn, owner, proxy_id=brazil)

    anywhere = await add_chip(conn, owner, status="provisioning")
    assert await proxies.assign(anywhere) == quiet  # 0/10 beats 2/10 and 3/10
    row = await chip_row(conn, anywhere)
    assert row["proxy_id"] == quiet
    assert row["proxy_dirty"] is True  # the WAHA config must follow

    wants_br = await add_chip(conn, owner, country="br", status="provisioning")
    assert await proxies.assign(wants_br) == brazil  # country first, even though busier

    wants_pt = await add_chip(conn, owner, country="pt", status="provisioning")
    assert await proxies.assign(wants_pt) is None  # no Portuguese proxy: never one of another country

    assert await proxies.assign(uuid.uuid4()) is None  # unknown chip


async def test_assign_keeps_a_usable_current_proxy_and_leaves_a_bad_one(proxies, conn):
    owner = await add_user(conn)
    current = await add_proxy(conn, max_chips=3, port=1)
    empty = await add_proxy(conn, max_chips=3, port=2)
    chip = await add_chip(conn, owner, proxy_id=current)
    await add_chip(conn, owner, proxy_id=current)
    await conn.execute("UPDATE chips SET proxy_dirty = false")

    assert await proxies.assign(chip) == current  # still usable: no churn, though `empty` is emptier
    assert (await chip_row(conn, chip))["proxy_dirty"] is False  # unchanged: nothing for WAHA to do

    await add_chip(conn, owner, proxy_id=current)  # 3/3 including this chip: still usable
    assert await proxies.assign(chip) == current

    await conn.execute("UPDATE proxies SET healthy = false WHERE id = $1", current)
    assert await proxies.assign(chip) == empty
    await conn.execute("UPDATE proxies SET enabled = false WHERE id = $1", empty)
    await conn.execute("UPDATE proxies SET healthy = true WHERE id = $1", current)
    assert await proxies.assign(chip) == current  # 2 others + this one = 3/3: fits again


async def test_assign_returns_none_when_the_pool_is_empty_or_full(proxies, conn):
    owner = await add_user(conn)
    chip = await add_chip(conn, owner, status="provisioning")
    assert await proxies.assign(chip) is None  # no proxies at all: direct connection
    full = await add_proxy(conn, max_chips=1)
    await add_chip(conn, owner, proxy_id=full)
    await add_proxy(conn, max_chips=0, port=2)  # a proxy that takes nobody
    await add_proxy(conn, max_chips=5, port=3, enabled=False)
    await add_proxy(conn, max_chips=5, port=4, healthy=False)
    assert await proxies.assign(chip) is None
    assert (await chip_row(conn, chip))["proxy_id"] is None


async def test_concurrent_assignment_never_overfills(proxies, conn):
    owner = await add_user(conn)
    pool = {await add_proxy(conn, max_chips=5, port=1000 + i) for i in range(3)}
    chips = [await add_chip(conn, owner, status="provisioning") for _ in range(30)]

    results = await asyncio.gather(*(proxies.assign(c) for c in chips))

    assigned = Counter(r for r in results if r is not None)
    assert sum(assigned.values()) == 15
    assert set(assigned) == pool
    assert all(n == 5 for n in assigned.values())
    in_db = Counter(r["proxy_id"] for r in await conn.fetch("SELECT proxy_id FROM chips WHERE proxy_id IS NOT NULL"))
    assert in_db == assigned  # what assign() returned is what the database holds
    assert results.count(None) == 15


# ---------------------------------------------------------------------------- health
@contextlib.asynccontextmanager
async def listener():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def check_times(proxies, n: int) -> list[dict]:
    reports = []
    for _ in range(n):
        reports.append(await proxies.check_health())
    return reports


async def test_health_check_fails_over_only_after_consecutive_failures(proxies, conn, caplog, settings):
    owner = await add_user(conn)
    failures = settings.proxy_unhealthy_after_failures
    assert failures > 1
    async with listener() as up_port:
        up = await add_proxy(conn, port=up_port, password=SECRET, box=proxies.box)
        down = await add_proxy(conn, port=closed_port(), password=SECRET, box=proxies.box)
        off = await add_proxy(conn, port=closed_port(), enabled=False)  # disabled: not probed
        on_up = await add_chip(conn, owner, proxy_id=up)
        on_down = [await add_chip(conn, owner, proxy_id=down) for _ in range(2)]

        # one slow or failed probe moves nobody (an IP change can log a WhatsApp session out)
        for report in await check_times(proxies, failures - 1):
            assert report == {"checked": 2, "unhealthy": 1, "went_bad": 0, "moved": 0, "degraded": 0}
        assert await conn.fetchval("SELECT healthy FROM proxies WHERE id = $1", down) is True
        assert [(await chip_row(conn, c))["proxy_id"] for c in on_down] == [down, down]

        with caplog.at_level(logging.DEBUG):
            report = await proxies.check_health()
        assert report == {"checked": 2, "unhealthy": 1, "went_bad": 1, "moved": 2, "degraded": 0}

        rows = {r["id"]: r for r in await conn.fetch("SELECT id, healthy, last_error, last_checked_at FROM proxies")}
        assert rows[up]["healthy"] is True
        assert rows[up]["last_error"] is None
        assert rows[down]["healthy"] is False
        assert rows[down]["last_error"]
        assert rows[off]["last_checked_at"] is None
        assert (await chip_row(conn, on_up))["proxy_id"] == up
        assert rotation_job(on_up) is None
        for chip in on_down:
            row = await chip_row(conn, chip)
            assert row["proxy_id"] == up  # moved to the healthy proxy, never to no proxy
            assert row["proxy_dirty"] is True
            job = rotation_job(chip)
            assert job is not None
            assert job["function"] == "rotate_proxy"
            assert job["kwargs"] == {"chip_id": str(chip)}
        # an unhealthy proxy takes no new chips
        newcomer = await add_chip(conn, owner, status="provisioning")
        assert await proxies.assign(newcomer) == up
    assert_no_secret(caplog.text)
    assert USERNAME not in caplog.text


async def test_with_no_healthy_proxy_of_their_country_chips_stay_and_are_degraded(proxies, conn, caplog, settings):
    from app.proxies.service import DEGRADED_CHIPS

    owner = await add_user(conn)
    async with listener() as us_port:
        await add_proxy(conn, port=us_port, country="us")  # healthy, but the wrong country
        brazil = await add_proxy(conn, port=closed_port(), country="br")
        chips = [await add_chip(conn, owner, proxy_id=brazil, country="br") for _ in range(2)]
        with caplog.at_level(logging.WARNING):
            reports = await check_times(proxies, settings.proxy_unhealthy_after_failures)
        assert reports[-1]["went_bad"] == 1
        assert reports[-1]["moved"] == 0
        assert reports[-1]["degraded"] == 2
        for chip in chips:
            row = await conn.fetchrow("SELECT proxy_id, proxy_degraded FROM chips WHERE id = $1", chip)
            assert (row["proxy_id"], row["proxy_degraded"]) == (brazil, True)
            assert await proxies.assign(chip) == brazil  # provisioning keeps it there too
        assert "degraded" in caplog.text  # operators are told
        assert DEGRADED_CHIPS._value.get() == 2

        # a healthy Brazilian proxy appears: the next check moves them and clears the mark
        async with listener() as br_port:
            rescue = await add_proxy(conn, port=br_port, country="br")
            report = await proxies.check_health()
            assert report["moved"] == 2
            for chip in chips:
                row = await conn.fetchrow("SELECT proxy_id, proxy_degraded FROM chips WHERE id = $1", chip)
                assert (row["proxy_id"], row["proxy_degraded"]) == (rescue, False)
            assert DEGRADED_CHIPS._value.get() == 0


async def test_recovered_proxy_is_healthy_again_after_consecutive_successes(proxies, conn, settings):
    owner = await add_user(conn)
    async with listener() as port:
        proxy = await add_proxy(conn, port=port, healthy=False)
        chip = await add_chip(conn, owner, proxy_id=proxy)
        await conn.execute("UPDATE chips SET proxy_degraded = true WHERE id = $1", chip)
        for _ in range(settings.proxy_healthy_after_successes - 1):
            await proxies.check_health()
            assert await conn.fetchval("SELECT healthy FROM proxies WHERE id = $1", proxy) is False
        report = await proxies.check_health()
        assert report["unhealthy"] == 0
        assert await conn.fetchval("SELECT healthy FROM proxies WHERE id = $1", proxy) is True
        assert await conn.fetchval("SELECT proxy_degraded FROM chips WHERE id = $1", chip) is False
        # a success in between resets the failure count
        await conn.execute("UPDATE proxies SET consecutive_failures = $2 WHERE id = $1", proxy, 5)
        await proxies.check_health()
        assert await conn.fetchval("SELECT consecutive_failures FROM proxies WHERE id = $1", proxy) == 0


async def test_credentials_never_reach_the_logs(proxies, conn, caplog, settings):
    owner = await add_user(conn)
    proxy = await add_proxy(conn, port=closed_port(), password=SECRET, box=proxies.box)
    chip = await add_chip(conn, owner, status="provisioning")
    with caplog.at_level(logging.DEBUG):
        assert await proxies.assign(chip) == proxy
        config = await proxies.waha_config(proxy)
        assert config.password == SECRET  # WAHA needs it; nobody else does
        await check_times(proxies, settings.proxy_unhealthy_after_failures)
        await proxies.reencrypt_all()
    assert caplog.records, "expected at least the unhealthy-proxy warning"
    assert_no_secret(caplog.text)
    assert USERNAME not in caplog.text


async def test_assignment_and_admin_edits_do_not_deadlock(proxies, conn):
    """assign() and edits/health checks lock proxies before chips, so running them together on
    the same proxy and chips never ends in a deadlock (which would abort one of them)."""
    from app.proxies.schemas import ProxyUpdate

    owner = await add_user(conn)
    proxy = await add_proxy(conn, max_chips=50, port=closed_port())
    other = await add_proxy(conn, max_chips=50, port=2)
    chips = [await add_chip(conn, owner, proxy_id=proxy) for _ in range(10)]
    for round_ in range(15):
        await conn.execute("UPDATE chips SET proxy_id = $1", proxy)
        await conn.execute("UPDATE proxies SET enabled = true, healthy = true, max_chips = 50")
        edits = [
            proxies.update(proxy, ProxyUpdate(max_chips=5 + round_ % 3)),
            proxies.update(proxy, ProxyUpdate(port=2000 + round_)),
        ]
        results = await asyncio.gather(*(proxies.assign(c) for c in chips), *edits, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert not errors, errors
    placed = Counter(r["proxy_id"] for r in await conn.fetch("SELECT proxy_id FROM chips"))
    assert sum(placed.values()) == 10
    assert set(placed) <= {proxy, other, None}
