#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make bench (after bench.sh): a client on the gateway node itself, through
# tcpshift's socket path (load --cgroup) against the other ways there are.
#
# The e2e topology (tests/e2e/lib.sh): client and gateway namespaces, two
# backends running `ts-echo server`, VIP 198.18.100.1:8008 at 50/50. One
# client process (tools/bench/rr.c: one exchange at a time) measures, for
# SECONDS each, new connections/s with their latency (connect, "ping", reply,
# close) and the request/response latency of one kept-alive connection:
#
#   socket     a process of the gateway in the cgroup of load --cgroup: the
#              backend is picked at connect(), no packet is rewritten
#   iptables   a process of the gateway, VIP DNAT-ed in the nat table's OUTPUT
#              chain (-m statistic --mode random), tcpshift unloaded
#   direct     a process of the gateway connecting to a backend itself: the
#              ceiling
#   tc         tcpshift's tc path, which a process of the gateway cannot use
#              (its packets leave through egress): the same client one veth
#              away, in the client namespace, for reference
#
# ROUNDS (default 2) rounds, methods in a rotating order; medians over rounds
# in OUT/local.md and OUT/local.json. Short runs: SECONDS=2 by default.
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RR=${RR:-$ROOT/build/bench/rr}
OUT=${OUT:-$ROOT/build/bench}
ROUNDS=${ROUNDS:-2}
SECONDS_EACH=${SECONDS_EACH:-2}
METHODS="socket iptables direct tc"

# shellcheck source=tests/e2e/lib.sh
source "$ROOT/tests/e2e/lib.sh"

CG_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
CG=${CG_ROOT:+$CG_ROOT/tsbench-$E2E_ID}
IPT_RULES=0

bench_cleanup() {
	[ "$IPT_RULES" -eq 1 ] && in_ns "$NS_GW" iptables -t nat -F OUTPUT 2>/dev/null
	e2e_cleanup
	[ -n "$CG" ] && [ -d "$CG" ] && rmdir "$CG" 2>/dev/null
	return 0
}

e2e_init local-bench
trap bench_cleanup EXIT
[ -n "$CG_ROOT" ] || e2e_abort "no cgroup v2 hierarchy is mounted (see /proc/mounts)"
[ -x "$RR" ] || e2e_abort "$RR not built: make bench builds it"
e2e_need iptables jq
mkdir "$CG" || e2e_abort "cannot create $CG"
e2e_topology
# a closed connection's TIME_WAIT stays with the client: reuse it
must "tcp_tw_reuse" in_ns "$NS_GW" sysctl -qw net.ipv4.tcp_tw_reuse=1
must "tcp_tw_reuse (client)" in_ns "$NS_CL" sysctl -qw net.ipv4.tcp_tw_reuse=1

load_ts() {
	E2E_LOAD_ARGS="--cgroup $CG" e2e_load >/dev/null
	e2e_service tcp-echo "$VIP4" 50 50
}

unload_ts() {
	ts unload >/dev/null 2>&1
}

ipt_on() {
	IPT_RULES=1
	# connect() routes the VIP before the OUTPUT chain rewrites it
	in_ns "$NS_GW" ip route replace 198.18.100.1/32 dev br0
	must "iptables DNAT 1" in_ns "$NS_GW" iptables -t nat -A OUTPUT -d 198.18.100.1 -p tcp \
		--dport 8008 -m statistic --mode random --probability 0.5 \
		-j DNAT --to-destination "$V1_4"
	must "iptables DNAT 2" in_ns "$NS_GW" iptables -t nat -A OUTPUT -d 198.18.100.1 -p tcp \
		--dport 8008 -j DNAT --to-destination "$V2_4"
}

ipt_off() {
	in_ns "$NS_GW" iptables -t nat -F OUTPUT
	in_ns "$NS_GW" ip route del 198.18.100.1/32 dev br0
	IPT_RULES=0
}

# run METHOD MODE: one rr line
run() {
	local m=$1 mode=$2

	case $m in
	socket)
		nsenter --net="/run/netns/$NS_GW" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
			"$CG" "$RR" --connect "$VIP4" --seconds "$SECONDS_EACH" "--$mode"
		;;
	iptables) in_ns "$NS_GW" "$RR" --connect "$VIP4" --seconds "$SECONDS_EACH" "--$mode" ;;
	direct) in_ns "$NS_GW" "$RR" --connect "$V1_4" --seconds "$SECONDS_EACH" "--$mode" ;;
	tc) in_ns "$NS_CL" "$RR" --connect "$VIP4" --seconds "$SECONDS_EACH" "--$mode" ;;
	esac
}

mkdir -p "$OUT"
raw=$OUT/local-raw.tsv
: >"$raw"
read -r -a order <<<"$METHODS"
for ((round = 1; round <= ROUNDS; round++)); do
	for ((k = 0; k < ${#order[@]}; k++)); do
		m=${order[(k + round - 1) % ${#order[@]}]}
		case $m in
		socket | tc) load_ts ;;
		iptables) ipt_on ;;
		esac
		for mode in new keepalive; do
			line=$(run "$m" "$mode")
			info "round $round $m $mode: $line"
			printf '%s\t%s\t%s\t%s\n' "$round" "$m" "$mode" "$line" >>"$raw"
		done
		case $m in
		socket | tc) unload_ts ;;
		iptables) ipt_off ;;
		esac
	done
done

# medians over rounds of field F (rr's "NAME VALUE" pairs) for METHOD MODE
median() {
	awk -F'\t' -v m="$1" -v mode="$2" -v f="$3" '$2 == m && $3 == mode {
		n = split($4, w, " "); for (i = 1; i < n; i += 2) if (w[i] == f) v[c++] = w[i + 1] }
		END { if (!c) { print "NA"; exit }
		      for (i = 0; i < c; i++) for (j = i + 1; j < c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		      print (c % 2 ? v[int(c / 2)] : (v[c / 2 - 1] + v[c / 2]) / 2) }' "$raw"
}

{
	echo "| client on the gateway | new conn/s | new conn p50 µs | new conn p99 µs |" \
		"keep-alive req/s | keep-alive p50 µs | keep-alive p99 µs | errors |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for m in $METHODS; do
		e=$(awk -F'\t' -v m="$m" '$2 == m { n = split($4, w, " ")
			for (i = 1; i < n; i += 2) if (w[i] == "errors") s += w[i + 1] } END { print s + 0 }' "$raw")
		echo "| $m | $(median "$m" new per_s) | $(median "$m" new p50_us) |" \
			"$(median "$m" new p99_us) | $(median "$m" keepalive per_s) |" \
			"$(median "$m" keepalive p50_us) | $(median "$m" keepalive p99_us) | $e |"
	done
	echo
	echo "Medians of $ROUNDS rounds of ${SECONDS_EACH} s per measurement; one client, one exchange" \
		"at a time (tools/bench/rr.c); tc: the client one veth away (a gateway process cannot" \
		"use the tc path)."
} >"$OUT/local.md"
jq -R -s 'split("\n") | map(select(length > 0) | split("\t") |
	{round: (.[0] | tonumber), method: .[1], mode: .[2],
	 result: (.[3] | split(" ") | [range(0; length; 2) as $i | {(.[$i]): (.[$i + 1] | tonumber)}] | add)})' \
	"$raw" >"$OUT/local.json"
cat "$OUT/local.md"
