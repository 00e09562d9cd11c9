#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Invariants 5 and 8 through a real network, with a raw-socket
# attacker on the clients' side (ts-echo synflood, from the client's own
# namespace: it knows the clients' addresses and ports, not their sequence
# numbers) and --max-flows 1024:
#  1. 20 held connections at 50/50, v1 drained (weight 0): for each one's
#     4-tuple (from `tcpshift flows`, as an attacker would guess it) 64 blind
#     RSTs, SYN|FINs, FINs and SYNs. Then 100,000 spoofed SYNs, ACKs, RSTs and
#     FINs from random sources, each sent twice. Every connection is answered by its own
#     backend afterwards (before the fix: the RST+SYN re-picked each v1
#     connection to v2, which reset it; the ACK flood evicted them all).
#  2. Forged "replies" from v1's address:port sent from the clients' side are
#     not relabelled as the VIP (spoof_rejected counts them).
#  3. A client's direct connection to a backend's own address:port through
#     the gateway works, IPv4 and IPv6, also past that backend's drain deadline,
#     and from the port of an ended connection through the VIP.
#  4. Path MTU discovery through the VIP: with a 1400-byte link toward the
#     backends, a 20,000-byte request is echoed in full and the client learns
#     the VIP's path MTU, IPv4 and IPv6, in stack mode and in fib mode (the
#     gateway's own "fragmentation needed" is translated at egress; fib mode
#     checks the MTU of GSO packets, which it let through before). For IPv4,
#     after a spoofed packet from the client's address:port to its backend's
#     own address:port (a forged direct-connection mark hid the errors).
#  5. A direct connection to v1 keeps working during a flood of 100,000
#     spoofed SYNs and ACKs (x2) to v1's own address:port: held from before
#     it, and new ones during it (before: the flood evicted its mark and v1's
#     answers left as the VIP's).
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

CONNS=20
# Blind segments per connection. Each lands in the 2^17-wide sequence window
# with probability 2^-15: 32 of each of 20 connections, three quarters of them
# able to close (R, SF, FA), hit a window with probability 1.5 %, two windows
# with 0.01 %. So one connection may fall; two is a failure.
BLIND=32
FLOOD=100000		# distinct segments, each sent twice (test_flood.sh: referenced, as a real flood's)
MAX_FLOWS=1024

e2e_init attack
e2e_need jq base64
e2e_topology
E2E_LOADED=1
info "flow hash seed $E2E_SEED (E2E_SEED=$E2E_SEED to replay)"
must "tcpshift load --max-flows $MAX_FLOWS" ts load "${E2E_DEV_ARGS[@]}" \
	--max-flows "$MAX_FLOWS" --seed "$E2E_SEED"
e2e_service tcp-echo "$VIP4" 50 50
e2e_service tcp-echo6 "$VIP6" 50 50

# attack ARGS...: ts-echo synflood from the client's namespace (≤ 90 s)
attack() {
	timeout 90 nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" synflood --max-seconds 60 "$@" \
		2>>"$E2E_TMP/attack.err"
}

# ---- 1. blind closes and floods ---------------------------------------------------
many_open "$VIP4" "$CONNS"
many_read 120 || e2e_abort "ts-echo holdmany did not open its connections ($(tr '\n' ' ' \
	<"$E2E_TMP/holdmany.err"))"
opened=$(printf '%s\n' "${MANY_LINES[@]}")
n1=$(awk '$3 == "v1"' <<<"$opened" | wc -l)
info "$CONNS connections opened at 50/50: $n1 on v1, $((CONNS - n1)) on v2"
[ "$n1" -gt 0 ] || e2e_abort "no connection on v1 (seed $E2E_SEED)"
must "weight v1=0 v2=100" ts weight tcp-echo v1=0 v2=100

clients=$(ts -j flows tcp-echo --state established | jq -r '.[].client')
nclients=$(wc -w <<<"$clients")
[ "$nclients" -eq "$CONNS" ] || e2e_abort "flows lists $nclients established connections, not $CONNS"
before=$(ts -j status) || e2e_abort "tcpshift status failed"
sent=0
for c in $clients; do
	attack --to "$VIP4" --from "$c" --flags R,SF,FA,S --n "$BLIND" --repeat 1 \
		--seed "$RANDOM" >/dev/null && sent=$((sent + BLIND))
