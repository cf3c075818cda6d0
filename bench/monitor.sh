#!/usr/bin/env bash
# The risk monitor at load, docs/benchmarks.md ("Following a node at
# load"): one `tallyd --dev` (fsync on), `tally monitor` following it
# (follow.poll-interval 100ms, the default batch of 64 blocks) and
# `tally bench --txs TXS --accounts 20` against the node, on this machine.
# Every half second it reads the node's height and transfers applied and the
# monitor's height and transfers judged from their /metrics, so both rates
# come from the same clock in the same run. It prints a table and one JSON
# line: R (tally bench's, before and after the load), the node's rate and
# the monitor's, each over its own first to last transfer and as a ratio
# to R, tally bench's own figure, how far the monitor was behind the
# node's head while the load ran, and how long after the node's last
# transfer the monitor judged its own.
#
#   make build && bash bench/monitor.sh              # 100,000 transfers
#   TXS=20000 PORT=28745 MPORT=28746 bash bench/monitor.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TXS=${TXS:-100000}
PORT=${PORT:-18745}
MPORT=${MPORT:-18746}
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT

url="http://127.0.0.1:$PORT"
murl="http://127.0.0.1:$MPORT"
token=bench-monitor-token-0123456789abcdef
./bin/tallyd --dev --datadir "$work/dev" --http.port "$PORT" >"$work/dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$url/healthz" >/dev/null || { echo "monitor.sh: the node did not start:" >&2; tail "$work/dev.log" >&2; exit 1; }

echo "bench $token" >"$work/operators"
chmod 600 "$work/operators"
cat >"$work/monitor.toml" <<EOF
listen = "127.0.0.1:$MPORT"
datadir = "monitor-data"
[nodes]
endpoints = ["$url"]
[follow]
poll-interval = "100ms"
[operator]
tokens-file = "operators"
EOF
./bin/tally monitor --config "$work/monitor.toml" >"$work/monitor.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do curl -sf "$murl/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "$murl/healthz" >/dev/null || { echo "monitor.sh: the monitor did not start:" >&2; tail "$work/monitor.log" >&2; exit 1; }

# One line every half second: time, node height, node transfers applied, monitor
# height, monitor transfers judged.
sample() {
	while :; do
		local t n m
		t=$(date +%s.%N)
		n=$(curl -sf "$url/metrics" | awk '$1=="tally_block_height"{h=$2} $1=="tally_txs_applied_total"{x=$2} END{print h+0, x+0}')
		m=$(curl -sf -H "Authorization: Bearer $token" "$murl/metrics" |
			awk '$1=="tally_monitor_height"{h=$2} $1=="tally_monitor_transfers_total"{x=$2} END{print h+0, x+0}')
		echo "$t $n $m"
		sleep 0.5
	done
}
sample >"$work/samples" &
pids+=($!)

./bin/tally bench --rpc "$url" --txs "$TXS" --accounts 20 --json --timeout 30m >"$work/bench.json"
grep -q '"rejected":0' "$work/bench.json" || { echo "monitor.sh: transfers rejected: $(cat "$work/bench.json")" >&2; exit 1; }
# Until the monitor has judged every transfer (at most 10 minutes more).
for _ in $(seq 1 600); do
	[ "$(tail -n 1 "$work/samples" | awk '{print $5}')" -ge "$TXS" ] 2>/dev/null && break
	sleep 1
done
sleep 1

bench=$(cat "$work/bench.json")
field() { echo "$bench" | grep -o "\"$1\":[0-9.e+-]*" | cut -d: -f2; }
awk -v txs="$TXS" -v rb="$(field ceilingBefore)" -v ra="$(field ceilingAfter)" -v r="$(field ceiling)" \
	-v btps="$(field transfersPerSecond)" -v bratio="$(field ratio)" '
	NR == 1 { n0 = $3; m0 = $5 }
	# A rate runs from the last sample before the first transfer to the
	# first sample with all of them.
	$3 == n0 { ns = $1 }
	$5 == m0 { ms = $1 }
	!nd && $3 - n0 >= txs { nd = $1 }
	!md && $5 - m0 >= txs { md = $1 }
	# Behind the head while the node applied the load.
	$3 > n0 && !nd { lag = $2 - $4; if (lag > lmax) lmax = lag; lsum += lag; ln++ }
	END {
		if (!nd || !md) { print "monitor.sh: the node or the monitor did not reach " txs " transfers" > "/dev/stderr"; exit 1 }
		if (!ln) ln = 1 # the load ended between two samples
		nr = txs / (nd - ns); mr = txs / (md - ms)
		printf "| | transfers/s | ÷ R |\n|---|---|---|\n"
		printf "| R (tally bench, before / after the load) | %.0f / %.0f | |\n", rb, ra
		printf "| node: %d transfers applied in %.1f s | %.0f | %.2f |\n", txs, nd - ns, nr, nr / r
		printf "| monitor: %d transfers judged in %.1f s | %.0f | %.2f |\n", txs, md - ms, mr, mr / r
		printf "| tally bench (submission to last receipt) | %.0f | %.2f |\n", btps, bratio
		printf "\nmonitor behind the node while the load ran: at most %d blocks, %.0f on average (%d samples); it judged the last transfer %.1f s after the node applied it\n", lmax, lsum / ln, ln, md - nd
		printf "{\"txs\":%d,\"ceilingBefore\":%.0f,\"ceilingAfter\":%.0f,\"ceiling\":%.0f,\"nodeTps\":%.0f,\"nodeRatio\":%.3f,\"monitorTps\":%.0f,\"monitorRatio\":%.3f,\"benchTps\":%.0f,\"lagMaxBlocks\":%d,\"lagAvgBlocks\":%.1f,\"catchUpSeconds\":%.1f}\n", txs, rb, ra, r, nr, nr / r, mr, mr / r, btps, lmax, lsum / ln, md - nd
	}' "$work/samples"
