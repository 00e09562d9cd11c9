#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The bulk resync of `tcpshift sync`. Gateway A holds 100,000 pins
# (SYNC_BULK_FLOWS; written straight into its flow table by ts-synctest fill,
# as its data plane would have); gateway B, with the same configuration but
# other backend ids, starts its sync: A sees it come up and sends it every pin.
# All must be written into B's flow table within 5 s per 100,000 of B's start
# (a bound that catches a stalled or restarted bulk; its speed is measured in
# BENCHMARKS.md)
# (the time, the bytes on the link and both daemons' peak RSS printed), each to the
# backend of the same address, in one bulk (B, busy applying it, still says
# hello every second); each sync's memory follows the backends in use (not
# the 262,144 ids of the limit). B's sync restarted (a new epoch): the second
# bulk finds every pin in place and changes nothing. B's sync restarted with a
# receive buffer of 1 MiB: the bulk, paced to what B acknowledges, still
# arrives whole, in one bulk, nothing refused. Then A's sync restarted
# with --refresh 2s and 1,000 more pins written on A without events (as if
# their events were lost): A's refresh brings them to B.
#
#   ga s0 198.18.2.1/24 ---- veth ---- s0 198.18.2.2/24 gb     sync on port 7946
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init sync_bulk
e2e_need jq curl awk
SYNCTEST=$E2E_ROOT/build/ts-synctest
[ -x "$SYNCTEST" ] || e2e_abort "$SYNCTEST not built: run make"

NFLOWS=${SYNC_BULK_FLOWS:-100000}	# 1000000: the benchmark's size (BENCHMARKS.md)
# the flow tables twice that (an LRU table nearly full evicts), at least the default
MAXFLOWS=262144
while [ "$MAXFLOWS" -lt $((2 * NFLOWS)) ]; do MAXFLOWS=$((MAXFLOWS * 2)); done
LIMIT_S=$(((NFLOWS + 99999) / 100000 * 5))	# 5 s per 100,000 pins
T=$E2E_TMP
NS_A=$(gw_ns ga)
NS_B=$(gw_ns gb)
e2e_netns_add "$NS_A"
e2e_netns_add "$NS_B"
must "link" ip -n "$NS_A" link add s0 type veth peer name s0 netns "$NS_B"
must "A address" ip -n "$NS_A" addr add 198.18.2.1/24 dev s0
must "B address" ip -n "$NS_B" addr add 198.18.2.2/24 dev s0
must "A up" ip -n "$NS_A" link set s0 up
must "B up" ip -n "$NS_B" link set s0 up

e2e_gw_load ga --dev s0 --seed 42 --max-flows "$MAXFLOWS"
e2e_gw_load gb --dev s0 --seed 42 --max-flows "$MAXFLOWS"
must "B: service old" tsg gb service add old 198.18.100.7:8008
must "B: backend o1" tsg gb backend add old o1 198.18.2.99:8008
for g in ga gb; do
	must "$g: service web" tsg "$g" service add web 198.18.100.1:8008
	must "$g: backend v1" tsg "$g" backend add web v1 198.18.2.11:8008 --weight 3
	must "$g: backend v2" tsg "$g" backend add web v2 198.18.2.12:8008 --weight 1
done
out=$("$SYNCTEST" fill --pin-dir "$(gw_pin ga)" --service web --n "$NFLOWS" 2>&1) ||
	e2e_abort "fill: $out"

umask 077
head -c 32 /dev/urandom | base64 >"$T/sync.key"
# start_sync GW ADDR PEER METRICS [OPTION...]
start_sync() {
	"$TCPSHIFT" --pin-dir "$(gw_pin "$1")" -n "$(gw_ns "$1")" sync --listen "$2:7946" \
		--peer "$3:7946" --key "$T/sync.key" --metrics "$4" "${@:5}" 2>>"$T/sync-$1.log" &
	e2e_track_pid "$!"
	SYNC_PID=$!
}
# applied OUTCOME: B's records of that outcome.
applied() {
	in_ns "$NS_B" curl -s --max-time 2 http://127.0.0.1:9491/metrics 2>/dev/null |
		awk -v m="tcpshift_sync_records_applied_total{outcome=\"$1\"}" '$1 == m { print $2 }'
}

