#!/usr/bin/env bash
# HTTP load test of the axum, actix-web and tower (plain hyper) receivers,
# and of the official Node SDK behind express for comparison.
#
# What it does: builds the `bench_server` tool (`benches/tools/bench_server.rs`:
# a no-op handler; every request is read, verified, parsed and dispatched) and
# `bench_body` (`benches/tools/bench_body.rs`) in release, writes the signed
# body (by default the realistic 30 KB `call_ended`), starts each receiver on
# 127.0.0.1 and drives it with wrk (POST with the `X-Retell-Signature` header)
# at 2 and 32 connections, then prints requests/s, p50/p99 latency and the
# number of non-2xx answers per run.
#
# Usage (from the repository root, on a fresh machine too; installs wrk with
# apt-get when it is missing):
#
#   bash benches/http.sh
#
# Environment (all optional):
#   DURATION=10s       length of each wrk run (the signature window is 5 minutes,
#                      the body is re-signed before every run)
#   CONNECTIONS="2 32" connection counts
#   FRAMEWORKS="axum actix tower node"
#                      `node`: the official `retell-sdk` (npm's latest) behind
#                      express, one process, the same work per request (raw
#                      body, `verify`, `JSON.parse`, 204); installed with npm
#                      into a temporary folder, skipped when npm is missing.
#                      (The pattern of Retell's docs, `express.json()` then
#                      `verify(JSON.stringify(req.body), …)`, answers 401 to the
#                      realistic bodies: `0.0` comes back as `0`.)
#   WORKERS=2          server worker threads
#   WRK_THREADS=2      wrk threads (capped at the connection count)
#   SIZE=medium        body: medium or large (the realistic 30 KB and 500 KB
#                      bodies of benches/data), or the generated 1k, 30k, 500k
#   PORT=3917
#   INBOX=sqlite|redis the durable inbox instead: the tower receiver without an
#                      inbox, with the inbox (`SqliteInbox`, or `RedisInbox` on a
#                      redis-server started here with `appendonly yes` and
#                      `appendfsync ${REDIS_FSYNC:-always}`), and for sqlite the
#                      baseline that commits one transaction per delivery, each
#                      driven by `bench_load` (every request a different event,
#                      signed as it is sent: wrk's one body would be stored once
#                      and then answered as a copy). FRAMEWORKS and SIZE do not
#                      apply; nothing drains the inbox (acknowledgements only).
#
# The load generator shares the machine's cores with the server, so the
# figures are a lower bound of what the receiver does on its own.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-"2 32"}
FRAMEWORKS=${FRAMEWORKS:-"axum actix tower node"}
WORKERS=${WORKERS:-2}
WRK_THREADS=${WRK_THREADS:-2}
SIZE=${SIZE:-medium}
PORT=${PORT:-3917}
export RETELL_API_KEY=${RETELL_API_KEY:-key_bench_0123456789abcdef}

cd "$(dirname "$0")/.."
work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null 2>&1; then
    echo "installing wrk" >&2
    if ! apt-get install -y wrk >/dev/null 2>&1; then
        apt-get update >/dev/null && apt-get install -y wrk >/dev/null
    fi
fi

cargo build --release --features axum,actix,sqlite,redis --example bench_server --example bench_body --example bench_load >&2
target=${CARGO_TARGET_DIR:-target}/release/examples

cat >"$work/post.lua" <<'LUA'
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Retell-Signature"] = os.getenv("SIGNATURE")

-- summary.errors.status counts answers with a status of 400 or more; the
-- receiver answers 200 or an error status, never 1xx/3xx, so it is the
-- non-2xx count (no per-response Lua callback, which would slow wrk down).
done = function(summary, latency, requests)
    io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f requests=%d non2xx=%d errors=%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50) / 1000, latency:percentile(99) / 1000,
        summary.requests, summary.errors.status,
        summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

