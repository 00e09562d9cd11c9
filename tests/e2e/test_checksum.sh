#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Invariant 4: checksums stay correct for CHECKSUM_PARTIAL / GSO packets.
#
# On veth a locally sent TCP packet is CHECKSUM_PARTIAL (its check field holds
# only the pseudo-header sum) and large writes are GSO packets; a receiver on
# veth trusts such a packet without verifying it, so a wrong pseudo-header
# update would go unnoticed. Here the gateway's egress veths have transmit
# checksum offload off: the kernel completes every checksum in software (per
# segment) from what tcpshift left in the check field, and the receivers verify
# them. Bulk lines both ways through an IPv4 and an IPv6 VIP must arrive intact
# and no namespace may count a TCP checksum error.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

LINES=200
LEN=4000	# > MSS (1448): each write is a GSO packet; ts-echo lines are < 4096 bytes

e2e_init checksum
e2e_need ethtool
e2e_topology
for dev in gwc b1 b2; do
	must "tx checksum offload off on $dev" in_ns "$NS_GW" ethtool -K "$dev" tx off
done
e2e_load
e2e_service tcp-echo "$VIP4" 1 0
e2e_service tcp-echo6 "$VIP6" 1 0

csum_errors() { ns_snmp "$1" Tcp InCsumErrors; }

payload=$(head -c $((LEN * 3 / 4)) /dev/urandom | base64 -w 0 | head -c "$LEN")
for vip in "$VIP4" "$VIP6"; do
	hold_open "$vip"
	hold_pid=$E2E_HOLD_PID	# bash unsets it when the coprocess ends
	ok=0
	for ((i = 1; i <= LINES; i++)); do
		hold_send "$i $payload" && [ "$HOLD_REPLY" = "v1 $i $payload" ] || break
		ok=$((ok + 1))
	done
	# close this connection before the next one opens
	[ -n "${E2E_HOLD[1]:-}" ] && eval "exec ${E2E_HOLD[1]}>&-"
	wait "$hold_pid" 2>/dev/null
	info "$vip: $ok of $LINES lines of $LEN bytes echoed intact"
	if [ "$ok" -eq "$LINES" ]; then
		pass "checksum: $vip bulk lines through NAT intact with software checksums"
	else
		fail "checksum: $vip bulk lines" "only $ok of $LINES echoed intact"
	fi
done

errs="client $(csum_errors "$NS_CL") v1 $(csum_errors "$NS_B1") gateway $(csum_errors "$NS_GW")"
info "TCP InCsumErrors: $errs"
if [ "$(awk '{ print $2 + $4 + $6 }' <<<"$errs")" -eq 0 ]; then
	pass "checksum: no TCP checksum errors in any namespace"
else
	fail "checksum: TCP checksum errors" "$errs"
fi
e2e_status
