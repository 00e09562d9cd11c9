#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make bench-pps: the gateway's own cost, as packets per second through it on
# one core, for every method side by side in one run; make bench-conn: the
# same harness, its phase conn alone (complete connections per second).
#
#   generator ns              gateway ns                         backend ns (x2)
#   g0 198.18.0.2 ---- veth ---- cID 198.18.0.1   b1 198.18.2.1 ---- sIDa 198.18.2.2
#   clients 198.18.128.0/17      [method]         b2 198.18.3.1 ---- sIDb 198.18.3.2
#                                VIP 198.18.100.1:80 -> both backends, :80
#
# The generator (tools/bench/pps.c and pps.bpf.c: BPF_PROG_RUN live frames on
# g0; where the kernel refuses them, the same frames from an AF_PACKET socket on
# gs, relayed at XDP from its peer gr to g0) sends TCP segments to the gateway's
# device; the backends count and drop them at XDP. Everything runs on one CPU: the generator's batches, and the
# receive processing (NAPI, softirq) that each batch raises there, on the
# gateway's devices and then on the backends'. The figure is that CPU's time
# per packet delivered to the backends; the gateway's part of it is that
# minus the same round's *baseline*, where the gateway's device drops every
# packet at XDP as it arrives.
#
# Per method and round the namespaces are made afresh (no conntrack hooks,
# maps or flows left by the method before); FLOWS flows are confirmed first by
# real handshakes through the method (the backends' sinks answer SYN-ACK, the
# client side's answers the ACK) and checked (tcpshift's handshakes counter,
# conntrack's ESTABLISHED entries). Then the phases (PHASES): "established"
# (ACKs of those flows, round robin), "syn" (a SYN of a new flow per packet),
# "conn" (a SYN of a new flow per frame, which the sinks carry through a whole
# connection at XDP: SYN-ACK, the client's ACK with a request, the response,
# the client's FIN, the backend's FIN, the last ACK; no TCP stack at either
# end). In conn every connection must complete, each segment counted where it
# arrives, and the method must agree (tcpshift's handshakes and closed
# counters, conntrack's TIME_WAIT entries), or the round fails. Its baseline:
# the gateway's device answers at XDP as the backend would (the same sinks'
# work and the same segments into the gateway's devices; what remains is the
# gateway's own processing and transmit).
#
# Methods (METHODS; each round runs the baseline and them in a rotating order):
#   forward        kernel IP forwarding to the backends' own addresses (ceiling)
#   tc-empty       the same, with a tc program that does nothing where tcpshift's
#                  sit (ingress and egress of the gateway's three devices)
#   xdp-redirect   plain XDP forwarding without NAT (pps_fwd: FIB lookup, devmap)
#   iptables       iptables-legacy DNAT, -m statistic random 50/50 (conntrack)
#   nftables       nftables dnat to numgen random mod 2 (conntrack)
#   tcpshift       tcpshift load (tc, --forward stack)
#   tcpshift-fib   tcpshift load --forward fib
#   tcpshift-xdp   tcpshift load --mode xdp; "unavailable" when this build's
#                  load has no --mode
#   tcpshift-xdp-hs  tcpshift load --mode xdp --handshakes xdp (whole
#                  connections at XDP); "unavailable" without --handshakes
#
# Knobs: QUICK=1 (one round of 1 s phases: under a minute), ROUNDS=3
# SECONDS_PER_PHASE=3 WARMUP=0.5 FLOWS=10000 CPU=0 METHODS=... PHASES="established
# syn conn" REPORT=pps (the output's name) INSTALL=1 (0: never apt-get)
# OUT=build/bench SUMMARIZE_ONLY=1 (only the tables and the plots again, from
# OUT/REPORT-raw.tsv). Output: OUT/REPORT.md, OUT/REPORT-raw.tsv, OUT/REPORT.png
# (packets), OUT/REPORT-conn.png (connections; conn.png for REPORT=conn). Needs
# root. Only 198.18.0.0/15; namespaces tspps-<pid>-*, pin
# directory /sys/fs/bpf/tcpshift-pps-<pid>; the trap removes them.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
TCPSHIFT=${TCPSHIFT:-$ROOT/build/tcpshift}
PPS=${PPS:-$ROOT/build/bench/pps}
EMPTY_TC=${EMPTY_TC:-$ROOT/build/bench/empty.bpf.o}
OUT=${OUT:-$ROOT/build/bench}
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	ROUNDS=${ROUNDS:-1} SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-1} WARMUP=${WARMUP:-0.3}
else
	ROUNDS=${ROUNDS:-3} SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-3} WARMUP=${WARMUP:-0.5}
