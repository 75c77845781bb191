"""Locate the official API descriptions in ``../shared/reference`` (beside the repository).

They are not copied into the repository: the emulator and the doubles are checked against the
documents as published. ``WHAGO_REFERENCE_DIR`` points elsewhere if needed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_file(name: str) -> Path:
    candidates = [Path(os.environ["WHAGO_REFERENCE_DIR"])] if os.environ.get("WHAGO_REFERENCE_DIR") else []
    candidates.append(REPO_ROOT.parent / "shared" / "reference")
    for folder in candidates:
        if (folder / name).is_file():
            return folder / name
    message = f"{name} not found in {', '.join(map(str, candidates))}; set WHAGO_REFERENCE_DIR"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
