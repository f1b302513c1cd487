"""``spinout serve``: run the DA-compatible solver service with uvicorn.

Flags override the ``SPINOUT_*`` environment: they are passed to ``Settings(...)`` as its
arguments (which pydantic-settings ranks above the environment), so a container configured by
an env file and a developer using flags get the same settings object, and the process
environment is left as it was.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from service.web.settings import Settings

_FLAGS = {  # flag dest -> settings field
    "database": "database", "redis": "redis_url", "workers": "workers", "prefix": "prefix",
    "job_limit": "job_limit", "log_level": "log_level", "max_body_bytes": "max_body_bytes",
    "sync_time_cap": "sync_time_cap_sec", "term_scan": "term_scan",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("SPINOUT_HOST", "127.0.0.1"),
                        help="interface to bind (default 127.0.0.1; 0.0.0.0 in containers)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPINOUT_PORT", "8000")))
    parser.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY",
                        help="accepted API key (repeatable); also SPINOUT_API_KEYS=k1,k2. "
                             "None: authentication off")
    parser.add_argument("--database", help="SQLite job store path (embedded mode)")
    parser.add_argument("--redis", metavar="URL", help="scale-out: share jobs with `spinout worker`s")
    parser.add_argument("--workers", type=int, help="solver threads (default: one per core)")
    parser.add_argument("--prefix", help="extra route prefix (default /da)")
    parser.add_argument("--job-limit", type=int, help="jobs one key may hold (default 16)")
    parser.add_argument("--max-body-bytes", type=int, help="request body cap (default 64 MiB)")
    parser.add_argument("--sync-time-cap", type=float, help="largest sync solve in s (default 30)")
    parser.add_argument("--log-level", help="DEBUG, INFO (default), WARNING")
    parser.add_argument("--no-term-scan", dest="term_scan", action="store_const", const=False,
                        help="parse DA JSON terms with the general parser only (rules out the "
                             "numba term scanner; same answers, slower)")


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings: the environment, overridden by the flags given (ValidationError on a bad
    value)."""
    from service.web.settings import Settings

    overrides: dict[str, Any] = {field: getattr(args, dest) for dest, field in _FLAGS.items()
                                 if getattr(args, dest, None) is not None}
    if args.api_keys:
        overrides["api_keys"] = ",".join(args.api_keys)
    return Settings(**overrides)


def main(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    from service.web.app import create_app
    from service.web.observability import configure_logging

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"spinout serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    log = logging.getLogger("spinout.web")
    if not settings.keys:
        log.warning("no API keys configured: authentication is OFF and every request is accepted "
                    "(set --api-key or SPINOUT_API_KEYS)")
    if not settings.redis_url:
        from service.jobs.owner_lock import DatabaseInUseError, OwnerLock

        try:  # refuse before binding the port; the store takes the lock for real at start-up
            OwnerLock(settings.database).check_free()
        except DatabaseInUseError as exc:
            log.error(str(exc))
            print(f"spinout serve: {exc}", file=sys.stderr)
            return 1
    uvicorn.run(create_app(settings), host=args.host, port=args.port, access_log=False,
                log_level=settings.log_level.lower(), timeout_keep_alive=30, server_header=False)
    return 0