fi
FLOWS=${FLOWS:-10000}
PHASES=${PHASES:-"established syn conn"}
REPORT=${REPORT:-pps}
METHODS=${METHODS:-"forward tc-empty xdp-redirect iptables nftables tcpshift tcpshift-fib tcpshift-xdp tcpshift-xdp-hs"}
CPU=${CPU:-0}
INSTALL=${INSTALL:-1}
DEB_PEERS="iptables nftables gnuplot-nox"
PEER_SERVICES=

ID=$$
NS_GEN=tspps-$ID-gen
NS_GW=tspps-$ID-gw
NS_B1=tspps-$ID-b1
NS_B2=tspps-$ID-b2
GW_DEV=c$ID
BE1_DEV=s${ID}a
BE2_DEV=s${ID}b
PIN=/sys/fs/bpf/tcpshift-pps-$ID
VIP=198.18.100.1
B1=198.18.2.2
B2=198.18.3.2

TMP=
RAW=
NETNS=()
CLEANED=0

log() { printf '  %-8s %s\n' "$1" "${*:2}" >&2; }
die() {
	echo "bench-pps: $*" >&2
	exit 1
}

cleanup() {
	[ "$CLEANED" -eq 1 ] && return 0
	CLEANED=1
	teardown
	[ "$POLICY_RC_MADE" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
	[ -n "$TMP" ] && [ -d "$TMP" ] && rm -rf -- "$TMP"
	return 0
}

in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

must() {
	local desc=$1 err
	shift
	err=$("$@" 2>&1 >/dev/null) || die "$desc failed: ${err:-no message} (command: $*)"
}

ts() { "$TCPSHIFT" --pin-dir "$PIN" -n "$NS_GW" "$@"; }

# ---- topology: made afresh for every method and round --------------------------------

mac_of() { ip -n "$1" -j link show dev "$2" | jq -r '.[0].address'; }

topology() {
	local ns

	for ns in "$NS_GEN" "$NS_GW" "$NS_B1" "$NS_B2"; do
		must "namespace $ns" ip netns add "$ns"
		NETNS+=("$ns")
		must "lo up in $ns" ip -n "$ns" link set lo up
		# no IPv6 chatter (router solicitations, DAD) on the measured devices
		must "ipv6 off in $ns" in_ns "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
			net.ipv6.conf.default.disable_ipv6=1
	done
	must "gateway sysctls" in_ns "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
	must "generator veth" ip -n "$NS_GW" link add "$GW_DEV" type veth peer name g0 netns "$NS_GEN"
	must "backend veth 1" ip -n "$NS_GW" link add b1 type veth peer name "$BE1_DEV" netns "$NS_B1"
	must "backend veth 2" ip -n "$NS_GW" link add b2 type veth peer name "$BE2_DEV" netns "$NS_B2"
	# the AF_PACKET sender's veth pair (pps --relay gs:gr), used where the
	# kernel refuses live frames
	must "relay veth" ip -n "$NS_GEN" link add gs type veth peer name gr
	must "gs up" ip -n "$NS_GEN" link set gs up
	must "gr up" ip -n "$NS_GEN" link set gr up
	must "generator address" ip -n "$NS_GEN" addr add 198.18.0.2/24 dev g0
	must "gateway address" ip -n "$NS_GW" addr add 198.18.0.1/24 dev "$GW_DEV"
	must "b1 address" ip -n "$NS_GW" addr add 198.18.2.1/24 dev b1
	must "b2 address" ip -n "$NS_GW" addr add 198.18.3.1/24 dev b2
	must "backend 1 address" ip -n "$NS_B1" addr add "$B1/24" dev "$BE1_DEV"
	must "backend 2 address" ip -n "$NS_B2" addr add "$B2/24" dev "$BE2_DEV"
	must "g0 up" ip -n "$NS_GEN" link set g0 up
	must "backend 1 up" ip -n "$NS_B1" link set "$BE1_DEV" up
	must "backend 2 up" ip -n "$NS_B2" link set "$BE2_DEV" up
	for ns in "$GW_DEV" b1 b2; do
		must "$ns up" ip -n "$NS_GW" link set "$ns" up
		must "rp_filter $ns" in_ns "$NS_GW" sysctl -qw "net.ipv4.conf.$ns.rp_filter=0"
	done
	must "backend 1 route" ip -n "$NS_B1" route add default via 198.18.2.1
	must "backend 2 route" ip -n "$NS_B2" route add default via 198.18.3.1
	# The clients sit behind the generator's address: one neighbour, never
	# resolved (no ARP during the run).
	must "clients' route" ip -n "$NS_GW" route add 198.18.128.0/17 via 198.18.0.2 dev "$GW_DEV"
	must "neighbour g0" ip -n "$NS_GW" neigh replace 198.18.0.2 lladdr "$(mac_of "$NS_GEN" g0)" \
		nud permanent dev "$GW_DEV"
	must "neighbour b1" ip -n "$NS_GW" neigh replace "$B1" lladdr "$(mac_of "$NS_B1" "$BE1_DEV")" \
		nud permanent dev b1
	must "neighbour b2" ip -n "$NS_GW" neigh replace "$B2" lladdr "$(mac_of "$NS_B2" "$BE2_DEV")" \
		nud permanent dev b2
	# A veth receives XDP_TX'd and redirected frames only when its NAPI runs
	# (an XDP program or GRO on it: the kernel's veth documentation).
	for ns in "$GW_DEV" b1 b2; do
		must "GRO on $ns" in_ns "$NS_GW" ethtool -K "$ns" gro on
	done
	# The same on their peers, before any method loads: they get the sinks'
	# XDP programs only when pps starts, and tcpshift load serves at tc a
	# device whose peer could not take XDP frames at that time.
	must "GRO on g0" in_ns "$NS_GEN" ethtool -K g0 gro on
	must "GRO on $BE1_DEV" in_ns "$NS_B1" ethtool -K "$BE1_DEV" gro on
	must "GRO on $BE2_DEV" in_ns "$NS_B2" ethtool -K "$BE2_DEV" gro on
}

teardown() {
	local ns

	if [ -e "$PIN" ]; then
		timeout 20 "$TCPSHIFT" --pin-dir "$PIN" -n "$NS_GW" unload >/dev/null 2>&1
		[ -e "$PIN" ] && rm -rf -- "$PIN"
	fi
	for ns in "${NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	NETNS=()
}

# ---- methods ----------------------------------------------------------------------------

xdp_mode_available() { "$TCPSHIFT" load --help 2>&1 | grep -q -- '--mode'; }

# setup METHOD: configures the gateway; prints pps's extra arguments
setup() {
	case $1 in
	baseline)
		echo --direct --baseline ;;
	forward)
		echo --direct ;;
	xdp-redirect)
		echo --direct --xdp-forward "$GW_DEV" --xdp-forward b1 --xdp-forward b2 ;;
	tc-empty)
		# where tcpshift's tc programs sit (ingress and egress of every
		# device), a program that returns TC_ACT_OK: the hooks' own cost
		local dev dir
		for dev in "$GW_DEV" b1 b2; do
			must "clsact on $dev" in_ns "$NS_GW" tc qdisc add dev "$dev" clsact
			for dir in ingress egress; do
				must "empty tc program on $dev $dir" in_ns "$NS_GW" tc filter add \
					dev "$dev" "$dir" bpf direct-action obj "$EMPTY_TC" sec tc
			done
		done
		echo --direct ;;
	iptables)
		must "iptables-legacy DNAT" in_ns "$NS_GW" iptables-legacy -t nat -A PREROUTING \
			-d "$VIP" -p tcp --dport 80 -m statistic --mode random --probability 0.5 \
			-j DNAT --to-destination "$B1:80"
		must "iptables-legacy DNAT" in_ns "$NS_GW" iptables-legacy -t nat -A PREROUTING \
			-d "$VIP" -p tcp --dport 80 -j DNAT --to-destination "$B2:80" ;;
	nftables)
		must "nft DNAT" in_ns "$NS_GW" nft -f - <<EOF
