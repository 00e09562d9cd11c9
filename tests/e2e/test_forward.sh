#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# load --forward fib: tcpshift forwards rewritten packets itself (FIB lookup,
# TTL decrement, redirect). Invariants 1, 2 and 4 hold in that mode too, and
# balanced traffic really bypasses the gateway's IP forwarding.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

E2E_LOAD_ARGS="--forward fib"
e2e_init forward
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 90 10
e2e_service tcp-echo6 "$VIP6" 1 1

mode=$(ts -j status | jq -r .forward)
[ "$mode" = fib ] && pass "forward: status shows forward fib" ||
	fail "forward: status" "forward is '$mode'"

forwarded() {
	in_ns "$NS_GW" awk '/^Ip:/ { if (!n++) { for (i = 1; i <= NF; i++) c[$i] = i } \
		else print $c["ForwDatagrams"] }' /proc/net/snmp
}

# warm the neighbour entries: the first packets of a flow may take the stack
client_count "$VIP4" 20 >/dev/null
fw_before=$(forwarded)
out=$(client_count "$VIP4" 1000)
fw_after=$(forwarded)
v2=$(count_of "$out" v2)
bound=$(within_sigmas "$v2" 1000 0.1 4) && ok=1 || ok=0
info "v1=$(count_of "$out" v1) v2=$v2 errors=$(count_of "$out" error); v2 $bound"
info "packets the gateway's stack forwarded meanwhile: $((fw_after - fw_before))"
[ "$ok" -eq 1 ] && [ "$(count_of "$out" error)" -eq 0 ] &&
	pass "forward: 90/10 split of 1000 connections within 4 sigma" ||
	fail "forward: 90/10 split" "v2=$v2, $bound, errors $(count_of "$out" error)"
# 1000 connections are > 7000 packets; the stack sees only their handshakes
# (SYN, SYN-ACK, ACK: fib mode forwards only confirmed flows, so netfilter
# judges every connection, doc/DESIGN.md) and neighbour misses
if [ $((fw_after - fw_before)) -lt $((3 * 1000 + 100)) ]; then
	pass "forward: the stack forwarded $((fw_after - fw_before)) packets (of > 7000): the handshakes only"
else
	fail "forward: bypass" "the stack forwarded $((fw_after - fw_before)) packets"
fi

hold_open "$VIP6"
hold_send hello || fail "forward: held connection" "no first reply"
orig=${HOLD_REPLY%% *}
ok=0
for ((i = 1; i <= 10; i++)); do
	ts weight tcp-echo6 "v1=$((i % 2))" "v2=$(((i + 1) % 2))" >/dev/null
	payload=$(head -c 3000 /dev/urandom | base64 -w 0)
	hold_send "$payload" && [ "$HOLD_REPLY" = "$orig $payload" ] && ok=$((ok + 1))
done
[ "$ok" -eq 10 ] && pass "forward: an IPv6 connection stays on $orig across 10 weight changes" \
	"with 4 KB lines (GSO)" ||
	fail "forward: held IPv6 connection" "$ok of 10 lines answered by $orig"
e2e_status
