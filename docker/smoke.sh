#!/usr/bin/env bash
# Smoke test of the compose stack: build and start it, solve synchronously and through a worker,
# scale to two workers, restart the API and Redis with jobs in flight and check that every job
# finishes, check that no container compiled kernels at start, then tear down with volumes.
#
#   docker/smoke.sh        (Docker and Compose >= 2.24; uses the host port SPINOUT_PUBLISH_PORT, 8000)
#
# The API key, when docker/spinout.env sets SPINOUT_API_KEYS, is its first key (SMOKE_API_KEY
# overrides it). It refuses to run over a spinout stack that is already up: it ends with
# `docker compose down -v`, which would delete that stack's jobs.
set -euo pipefail
cd "$(dirname "$0")/.."

export SPINOUT_PUBLISH_PORT=${SPINOUT_PUBLISH_PORT:-8000}
BASE="http://127.0.0.1:$SPINOUT_PUBLISH_PORT"
# Compiling the kernels takes ~25 s here, loading them from the image's cache 0.3-0.8 s: the
# ceiling only has to tell the two apart on a busy machine (cache writes are checked as well).
MAX_WARMUP_S=${SMOKE_MAX_WARMUP_S:-2.0}
HEALTH_TIMEOUT_S=${SMOKE_HEALTH_TIMEOUT_S:-180}
ASYNC_JOBS=6