table ip tspps {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr $VIP tcp dport 80 dnat to numgen random mod 2 map { 0 : $B1, 1 : $B2 }
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
EOF
		;;
	tcpshift | tcpshift-fib | tcpshift-xdp | tcpshift-xdp-hs)
		local extra=()
		[ "$1" = tcpshift-fib ] && extra=(--forward fib)
		[ "$1" = tcpshift-xdp ] && extra=(--mode xdp)
		[ "$1" = tcpshift-xdp-hs ] && extra=(--mode xdp --handshakes xdp)
		must "tcpshift load ${extra[*]}" ts load --dev "$GW_DEV" --dev b1 --dev b2 "${extra[@]}"
		must "service" ts service add web "$VIP:80"
		must "backend v1" ts backend add web v1 "$B1:80"
		must "backend v2" ts backend add web v2 "$B2:80" ;;
	*) die "unknown method $1" ;;
	esac
}

# ---- one round of one method -------------------------------------------------------------

record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }	# ROUND METHOD PHASE KEY VALUE

# method_count METHOD FIELD STATE: connections the method itself counts:
# tcpshift's canary counter FIELD summed over backends, conntrack's entries in
# STATE to port 80 (iptables, nftables); empty when the method keeps none.
# confirmed: handshakes / ESTABLISHED; closed (FINs both ways): closed /
# TIME_WAIT.
method_count() {
	case $1 in
	tcpshift*)
		ts -j stats 2>/dev/null | jq "[.services[].backends[].canary.$2] | add" ;;
	iptables | nftables)
		in_ns "$NS_GW" awk -v s=" $3 " 'index($0, s) && / dport=80 / { n++ } END { print n + 0 }' \
			/proc/net/nf_conntrack ;;
	esac
}
confirmed() { method_count "$1" handshakes ESTABLISHED; }
closed() { method_count "$1" closed TIME_WAIT; }

