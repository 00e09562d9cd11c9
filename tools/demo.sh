#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make demo: traffic shifting with tcpshift, in network namespaces.
#
# Service tcp-echo at 198.18.100.1:8008 with backends v1 and v2 (the e2e
# tests' topology, tests/e2e/lib.sh). One long-lived connection is opened at
# 100/0, then the weights shift 90/10 -> 50/50 -> 10/90 -> 0/100; at each step
# a batch of new connections shows the split, and the long-lived connection
# shows it is still answered by the backend it started on. Everything it made
# is removed on exit, also on Ctrl-C.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../tests/e2e/lib.sh"

BATCH=${BATCH:-200}		# new connections per step
PAUSE=${PAUSE:-1}		# seconds between steps, to follow along
STEPS=("100 0" "90 10" "50 50" "10 90" "0 100")

e2e_init demo
echo "Building the network: client -> gateway (tcpshift) -> backends v1, v2 ..."
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0

cat <<END

  tcpshift load --dev gwc --dev br0
  tcpshift service add tcp-echo $VIP4
  tcpshift backend add tcp-echo v1 $V1_4 --weight 100
  tcpshift backend add tcp-echo v2 $V2_4 --weight 0

(every tcpshift command here runs as: tcpshift --pin-dir $E2E_PIN -n $NS_GW ...)

END

hold_open "$VIP4"
hold_send "hello" || e2e_abort "the long-lived connection got no reply"
echo "Long-lived connection opened at 100/0: '$HOLD_REPLY'"
echo

printf '%-6s %-14s %-24s %s\n' step weights "new connections ($BATCH)" "long-lived connection"
printf '%-6s %-14s %-24s %s\n' ---- ------- ----------------------- ---------------------
n=${#STEPS[@]}
for ((k = 1; k <= n; k++)); do
	read -r w1 w2 <<<"${STEPS[k - 1]}"
	[ "$k" -gt 1 ] && sleep "$PAUSE"
	err=$(ts weight tcp-echo "v1=$w1" "v2=$w2" 2>&1) || e2e_abort "weight: $err"
	out=$(client_count "$VIP4" "$BATCH")
	v1=$(count_of "$out" v1)
	v2=$(count_of "$out" v2)
	errors=$(count_of "$out" error)
	shares=$(awk -v a="$v1" -v b="$v2" -v n="$BATCH" \
		'BEGIN { printf "v1 %5.1f%%  v2 %5.1f%%", 100 * a / n, 100 * b / n }')
	[ "$errors" -gt 0 ] && shares="$shares ($errors failed)"
	if hold_send "step $k"; then
		held="answered by ${HOLD_REPLY%% *}"
	else
		held="no answer"
	fi
	printf '%-6s %-14s %-24s %s\n' "$k/$n" "v1=$w1 v2=$w2" "$shares" "$held"
done

echo
echo "\$ tcpshift flows tcp-echo --state established   (the batches' flows are closed)"
ts flows tcp-echo --state established
echo
echo "\$ tcpshift stats tcp-echo"
ts stats tcp-echo
echo
echo "Done: new connections moved from v1 to v2; the long-lived one stayed on v1."
