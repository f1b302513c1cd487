"""``spinout serve``: run the DA-compatible solver service with uvicorn.

Flags override the ``SPINOUT_*`` environment (they are written into it, then the settings are
read once), so a container configured by an env file and a developer using flags get the same
settings object.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

_FLAGS = {  # flag dest -> settings variable
    "database": "SPINOUT_DATABASE", "redis": "SPINOUT_REDIS_URL", "workers": "SPINOUT_WORKERS",
    "prefix": "SPINOUT_PREFIX", "job_limit": "SPINOUT_JOB_LIMIT", "log_level": "SPINOUT_LOG_LEVEL",
    "max_body_bytes": "SPINOUT_MAX_BODY_BYTES", "sync_time_cap": "SPINOUT_SYNC_TIME_CAP_SEC",
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


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from service.web.app import create_app
    from service.web.observability import configure_logging
    from service.web.settings import Settings, get_settings

    for dest, var in _FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            os.environ[var] = str(value)
    if args.api_keys:
        os.environ["SPINOUT_API_KEYS"] = ",".join(args.api_keys)
    get_settings.cache_clear()
    settings: Settings = get_settings()
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
