"""The ``nomad`` scheduler adapter (production): ``NomadScheduler``.

``adapter`` orchestrates; ``transport`` runs python-nomad calls in a thread pool; ``consul`` asks
Consul which instance is healthy; ``diagnostics`` holds the pure readings of both answers.
"""

from app.scheduler.nomad.adapter import NomadScheduler

__all__ = ["NomadScheduler"]
