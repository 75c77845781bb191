"""The operator CLI: version and help, set-plan, proxies import, instances list, reconcile --once.

Each command runs as a subprocess on the suite's database, as an operator would run it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid

import asyncpg

from app.cli import build_parser


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=90,
    )


def sql(url: str, query: str, *args):
    async def go():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    return asyncio.run(go())


def test_version_and_every_help_says_what_and_shows_defaults():
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("whago ")
    parser = build_parser()
    commands = [
        ["migrate"],
        ["serve"],
        ["worker"],
        ["dev"],
        ["emulator"],
        ["nomad", "render"],
        ["rotate-encryption-key"],
        ["create-admin"],
        ["reconcile"],
        ["instances", "list"],
        ["users", "set-plan"],
        ["users", "disable"],
        ["proxies", "import"],
    ]
    for command in commands:
        sub = parser
        for word in command:
            action = next(a for a in sub._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
            sub = action.choices[word]
        text = sub.format_help()
        assert sub.description, command
        assert len(sub.description.split()) >= 3, command
        for action in sub._actions:
            if action.option_strings and action.default not in (None, argparse_suppress(), False) and action.help:
                assert "(default:" in text, (command, action.dest)
    serve_help = run("serve", "--help").stdout
    assert "every interface" in serve_help
    assert "(default: 0.0.0.0)" in serve_help


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


def test_set_plan_changes_the_plan_and_is_audited(migrated_db, clean_state):
    email = f"plan-{uuid.uuid4().hex[:8]}@example.com"
    sql(migrated_db, "INSERT INTO users (email, password_hash) VALUES ($1, 'x')", email)
    result = run("users", "set-plan", email.upper(), "business")
    assert result.returncode == 0, result.stderr
    assert "free -> business" in result.stdout
    assert sql(migrated_db, "SELECT plan FROM users WHERE email = $1", email)[0]["plan"] == "business"
    [entry] = sql(migrated_db, "SELECT action, actor_email, before::text, after::text FROM audit_log")
    assert entry["action"] == "user.update"
    assert entry["actor_email"].startswith("cli:")
    assert json.loads(entry["after"]) == {"plan": "business"}
    refused = run("users", "set-plan", email, "platinum")
    assert refused.returncode == 1
    assert "Unknown plan 'platinum'" in refused.stderr
    assert run("users", "set-plan", "nobody@example.com", "free").returncode == 1


def test_disable_revokes_and_is_audited_and_enable_undoes_it(migrated_db, clean_state):
    email = f"off-{uuid.uuid4().hex[:8]}@example.com"
    sql(migrated_db, "INSERT INTO users (email, password_hash) VALUES ($1, 'x')", email)
    [before] = sql(migrated_db, "SELECT token_version FROM users WHERE email = $1", email)
    result = run("users", "disable", email)
    assert result.returncode == 0, result.stderr
    assert "disabled" in result.stdout
    [row] = sql(migrated_db, "SELECT disabled, token_version FROM users WHERE email = $1", email)
    assert row["disabled"] is True
    assert row["token_version"] > before["token_version"]  # every earlier token revoked
    [entry] = sql(migrated_db, "SELECT action, after::text FROM audit_log")
    assert entry["action"] == "user.update"
    assert json.loads(entry["after"]) == {"disabled": True}
    assert run("users", "disable", email, "--enable").returncode == 0
    assert sql(migrated_db, "SELECT disabled FROM users WHERE email = $1", email)[0]["disabled"] is False
    assert run("users", "disable", "nobody@example.com").returncode == 1


def test_proxies_import_encrypts_and_never_echoes_passwords(migrated_db, clean_state, tmp_path):
    good = tmp_path / "proxies.csv"
    good.write_text(
        "scheme,host,port,username,password,country,max_chips\n"
        "http,10.0.0.1,3128,alice,csv-s3cret-1,br,5\n"
        "socks5,10.0.0.2,1080,,,,\n"
    )
    result = run("proxies", "import", str(good))
    assert result.returncode == 0, result.stderr
    assert "imported 2" in result.stdout
    assert "csv-s3cret-1" not in result.stdout + result.stderr
    rows = sql(migrated_db, "SELECT host, port, password_encrypted, country, max_chips FROM proxies ORDER BY host")
    assert [(r["host"], r["port"], r["country"], r["max_chips"]) for r in rows] == [
        ("10.0.0.1", 3128, "br", 5),
        ("10.0.0.2", 1080, None, 10),
    ]
    assert rows[0]["password_encrypted"]
    assert "csv-s3cret-1" not in rows[0]["password_encrypted"]
    assert rows[1]["password_encrypted"] is None
    assert len(sql(migrated_db, "SELECT 1 FROM audit_log WHERE action = 'proxy.create'")) == 2

    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            [
                {"scheme": "http", "host": "10.0.0.3", "port": 80, "password": "json-s3cret"},
                {"scheme": "ftp", "host": "10.0.0.4", "port": 21, "password": "json-s3cret"},
            ]
        )
    )
    refused = run("proxies", "import", str(bad))
    assert refused.returncode == 1
    assert "row 2: scheme" in refused.stderr
    assert "json-s3cret" not in refused.stdout + refused.stderr
    assert len(sql(migrated_db, "SELECT 1 FROM proxies")) == 2  # all or nothing


def test_instances_list_with_nomad_ui_links(migrated_db, clean_state):
    user_id = uuid.uuid4()
    sql(migrated_db, "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, 'x')", user_id, f"{user_id}@x.io")
    sql(
        migrated_db,
        "INSERT INTO instances (user_id, job_id, status, base_url, sessions) VALUES ($1, $2, 'running', $3, 2)",
        user_id,
        f"whago-waha-{user_id}",
        "http://10.1.1.1:3000",
    )
    result = run("instances", "list", "--json", WHAGO_NOMAD_UI_URL="https://nomad.example.com/ui/")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["status"] == "running"
    assert row["sessions"] == 2
    assert row["nomad_ui_url"] == f"https://nomad.example.com/ui/jobs/whago-waha-{user_id}@default"
    table = run("instances", "list")
    assert str(user_id) in table.stdout
    assert "NOMAD UI" in table.stdout
    without = run("instances", "list", "--json", WHAGO_NOMAD_UI_URL="")
    assert "nomad_ui_url" not in json.loads(without.stdout)[0]


def test_reconcile_once_prints_the_drift_report(migrated_db, clean_state):
    result = run("reconcile", "--once", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ran"] is True
    assert report["drift"] == {}
    text = run("reconcile", "--once")
    assert "drift: none" in text.stdout


def test_create_admin_is_audited_without_the_password(migrated_db, clean_state):
    email = f"op-{uuid.uuid4().hex[:8]}@example.com"
    assert run("create-admin", email, "--password", "operator-s3cret").returncode == 0
    [entry] = sql(migrated_db, "SELECT action, actor_email, target_id, after::text FROM audit_log")
    assert entry["action"] == "user.create_admin"
    assert entry["actor_email"].startswith("cli:")
    user_id = sql(migrated_db, "SELECT id FROM users WHERE email = $1", email)[0]["id"]
    assert entry["target_id"] == str(user_id)
    assert json.loads(entry["after"])["email"] == email
    assert "operator-s3cret" not in entry["after"]