# conn_agreed METHOD OUT CONFIRMED CLOSED: empty when the method agrees that
# every connection of phase conn (its line's syn=, warm-up included) was
# opened and closed, else what it disagrees on. conntrack's TIME_WAIT entries
# are checked while the table cannot have early-dropped any (at most half of
# nf_conntrack_max).
conn_agreed() {
	local opened max

	opened=$(sed -n 's/^phase=conn .* syn=\([0-9]*\).*/\1/p' <<<"$2")
	[ -z "$opened" ] && return 0
	case $1 in
	tcpshift*)
		[ "${3:-0}" -ge $((FLOWS + opened)) ] ||
			echo "handshakes ${3:-none}, expected $FLOWS + $opened"
		[ "${4:-0}" -ge "$opened" ] || echo "closed ${4:-none} of $opened connections" ;;
	iptables | nftables)
		max=$(in_ns "$NS_GW" cat /proc/sys/net/netfilter/nf_conntrack_max 2>/dev/null)
		[ -n "$max" ] && [ "$opened" -gt $((max / 2)) ] && return 0
		[ "${4:-0}" -ge "$opened" ] ||
			echo "conntrack holds ${4:-none} of $opened connections in TIME_WAIT" ;;
	esac
}

# xdp_redirected: the frames an XDP program on the gateway's device redirected
# in the whole round (veth's counter): is a method's XDP path taken at all?
xdp_redirected() {
	in_ns "$NS_GW" ethtool -S "$GW_DEV" 2>/dev/null |
		awk '$1 ~ /^rx_queue_[0-9]+_xdp_redirect:$/ { n += $2 } END { print n + 0 }'
}