done
# fallen: how many of the last holdmany answer were not by their own backend
fallen() {
	printf '%s\n' "${MANY_LINES[@]}" | awk '$1 == "conn" && $3 != $4' | wc -l
}
if many_cmd "send blind" 30 && [ "$(fallen)" -le 1 ]; then
	pass "attack: $sent blind RST, SYN|FIN, FIN and SYN segments for the $CONNS clients'" \
		"4-tuples: $((CONNS - $(fallen))) of $CONNS connections answered by their own" \
		"backend ($n1 on drained v1; one may fall, 1.5 %)"
else
	fail "attack: blind segments for the clients' 4-tuples" "${MANY_END:-no answer}:" \
		"$(printf '%s\n' "${MANY_LINES[@]}" | awk '$3 != $4' | head -n 3 | tr '\n' ' ')"
fi

drops_before=$(tx_dropped "$NS_CL")
flood=$(attack --to "$VIP4" --src-net 198.19.0.0/16 --flags A,R,FA,S --n "$FLOOD" --repeat 2)
flood_rc=$?
after=$(ts -j status) || e2e_abort "tcpshift status failed"
ring_dropped=$(($(tx_dropped "$NS_CL") - drops_before))
info "flood: ${flood:-nothing}; half_open $(jq -r '.maps.half_open | "\(.entries)/\(.max_entries)"' \
	<<<"$after"), flows $(jq -r '.maps.flows | "\(.entries)/\(.max_entries)"' <<<"$after")"
miss=$(jq -n --argjson a "$before" --argjson b "$after" \
	'$b.counters.non_syn_miss - $a.counters.non_syn_miss')
# Three segments in four are not SYNs, and each copy of one misses: three
# quarters of the frames that reached the gateway (in xdp mode the sender
# outruns gwc's XDP ring, and often more than half is dropped before any
# program sees it: a ring's overflow takes frames as they come, whatever their
# flags, which repeat every four segments), less 10 %.
want=$(((2 * FLOOD - ring_dropped) * 3 / 4 * 90 / 100))
if [ "$flood_rc" -eq 0 ] && [ "$miss" -ge "$want" ] && [ "$miss" -ge $((FLOOD / 10)) ]; then
	pass "attack: $FLOOD spoofed ACKs, RSTs, FINs and SYNs (x2) reached tcpshift" \
		"(non_syn_miss +$miss; $ring_dropped dropped by the veth before any program)"
else
	fail "attack: the flood reached tcpshift" "exit $flood_rc, non_syn_miss +$miss (want >=" \
		"$want: 90 % of three quarters of $((2 * FLOOD)) frames less $ring_dropped the" \
		"device dropped, and >= $((FLOOD / 10)))"
fi
fallen_blind=$(fallen)
if many_cmd "send flood" 30 && [ "$(fallen)" -le "$fallen_blind" ]; then
	pass "attack: after the flood every connection still open is answered by its own backend"
else
	fail "attack: after the flood every connection is answered by its own backend" \
		"${MANY_END:-no answer}: $(printf '%s\n' "${MANY_LINES[@]}" | awk '$3 != $4' |
			head -n 3 | tr '\n' ' ')"
fi
est=$(ts -j flows tcp-echo --state established | jq length)
[ "$est" -ge $((CONNS - 1)) ] &&
	pass "attack: $est of the $CONNS connections are still pinned and established" ||
	fail "attack: the connections are still pinned" "flows lists $est established:" \
		"$(ts -j flows tcp-echo | jq -c '[.[] | {client, backend, state}]')"
new=$(client_count "$VIP4" 20)
[ "$(count_of "$new" v2)" -eq 20 ] &&
	pass "attack: 20 new connections after it all go to v2 (0/100)" ||
	fail "attack: new connections go to v2" "$(tr '\n' ' ' <<<"$new")"

# ---- 2. forged replies ----------------------------------------------------------------
spoof0=$(ts_counter spoof_rejected)
attack --to 198.18.2.12:7777 --from "$V1_4" --flags A,PA --n 100 --repeat 1 >/dev/null
spoof1=$(ts_counter spoof_rejected)
[ $((spoof1 - spoof0)) -ge 100 ] &&
	pass "attack: 100 forged replies from v1's endpoint, sent from the clients' side, are" \
		"not relabelled (spoof_rejected +$((spoof1 - spoof0)))" ||
	fail "attack: forged replies" "spoof_rejected +$((spoof1 - spoof0)), want >= 100"

