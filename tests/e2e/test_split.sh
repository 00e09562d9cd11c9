#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Invariant 1: at weights 90/10, 1000 new connections through the VIP split
# like a binomial draw: v2's count is within 4 sigma of 100. Once they are all
# closed, `stats` counts none of them as pinned now (their entries stay in the
# flow table, closed).
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

N=1000
P2=0.1		# v2's share at 90/10

e2e_init split
e2e_need jq
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 90 10

# a few first, so that a broken data plane fails fast instead of timing out 1000 times
probe=$(client_count "$VIP4" 10)
if [ "$(count_of "$probe" error)" -ne 0 ] || [ "$(count_total "$probe")" -ne 10 ]; then
	fail "split: 90/10 of $N new connections" \
		"probe of 10 connections through $VIP4 failed: $(echo "$probe" | tr '\n' ' ')"
	exit 1
fi

out=$(client_count "$VIP4" "$N")
v1=$(count_of "$out" v1)
v2=$(count_of "$out" v2)
errors=$(count_of "$out" error)
total=$(count_total "$out")
bound=$(within_sigmas "$v2" "$N" "$P2" 4)
ok=$?
info "v1=$v1 v2=$v2 errors=$errors of $total; v2 $bound"
if [ "$total" -ne "$N" ] || [ "$errors" -ne 0 ] || [ $((v1 + v2)) -ne "$N" ]; then
	fail "split: 90/10 of $N new connections" \
		"answers: $(echo "$out" | tr '\n' ' ')(want only v1 and v2, no error)"
elif [ "$ok" -ne 0 ]; then
	fail "split: 90/10 of $N new connections" "v2 answered $v2, $bound"
else
	pass "split: 90/10 of $N new connections (v2 $v2, $bound)"
fi
e2e_status

# closed connections are not pinned now: stats counts the flows that are not closed
sleep 0.5
open_flows=$(ts -j flows | jq '[.[] | select(.state != "closed")] | length')
closed=$(ts -j flows | jq '[.[] | select(.state == "closed")] | length')
stats_flows=$(ts -j stats | jq '[.services[].backends[].flows] | add')
if [ "$closed" -gt 0 ] && [ "$stats_flows" -eq "$open_flows" ]; then
	pass "split: stats counts $stats_flows flows pinned now, not the $closed closed ones"
else
	fail "split: stats' flows after the connections closed" \
		"stats $stats_flows, flows not closed $open_flows, closed $closed"
fi
