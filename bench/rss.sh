#!/usr/bin/env bash
# The memory figures of docs/benchmarks.md: the resident set of one
# `tallyd --dev` (fsync on) after TXS transfers sent with `tally bench`
# by the 20 funded dev accounts, in steps of STEP transfers, a reading of
# the node's VmRSS and VmHWM (/proc/PID/status) and of its data dir's size
# after every READ transfers. A step stays under mempool.max-per-account
# (4096) pending transactions per sender. FRESH=1 sends every transfer to a
# new account (--fresh-recipients: TXS distinct accounts); otherwise the
# 20 senders pay 20 recipients. Each reading also gives the Go heap in
# use and the heap goal of the next collection (go_memstats_heap_inuse_bytes
# and go_memstats_next_gc_bytes from the node's /metrics): the resident set
# is the live heap plus the collector's headroom plus Pebble's caches (off
# the Go heap). CONFIG=FILE starts the node with that TOML config (e.g. a
# smaller mempool.sender-cache); BIN=DIR takes tallyd and tally from DIR.
#
#   make build && bash bench/rss.sh                  # 1,000,000 transfers
#   TXS=200000 FRESH=1 bash bench/rss.sh
#   TXS=600000 STEP=20000 READ=100000 CONFIG=small-cache.toml bash bench/rss.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TXS=${TXS:-1000000}
STEP=${STEP:-80000}
READ=${READ:-200000}
BATCH=${BATCH:-500}
PORT=${PORT:-18645}
FRESH=${FRESH:-0}
BIN=${BIN:-./bin}
CONFIG=${CONFIG:-}
work=$(mktemp -d)
pid=
cleanup() {
	if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

url="http://127.0.0.1:$PORT"
node_flags=(--dev --datadir "$work/dev" --http.port "$PORT")
[ -n "$CONFIG" ] && node_flags+=(--config "$CONFIG")
"$BIN/tallyd" "${node_flags[@]}" >"$work/dev.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
	curl -sf -H 'content-type: application/json' \
		-d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "$url" >/dev/null && break
	sleep 0.1
done

# reading SENT: one table row after SENT transfers.
reading() {
	local rss hwm du metrics inuse goal
	rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
	hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
	du=$(du -sk "$work/dev" | cut -f1)
	metrics=$(curl -sf "$url/metrics")
	inuse=$(awk '/^go_memstats_heap_inuse_bytes / {printf "%d", $2 / 1048576}' <<<"$metrics")
	goal=$(awk '/^go_memstats_next_gc_bytes / {printf "%d", $2 / 1048576}' <<<"$metrics")
	printf '| %s | %s | %d MiB | %d MiB | %s MiB | %s MiB | %d MiB |\n' "$1" "$([ "$FRESH" = 1 ] && echo $(($1 + 20)) || echo 40)" \
		$((rss / 1024)) $((hwm / 1024)) "$inuse" "$goal" $((du / 1024))
}

flags=(--legacy --batch "$BATCH" --ceiling-txs 0 --json --timeout 30m)
[ "$FRESH" = 1 ] && flags+=(--fresh-recipients)
echo "| transfers applied | accounts | VmRSS | VmHWM (peak) | Go heap in use | next GC goal | data dir |"
echo "|---|---|---|---|---|---|---|"
reading 0
sent=0
next=$READ
while [ "$sent" -lt "$TXS" ]; do
	n=$((TXS - sent < STEP ? TXS - sent : STEP))
	"$BIN/tally" bench --rpc "$url" --txs "$n" "${flags[@]}" >"$work/step.json"
	if ! grep -q '"rejected":0' "$work/step.json"; then
		echo "rss: after $sent transfers: transfers rejected: $(cat "$work/step.json")" >&2
		exit 1
	fi
	sent=$((sent + n))
	if [ "$sent" -ge "$next" ] || [ "$sent" -ge "$TXS" ]; then
		reading "$sent"
		next=$((next + READ))
	fi
done
echo "last step: $(cat "$work/step.json")"