# ---- 3. direct connections to a backend -------------------------------------------------
# Each from a port of its own above the ephemeral range (32768-60999): the
# client's kernel shares a local port among connections to different
# destinations, and one from the port of a held VIP connection pinned to v1
# would be, at v1, that connection's 4-tuple, which v1 itself refuses
# (doc/DESIGN.md, "Replies", 5).
direct() { # direct WHEN FIRST-PORT
	local ep out i port=$2

	for ep in "$V1_4" "$V1_6"; do
		out=$(for ((i = 0; i < 10; i++)); do
			timeout 30 nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" count \
				--connect "$ep" --n 1 --sport $((port + i)) 2>>"$E2E_TMP/count.err"
		done | awk '{ c[$1] += $2 } END { for (n in c) print n, c[n] }')
		port=$((port + 10))
		if [ "$(count_of "$out" v1)" -eq 10 ]; then
			pass "attack: direct connections to v1 at $ep through the gateway ($1): 10 of 10"
		else
			fail "attack: direct connections to v1 at $ep ($1)" "$(tr '\n' ' ' <<<"$out")"
		fi
	done
}
direct "v1 drained" 61010
must "drain tcp-echo v1 --timeout 1s" ts drain tcp-echo v1 --timeout 1s
must "drain tcp-echo6 v1 --timeout 1s" ts drain tcp-echo6 v1 --timeout 1s
sleep 1.5
direct "past v1's drain deadline" 61030

# A direct connection from the port of an ended connection through the VIP
# (to the same backend): that flow's reverse entry is still there, and must
# not relabel the direct connection's answers (doc/DESIGN.md, "Replies", 5).
reused_port() { # reused_port VIP BACKEND-ENDPOINT PORT
	local via direct

	via=$(in_ns "$NS_CL" "$TS_ECHO" count --connect "$1" --n 1 --sport "$3" 2>&1)
	# (3 s: room for one SYN retransmission, should v2 still be closing the first)
	direct=$(in_ns "$NS_CL" "$TS_ECHO" count --connect "$2" --n 1 --sport "$3" \
		--timeout-ms 3000 2>&1)
	if [ "$(count_of "$via" v2)" -eq 1 ] && [ "$(count_of "$direct" v2)" -eq 1 ]; then
		pass "attack: a direct connection to v2 at $2 from port $3, which a connection" \
			"to $1 (ended, on v2) used just before, is answered by v2"
	else
		fail "attack: a direct connection from a port used through the VIP" \
			"through $1: $(tr '\n' ' ' <<<"$via"); direct to $2: $(tr '\n' ' ' \
			<<<"$direct")"
	fi
}
# ports above the kernel's ephemeral range (32768-60999): no other socket of
# the client's can hold them (47002 once was, and the bind failed)
reused_port "$VIP4" "$V2_4" 61001
reused_port "$VIP6" "$V2_6" 61002

# ---- 4. path MTU discovery through the VIP ------------------------------------------------
many_cmd quit 5 >/dev/null	# one coprocess at a time: hold_open's next
[ -n "${E2E_MANY_PID:-}" ] && wait "$E2E_MANY_PID" 2>/dev/null
must "weight 50/50" ts weight tcp-echo v1=50 v2=50
must "weight 50/50 (v6)" ts weight tcp-echo6 v1=50 v2=50
# A real 1400-byte link: the bridge and its ports; the backends' own MTU is
# 1400 too, but they advertise an MSS for 1500, so clients send 1500-byte
# segments that only path MTU discovery can shrink.
for dev in b1 b2 "${E2E_DEVS[@]:1}"; do
	must "MTU 1400 on $dev" ip -n "$NS_GW" link set "$dev" mtu 1400
done
for ns in "$NS_B1" "$NS_B2"; do
	must "backend MTU 1400" ip -n "$ns" link set eth0 mtu 1400
	must "backend advmss" ip -n "$ns" route replace default via 198.18.2.1 advmss 1460
	must "backend advmss (v6)" ip -n "$ns" -6 route replace default via 2001:2:2::1 \
		advmss 1440
