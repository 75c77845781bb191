"""Backups: nomad/backup/whago-backup.sh (run by nomad/whago-backup.nomad.hcl) dumps WHAGO's
database and WAHA's sessions databases; a dump restores into an empty database with the same
chips, as README's restore section says; old backups go."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.support.api import add_chip
from tests.support.env import TEST_DATABASE_URL

SCRIPT = Path(__file__).resolve().parents[2] / "nomad" / "backup" / "whago-backup.sh"
SERVER = TEST_DATABASE_URL.rsplit("/", 1)[0]

pytestmark = pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(SERVER + "/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _rows(url: str, query: str) -> list[tuple]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(query)]
    finally:
        await conn.close()


def test_dump_and_restore_finds_the_same_chips(migrated_db, clean_state, tmp_path):
    prefix = f"wahabk{uuid.uuid4().hex[:6]}"
    waha_db = f"{prefix}_chip_1"
    restored_db = f"whago_restore_{uuid.uuid4().hex[:8]}"

    async def seed() -> None:
        conn = await asyncpg.connect(migrated_db)
        try:
            user_id = await conn.fetchval(
                "INSERT INTO users (email, password_hash) VALUES ('b@x.io', 'h') RETURNING id"
            )
            for status in ("connected", "waiting_qr", "failed"):
                await add_chip(conn, user_id, status)
        finally:
            await conn.close()
        await _admin(f'CREATE DATABASE "{waha_db}"')
        conn = await asyncpg.connect(f"{SERVER}/{waha_db}")
        try:
            await conn.execute("CREATE TABLE auth (id text PRIMARY KEY, creds text)")
            await conn.execute("INSERT INTO auth VALUES ('session', 'keys')")
        finally:
            await conn.close()

    asyncio.run(seed())
    backups = tmp_path / "backups"
    stale = backups / "20200101T000000Z"
    stale.mkdir(parents=True)
    old = time.time() - 40 * 86400
    os.utime(stale, (old, old))
    try:
        env = {
            "PATH": os.environ["PATH"],
            "WHAGO_DATABASE_URL": migrated_db,
            "WHAGO_WAHA_SESSIONS_DATABASE_URL": f"{SERVER}/postgres",
            "WAHA_DATABASE_PREFIX": prefix,
            "BACKUP_DIR": str(backups),
            "BACKUP_RETENTION_DAYS": "14",
        }
        result = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "2 database(s)" in result.stdout
        [backup] = [d for d in backups.iterdir()]  # the stale one was pruned, no .partial left
        assert backup.name.endswith("Z")
        assert sorted(p.name for p in backup.iterdir()) == [f"waha-{waha_db}.dump", "whago.dump"]

        # README "Backups and restore": an empty database, then pg_restore
        asyncio.run(_admin(f'CREATE DATABASE "{restored_db}"'))
        restore = subprocess.run(
            [
                "pg_restore",
                "--no-owner",
                "--exit-on-error",
                "-d",
                f"{SERVER}/{restored_db}",
                str(backup / "whago.dump"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert restore.returncode == 0, restore.stderr
        query = "SELECT id, user_id, alias, status, session_name FROM chips ORDER BY id"
        original = asyncio.run(_rows(migrated_db, query))
        assert len(original) == 3
        assert asyncio.run(_rows(f"{SERVER}/{restored_db}", query)) == original
        migrations = "SELECT name FROM migration ORDER BY name"
        assert asyncio.run(_rows(f"{SERVER}/{restored_db}", migrations)) == asyncio.run(_rows(migrated_db, migrations))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{waha_db}" WITH (FORCE)'))
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{restored_db}" WITH (FORCE)'))


def test_the_nomad_job_runs_the_script_with_the_platform_secrets():
    job = (Path(__file__).resolve().parents[2] / "nomad" / "whago-backup.nomad.hcl").read_text()
    assert 'file("nomad/backup/whago-backup.sh")' in job
    assert "periodic" in job
    assert 'nomadVar "nomad/jobs/whago"' in job
    assert "prohibit_overlap = true" in job
