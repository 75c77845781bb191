"""Every route's dependencies form one chain, so Litestar resolves them one at a time.

Two dependencies at the same depth are resolved in an anyio task group, per request: a real cost
on the hot routes (chip listing, webhooks) for providers that take microseconds. The providers
are written to chain (container → user_id → service; see app/auth/dependencies.py).
"""

from __future__ import annotations

from litestar.routes import HTTPRoute


def test_no_route_resolves_dependencies_in_parallel(settings):
    from app.factory import create_app

    app = create_app(settings)  # no lifespan: nothing connects
    parallel = []
    checked = 0
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for method, (_, kwargs_model) in route.route_handler_map.items():
            batches = [sorted(dep.key for dep in batch) for batch in kwargs_model.dependency_batches]
            checked += bool(batches)
            if any(len(batch) > 1 for batch in batches):
                parallel.append(f"{method} {route.path}: {batches}")
    assert checked > 20  # the check saw the API's routes
    assert not parallel, "dependencies resolved side by side (a task group per request):\n" + "\n".join(parallel)
