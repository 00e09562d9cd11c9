#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A flood-safe flow table. With --max-flows 1024: 40 idle established
# connections opened at 50/50, weights changed to 0/100, then 200,000 spoofed
# SYNs from 198.19.0.0/16 (each sent twice, the copy a retransmission 64 SYNs
# later, so their half-open entries are referenced as a real flood's are). Then
# every one of the 40 is still answered by the backend it started on, none of
# their packets was a flow-table miss, and new connections go to v2.
#
# The spoofed sources exist only inside the test network: the gateway routes
# 198.19.0.0/16 to the client (a SYN from a source routed elsewhere pins
# nothing: doc/DESIGN.md, "Rollout integrity"), which drops v2's SYN-ACKs to
# them.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

CONNS=40
SYNS=200000
MAX_FLOWS=1024
FLOOD_NET=198.19.0.0/16
NEW=20

e2e_init flood
e2e_need jq
e2e_topology
must "route to the spoofed sources" ip -n "$NS_GW" route add "$FLOOD_NET" via 198.18.1.2
E2E_LOADED=1
must "tcpshift load --max-flows $MAX_FLOWS" ts load "${E2E_DEV_ARGS[@]}" --max-flows "$MAX_FLOWS"
e2e_service tcp-echo "$VIP4" 50 50

# 40 connections at 50/50, each greeted: who answered is its backend
many_open "$VIP4" "$CONNS"
many_read 120 || e2e_abort "ts-echo holdmany did not open its connections ($(tr '\n' ' ' \
	<"$E2E_TMP/holdmany.err"))"
opened=$(printf '%s\n' "${MANY_LINES[@]}")
n1=$(awk '$3 == "v1"' <<<"$opened" | wc -l)
n2=$(awk '$3 == "v2"' <<<"$opened" | wc -l)
info "$CONNS connections opened at 50/50: $n1 on v1, $n2 on v2 ($MANY_END)"
if [ $((n1 + n2)) -ne "$CONNS" ] || [ "$n1" -eq 0 ] || [ "$n2" -eq 0 ]; then
	fail "flood: $CONNS connections at 50/50" "want all answered, on both backends:" \
		"$(grep -v ' v[12] v[12]$' <<<"$opened" | head -n 3 | tr '\n' ' ')"
	exit 1
fi
must "weight v1=0 v2=100" ts weight tcp-echo v1=0 v2=100
if ! many_cmd "send before" || [ "$MANY_END" != "end $CONNS 0" ]; then
	fail "flood: connections answered before the flood" "${MANY_END:-no answer}:" \
		"$(printf '%s\n' "${MANY_LINES[@]}" | awk '$3 != $4' | head -n 3 | tr '\n' ' ')"
	exit 1
fi

before=$(ts -j status) || e2e_abort "tcpshift status failed"
drops_before=$(tx_dropped "$NS_CL")
rst2_before=$(ns_snmp "$NS_B2" Tcp OutRsts)
t0=$SECONDS
flood=$(timeout 90 nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" synflood --to "$VIP4" \
	--n "$SYNS" --src-net "$FLOOD_NET" --repeat 2 --lag 64 --max-seconds 60 \
	2>"$E2E_TMP/synflood.err")
flood_rc=$?
after=$(ts -j status) || e2e_abort "tcpshift status failed"
ring_dropped=$(($(tx_dropped "$NS_CL") - drops_before))
info "synflood: ${flood:-nothing} $(head -n 2 "$E2E_TMP/synflood.err" | tr '\n' ' ')" \
	"($((SECONDS - t0)) s)"

# the 40, after the flood: each must be answered by its own backend
many_cmd "send after" 60
answers=$(printf '%s\n' "${MANY_LINES[@]}")
own=$(awk '$3 == $4' <<<"$answers" | wc -l)
final=$(ts -j status) || e2e_abort "tcpshift status failed"

delta() { # delta COUNTER FROM TO
	jq -n --argjson a "$2" --argjson b "$3" --arg c "$1" '$b.counters[$c] - $a.counters[$c]'
}
fill() { # fill MAP STATUS
	jq -r --arg m "$1" '.maps[$m] | "\(.entries) / \(.max_entries)"' <<<"$2"
}
new_flows=$(delta new_flows "$before" "$after")
info "status after the flood: half_open $(fill half_open "$after"), flows $(fill flows "$after");" \
	"new_flows +$new_flows, promoted $(jq .counters.promoted <<<"$after")," \
	"non_syn_miss $(jq .counters.non_syn_miss <<<"$after")"
info "v2 (syncookies sent $(ns_snmp "$NS_B2" TcpExt SyncookiesSent), TCP checksum errors" \
	"$(ns_snmp "$NS_B2" Tcp InCsumErrors))"

# The flood must really have gone through tcpshift: every SYN that was not a
# retransmission of a SYN still in half_open picked a backend (less what the
# device dropped before any program saw it: in xdp mode the sender outruns
# gwc's 256-frame XDP ring, which has no backpressure, and often more than
# half is dropped there), and what reached it replaced the whole half-open
# table at least TURNOVER times.
TURNOVER=20
if [ "$flood_rc" -eq 0 ] && [ "$new_flows" -ge $((SYNS * 95 / 100 - ring_dropped)) ] &&
	[ "$new_flows" -ge $((TURNOVER * MAX_FLOWS)) ]; then
	pass "flood: $SYNS spoofed SYNs (x2) from $FLOOD_NET reached tcpshift" \
		"(new_flows +$new_flows: $((new_flows / MAX_FLOWS)) times the half-open table;" \
		"half_open $(fill half_open "$after"); $ring_dropped dropped by the veth before" \
		"any program)"
else
	fail "flood: $SYNS spoofed SYNs (x2) from $FLOOD_NET reached tcpshift" \
		"synflood exit $flood_rc, new_flows +$new_flows (want >= $((SYNS * 95 / 100)) less" \
		"$ring_dropped frames the device dropped, and >= $((TURNOVER * MAX_FLOWS)):" \
		"$TURNOVER times the table)"
fi

if [ "$own" -eq "$CONNS" ] && [ "$MANY_END" = "end $CONNS 0" ]; then
	pass "flood: all $CONNS idle connections answered by their own backend after the flood" \
		"($n1 on v1 at weight 0, $n2 on v2)"
else
	fail "flood: all $CONNS idle connections answered by their own backend after the flood" \
		"$own of $CONNS (${MANY_END:-no answer}); e.g. $(awk '$3 != $4' <<<"$answers" |
			head -n 3 | tr '\n' ' ')"
fi

# Their packets found their flows: not one was routed by the table as a miss
# (which at 0/100 would have sent a v1 connection's packet to v2, answered by
# a RST from v2).
miss=$(delta non_syn_miss "$before" "$final")
rst2=$(($(ns_snmp "$NS_B2" Tcp OutRsts) - rst2_before))
if [ "$miss" -eq 0 ] && [ "$rst2" -eq 0 ]; then
	pass "flood: no flow of the $CONNS was evicted (non_syn_miss +0, no RST from v2)"
else
	fail "flood: no flow of the $CONNS was evicted" "non_syn_miss +$miss, v2 sent $rst2 RSTs"
fi

new=$(client_count "$VIP4" "$NEW")
if [ "$(count_of "$new" v2)" -eq "$NEW" ]; then
	pass "flood: $NEW new connections after the flood all go to v2 (0/100)"
else
	fail "flood: $NEW new connections after the flood all go to v2" \
		"got $(echo "$new" | tr '\n' ' ')"
fi
e2e_status
