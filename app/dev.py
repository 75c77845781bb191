"""``whago dev``: the API plus everything a developer needs in one process, on local defaults."""

from __future__ import annotations

from litestar import Litestar

from app.factory import create_app


def dev_app() -> Litestar:
    return create_app()