start_sync ga 198.18.2.1 198.18.2.2 127.0.0.1:9490 >/dev/null
A_PID=$SYNC_PID
sleep 1
# bulk_to_b OUTCOME [WAIT_S]: start B's sync, wait (up to WAIT_S seconds, by
# default 5 times the limit) until NFLOWS records had OUTCOME; the seconds it
# took in $took (or "timeout").
bulk_to_b() {
	local t0 n i wait_ns=$((${2:-$((LIMIT_S * 5))} * 1000000000))

	t0=$(date +%s%N)
	start_sync gb 198.18.2.2 198.18.2.1 127.0.0.1:9491 >/dev/null
	for ((i = 0; i < 100000; i++)); do
		n=$(applied "$1")
		[ "${n:-0}" -ge "$NFLOWS" ] && break
		[ $(($(date +%s%N) - t0)) -ge "$wait_ns" ] && break
		sleep 0.05
	done
	if [ "${n:-0}" -ge "$NFLOWS" ]; then
		took=$(awk -v d=$(($(date +%s%N) - t0)) 'BEGIN { printf "%.2f", d / 1e9 }')
	else
		took="timeout (${n:-0} $1)"
	fi
}

tx_bytes() { ip -n "$NS_A" -j -s link show s0 | jq '.[0].stats64.tx.bytes'; }
peak_mib() { awk '/^VmHWM/ { print int($2 / 1024) }' "/proc/$1/status"; }
tx0=$(tx_bytes)
bulk_to_b pinned
tx1=$(tx_bytes)
b_v1=$(tsg gb -j flows web 2>/dev/null | jq '[.[] | select(.backend == "v1" and .synced)] | length')
a_line=$(grep -m1 "bulk resync to peer 198.18.2.2" "$T/sync-ga.log")
info "A: ${a_line#*Z }; $((tx1 - tx0)) bytes sent on the link (A's hellos included)"
a_mib=$(peak_mib "$A_PID") b_mib=$(peak_mib "$SYNC_PID")
# a backend id's entry is read when a pin names it: 3 backends are a page,
# the 262,144 ids of the limit would be 31 MiB
if [ "$a_mib" -lt 30 ] && [ "$b_mib" -lt 30 ]; then
	pass "each sync's memory follows the backends in use: peak RSS A $a_mib MiB, B $b_mib MiB (want < 30)"
else
	fail "each sync's memory follows the backends in use" "peak RSS A $a_mib MiB, B $b_mib MiB (want < 30)"
fi
# B kept saying hello while it applied the bulk: A took it for down and sent
# it everything again never
bulks=$(grep -c "bulk resync to peer 198.18.2.2" "$T/sync-ga.log")
if [ "$bulks" -eq 1 ] && ! grep -q "peer 198.18.2.2:7946 is down" "$T/sync-ga.log"; then
	pass "one bulk of $NFLOWS pins: B was never taken for down meanwhile"
else
	fail "one bulk of $NFLOWS pins" "A sent $bulks bulks: $(grep -m2 'is down' "$T/sync-ga.log" |
		cut -d' ' -f4- | tr '\n' '|')"
fi
# fill spreads the pins over v1 and v2 in turn
if awk -v t="$took" -v l="$LIMIT_S" 'BEGIN { exit !(t + 0 > 0 && t + 0 <= l) }' &&
	[ "$b_v1" -eq $((NFLOWS / 2)) ]; then
	pass "bulk resync of $NFLOWS pins to a gateway that came up: all written in $took s (want ≤ $LIMIT_S s); v1's $b_v1 by address, with B's own ids"
else
	fail "bulk resync of $NFLOWS pins in ≤ $LIMIT_S s" "took $took; v1 pins on B $b_v1"
fi

# B restarted: a new epoch, a second bulk, nothing moves
kill -TERM "$SYNC_PID"
wait "$SYNC_PID"
bulk_to_b already_pinned
if [ "${took%% *}" != timeout ] && [ "$(applied pinned)" = 0 ]; then
	pass "B's sync restarted: A's second bulk finds all $NFLOWS pins in place ($took s), writes none"
else
	fail "a second bulk changes nothing" "took $took, pinned $(applied pinned)"