# The Node peer: what a user of the official SDK deploys, as its docs show,
# but verifying the raw body (re-serializing the parsed JSON would not match
# every body).
node_ready=""
prepare_node() {
    if [ -n "$node_ready" ]; then return 0; fi
    if ! command -v npm >/dev/null 2>&1; then
        echo "npm not found: skipping the Node peer" >&2
        return 1
    fi
    mkdir -p "$work/node"
    (cd "$work/node" && npm init -y >/dev/null &&
        npm install --no-audit --no-fund retell-sdk express >/dev/null 2>&1) || {
        echo "npm install failed: skipping the Node peer" >&2
        return 1
    }
    cat >"$work/node/server.js" <<'JS'
const express = require("express");
const { verify } = require("retell-sdk");
const key = process.env.RETELL_API_KEY;
const app = express();
app.post("/retell/webhook", express.raw({ type: "*/*", limit: "10mb" }), async (req, res) => {
  const body = req.body.toString("utf8");
  if (!(await verify(body, key, req.get("x-retell-signature") || ""))) return res.sendStatus(401);
  let event;
  try { event = JSON.parse(body); } catch { return res.sendStatus(400); }
  if (typeof event.event !== "string") return res.sendStatus(400);
  res.sendStatus(204);
});
app.listen(Number(process.env.PORT), "127.0.0.1");
JS
    node_ready=1
}

start_server() {
    if [ "$1" = node ]; then
        prepare_node || return 1
        PORT="$PORT" node "$work/node/server.js" >"$work/server.log" 2>&1 &
    else
        "$target/bench_server" --framework "$1" --port "$PORT" --workers "$WORKERS" >"$work/server.log" 2>&1 &
    fi
    server_pid=$!
}

if [ -n "${INBOX:-}" ]; then
    seconds=${DURATION%s}
    printf "%-13s %5s %10s %9s %9s %8s %7s\n" receiver conns "acks/s" "p50 ms" "p99 ms" non-2xx errors
    run_inbox() {
        local label=$1
        shift
        "$target/bench_server" --framework tower --port "$PORT" --workers "$WORKERS" "$@" >"$work/server.log" 2>&1 &
        server_pid=$!
        for _ in $(seq 50); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
            sleep 0.1
        done
        for conns in $CONNECTIONS; do
            line=$("$target/bench_load" --url "http://127.0.0.1:$PORT/retell/webhook" \
                --connections "$conns" --seconds "$seconds" | grep '^RESULT')
            # shellcheck disable=SC2086
            eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/r_/')"
            printf "%-13s %5s %10s %9s %9s %8s %7s\n" "$label" "$conns" "$r_rps" "$r_p50_ms" "$r_p99_ms" "$r_non2xx" "$r_errors"
        done
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    }
    run_inbox "no inbox"
    case "$INBOX" in
    sqlite)
        run_inbox "sqlite" --inbox "sqlite:$work/inbox.sqlite3"
        run_inbox "per-delivery" --inbox "sqlite-per-delivery:$work/per-delivery.sqlite3"
        ;;
    redis)
        redis-server --port 0 --unixsocket "$work/redis.sock" --dir "$work" \
            --appendonly yes --appendfsync "${REDIS_FSYNC:-always}" --save "" >"$work/redis.log" 2>&1 &
        redis_pid=$!
        for _ in $(seq 50); do [ -S "$work/redis.sock" ] && break; sleep 0.1; done
        run_inbox "redis" --inbox "redis+unix://$work/redis.sock"
        kill "$redis_pid" 2>/dev/null || true
        ;;
    *) echo "INBOX is sqlite or redis" >&2; exit 2 ;;
    esac
    exit 0
fi

export BODY_FILE="$work/body.json"
printf "%-6s %5s %10s %9s %9s %8s %7s\n" framework conns "req/s" "p50 ms" "p99 ms" non-2xx errors
for framework in $FRAMEWORKS; do
    start_server "$framework" || continue
    for _ in $(seq 50); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then break; fi
        sleep 0.1
    done
    for conns in $CONNECTIONS; do
        threads=$((WRK_THREADS < conns ? WRK_THREADS : conns))
        SIGNATURE=$("$target/bench_body" "$SIZE" "$BODY_FILE")
        export SIGNATURE
        line=$(wrk -t"$threads" -c"$conns" -d"$DURATION" --latency -s "$work/post.lua" \
            "http://127.0.0.1:$PORT/retell/webhook" | grep '^RESULT')
        # shellcheck disable=SC2086
        eval "$(echo "${line#RESULT }" | tr ' ' '\n' | sed 's/^/r_/')"
        printf "%-6s %5s %10s %9s %9s %8s %7s\n" "$framework" "$conns" "$r_rps" "$r_p50_ms" "$r_p99_ms" "$r_non2xx" "$r_errors"
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
done
