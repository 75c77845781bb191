"""Reusable test doubles for remote dependencies (real HTTP servers on loopback)."""

from tests.doubles.nomad_consul import NomadConsulDouble, serve_double
from tests.doubles.nomad_schema import validate_register_body

__all__ = ["NomadConsulDouble", "serve_double", "validate_register_body"]
