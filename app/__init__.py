"""WHAGO: a multi-tenant platform for WhatsApp sessions ("chips") on WAHA."""

import os

# Piccolo finds its engine through this module path; every entry point (API, worker, CLI) imports app.
os.environ.setdefault("PICCOLO_CONF", "app.piccolo_conf")