run_method() {	# METHOD ROUND
	local m=$1 r=$2 args out rc line ph kv c cl bad xr

	if [ "$m" = tcpshift-xdp ] && ! xdp_mode_available; then
		log "$m" "unavailable: this build's tcpshift load has no --mode"
		record "$r" "$m" - unavailable 1
		return 0
	fi
	if [ "$m" = tcpshift-xdp-hs ] && ! "$TCPSHIFT" load --help 2>&1 | grep -q -- '--handshakes'; then
		log "$m" "unavailable: this build's tcpshift load has no --handshakes"
		record "$r" "$m" - unavailable 1
		return 0
	fi
	topology
	args=$(setup "$m") || exit 1
	# shellcheck disable=SC2086
	out=$("$PPS" --gen "$NS_GEN:g0" --gw "$NS_GW:$GW_DEV" --backend "$NS_B1:$BE1_DEV:$B1" \
		--backend "$NS_B2:$BE2_DEV:$B2" --vip "$VIP:80" --flows "$FLOWS" \
		--seconds "$SECONDS_PER_PHASE" --warmup "$WARMUP" --cpu "$CPU" \
		--phases "$(tr ' ' , <<<"$PHASES")" --sender auto --relay gs:gr $args 2>"$TMP/pps.err")
	rc=$?
	c=$(confirmed "$m")
	cl=$(closed "$m")
	xr=$(xdp_redirected)
	[ "$rc" -eq 0 ] && bad=$(conn_agreed "$m" "$out" "$c" "$cl")
	teardown
	if [ "$rc" -ne 0 ]; then
		log "$m" "FAILED: $(tail -n 3 "$TMP/pps.err" | tr '\n' ' ')"
		record "$r" "$m" - failed 1
		return 0
	fi
	if [ -n "$c" ] && [ "$c" -lt "$FLOWS" ]; then
		log "$m" "FAILED: the method confirmed $c of the $FLOWS flows"
		record "$r" "$m" - failed 1
		return 0
	fi
	if [ -n "${bad:-}" ]; then
		log "$m" "FAILED: connections: $(tr '\n' ' ' <<<"$bad")"
		record "$r" "$m" - failed 1
		return 0
	fi
	[ -n "$c" ] && record "$r" "$m" handshake confirmed "$c"
	[ -n "$cl" ] && record "$r" "$m" handshake closed "$cl"
	[ -n "$xr" ] && record "$r" "$m" handshake xdp_redirected "$xr"
	while read -r line; do
		ph=handshake
		[[ $line == phase=* ]] && { ph=${line%% *}; ph=${ph#phase=}; }
		for kv in $line; do
			[[ $kv == *=* && $kv != phase=* ]] && record "$r" "$m" "$ph" "${kv%%=*}" "${kv#*=}"
		done
	done <<<"$out"
	awk -v m="$m" -v c="${c:-}" '
	$1 == "handshake" && c != "" { printf "  %-8s %s flows confirmed by the method\n", m, c }
	/^phase=/ {
		for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		if (v["phase"] == "conn")
			printf "  %-8s conn: %.0f ns/connection on the core, %.0f connections/s, %d of %d not completed\n",
				m, v["delivered"] ? v["cpu_ns"] / v["delivered"] : -1,
				v["delivered"] / v["seconds"], v["accepted"] - v["delivered"], v["accepted"]
		else
			printf "  %-8s %s: %.0f ns/packet on the core, %.3f Mpps delivered, %d of %d lost\n",
				m, v["phase"], v["delivered"] ? v["cpu_ns"] / v["delivered"] : -1,
				v["delivered"] / v["seconds"] / 1e6, v["accepted"] - v["delivered"], v["accepted"] }' \
		<<<"$out" >&2
}

# ---- summary ---------------------------------------------------------------------------

# stats: per method and phase "METHOD PHASE total_ns gateway_ns mpps wall_mpps
# lost_pct rounds" (medians over rounds; gateway_ns: total_ns minus the same
# round's baseline; mpps: 1000 / gateway_ns), and "METHOD - STATUS" for a
# method that did not run
stats() {
	awk -F'\t' '
	$3 == "-" { status[$2] = $4; next }
	$3 == "handshake" { next }
	{ v[$1, $2, $3, $4] = $5; key[$2 SUBSEP $3] = 1; rounds[$1] = 1 }
	function med(a, n,    i, j, t) {
		for (i = 2; i <= n; i++)
			for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	function total(r, m, p,    d) {
		d = v[r, m, p, "delivered"]
		return d > 0 ? v[r, m, p, "cpu_ns"] / d : ""
	}
	END {
		for (k in key) {
			split(k, mp, SUBSEP)
			n = 0; g = 0
			for (r in rounds) {
				t = total(r, mp[1], mp[2])
				if (t == "") continue
				n++
				tot[n] = t
				wall[n] = v[r, mp[1], mp[2], "delivered"] / v[r, mp[1], mp[2], "seconds"] / 1e6
				a = v[r, mp[1], mp[2], "accepted"]
				lost[n] = a > 0 ? 100 * (a - v[r, mp[1], mp[2], "delivered"]) / a : 0
				b = total(r, "baseline", mp[2])
				if (b != "" && mp[1] != "baseline") gw[++g] = t - b
			}
			if (!n) { print mp[1], mp[2], "NA", "NA", "NA", "NA", "NA", 0; continue }
			gm = g ? med(gw, g) : "NA"
			printf "%s %s %.0f %s %s %.3f %.2f %d\n", mp[1], mp[2], med(tot, n),
				gm == "NA" ? "NA" : sprintf("%.0f", gm),
				gm == "NA" || gm <= 0 ? "NA" : sprintf("%.3f", 1000 / gm),
				med(wall, n), med(lost, n), n
		}
		for (m in status) print m, "-", status[m]
	}' "$RAW" >"$TMP/stats"
}

# stat METHOD PHASE FIELD (3 total ns, 4 gateway ns, 5 Mpps, 6 wall Mpps, 7 lost %)
# senders: the generators that ran (pps's sender= per phase)
senders() { awk -F'\t' '$4 == "sender" { s[$5] = 1 } END { for (k in s) printf "%s%s", n++ ? ", " : "", k }' "$RAW"; }

stat() { awk -v m="$1" -v p="$2" -v f="$3" '$1 == m && $2 == p { print $f; exit }' "$TMP/stats"; }

status_of() { awk -v m="$1" '$1 == m && $2 == "-" { print $3; exit }' "$TMP/stats"; }

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || a == "NA" || b == "NA" || b == 0) print "—"; else printf "%.2f", a / b }'
}

