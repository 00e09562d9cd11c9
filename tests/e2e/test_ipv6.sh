#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# An IPv6 VIP with IPv6 backends: connections through [2001:2:100::1]:8008
# are answered by a backend, and the split follows the weights: 0/100 all to
# v2, 100/0 all to v1, 50/50 within 4 sigma of half each.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init ipv6
e2e_topology
e2e_load
e2e_service tcp-echo6 "$VIP6" 0 100

# check_all W1 W2 WANT N: at weights W1/W2, all N new connections go to WANT.
check_all() {
	local w1=$1 w2=$2 want=$3 n=$4 out name="ipv6: at $1/$2 all new connections to $3"

	if ! out=$(ts weight tcp-echo6 "v1=$w1" "v2=$w2" 2>&1); then
		fail "$name" "weight v1=$w1 v2=$w2 failed: $out"
		return
	fi
	out=$(client_count "$VIP6" "$n")
	info "$VIP6 at $w1/$w2: $(echo "$out" | tr '\n' ' ')"
	if [ "$(count_of "$out" "$want")" -eq "$n" ]; then
		pass "$name ($n of $n)"
	else
		fail "$name" "got $(echo "$out" | tr '\n' ' ')"
	fi
}

check_all 0 100 v2 100
check_all 100 0 v1 100

N=400
name="ipv6: 50/50 split of $N new connections"
if ! out=$(ts weight tcp-echo6 v1=50 v2=50 2>&1); then
	fail "$name" "weight v1=50 v2=50 failed: $out"
else
	out=$(client_count "$VIP6" "$N")
	v1=$(count_of "$out" v1)
	v2=$(count_of "$out" v2)
	bound=$(within_sigmas "$v1" "$N" 0.5 4)
	ok=$?
	info "v1=$v1 v2=$v2 errors=$(count_of "$out" error); v1 $bound"
	if [ $((v1 + v2)) -ne "$N" ]; then
		fail "$name" "answers: $(echo "$out" | tr '\n' ' ')(want only v1 and v2, no error)"
	elif [ "$ok" -ne 0 ]; then
		fail "$name" "v1 answered $v1, $bound"
	else
		pass "$name (v1 $v1, $bound)"
	fi
fi
e2e_status
