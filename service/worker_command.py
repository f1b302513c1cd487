"""``spinout worker --redis URL``: run jobs from the scale-out queue (rq) until stopped."""

from __future__ import annotations

import argparse
import os


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL", default=os.environ.get("SPINOUT_REDIS_URL"),
                        help="Redis URL shared with `spinout serve --redis` (or SPINOUT_REDIS_URL)")
    parser.add_argument("--name", help="worker name (default: rq's)")
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")


def main(args: argparse.Namespace) -> int:
    import logging
    import sys

    from service.jobs.redis_queue import WorkerConfig, run_worker
    from service.web.observability import configure_logging
    from service.web.settings import get_settings

    if not args.redis:
        print("spinout worker: give --redis URL (or set SPINOUT_REDIS_URL)", file=sys.stderr)
        return 2
    settings = get_settings()
    configure_logging(settings.log_level)
    logging.getLogger("spinout.jobs").info("worker starting")
    config = WorkerConfig(job_time_limit=settings.job_time_limit_sec,
                          max_iterations=settings.max_iterations, max_attempts=settings.max_attempts,
                          lease_seconds=settings.lease_seconds)
    try:
        return run_worker(args.redis, config, name=args.name, burst=args.burst)
    except Exception as exc:  # e.g. Redis unreachable: a message, not a traceback
        if exc.__class__.__name__ in ("ConnectionError", "TimeoutError"):
            print(f"spinout worker: cannot reach Redis at {args.redis}: {exc}", file=sys.stderr)
            return 1
        raise