# target TEXT METHOD OTHER MIN: a row of the targets table (established flows)
target() {
	local r

	r=$(ratio "$(stat "$2" established 5)" "$(stat "$3" established 5)")
	if [ "$r" = — ]; then
		printf '| %s | — | not measured (%s: %s) |\n' "$1" "$2" "$(status_of "$2")"
	else
		printf '| %s | %s× | %s |\n' "$1" "$r" \
			"$(awk -v r="$r" -v t="$4" 'BEGIN { print (r >= t ? "met" : "missed") }')"
	fi
}

summarize() {
	local m p st

	ROUNDS=$(cut -f1 "$RAW" | sort -u | wc -l)
	stats
	{
		if [ "$PHASES" = conn ]; then
			echo "# Connections per second through the gateway (make bench-conn)"
		else
			echo "# Packets and connections per second through the gateway (make bench-pps)"
		fi
		echo
		echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)."
		echo "$ROUNDS round(s), baseline and methods in a rotating order; ${SECONDS_PER_PHASE} s per phase after ${WARMUP} s of warm-up; $FLOWS flows confirmed by handshakes first."
		echo "One core (CPU $CPU) runs the generator and the receive processing of the gateway and the backends."
		echo
		echo "- *core ns*: that core's CPU time per packet delivered to the backends (generator, gateway, backends)"
		echo "- *gateway ns*: core ns minus the same round's *baseline* (the gateway's device drops each packet at XDP)"
		echo "- *Mpps (1 core)*: 1000 / gateway ns, the gateway's packet rate on a core of its own"
		echo "- *wall Mpps*: packets delivered per second of the run, all three on one core (other tenants' load included)"
		echo "- *lost*: packets the gateway took in and the backends never got"
		echo
		echo "Medians over rounds; per-round values in $REPORT-raw.tsv."
		echo "Generator: $(senders) (live: BPF_PROG_RUN live frames; af_packet_relay: AF_PACKET, relayed to g0 at XDP, where the kernel refuses live frames)."
		for p in $PHASES; do
			[ "$p" = conn ] && { conn_table; continue; }
			echo
			if [ "$p" = established ]; then
				echo "## Established flows (ACKs of the $FLOWS confirmed flows, round robin)"
			else
				echo "## SYNs of new flows (a new client address:port each packet)"
			fi
			echo
			echo "| method | core ns | gateway ns | Mpps (1 core) | × forward | × iptables | wall Mpps | lost |"
			echo "|---|---:|---:|---:|---:|---:|---:|---:|"
			for m in baseline $METHODS; do
				if [ -z "$(stat "$m" "$p" 3)" ]; then
					st=$(status_of "$m")
					printf '| %s | %s | | | | | | |\n' "$m" "${st:-not run}"
					continue
				fi
				printf '| %s | %s | %s | %s | %s | %s | %s | %s %% |\n' "$m" \
					"$(stat "$m" "$p" 3)" "$(stat "$m" "$p" 4)" "$(stat "$m" "$p" 5)" \
					"$(ratio "$(stat "$m" "$p" 5)" "$(stat forward "$p" 5)")" \
					"$(ratio "$(stat "$m" "$p" 5)" "$(stat iptables "$p" 5)")" \
					"$(stat "$m" "$p" 6)" "$(stat "$m" "$p" 7)"
			done
		done
		if has_phase established; then
			echo
			echo "## Targets of the XDP mode (established flows, Mpps on one core)"
			echo
			echo "| target | measured | |"
			echo "|---|---:|---|"
			target "tcpshift xdp ≥ 2× tcpshift tc" tcpshift-xdp tcpshift 2
			target "tcpshift xdp ≥ 3× iptables DNAT" tcpshift-xdp iptables 3
			target "tcpshift xdp ≥ 0.8× plain XDP redirect" tcpshift-xdp xdp-redirect 0.8
		fi
		echo
		if has_phase established || has_phase syn; then
			echo "Plot, packets: $REPORT.png (this directory)."
		fi
		has_phase conn && echo "Plot, connections: $(conn_png) (this directory)."
	} >"$OUT/$REPORT.md"
	if has_phase established || has_phase syn; then plot; fi
	if has_phase conn; then plot_conn; fi
}