done
payload=$(head -c 15000 /dev/urandom | base64 -w 0)	# 20,000 bytes

# spoof_mark VIP: one spoofed ACK from the held connection's client
# address:port to its backend's own address:port, as if it were a direct
# connection to the backend: it must not stop the translation of the errors
# about the connection through the VIP.
spoof_mark() {
	local f

	f=$(ts -j flows --state established | jq -r --arg v "$1" \
		'[.[] | select(.vip == $v)] | last | "\(.client) \(.backend_addr)"')
	[ -n "$f" ] && [ "$f" != "null null" ] || { fail "attack: the held connection's flow" \
		"not in flows"; return; }
	attack --to "${f#* }" --from "${f% *}" --flags A --n 1 --repeat 1 >/dev/null ||
		fail "attack: the spoofed mark packet" "synflood failed"
}

# The client learns the path MTU of the VIP only from an ICMP error that quotes
# the VIP: the proof that the gateway's own error was translated.
pmtu() { # pmtu MODE
	local vip addr learned

	for vip in "$VIP4" "$VIP6"; do
		in_ns "$NS_CL" ip route flush cache >/dev/null 2>&1
		in_ns "$NS_CL" ip -6 route flush cache >/dev/null 2>&1
		hold_open "$vip"
		addr=${vip%:*}
		addr=${addr#[}
		addr=${addr%]}
		hold_send hello
		[ "$vip" = "$VIP4" ] && spoof_mark "$vip"
		if hold_send "$payload" && [ "${HOLD_REPLY#* }" = "$payload" ]; then
			learned=$(in_ns "$NS_CL" ip route get "$addr" 2>/dev/null | grep -o 'mtu [0-9]*')
			if [ "$learned" = "mtu 1400" ]; then
				pass "attack: a 20,000-byte request to $vip through a 1400-byte hop is" \
					"echoed in full; the client learned the VIP's path MTU ($1 mode)"
			else
				fail "attack: path MTU discovery to $vip ($1 mode)" \
					"echoed, but the client's route to the VIP has '${learned:-no mtu}'"
			fi
		else
			fail "attack: path MTU discovery to $vip ($1 mode)" \
				"reply of ${#HOLD_REPLY} bytes, want $((${#payload} + 3))"
		fi
		exec {E2E_HOLD[1]}>&-
		[ -n "${E2E_HOLD_PID:-}" ] && wait "$E2E_HOLD_PID" 2>/dev/null
	done
}
pmtu stack
must "load --forward fib" ts load "${E2E_DEV_ARGS[@]}" --forward fib
pmtu fib

# ---- 5. a direct connection during a flood to its backend ---------------------------------
hold_open "$V1_4"
hold_send hello && [ "${HOLD_REPLY%% *}" = v1 ] || fail "attack: a held direct connection to v1" \
	"reply '$HOLD_REPLY'"
attack --to "$V1_4" --src-net 198.19.0.0/16 --flags S,A --n "$FLOOD" --repeat 2 \
	>"$E2E_TMP/direct-flood.out" &
flood_pid=$!
during=0 rounds=0
for ((i = 0; i < 60; i++)); do
	kill -0 "$flood_pid" 2>/dev/null || break
	out=$(in_ns "$NS_CL" "$TS_ECHO" count --connect "$V1_4" --n 5 --timeout-ms 3000 2>&1)
	during=$((during + $(count_of "$out" v1)))
	rounds=$((rounds + 1))
done
wait "$flood_pid"
flood_rc=$?
if [ "$flood_rc" -eq 0 ] && [ "$rounds" -gt 0 ] && [ "$during" -eq $((rounds * 5)) ]; then
	pass "attack: during $FLOOD spoofed SYNs and ACKs (x2) to v1's own address:port," \
		"$during of $((rounds * 5)) new direct connections to v1 answered by v1"
else
	fail "attack: direct connections during a flood to v1" "flood exit $flood_rc" \
		"($(tr '\n' ' ' <"$E2E_TMP/direct-flood.out")), $during of $((rounds * 5)) answered"
fi
hold_send after-flood && [ "$HOLD_REPLY" = "v1 after-flood" ] &&
	pass "attack: the direct connection held from before the flood is still answered by v1" ||
	fail "attack: the held direct connection after the flood" "reply '$HOLD_REPLY'"
e2e_status
