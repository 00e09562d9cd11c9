#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# load --mode xdp on veths as containers have them (doc/DESIGN.md, "XDP"):
# invariant 4 and the mode's promise that it is correct on every device load
# accepts.
#
# 1. The client's and backends' veths keep TX checksum offload on (the
#    default), GRO on: their TCP frames reach the gateway's XDP program with
#    partial checksums. Lines of data both ways over held connections through
#    an IPv4 and an IPv6 VIP must be echoed intact (a frame redirected at XDP
#    with its partial checksum updated as a complete one arrives wrong, and
#    the connection hangs), and no namespace may count a TCP checksum error.
# 2. A device whose veth peer has neither GRO nor an XDP program takes no
#    XDP-redirected frames: load says so in one warning line, and the
#    backends' replies (complete checksums now, which XDP would redirect)
#    reach the client through tc. The other way still goes through XDP.
#    status shows the device as taking no redirects.
set -u
E2E_MODE=xdp
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

LINES=50
LEN=3000	# two segments per line each way

e2e_init xdp_offloads
e2e_need ethtool jq
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 1 0
e2e_service tcp-echo6 "$VIP6" 1 0

csum_errors() { ns_snmp "$1" Tcp InCsumErrors; }

# offload NS FEATURE: on or off, as ethtool -k shows it for eth0 in NS
offload() {
	in_ns "$1" ethtool -k eth0 | awk -v f="$2:" '$1 == f { print $2 }'
}

# xdp_redirects DEV: frames redirected into DEV by XDP so far (its veth
# counters of frames sent by ndo_xdp_xmit)
xdp_redirects() {
	in_ns "$NS_GW" ethtool -S "$1" 2>/dev/null |
		awk '/xdp_xmit:/ && !/err/ { s += $2 } END { print s + 0 }'
}

payload=$(head -c $((LEN * 3 / 4)) /dev/urandom | base64 -w 0 | head -c "$LEN")

# lines VIP TAG: LINES lines over a new held connection to VIP; prints how
# many v1 echoed intact (at the first miss it stops: the connection hangs)
lines() {
	local vip=$1 tag=$2 ok=0 i hold_pid

	hold_open "$vip"
	hold_pid=$E2E_HOLD_PID
	for ((i = 1; i <= LINES; i++)); do
		hold_send "$tag-$i $payload" && [ "$HOLD_REPLY" = "v1 $tag-$i $payload" ] || break
		ok=$((ok + 1))
	done
	[ -n "${E2E_HOLD[1]:-}" ] && eval "exec ${E2E_HOLD[1]}>&-"
	wait "$hold_pid" 2>/dev/null
	echo "$ok"
}

# ---- 1. default offloads: partial checksums ----------------------------------------
info "client eth0: tx-checksumming $(offload "$NS_CL" tx-checksumming)," \
	"generic-receive-offload $(offload "$NS_CL" generic-receive-offload);" \
	"v1 eth0: tx-checksumming $(offload "$NS_B1" tx-checksumming)"
if [ "$(offload "$NS_CL" tx-checksumming)" != on ] ||
	[ "$(offload "$NS_B1" tx-checksumming)" != on ]; then
	fail "xdp_offloads: setup" "the senders' TX checksum offload is not on"
fi
for vip in "$VIP4" "$VIP6"; do
	ok=$(lines "$vip" dflt)
	if [ "$ok" -eq "$LINES" ]; then
		pass "xdp_offloads: TX checksum offload on: $LINES lines of $LEN bytes both ways" \
			"through $vip echoed intact"
	else
		fail "xdp_offloads: TX checksum offload on ($vip)" \
			"$ok of $LINES lines echoed, then the connection hung"
	fi
done
errs="client $(csum_errors "$NS_CL") v1 $(csum_errors "$NS_B1") gateway $(csum_errors "$NS_GW")"
if [ "$(awk '{ print $2 + $4 + $6 }' <<<"$errs")" -eq 0 ]; then
	pass "xdp_offloads: no TCP checksum errors in any namespace"
else
	fail "xdp_offloads: TCP checksum errors" "$errs"
fi

# ---- 2. a peer that takes no redirects ---------------------------------------------
# complete checksums both ways now, which XDP redirects: v1's replies would go
# into gwc, whose peer (the client's eth0) loses GRO
must "tx checksum offload off in v1" in_ns "$NS_B1" ethtool -K eth0 tx off
must "tx checksum offload off in the client" in_ns "$NS_CL" ethtool -K eth0 tx off
must "GRO off on the client's eth0" in_ns "$NS_CL" ethtool -K eth0 gro off
out=$(ts load "${E2E_DEV_ARGS[@]}" 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
	[[ "$out" == "tcpshift: warning: gwc takes no XDP-redirected frames"* ]]; then
	pass "xdp_offloads: load warns that gwc takes no redirects (exit 0: $out)"
else
	fail "xdp_offloads: load on a device whose peer has no GRO" "exit $rc, '$out'"
fi
targets=$(ts -j status | jq -r '[.devices[] | "\(.name)=\(.xdp_redirect_target)"] | join(" ")')
if [[ "$targets" == *"gwc=false"* ]] && [[ "$targets" == *"b1=true"* ]] &&
	ts status | grep -q "gwc .*TAKES NO XDP REDIRECTS"; then
	pass "xdp_offloads: status shows which devices take XDP redirects ($targets)"
else
	fail "xdp_offloads: status shows redirect targets" "$targets"
fi
for vip in "$VIP4" "$VIP6"; do
	b0=$(xdp_redirects b1)
	ok=$(lines "$vip" nogro)
	redirects=$(($(xdp_redirects b1) - b0))
	if [ "$ok" -eq "$LINES" ] && [ "$redirects" -ge "$LINES" ]; then
		pass "xdp_offloads: peer without GRO: $LINES lines through $vip echoed intact" \
			"(the replies through tc, the requests through XDP: $redirects redirects)"
	else
		fail "xdp_offloads: peer without GRO ($vip)" "$ok of $LINES lines echoed," \
			"$redirects XDP redirects into b1"
	fi
done
e2e_status