has_phase() { [[ " $PHASES " == *" $1 "* ]]; }

conn_png() { if [ "$REPORT" = conn ]; then echo conn.png; else echo "$REPORT-conn.png"; fi; }

# conn_table: the connections' table and the goal of whole connections at XDP
conn_table() {
	local m st g it r

	echo
	echo "## Whole connections (SYN, SYN-ACK, the client's ACK with a 64-byte request, a 128-byte response, FINs both ways, the last ACK)"
	echo
	echo "Seven segments through the gateway per connection, answered in place at XDP by the sinks (no TCP stack at either end)."
	echo "The baseline's gateway device answers as the backend: *gateway ns* is the gateway's own processing and transmit of the seven."
	echo
	echo "| method | core ns/conn | gateway ns/conn | connections/s (1 core) | cost × iptables | wall conn/s | not completed |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for m in baseline $METHODS; do
		if [ -z "$(stat "$m" conn 3)" ]; then
			st=$(status_of "$m")
			printf '| %s | %s | | | | | |
' "$m" "${st:-not run}"
			continue
		fi
		g=$(stat "$m" conn 4)
		printf '| %s | %s | %s | %s | %s | %s | %s %% |
' "$m" "$(stat "$m" conn 3)" "$g" 			"$(awk -v g="$g" 'BEGIN { if (g == "NA" || g <= 0) print "NA"; else printf "%.0f", 1e9 / g }')" 			"$(ratio "$g" "$(stat iptables conn 4)")" 			"$(awk -v w="$(stat "$m" conn 6)" 'BEGIN { printf "%.0f", w * 1e6 }')" 			"$(stat "$m" conn 7)"
	done
	echo
	g=$(stat tcpshift-xdp-hs conn 4) it=$(stat iptables conn 4)
	r=$(ratio "$g" "$it")
	if [ "$r" = — ]; then
		echo "Goal, whole connections at XDP (tcpshift-xdp-hs) ≤ 1/5 of iptables' gateway ns per connection: not measured."
	else
		echo "Goal, whole connections at XDP (tcpshift-xdp-hs) ≤ 1/5 of iptables' gateway ns per connection: $g against $it ns, $r×: **$(awk -v r="$r" 'BEGIN { print (r <= 0.2 ? "met" : "missed") }')**."
	fi
}

