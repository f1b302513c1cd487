"""The job side of the service: request parsing, the engine mapping, job stores, the in-process
worker pool and the Redis/rq scale-out. Nothing here imports FastAPI."""
