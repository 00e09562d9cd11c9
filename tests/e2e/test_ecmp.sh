#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Two gateways behind ECMP (invariant 6): a client reaches the VIP
# through two equal-cost routes (L4 hash: each connection takes one gateway),
# the backends reply through both in the same way. Both gateways run tcpshift
# with the configuration of one export (same seed, same tables; different
# backend ids). 50 held connections are spread over both; then one gateway is
# taken away (its routes withdrawn, as a router would on failure) and at least
# 99 % of the connections must go on, answered by their own backend, through
# the other gateway — which never saw them: its flow table misses (counted as
# non_syn_miss), the consistent-hash table sends each to the backend the first
# gateway picked, and replies are rewritten through the backend_addrs index.
# Then it comes back, the other one goes, and it comes back again.
#
# (The client's kernel may route a connection's SYN by another hash than its
# later packets once a route change makes it look the route up again: after
# the first "back", some connections run through the gateway that did not see
# their SYN. They go on all the same: that is the point.)
#
#   client (198.18.0.1 on lo)                     switch (bridge)      backends
#   eth0 198.18.1.2 -- c0 198.18.1.1 [ga] s0 198.18.2.1 --+-- br0 --+-- b1 198.18.2.11 (v1)
#   eth1 198.18.3.2 -- c0 198.18.3.1 [gb] s0 198.18.2.2 --+         +-- b2 198.18.2.12 (v2)
#   198.18.100.0/24: nexthop ga, nexthop gb        backends' default: nexthop ga, nexthop gb
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init ecmp
e2e_need jq cmp awk

NCONN=50
VIP=198.18.100.1:8008
CLIENT=198.18.0.1
NS_SW=$(gw_ns sw)
NS_GA=$(gw_ns ga)
NS_GB=$(gw_ns gb)
T=$E2E_TMP

# ---- topology --------------------------------------------------------------------
for ns in "$NS_CL" "$NS_GA" "$NS_GB" "$NS_SW" "$NS_B1" "$NS_B2"; do
	e2e_netns_add "$ns"
done
must "switch bridge" ip -n "$NS_SW" link add br0 type bridge stp_state 0
must "switch up" ip -n "$NS_SW" link set br0 up

# Replies from the backends: both gateways (ECMP), or one.
backend_routes() {
	local ns g via=()

	for g in "$@"; do
		via+=(nexthop via "198.18.2.$([ "$g" = ga ] && echo 1 || echo 2)" dev eth0)
	done
	[ $# -eq 1 ] && via=(via "198.18.2.$([ "$1" = ga ] && echo 1 || echo 2)" dev eth0)
	for ns in "$NS_B1" "$NS_B2"; do
		ip -n "$ns" route replace default "${via[@]}" || return 1
	done
}

# The client's route to the VIPs: through both gateways (ECMP), or one.
client_route() {
	local g via=()

	for g in "$@"; do
		if [ "$g" = ga ]; then
			via+=(nexthop via 198.18.1.1 dev eth0)
		else
			via+=(nexthop via 198.18.3.1 dev eth1)
		fi
	done
	if [ $# -eq 1 ]; then
		[ "$1" = ga ] && via=(via 198.18.1.1 dev eth0) || via=(via 198.18.3.1 dev eth1)
	fi
	ip -n "$NS_CL" route replace 198.18.100.0/24 src "$CLIENT" "${via[@]}"
}

# routes_through GATEWAY...: client and backends use these gateways only.
routes_through() {
	client_route "$@" && backend_routes "$@"
}

ecmp_gateway ga 1 198.18.2.1
ecmp_gateway gb 3 198.18.2.2
ecmp_backend "$NS_B1" v1 198.18.2.11
ecmp_backend "$NS_B2" v2 198.18.2.12
must "client address" ip -n "$NS_CL" addr add "$CLIENT/32" dev lo
# L4 hash: each connection (5-tuple) takes one of the equal-cost routes
sysctls "$NS_CL" net.ipv4.fib_multipath_hash_policy=1 net.ipv4.conf.all.rp_filter=0 \
	net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 \
	net.ipv4.conf.eth1.rp_filter=0
routes_through ga gb || e2e_abort "the ECMP routes could not be set"
info "client: $(ip -n "$NS_CL" route show 198.18.100.0/24 | tr '\n' ' ' | tr -s ' \t' ' ')"

# ---- tcpshift on both gateways, from one export ------------------------------------
e2e_gw_load ga --dev c0 --dev s0 --seed 2718281828
e2e_gw_load gb --dev c0 --dev s0
must "A: service web" tsg ga service add web "$VIP"
must "A: backend v1" tsg ga backend add web v1 198.18.2.11:8008 --weight 60
must "A: backend v2" tsg ga backend add web v2 198.18.2.12:8008 --weight 40
# B first had something else: its backend ids differ from A's
must "B: service old" tsg gb service add old 198.18.100.7:8008
must "B: backend old o1" tsg gb backend add old o1 198.18.2.11:8008
tsg ga export >"$T/a.json" 2>"$T/err" || e2e_abort "export on A: $(head -n 1 "$T/err")"
tsg gb import "$T/a.json" >/dev/null 2>"$T/err" || e2e_abort "import on B: $(head -n 1 "$T/err")"
if tsg gb export 2>/dev/null | cmp -s - "$T/a.json"; then
	pass "B imported A's export: identical configuration and seed"
else
	fail "B imported A's export" "B's export differs from A's"
fi

# ---- counters ------------------------------------------------------------------------
# counter GW NAME: a global counter of gateway GW.
counter() {
	tsg "$1" -j status 2>/dev/null | jq -r --arg n "$2" '.counters[$n] // 0' 2>/dev/null
}

# packets GW: packets of service web through GW, both directions, all backends.
packets() {
	tsg "$1" -j stats web 2>/dev/null | jq '[.services[].backends[].packets] | add // 0' \
		2>/dev/null
}

# pinned GW: flows pinned on GW.
pinned() {
	tsg "$1" -j flows web 2>/dev/null | jq 'length' 2>/dev/null
}

# ---- the held connections ------------------------------------------------------------------
many_open "$VIP" "$NCONN"
many_read 120 || e2e_abort "holdmany did not report its connections ($(
	tail -n 2 "$T/holdmany.err" 2>/dev/null | tr '\n' ' '))"
