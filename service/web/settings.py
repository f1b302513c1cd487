"""The service's settings: one pydantic-settings class, environment prefix ``SPINOUT_``.

``get_settings()`` is cached and is a FastAPI dependency, so tests can override it. The
``spinout serve`` command passes its flags as ``Settings(...)`` arguments, which rank above the
environment, so a flag and its variable are the same setting.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Every limit has a safe default; see docs/service.md for the table."""

    model_config = SettingsConfigDict(env_prefix="SPINOUT_", extra="ignore")

    api_keys: str = Field("", description="comma-separated accepted keys; empty = auth off")
    prefix: str = Field("/da", description="extra path prefix the routes are also served under")
    database: str = Field("spinout-jobs.sqlite3", description="SQLite job store (embedded mode)")
    redis_url: str | None = Field(None, description="scale-out: jobs go to Redis/rq workers")
    workers: int = Field(0, ge=0, description="solver threads; 0 = one per core")
    job_limit: int = Field(16, ge=1, description="jobs one key may hold at once (429 beyond)")
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024, description="request body cap (413)")
    max_terms: int = Field(2_000_000, ge=1, description="terms/couplings per problem (a DA JSON "
                           "term costs ~300 bytes while parsed: 2e6 terms ~ 600 MB)")
    max_parallel_parses: int = Field(2, ge=1, description="large bodies parsed at once (memory bound)")
    pattern_cache_mb: float = Field(256.0, ge=0, description="memory for coupling patterns of the "
                                    "compact transport (least recently used evicted first)")
    term_scan: bool = Field(True, description="read binary_polynomial terms with the numba "
                            "scanner (off: the general parser only, same answers, slower)")
    max_iterations: int = Field(2_000_000_000, ge=1, description="number_iterations cap")
    max_time_limit_sec: float = Field(3600.0, gt=0, description="DA3 time_limit_sec cap")
    job_time_limit_sec: float = Field(3600.0, gt=0, description="hard wall-time stop of any job")
    sync_time_cap_sec: float = Field(30.0, gt=0, description="largest estimated sync solve")
    request_timeout_sec: float = Field(120.0, gt=0, description="a sync request waiting longer "
                                       "(queue + solve) is answered 504 and its solve cancelled")
    max_attempts: int = Field(3, ge=1, description="runs of an interrupted job before Error")
    lease_seconds: float = Field(5.0, gt=0, description="Redis worker lease (dead-worker detection)")
    result_retention_sec: float = Field(7 * 86400.0, gt=0, description="finished jobs kept this long")
    log_level: str = Field("INFO")

    @property
    def keys(self) -> list[str]:
        return [k.strip() for k in self.api_keys.split(",") if k.strip()]

    @property
    def normalized_prefix(self) -> str:
        p = "/" + self.prefix.strip("/")
        return "" if p == "/" else p


@lru_cache
def get_settings() -> Settings:
    return Settings()  # type: ignore[call-arg]  # values come from the environment