plot_conn() {
	local d=$TMP/plot-conn.dat m g st

	command -v gnuplot >/dev/null || { log PLOT "no gnuplot: no $(conn_png)"; return 0; }
	: >"$d"
	for m in $METHODS; do
		g=$(stat "$m" conn 4) st=$(status_of "$m")
		g=$(awk -v g="${g:-NA}" 'BEGIN { if (g == "NA" || g <= 0) print "NaN"; else printf "%.1f", 1e6 / g }')
		echo "$m $g ${st:--}" >>"$d"
	done
	{
		bars_preamble "$OUT/$(conn_png)" 			"Whole connections through the gateway on one core (median of $ROUNDS round(s))" 			"thousand connections/s (1e6 / gateway ns per connection)"
		cat <<EOF
plot "$d" using 2:xtic(1) title "connections: handshake, request, response, FINs both ways" lc rgb "#4878a8",      "" using 0:2:(sprintf("%.1f", \$2)) with labels offset 0,0.7 font ",9" notitle,      "" using 0:(0):(stringcolumn(3) eq "-" ? "" : stringcolumn(3)) with labels offset 0,1 notitle
EOF
	} | gnuplot 2>>"$TMP/gnuplot.err"
}

plot() {
	local d=$TMP/plot.dat m e y st

	command -v gnuplot >/dev/null || { log PLOT "no gnuplot: no $REPORT.png"; return 0; }
	: >"$d"
	for m in $METHODS; do
		e=$(stat "$m" established 5) y=$(stat "$m" syn 5) st=$(status_of "$m")
		echo "$m ${e:-NaN} ${y:-NaN} ${st:--}" | sed 's/ NA / NaN /g; s/ NA / NaN /g' >>"$d"
	done
	{
		bars_preamble "$OUT/$REPORT.png" \
			"Packets per second through the gateway on one core (median of $ROUNDS round(s))" \
			"Mpps (1000 / gateway ns per packet)"
		cat <<EOF
plot "$d" using 2:xtic(1) title "established flows" lc rgb "#4878a8", \
     "" using 3 title "SYNs of new flows" lc rgb "#e08040", \
     "" using (\$0 - 0.17):2:(sprintf("%.2f", \$2)) with labels offset 0,0.7 font ",9" notitle, \
     "" using (\$0 + 0.17):3:(sprintf("%.2f", \$3)) with labels offset 0,0.7 font ",9" notitle, \
     "" using 0:(0):(stringcolumn(4) eq "-" ? "" : stringcolumn(4)) with labels offset 0,1 notitle
EOF
	} | gnuplot 2>>"$TMP/gnuplot.err"
}

# ---- main ------------------------------------------------------------------------------

main() {
	local r i m order start_s

	[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, BPF, apt-get)"
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/tspps-$ID.XXXXXX") || die "mktemp failed"
	mkdir -p "$OUT"
	RAW=$OUT/$REPORT-raw.tsv
	if [ "${SUMMARIZE_ONLY:-0}" = 1 ]; then
		[ -s "$RAW" ] || die "$RAW: nothing to summarize"
		summarize
		cat "$OUT/$REPORT.md"
		return 0
	fi
	[ -x "$TCPSHIFT" ] && [ -x "$PPS" ] && [ -e "$EMPTY_TC" ] ||
		die "build first: make all build/bench/pps build/bench/empty.bpf.o (or make bench-pps)"
	mountpoint -q /sys/fs/bpf || die "/sys/fs/bpf is not mounted (bpffs)"
	[ -e "$PIN" ] && die "$PIN already exists"
	case " $METHODS " in
	*" iptables "* | *" nftables "*) install_peers ;;
	esac
	for m in ethtool jq nsenter; do
		command -v "$m" >/dev/null || die "$m not found"
	done
	: >"$RAW"
	start_s=$SECONDS
	# the baseline runs every round, in the rotation: the gateway figures are taken against it
	read -r -a order <<<"baseline $METHODS"
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < ${#order[@]}; i++)); do
			m=${order[$(((i + r - 1) % ${#order[@]}))]}
			log ROUND "$r/$ROUNDS: $m"
			run_method "$m" "$r"
		done
	done
	summarize
	log DONE "$OUT/$REPORT.md, $REPORT-raw.tsv and plots ($((SECONDS - start_s)) s)"
	cat "$OUT/$REPORT.md"
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

[ "${PPS_SOURCE_ONLY:-0}" = 1 ] || main "$@"