dc() { docker compose "$@"; }
step() { printf '\n== %s [%s]\n' "$*" "$(date +%T)"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

torn_down=0
on_exit() {
    local rc=$?
    if [[ $torn_down == 0 ]]; then
        if [[ $rc != 0 ]]; then
            printf '\n== failed (exit %s): last log lines, then teardown\n' "$rc"
            dc logs --no-color --tail 30 || true
        fi
        dc down -v --remove-orphans || true
    fi
    exit "$rc"
}

# ---- helpers -------------------------------------------------------------------------------

key=${SMOKE_API_KEY:-}
if [[ -z $key && -f docker/spinout.env ]]; then
    key=$(sed -n 's/^SPINOUT_API_KEYS=//p' docker/spinout.env | tail -n 1 | cut -d, -f1 | tr -d '"'"' ")
fi
auth=()
[[ -n $key ]] && auth=(-H "X-Api-Key: $key")

http() {  # METHOD PATH [BODY]: the reply body; fails on an HTTP error
    local args=(-fsS -X "$1" "${auth[@]}" -H 'Content-Type: application/json')
    [[ $# -ge 3 ]] && args+=(--data-binary "$3")
    curl "${args[@]}" "$BASE$2"
}

jq_py() {  # EXPR: evaluate a Python expression over the JSON on stdin, bound to `d`
    python3 -c 'import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

problem() {  # SEED: a random 40-variable QUBO as DA binary_polynomial terms
    python3 -c '
import json, random, sys
rng = random.Random(int(sys.argv[1]))
terms = [{"c": rng.uniform(-1, 1), "p": [i, j]} for i in range(40) for j in range(i, 40)
         if i == j or rng.random() < 0.2]
print(json.dumps({"terms": terms}))' "$1"
}

container_ids() { dc ps -q "$@"; }

wait_healthy() {  # SERVICE...: until every container of these services is healthy
    local start=$SECONDS ids id state all
    while :; do
        ids=$(container_ids "$@")
        all=1
        [[ -z $ids ]] && all=0
        for id in $ids; do
            state=$(docker inspect -f '{{.State.Health.Status}}' "$id")
            [[ $state == healthy ]] || all=0
        done
        if [[ $all == 1 ]]; then
            echo "healthy: $* ($(wc -w <<<"$ids") containers, $((SECONDS - start)) s)"
            return
        fi
        (( SECONDS - start < HEALTH_TIMEOUT_S )) || fail "not healthy after ${HEALTH_TIMEOUT_S} s: $*"
        sleep 2
    done
}

wait_done() {  # JOB_ID: poll the v3 result until Done; prints the best energy
    local id=$1 start=$SECONDS reply status
    while :; do
        reply=$(http GET "/v3/async/jobs/result/$id") || reply='{"status": "unreachable"}'
        status=$(jq_py 'd["status"]' <<<"$reply")
        case $status in
            Done)
                jq_py 'd["qubo_solution"]["solutions"][0]["energy"]' <<<"$reply"
                return ;;
            Error | Canceled) fail "job $id: $reply" ;;
        esac
        (( SECONDS - start < 180 )) || fail "job $id still $status after 180 s"
        sleep 1
    done
}

worker_jobs() {  # rq's per-worker count of finished jobs, from inside a worker container
    dc exec -T worker python -c '
import os
from redis import Redis
from rq import Worker
for w in sorted(Worker.all(connection=Redis.from_url(os.environ["SPINOUT_REDIS_URL"])), key=lambda w: w.name):
    print(f"  worker {w.name}: {w.successful_job_count} jobs done")'
}

submit() {  # SEED SECONDS: submit a fujitsuDA3 job running SECONDS; prints its id
    http POST /v3/async/qubo/solve "{\"binary_polynomial\": $(problem "$1"),
        \"fujitsuDA3\": {\"time_limit_sec\": $2, \"num_run\": 4, \"random_seed\": $1}}" | jq_py 'd["job_id"]'
}

job_states() {  # how many of this key's jobs are in each state
    http GET /v3/async/jobs | jq_py \
        '", ".join(f"{s}: {n}" for s, n in sorted(__import__("collections").Counter(j["job_status"] for j in d["job_status_list"]).items()))'
}

no_cache_writes() {  # SERVICE: fail if a container of it wrote to numba's cache (it compiled)
    local id written
    for id in $(container_ids "$1"); do
        written=$(docker diff "$id" | grep numba-cache || true)
        [[ -z $written ]] || fail "$1 container ${id:0:12} compiled kernels at start: $written"
    done
    echo "$1: no container wrote to numba's cache"
}

# ---- the run -------------------------------------------------------------------------------

step "preflight"
docker compose version
[[ -z $(container_ids -a) ]] || fail "a spinout compose stack exists; stop it first (this test ends with down -v)"
volumes_before=$(docker volume ls -q | sort)
echo "api: $BASE, auth: $([[ -n $key ]] && echo on || echo off)"
trap on_exit EXIT

step "build and start (docker compose up --build -d)"
dc up --build -d
docker image ls spinout
echo "image size: $(docker image inspect -f '{{.Size}}' spinout:latest) bytes"
torch=$(docker run --rm --entrypoint python spinout:latest -c \
    'import importlib.util; print(importlib.util.find_spec("torch") is not None)')
[[ $torch == False ]] || fail "torch is installed in the service image"
echo "torch in the image: no"

step "wait for health"
wait_healthy redis api worker
dc ps

step "start-up warm-up (the api's 'service ready' log line)"
dc logs --no-color --no-log-prefix api | grep '"service ready"'
warmup=$(dc logs --no-color --no-log-prefix api | grep '"service ready"' | tail -n 1 | jq_py 'd["warmup_s"]')
python3 -c "import sys; sys.exit(float(sys.argv[1]) > float(sys.argv[2]))" "$warmup" "$MAX_WARMUP_S" \
    || fail "the api compiled kernels at start: warmup_s $warmup > $MAX_WARMUP_S"
echo "warmup_s $warmup (limit $MAX_WARMUP_S)"
no_cache_writes api
no_cache_writes worker
echo -n "fresh process in the worker container, warm_up(): "
dc exec -T worker python -c 'from service.jobs.solvers import warm_up; print(f"{warm_up():.2f} s")'

step "synchronous solve (POST /v2/qubo/solve, fujitsuDA2) on the api"
t0=$(date +%s.%N)
reply=$(http POST /v2/qubo/solve "{\"binary_polynomial\": $(problem 1),
    \"fujitsuDA2\": {\"number_iterations\": 2000, \"number_runs\": 16, \"random_seed\": 1}}")
t1=$(date +%s.%N)
[[ $(jq_py 'd["status"]' <<<"$reply") == Done ]] || fail "sync solve: $reply"
echo "status Done, best energy $(jq_py 'd["qubo_solution"]["solutions"][0]["energy"]' <<<"$reply"), \
first request $(python3 -c "print(f'{$t1 - $t0:.2f}')") s"

step "asynchronous job run by a worker (POST /v3/async/qubo/solve, fujitsuDA3)"
id=$(submit 100 1)
energy=$(wait_done "$id")
echo "job $id: Done, best energy $energy"
worker_jobs
[[ $(worker_jobs | grep -c ': [1-9][0-9]* jobs') -ge 1 ]] || fail "no worker reports a finished job"

step "scale to 2 workers"
dc up -d --scale worker=2
wait_healthy worker
[[ $(container_ids worker | wc -l) == 2 ]] || fail "expected 2 worker containers"

step "submit $ASYNC_JOBS jobs, then restart the api and Redis while they run"
ids=()
for seed in $(seq 1 "$ASYNC_JOBS"); do
    id=$(submit "$seed" 4)
    ids+=("$id")
done
echo "submitted: ${ids[*]}"
# AOF is fsynced every second: give the last submissions time to reach the disk.
sleep 2
echo "before the restarts: $(job_states)"
dc restart api
echo "api restarted [$(date +%T)]"
dc restart redis
echo "redis restarted [$(date +%T)]"
wait_healthy redis api
echo "after the restarts: $(job_states)"

step "every job finishes"
for id in "${ids[@]}"; do
    energy=$(wait_done "$id")
    echo "job $id: Done, best energy $energy"
done
dc logs --no-color --no-log-prefix api | grep '"service ready"' | tail -n 1
no_cache_writes api
no_cache_writes worker
worker_jobs

step "tear down (docker compose down -v)"
torn_down=1
dc down -v --remove-orphans
left=$(comm -13 <(echo "$volumes_before") <(docker volume ls -q | sort))
[[ -z $left ]] || fail "volumes left behind: $left"
echo "no volumes left behind"

printf '\nSMOKE PASSED\n'
