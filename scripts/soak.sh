#!/usr/bin/env bash
# Soak test: does a receiver's memory stay flat under steady traffic?
#
#   scripts/soak.sh                 # 10 minutes at 50 deliveries/s
#   scripts/soak.sh 120             # 2 minutes
#   SOAK_RATE=20 scripts/soak.sh    # another rate
#
# Builds `retell-webhooks` (release, feature `cli`), starts `listen` on
# 127.0.0.1 (any free port) with a throwaway key read from a file, and sends it
# SOAK_RATE deliveries a second for the duration (seconds, default 600) with
# `retell-webhooks send`, each signed at the time it is sent: every built-in
# sample in turn (custom functions to /function), and one in ten signed with
# another key (401). wrk is not used: it cannot sign each request, and a
# signature is valid for 5 minutes only.
#
# Every 10 s it prints the listener's resident memory (VmRSS from
# /proc/PID/status), then the RSS after the first minute, at the end, and their
# ratio. Exit status 1 when the end RSS is more than 10 % above the first
# minute's, when the listener died, or when a delivery got an unexpected
# answer; 2 on a usage error. The listener and every sender are stopped on exit,
# Ctrl-C included. Not run by CI (it takes minutes and sends local traffic only).
#
# Environment: SOAK_RATE (default 50), SOAK_BIN (a built binary: skips the
# build), CARGO_TARGET_DIR (where cargo builds), KEEP=1 keeps the listener's log.
set -euo pipefail

cd "$(dirname "$0")/.."
duration="${1:-600}"
rate="${SOAK_RATE:-50}"
if ! [[ "$duration" =~ ^[0-9]+$ && "$rate" =~ ^[0-9]+$ ]] || ((duration < 70 || rate < 1)); then
  echo "usage: scripts/soak.sh [SECONDS >= 70]   (SOAK_RATE=N deliveries per second)" >&2
  exit 2
fi

if [[ -n "${SOAK_BIN:-}" ]]; then
  bin="$SOAK_BIN"
else
  cargo build --release --features cli --bin retell-webhooks --quiet
  bin="${CARGO_TARGET_DIR:-target}/release/retell-webhooks"
fi

work=$(mktemp -d)
listener=""
cleanup() {
  # Ignored, not reset: a signal that arrives now must not end the cleanup.
  trap - EXIT
  trap '' INT TERM
  # The listener first: the senders still running then fail at once (connection
  # refused or reset) and end on their own; each also gives up after 30 s.
  if [[ -n "$listener" ]]; then
    kill "$listener" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  if [[ "${KEEP:-}" == 1 ]]; then
    echo "kept $work (listener log: $work/listen.log)"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A throwaway key, never on a command line: listen reads it from a file, the
# senders from the environment.
key="key_soak_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
(umask 077 && printf '%s\n' "$key" >"$work/key")
: >"$work/results"

"$bin" listen --host 127.0.0.1 --port 0 --key-file "$work/key" >"$work/listen.log" 2>&1 &
listener=$!
url=""
for _ in $(seq 100); do
  url=$(sed -n 's/^listening on \(http:[^ ]*\) .*/\1/p' "$work/listen.log")
  [[ -n "$url" ]] && break
  listener_alive || break
  sleep 0.1
done
if [[ -z "$url" ]]; then
  echo "listen did not start:" >&2
  cat "$work/listen.log" >&2
  exit 1
fi
base="${url%/webhook}"
mapfile -t samples < <("$bin" send --event list)

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$listener/status"; }

# Whether the listener still runs (not gone, not a zombie). Read from /proc:
# `kill -0` can fail spuriously while a trapped signal is being delivered.
listener_alive() {
  local _pid _comm state
  read -r _pid _comm state _ <"/proc/$listener/stat" 2>/dev/null || return 1
  [[ "$state" != Z ]]
}

echo "soak: listen (pid $listener) on $base, $rate deliveries/s for $duration s, ${#samples[@]} samples"
echo "soak: RSS at start: $(rss_kb) kB"

# One delivery in the background; its outcome is one line in results:
# `ok` (the expected status), or `bad <exit status> <sample>`.
deliver() {
  local name="$1" forged="$2" path=/webhook expected=0
  [[ "$name" == custom_function ]] && path=/function
  local sign_key="$key"
  if ((forged)); then
    sign_key="key_soak_forged"
    expected=1
  fi
  local status=0
  RETELL_API_KEY="$sign_key" "$bin" send --url "$base$path" --event "$name" \
    >/dev/null 2>&1 || status=$?
  if ((status == expected)); then
    echo ok >>"$work/results"
  else
    echo "bad $status $name forged=$forged" >>"$work/results"
  fi
}

# Every 100 ms, start the deliveries due by then on a schedule kept from the
# start: a starved or late loop catches up instead of sending fewer.
start_us=${EPOCHREALTIME/./}
end_us=$((start_us + duration * 1000000))
total=$((duration * rate))
sent=0
first_minute=""
next_sample=10
while :; do
  now=${EPOCHREALTIME/./}
  ((now >= end_us && sent >= total)) && break
  due=$(((now - start_us) * rate / 1000000))
  ((due > total)) && due=$total
  while ((sent < due)); do
    deliver "${samples[sent % ${#samples[@]}]}" $((sent % 10 == 9)) &
    sent=$((sent + 1))
  done
  # Never more than a few hundred senders at once, even on a starved machine.
  while (($(jobs -pr | wc -l) > 300)); do
    wait -n || true
  done
  if ! listener_alive; then
    echo "soak: the listener died" >&2
    tail -n 20 "$work/listen.log" >&2
    exit 1
  fi
  elapsed_s=$(((now - start_us) / 1000000))
  if ((elapsed_s >= next_sample && next_sample <= duration)); then
    rss=$(rss_kb)
    echo "soak: $elapsed_s s: RSS $rss kB, $sent sent"
    ((next_sample == 60)) && first_minute="$rss"
    next_sample=$((next_sample + 10))
  fi
  sleep 0.1
done
drove_us=$((${EPOCHREALTIME/./} - start_us))

# Let the last senders finish before the final sample.
while (($(jobs -pr | grep -cvx "$listener") > 0)); do
  wait -n || true
done
end=$(rss_kb)

ok=$(grep -c '^ok$' "$work/results" || true)
bad=$(grep -c '^bad' "$work/results" || true)
per_s=$(awk -v n="$sent" -v us="$drove_us" 'BEGIN { printf "%.1f", n * 1000000 / us }')
echo "soak: $sent deliveries in $((drove_us / 1000000)) s ($per_s per s): $ok as expected, $bad not"
if ((bad > 0)); then
  sort "$work/results" | uniq -c | grep bad | head -n 10 >&2
fi
ratio=$(awk -v a="$end" -v b="$first_minute" 'BEGIN { printf "%.3f", a / b }')
echo "soak: RSS after the first minute $first_minute kB, at the end $end kB, ratio $ratio"
if ((end * 100 > first_minute * 110)); then
  echo "soak: FAIL: the end RSS is more than 10 % above the first minute's" >&2
  exit 1
fi
if ((bad > 0)); then
  echo "soak: FAIL: $bad deliveries got an unexpected answer" >&2
  exit 1
fi
echo "soak: ok"
