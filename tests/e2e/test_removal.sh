#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Backend removal, IPv4 and IPv6. A held connection on v1 and one on
# v2 of each family; `tcpshift backend del SERVICE v1`. The v1 connection's next
# line gets a reset or close from the gateway — never an answer, and its packet
# never reaches v2 (v2 sends no RST); the v2 connections are untouched;
# removed_backend counts the closed flows; new connections go to v2. The
# client connecting to v1's own address from the port of a connection v1
# still holds is answered by v1.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

NEW=10

e2e_init removal
e2e_need jq
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0
e2e_service tcp-echo6 "$VIP6" 100 0

# connections 1 and 2 on v1 (v4, v6), then 3 and 4 on v2; weights 50/50 after
many_open_four
if ! many_cmd "send before" || [ "$MANY_END" != "end 4 0" ]; then
	e2e_abort "the held connections are not answered before the removal: ${MANY_LINES[*]}"
fi
NAME=(x "v1 (IPv4)" "v1 (IPv6)" "v2 (IPv4)" "v2 (IPv6)")

removed_before=$(ts -j stats | jq '.counters.removed_backend // 0' 2>/dev/null)
rst2_before=$(ns_snmp "$NS_B2" Tcp OutRsts)
in2_before=$(ns_snmp "$NS_B2" Tcp InSegs)
must "backend del tcp-echo v1" ts backend del tcp-echo v1
must "backend del tcp-echo6 v1" ts backend del tcp-echo6 v1

many_cmd "send after" 10
after=("${MANY_LINES[@]}")
many_cmd "send again" 10
again=("${MANY_LINES[@]}")
rst2=$(($(ns_snmp "$NS_B2" Tcp OutRsts) - rst2_before))
in2=$(($(ns_snmp "$NS_B2" Tcp InSegs) - in2_before))
result() { # result I LINES...: connection I's result
	local i=$1

	shift
	printf '%s\n' "$@" | awk -v i="$i" '$2 == i { print $4 }'
}
for i in 1 2; do
	r=$(result "$i" "${after[@]}")
	r2=$(result "$i" "${again[@]}")
	case $r in
	reset | closed)
		if [ "$r2" = reset ] || [ "$r2" = closed ]; then
			pass "removal: held connection on ${NAME[i]} gets a $r at its next line"
		else
			fail "removal: held connection on ${NAME[i]}" "$r, then answered '$r2'"
		fi
		;;
	*) fail "removal: held connection on ${NAME[i]} gets a reset or close" \
		"its next line was answered '$r' (want reset or closed; never v2)" ;;
	esac
done
for i in 3 4; do
	r=$(result "$i" "${after[@]}")
	r2=$(result "$i" "${again[@]}")
	if [ "$r" = v2 ] && [ "$r2" = v2 ]; then
		pass "removal: held connection on ${NAME[i]} still answered by v2"
	else
		fail "removal: held connection on ${NAME[i]} untouched" "answered '$r', then '$r2'"
	fi
done

# The reset came from the gateway: v2 never saw the removed flows' packets
# (it would answer them with a RST of its own); it got only the two held v2
# connections' lines and their ACKs.
if [ "$rst2" -eq 0 ]; then
	pass "removal: the removed flows' packets did not reach v2 (v2 sent no RST;" \
		"$in2 segments in)"
else
	fail "removal: the removed flows' packets did not reach v2" "v2 sent $rst2 RSTs"
fi

removed=$(ts -j stats | jq '.counters.removed_backend // 0' 2>/dev/null)
info "stats counters: $(ts -j stats | jq -c .counters 2>/dev/null)"
if [ "$((${removed:-0} - ${removed_before:-0}))" -ge 2 ]; then
	pass "removal: stats counts removed_backend = $removed (both families)"
else
	fail "removal: stats counts removed_backend" "removed_backend = ${removed:-none}," \
		"want >= $((removed_before + 2))"
fi

new="$(client_count "$VIP4" "$NEW" | tr '\n' ' ')/ $(client_count "$VIP6" "$NEW" | tr '\n' ' ')"
if [ "$(grep -o 'v2 [0-9]*' <<<"$new" | awk '{ s += $2 } END { print s + 0 }')" -eq \
	$((2 * NEW)) ]; then
	pass "removal: new connections go to v2 only ($new)"
else
	fail "removal: new connections go to v2 only" "got: $new"
fi
# The gateway closed the v1 connections on the client's side only: v1 still
# holds them. A direct connection to v1's own address from one of their ports
# gets v1's challenge ACK for the old connection first; it must reach the
# client untouched (its RST ends the old connection, and the SYN sent again a
# second later opens the new one), not be relabelled with the VIP by the old
# flow's reverse entry (doc/DESIGN.md, "Replies", 5).
orphans=$(in_ns "$NS_B1" ss -Htn state established '( sport = :8008 )' | awk '{ print $4 }')
if [ "$(wc -w <<<"$orphans")" -ne 2 ]; then
	fail "removal: v1 still holds the two connections the gateway closed" 		"its connections: $(tr '\n' ' ' <<<"$orphans")"
fi
for peer in $orphans; do
	port=${peer##*:}
	ep=$V1_4
	[ "${peer:0:1}" = "[" ] && ep=$V1_6
	direct=$(in_ns "$NS_CL" "$TS_ECHO" count --connect "$ep" --n 1 --sport "$port" \
		--timeout-ms 3000 2>&1)
	if [ "$(count_of "$direct" v1)" -eq 1 ]; then
		pass "removal: a direct connection to $ep from port $port, of a connection v1" \
			"still holds after its removal, is answered by v1"
	else
		fail "removal: a direct connection to $ep from port $port (v1 removed)" \
			"$(tr '\n' ' ' <<<"$direct")"
	fi
done
# A deleted service's flows are not filed under a new service that reuses
# its id: tcp-echo (id 0) goes, other takes id 0 at
# another VIP; the flows to tcp-echo's VIP name no service.
must "service del tcp-echo" ts service del tcp-echo
must "service add other" ts service add other 198.18.100.7:8008
must "backend add other" ts backend add other w1 198.18.2.11:9009
ids=$(ts -j flows | jq -r --arg vip "$VIP4" '[.[] | select(.vip == $vip)] |
	"\(length) \([.[] | select(.service == "other")] | length)"')
read -r nvip nother <<<"$ids"
if [ "${nvip:-0}" -gt 0 ] && [ "${nother:-1}" -eq 0 ]; then
	pass "removal: $nvip flows of the deleted service are not filed under 'other' (its id)"
else
	fail "removal: flows of a deleted service" "$nvip flows to $VIP4, $nother filed under" \
		"'other': $(ts -j flows | head -c 300)"
fi
e2e_status
