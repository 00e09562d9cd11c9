#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# load --mode xdp --handshakes xdp (doc/DESIGN.md, "XDP"): new connections are
# picked, pinned and confirmed at XDP, never seen by the gateway's stack. A
# netfilter rule in the gateway's forward hook counts the SYNs and SYN-ACKs
# the stack forwards: none with the option (the veths' own XDP counters show
# the frames redirected instead), every handshake's without it (the default:
# handshakes at tc, through the stack). The split is the table's, the canary
# signals count every handshake either way, status shows where handshakes
# go, and --handshakes without --mode xdp is refused with nothing changed.
set -u
E2E_MODE=xdp
E2E_HANDSHAKES=xdp
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

N=60	# connections per family and mode

e2e_init xdp_handshakes
e2e_need jq ethtool nft
e2e_topology
# complete checksums, as frames from a wire have them (partial ones go to tc
# in either mode: test_xdp_offloads.sh)
for ns in "$NS_CL" "$NS_B1" "$NS_B2"; do
	must "tx checksum offload off in $ns" in_ns "$ns" ethtool -K eth0 tx off
done
e2e_load
e2e_service tcp-echo "$VIP4" 3 1
e2e_service tcp-echo6 "$VIP6" 3 1

# the handshake frames the gateway's stack forwards (a table of this test's
# own, in the gateway's namespace, deleted with it)
must "nft table" in_ns "$NS_GW" nft add table inet tsxhs
must "nft chain" in_ns "$NS_GW" nft add chain inet tsxhs forwarded \
	'{ type filter hook forward priority 0; policy accept; }'
must "nft rule" in_ns "$NS_GW" nft add rule inet tsxhs forwarded tcp flags \& syn == syn counter

stack_syns() {
	in_ns "$NS_GW" nft -j list chain inet tsxhs forwarded |
		jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add // 0'
}

xdp_redirects() { # the frames XDP redirected from every gateway device
	local dev s=0 n
	for dev in "${E2E_DEVS[@]}"; do
		n=$(in_ns "$NS_GW" ethtool -S "$dev" 2>/dev/null |
			awk '/xdp_redirect:/ { s += $2 } END { print s + 0 }')
		s=$((s + n))
	done
	echo "$s"
}

handshakes() { # the handshakes counted for v1 and v2 of every service
	ts -j stats | jq '[.services[].backends[].canary.handshakes // 0] | add'
}

# connections WHERE: N connections to each VIP; checks where their handshakes went
connections() {
	local where=$1 vip out ok total=0 s0 r0 h0 s r h v1

	s0=$(stack_syns)
	r0=$(xdp_redirects)
	h0=$(handshakes)
	for vip in "$VIP4" "$VIP6"; do
		out=$(client_count "$vip" "$N")
		ok=$(($(count_of "$out" v1) + $(count_of "$out" v2)))
		v1=$(count_of "$out" v1)
		total=$((total + ok))
		if [ "$ok" -eq "$N" ] && within_sigmas "$v1" "$N" 0.75 4 >/dev/null; then
			pass "xdp handshakes $where: $N connections to $vip answered," \
				"$v1 by v1 (weight 3 of 4)"
		else
			fail "xdp handshakes $where: connections to $vip" \
				"$ok of $N answered, $v1 by v1: $(tr '\n' ' ' <<<"$out")"
		fi
	done
	s=$(($(stack_syns) - s0))
	r=$(($(xdp_redirects) - r0))
	h=$(($(handshakes) - h0))
	if [ "$where" = xdp ]; then
		# SYN, SYN-ACK and ACK of every connection at least
		if [ "$s" -eq 0 ] && [ "$r" -ge $((3 * total)) ] && [ "$h" -eq "$total" ]; then
			pass "xdp handshakes at XDP: the stack forwarded no SYN or SYN-ACK of" \
				"$total connections, XDP redirected $r frames, $h handshakes counted"
		else
			fail "xdp handshakes at XDP" "the stack forwarded $s SYNs/SYN-ACKs, XDP" \
				"redirected $r frames, $h handshakes counted, of $total connections"
		fi
	else
		if [ "$s" -ge $((2 * total)) ] && [ "$h" -eq "$total" ]; then
			pass "xdp handshakes at tc (default): the stack forwarded $s SYNs and" \
				"SYN-ACKs of $total connections, $h handshakes counted"
		else
			fail "xdp handshakes at tc" "the stack forwarded $s SYNs/SYN-ACKs of" \
				"$total connections, $h handshakes counted"
		fi
	fi
}

where=$(ts -j status | jq -r .handshakes)
if [ "$where" = xdp ] && ts status | grep -q "^handshakes xdp"; then
	pass "xdp handshakes: status shows handshakes at xdp (text and -j)"
else
	fail "xdp handshakes: status" "-j handshakes '$where', text '$(ts status | grep handshakes)'"
fi
connections xdp

# load again keeps it; --mode xdp alone goes back to the default
must "load again" ts load "${E2E_DEVS[@]/#/--dev=}"
[ "$(ts -j status | jq -r .handshakes)" = xdp ] &&
	pass "xdp handshakes: load again without --mode keeps handshakes at xdp" ||
	fail "xdp handshakes: load again keeps them" "$(ts -j status | jq -r .handshakes)"
must "load --mode xdp" ts load "${E2E_DEVS[@]/#/--dev=}" --mode xdp
where=$(ts -j status | jq -r .handshakes)
if [ "$where" = tc ]; then
	pass "xdp handshakes: --mode xdp without --handshakes: handshakes at tc"
else
	fail "xdp handshakes: --mode xdp alone" "handshakes '$where'"
fi
connections tc

# refused without --mode xdp: one line, exit 2, nothing changed
out=$(ts load "${E2E_DEVS[@]/#/--dev=}" --handshakes xdp 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
	[[ "$out" == "tcpshift: "*"--handshakes goes with --mode xdp"* ]] &&
	[ "$(ts -j status | jq -r .handshakes)" = tc ]; then
	pass "xdp handshakes: --handshakes without --mode xdp refused (exit 2: $out)"
else
	fail "xdp handshakes: --handshakes without --mode xdp" "exit $rc, '$out'"
fi
e2e_status