fi
if grep -q "peer 198.18.2.2:7946 is up again (restarted)" "$T/sync-ga.log"; then
	pass "A's log tells B's restart: $(grep -m1 'is up again' "$T/sync-ga.log" | cut -d' ' -f4-)"
else
	fail "A's log tells B's restart" "$(tail -n 3 "$T/sync-ga.log" | tr '\n' '|')"
fi

# ---- a receiver slower than its buffer: the bulk is paced to what it applies -------
# B's sync restarted with a receive buffer of 1 MiB (TCPSHIFT_SYNC_TEST_RCVBUF,
# a knob only tests use) in place of 32 MiB: it holds some 400 datagrams, a
# fraction of what A sends while B
# applies. Unpaced, the kernel dropped the rest; B refused what came after the
# gap (more than 512 sequence numbers ahead) and lacked the dropped pins (on a
# slower receiver, its 32 MiB held datagrams older than 30 s, refused as
# such). Paced, A keeps at most 128 datagrams ahead of what B acknowledged:
# one bulk, every pin applied, none refused. Skipped at the benchmark's sizes
# (it would take as long as the bulk above again).
if [ "$NFLOWS" -le 100000 ]; then
	kill -TERM "$SYNC_PID"
	wait "$SYNC_PID"
	bulks0=$(grep -c "bulk resync to peer 198.18.2.2" "$T/sync-ga.log")
	downs0=$(grep -c "peer 198.18.2.2:7946 is down" "$T/sync-ga.log")
	refused0=$(grep -c "message from peer 198.18.2.1:7946" "$T/sync-gb.log")
	# 512 KiB asked, the kernel doubles it; 30 s to apply it all
	TCPSHIFT_SYNC_TEST_RCVBUF=$((512 << 10)) bulk_to_b already_pinned 30
	bulks=$(($(grep -c "bulk resync to peer 198.18.2.2" "$T/sync-ga.log") - bulks0))
	downs=$(($(grep -c "peer 198.18.2.2:7946 is down" "$T/sync-ga.log") - downs0))
	refused=$(($(grep -c "message from peer 198.18.2.1:7946" "$T/sync-gb.log") - refused0))
	if [ "${took%% *}" != timeout ] && [ "$bulks" -eq 1 ] && [ "$downs" -eq 0 ] &&
		[ "$refused" -eq 0 ]; then
		pass "a receiver with a 1 MiB buffer gets all $NFLOWS pins in one paced bulk ($took s), none refused: $(grep "bulk resync to peer 198.18.2.2" "$T/sync-ga.log" | tail -n 1 | cut -d' ' -f4-)"
	else
		fail "one paced bulk to a receiver with a 1 MiB buffer" "took $took; $bulks bulks, $downs times down; B refused: $(grep "message from peer 198.18.2.1:7946" "$T/sync-gb.log" | tail -n "$((refused > 2 ? 2 : refused))" | cut -d' ' -f4- | tr '\n' '|')"
	fi
	# the refresh below with B's usual buffer
	kill -TERM "$SYNC_PID"
	wait "$SYNC_PID"
	bulk_to_b already_pinned
fi

# ---- a periodic refresh repairs what no event carried ------------------------------
kill -TERM "$A_PID"
wait "$A_PID"
start_sync ga 198.18.2.1 198.18.2.2 127.0.0.1:9490 --refresh 2s >/dev/null
sleep 1
out=$("$SYNCTEST" fill --pin-dir "$(gw_pin ga)" --service web --first "$NFLOWS" --n 1000 2>&1) ||
	e2e_abort "fill: $out"
# A's restart sends B a bulk first, which the refresh waits behind: up to 3
# times the bulk's bound
for ((i = 0; i < 30 * LIMIT_S; i++)); do
	[ "$(applied pinned)" -ge 1000 ] && break
	sleep 0.1
done
if [ "$(applied pinned)" = 1000 ]; then
	pass "A's refresh (every 2 s) brings B the 1,000 pins no event carried, within $((i / 10)).$((i % 10)) s"
else
	fail "a refresh repairs lost events" "B wrote $(applied pinned) of 1000 in $((3 * LIMIT_S)) s"
fi
e2e_status