read -r _ opened failed <<<"$MANY_END"
byorig=$(printf '%s\n' "${MANY_LINES[@]}" | awk '$1 == "conn" { c[$3]++ }
	END { for (b in c) printf "%s=%d ", b, c[b] }')
if [ "${opened:-0}" -eq "$NCONN" ]; then
	pass "$NCONN connections opened through the VIP ($byorig)"
else
	e2e_abort "only ${opened:-0} of $NCONN connections opened (${failed:-?} failed: $byorig)"
fi
new_a=$(counter ga new_flows)
new_b=$(counter gb new_flows)
pin_a=$(pinned ga)
pin_b=$(pinned gb)
if [ "$new_a" -gt 0 ] && [ "$new_b" -gt 0 ] && [ $((new_a + new_b)) -eq "$NCONN" ]; then
	pass "ECMP spread the connections: gateway A picked $new_a, B $new_b (pinned $pin_a + $pin_b)"
else
	fail "ECMP spread the connections" "new flows on A $new_a, on B $new_b (want both > 0, sum $NCONN)"
fi

many_check "both gateways" t0

# away GW OTHER: GW's routes withdrawn; the held connections go on through OTHER,
# which never saw GW's flows; GW carries nothing meanwhile.
away() {
	local g=$1 o=$2 miss0 miss1 pk0 pk1

	miss0=$(counter "$o" non_syn_miss)
	pk0=$(packets "$g")
	routes_through "$o" || { fail "gateway $g away" "route change failed"; return; }
	many_check "gateway $g away" "away-$g"
	miss1=$(counter "$o" non_syn_miss)
	pk1=$(packets "$g")
	if [ "$pk1" -eq "$pk0" ] && [ $((miss1 - miss0)) -gt 0 ]; then
		pass "gateway $g away: it carried nothing; $o routed $((miss1 - miss0)) flows it had never seen by its table (non_syn_miss)"
	else
		fail "gateway $g away" "packets through $g $pk0 -> $pk1 (want unchanged), non_syn_miss on $o $miss0 -> $miss1 (want more)"
	fi
}

# back: both gateways again, as at the start.
back() {
	routes_through ga gb || { fail "$1" "route change failed"; return; }
	many_check "$1" "$2"
}

away ga gb
back "gateway ga back" back-ga
away gb ga
back "gateway gb back" back-gb

info "A: $(tsg ga stats web 2>/dev/null | awk 'NR <= 4' | tr -s ' ' | tr '\n' '|')"
info "B: $(tsg gb stats web 2>/dev/null | awk 'NR <= 4' | tr -s ' ' | tr '\n' '|')"
many_cmd quit 5 >/dev/null 2>&1
e2e_status
