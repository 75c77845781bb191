"""Development-only routes (``whago dev``: WHAGO_ENV=development with the local scheduler, whose
tenant instances are WAHA emulators). Not registered anywhere else, so they answer 404."""
