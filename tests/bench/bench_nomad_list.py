"""Benchmark: list 10,000 tenant jobs from the Nomad double through the ``nomad`` adapter.

Not a test (pytest does not collect tests/bench). Run:

    .venv/bin/python tests/bench/bench_nomad_list.py [--jobs 10000] [--foreign 1000]

Reports the wall time and the number of HTTP requests of a full ``list_instances()`` for several
page sizes, next to baselines measured in the same run against the same server:

* ``raw loop``: the same paged requests made directly with httpx (no adapter, no thread pool),
  i.e. the floor cost of those requests;
* ``per job``: one ``GET /v1/job/<id>`` per job, the pattern the adapter must avoid, timed on a
  sample and extrapolated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.env import apply_test_environment

apply_test_environment()  # settings are read once: before any app import


import httpx  # noqa: E402
import msgspec  # noqa: E402

from app.scheduler.nomad import NomadScheduler  # noqa: E402
from app.settings import load_settings  # noqa: E402
from tests.doubles import serve_double  # noqa: E402


async def timed_list(scheduler: NomadScheduler, double, repeat: int) -> tuple[float, int, int]:
    times = []
    for _ in range(repeat):
        double.reset_counts()
        started = time.perf_counter()
        listed = await scheduler.list_instances()
        times.append(time.perf_counter() - started)
    return statistics.median(times), double.count("nomad"), len(listed)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--foreign", type=int, default=1_000, help="non-WHAGO jobs the prefix must skip")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sample", type=int, default=300, help="jobs read one by one for the per-job baseline")
    args = parser.parse_args()

    base = load_settings()
    with serve_double() as double:
        double.seed_jobs(args.jobs)
        double.seed_jobs(args.foreign // 2, prefix="aaa-other-")
        double.seed_jobs(args.foreign - args.foreign // 2, prefix="zzz-other-")
        settings = msgspec.structs.replace(
            base,
            scheduler="nomad",
            nomad_addr=double.nomad_url,
            consul_addr=double.consul_url,
            nomad_timeout_seconds=30,
        )
        print(
            f"python {sys.version.split()[0]}, cpus {os.cpu_count()}; "
            f"{args.jobs} tenant jobs + {args.foreign} foreign jobs in the double"
        )
        print(
            f"{'page size':>10} {'requests':>9} {'listed':>7} {'time (s)':>9} {'req/s':>7} "
            f"{'raw loop (s)':>13} {'adapter/raw':>12}"
        )

        results = {}
        async with httpx.AsyncClient(base_url=double.nomad_url, timeout=30) as raw:
            for page_size in (100, 500, 1000, 5000):
                scheduler = NomadScheduler(settings, None)  # no Redis: measure Nomad listing alone
                scheduler.page_size = page_size
                try:
                    await scheduler.list_instances()  # warm-up (thread pool, connections)
                    elapsed, requests, listed = await timed_list(scheduler, double, args.repeat)
                finally:
                    await scheduler.close()
                floors = []
                for _ in range(args.repeat):
                    # Raw paging loop with httpx, no adapter: the floor for the same requests.
                    started = time.perf_counter()
                    token = ""
                    while True:
                        params = {"prefix": "whago-waha-", "per_page": page_size, "namespace": "default"}
                        if token:
                            params["next_token"] = token
                        resp = await raw.get("/v1/jobs", params=params)
                        resp.raise_for_status()
                        resp.json()
                        token = resp.headers.get("X-Nomad-NextToken", "")
                        if not token:
                            break
                    floors.append(time.perf_counter() - started)
                floor_total = statistics.median(floors)
                results[page_size] = (elapsed, requests, listed)
                print(
                    f"{page_size:>10} {requests:>9} {listed:>7} {elapsed:>9.3f} {requests / elapsed:>7.0f} "
                    f"{floor_total:>13.3f} {elapsed / floor_total:>11.2f}x"
                )

            # Per-job baseline: what a "read every job" listing would cost.
            ids = [jid for (_, jid) in list(double.jobs)[: args.sample]]
            started = time.perf_counter()
            for jid in ids:
                (await raw.get(f"/v1/job/{jid}", params={"namespace": "default"})).raise_for_status()
            per_job = (time.perf_counter() - started) / len(ids)

        default_elapsed, default_requests, listed = results[1000]
        extrapolated = per_job * args.jobs
        print()
        print(
            f"adapter default (page 1000): {default_requests} requests, {default_elapsed:.3f} s for {listed} jobs "
            f"(target: <= 1 request/page, < 5 s)"
        )
        print(
            f"baseline one GET per job: {args.jobs} requests, ~{extrapolated:.2f} s "
            f"(measured {per_job * 1000:.2f} ms/job on {len(ids)} jobs)"
        )
        print(
            f"paged listing vs per-job: {args.jobs / default_requests:.0f}x fewer requests, "
            f"{extrapolated / default_elapsed:.1f}x faster"
        )


if __name__ == "__main__":
    asyncio.run(main())
