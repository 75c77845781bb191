from __future__ import annotations

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from app.settings import Settings


class PlanOut(msgspec.Struct):
    name: str
    max_chips: int


class PlansController(Controller):
    path = "/api/v1/plans"
    tags = ["Plans"]

    @get("/", operation_id="ListPlans")
    async def list_plans(self, settings: NamedDependency[Settings]) -> list[PlanOut]:
        return [PlanOut(name, limit) for name, limit in settings.plan_limits.items()]
