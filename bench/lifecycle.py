"""The demo lifecycle's wall time, and how much of it is Prefect's own overhead.

Runs the demo's three releases (3 ci runs, 5 promotions, 7 deployments, one approved by a person)
on a local stack of its own, then asks the Prefect API for every flow and task run. Prefect's own
share is estimated as the flow runs' time outside their task runs (engine, state changes,
artifacts, events, logging) over the wall time; the baseline, measured in the same run, is the
time spent inside task runs (the commands, S3 and git work itself).

    uv run python bench/lifecycle.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from blocks.local_stack import LocalStack

    workspace = Path(tempfile.mkdtemp(prefix="changeflow-bench-lifecycle-"))
    stack = LocalStack(workspace / "stack").start()
    os.environ.update(stack.env)
    try:
        from blocks import config
        from changeflow.demo import DemoLifecycle

        config.evidence_locker(None).create_bucket()
        started = time.perf_counter()
        DemoLifecycle(workspace, lambda _: None).run()
        wall = time.perf_counter() - started
        flows, tasks, task_runs = _run_times()
    finally:
        stack.stop()
        shutil.rmtree(workspace, ignore_errors=True)

    result = {
        "lifecycle_wall_s": round(wall, 1),
        "flow_runs_s": round(flows, 1),
        "task_runs_s": round(tasks, 1),
        "task_runs": task_runs,
        "prefect_overhead_s": round(flows - tasks, 1),
        "prefect_overhead_share": round((flows - tasks) / wall, 3),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    print("| measure | seconds | share of wall time |")
    print("| --- | ---: | ---: |")
    print(f"| demo lifecycle, wall | {wall:.1f} | 1.00 |")
    print(f"| inside flow runs | {flows:.1f} | {flows / wall:.2f} |")
    own = flows - tasks
    print(f"| inside task runs ({task_runs}: the work) | {tasks:.1f} | {tasks / wall:.2f} |")
    print(f"| Prefect's own (flow runs outside tasks) | {own:.1f} | {own / wall:.2f} |")


def _run_times() -> tuple[float, float, int]:
    """Total time of every flow run and every task run the API knows."""
    from prefect import get_client

    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs(limit=200)
        task_runs = client.read_task_runs(limit=200)
        while len(task_runs) % 200 == 0 and task_runs:
            more = client.read_task_runs(limit=200, offset=len(task_runs))
            if not more:
                break
            task_runs += more
    # a paused run's wait for a person is not Prefect's overhead: count its running time only
    flows = sum(r.total_run_time.total_seconds() for r in flow_runs)
    tasks = sum(r.total_run_time.total_seconds() for r in task_runs)
    return flows, tasks, len(task_runs)


if __name__ == "__main__":
    main()
