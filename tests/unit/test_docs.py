"""The README's configuration table and .env.example list every setting the code reads."""

from __future__ import annotations

from pathlib import Path

import msgspec

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_documented():
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    for field in msgspec.structs.fields(Settings):
        name = "WHAGO_" + field.name.upper()
        assert f"`{name}`" in readme, f"{name} missing from the README's configuration table"
        assert f"# {name}=" in example, f"{name} missing from .env.example"


def test_readme_keeps_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "whago dev" in readme
    assert "bash .ci/run" in readme
