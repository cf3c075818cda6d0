#!/usr/bin/env bash
# make bench's load cases (docs/benchmarks.md): tally bench against one dev
# node and against a three-node testnet (fsync on), through the leader and
# through a follower, unpaced for throughput and paced at a fraction of R
# for latency. Each case prints its table and one JSON line; the JSON
# lines are collected in $OUT (default bench-results.jsonl).
#
#   bash bench/cases.sh            # after make build
#   TXS=50000 bash bench/cases.sh
#   BIN=/tmp/before bash bench/cases.sh   # another build's tallyd and tally
set -euo pipefail
cd "$(dirname "$0")/.."
TXS=${TXS:-20000}
BATCH=${BATCH:-500}
PORT=${PORT:-18545}
BASE=${BASE:-19545}
OUT=${OUT:-bench-results.jsonl}
BIN=${BIN:-./bin}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
: >"$OUT"

# ready URL: waits until the node at URL answers eth_blockNumber.
ready() {
	for _ in $(seq 1 300); do
		if curl -sf -H 'content-type: application/json' \
			-d '{"jsonrpc":"2.0","id":1,"method":"eth_blockNumber","params":[]}' "$1" >/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	echo "bench: no node answers at $1" >&2
	return 1
}

# role URL: the node's Raft role (leader, follower, ...).
role() {
	curl -sf -H 'content-type: application/json' \
		-d '{"jsonrpc":"2.0","id":1,"method":"tally_nodeInfo","params":[]}' "$1" |
		sed -n 's/.*"role":"\([a-z]*\)".*/\1/p'
}

# run NAME ARGS...: one tally bench case, its JSON line tagged with NAME.
run() {
	local name=$1
	shift
	echo "== $name"
	"$BIN/tally" bench --txs "$TXS" --batch "$BATCH" --legacy "$@" | tee "$work/out"
	tail -n 1 "$work/out" | sed "s/^{/{\"case\":\"$name\",/" >>"$OUT"
}

echo "== one node: tallyd --dev on 127.0.0.1:$PORT"
"$BIN/tallyd" --dev --datadir "$work/dev" --http.port "$PORT" >"$work/dev.log" 2>&1 &
pids+=($!)
ready "http://127.0.0.1:$PORT"
run one-node-max --rpc "http://127.0.0.1:$PORT"
run one-node-paced-0.4R --rpc "http://127.0.0.1:$PORT" --rate 0.4R
kill "${pids[0]}"
wait "${pids[0]}" 2>/dev/null || true
pids=()

echo "== three nodes: tally testnet --base-port $BASE"
"$BIN/tally" testnet --nodes 3 --dir "$work/tn" --base-port "$BASE" >/dev/null
for i in 0 1 2; do
	"$BIN/tallyd" --config "$work/tn/node$i/config.toml" >"$work/node$i.log" 2>&1 &
	pids+=($!)
done
urls=()
for i in 0 1 2; do
	urls+=("http://127.0.0.1:$((BASE + i))")
	ready "${urls[$i]}"
done
leader="" follower=""
for _ in $(seq 1 300); do
	for u in "${urls[@]}"; do
		case $(role "$u") in
		leader) leader=$u ;;
		follower) follower=$u ;;
		esac
	done
	[ -n "$leader" ] && [ -n "$follower" ] && break
	sleep 0.1
done
[ -n "$leader" ] && [ -n "$follower" ] || { echo "bench: no leader in the testnet" >&2; exit 1; }
run three-nodes-leader-max --rpc "$leader"
run three-nodes-follower-max --rpc "$follower"
# 0.4 x R/3 offered through a follower: R/3 is each node's share of the
# machine's recovery ceiling when three nodes share its cores.
run three-nodes-follower-paced-0.133R --rpc "$follower" --rate 0.1333R
echo "== results in $OUT"
