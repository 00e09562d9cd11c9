#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make bench-pps's harness on a tiny round (tools/bench/pps.sh, pps.c,
# pps.bpf.c), so that the benchmark cannot rot unseen, with live frames or
# where the kernel refuses them with an AF_PACKET sender: kernel forwarding,
# tcpshift at tc, --mode xdp and --mode xdp --handshakes xdp each confirm 200
# flows by handshakes through the gateway, then every packet the gateway takes
# in reaches a backend in the packet phases (the baseline's too), the XDP
# methods forward at XDP, and in phase conn every connection completes (all
# seven segments arrive, tcpshift counts each handshake and close); a gateway
# that passes nothing fails its round instead of reporting a rate, and so does
# one that passes no FIN in phase conn. Speed is never asserted. Its own
# namespaces (tspps-<pid>-*) and pin directory; pps.sh's trap removes them.

cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh
PPS_SOURCE_ONLY=1
# shellcheck source=tools/bench/pps.sh
. tools/bench/pps.sh

[ "$(id -u)" -eq 0 ] || { fail "pps: setup" "needs root"; exit 1; }
[ -x "$PPS" ] || { fail "pps: setup" "$PPS missing (make build/bench/pps)"; exit 1; }
# The generator sends with BPF_PROG_RUN's live frames where the kernel allows
# them, else on an AF_PACKET socket (pps --sender auto): it runs on every kernel.
"$PPS" --probe-live 2>/dev/null
case $? in
0) want_sender=live ;;
77) want_sender=af_packet_relay ;;	# pps.sh passes --relay gs:gr
*) fail "pps: setup" "pps --probe-live failed"; exit 1 ;;
esac
FLOWS=200 SECONDS_PER_PHASE=0.2 WARMUP=0.1 PHASES="established syn conn"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tspps-$ID.XXXXXX") || exit 1
RAW=$TMP/raw.tsv
: >"$RAW"

# A method that forwards nothing: the gateway routes no packet at all; one
# that forwards everything but FINs: handshakes and packets pass, no
# connection closes.
eval "$(declare -f setup | sed '1s/setup/setup_known/')"
setup() {
	if [ "$1" = blackhole ]; then
		must "forwarding off" in_ns "$NS_GW" sysctl -qw net.ipv4.ip_forward=0
		echo --direct
	elif [ "$1" = no-fin ]; then
		must "drop FINs" in_ns "$NS_GW" iptables-legacy -A FORWARD -p tcp \
			--tcp-flags FIN FIN -j DROP
		echo --direct
	else
		setup_known "$1"
	fi
}

val() { awk -F'\t' -v m="$1" -v p="$2" -v k="$3" '$2 == m && $3 == p && $4 == k { print $5 }' "$RAW"; }

xdp_mode_available || { fail "pps: setup" "$TCPSHIFT load has no --mode"; exit 1; }
METHODS_OK="forward tcpshift tcpshift-xdp tcpshift-xdp-hs"
for m in baseline $METHODS_OK blackhole no-fin; do
	run_method "$m" 1 2>>"$TMP/log"
done

for m in $METHODS_OK; do
	if [ "$(val "$m" handshake syn)" = 200 ] && [ "$(val "$m" handshake synack)" = 200 ] &&
		[ "$(val "$m" handshake ack)" = 200 ]; then
		pass "pps: $m: 200 handshakes through the gateway (SYN, SYN-ACK, ACK counted at the sinks)"
	else
		fail "pps: $m: handshakes" "$(grep -F "$m" "$TMP/log" | tr '\n' ' ')"
	fi
done
for m in tcpshift tcpshift-xdp tcpshift-xdp-hs; do
	c=$(val "$m" handshake confirmed) n=$(val "$m" conn syn)
	[ -n "$c" ] && [ -n "$n" ] && [ "$c" = $((200 + n)) ] &&
		pass "pps: $m counts the 200 handshakes and the $n connections' as confirmed flows" ||
		fail "pps: $m: confirmed flows" "${c:-none} of 200 + ${n:-?}"
	cl=$(val "$m" handshake closed)
	[ -n "$cl" ] && [ "$cl" = "$n" ] && pass "pps: $m counts the $n connections closed" ||
		fail "pps: $m: closed" "${cl:-none} of ${n:-?}"
done
for m in tcpshift-xdp tcpshift-xdp-hs; do
	xr=$(val "$m" handshake xdp_redirected) d=$(val "$m" established delivered)
	[ -n "$xr" ] && [ -n "$d" ] && [ "$xr" -ge "$d" ] &&
		pass "pps: $m forwards the established flows at XDP ($xr frames redirected)" ||
		fail "pps: $m: not at XDP" "${xr:-?} frames redirected at XDP, ${d:-?} delivered"
done

for m in baseline $METHODS_OK; do
	for p in established syn conn; do
		snd=$(val "$m" "$p" sender)
		[ "$snd" = "$want_sender" ] ||
			fail "pps: $m $p: sender" "${snd:-none} (this kernel: $want_sender)"
		s=$(val "$m" "$p" sent) a=$(val "$m" "$p" accepted) d=$(val "$m" "$p" delivered)
		if [ "$p" = conn ]; then
			n=$(val "$m" conn syn)
			for k in synack request response fin_client fin_backend last_ack; do
				[ "$(val "$m" conn "$k")" = "$n" ] || d=
			done
			if [ -n "$d" ] && [ "$d" -gt 0 ] && [ "$d" = "$a" ] && [ "$a" = "$s" ]; then
				pass "pps: $m conn: all $n connections completed (seven segments each)"
			else
				fail "pps: $m conn" "$(grep -P "^1\t$m\tconn\t" "$RAW" | cut -f4,5 | tr '\n\t' ' =')"
			fi
		elif [ -n "$d" ] && [ "$d" -gt 0 ] && [ "$d" = "$a" ] && [ "$a" = "$s" ]; then
			pass "pps: $m $p: all $d packets sent were delivered"
		else
			fail "pps: $m $p" "sent ${s:-?}, taken in ${a:-?}, delivered ${d:-?}"
		fi
	done
done

if grep -qP '^1\tblackhole\t-\tfailed\t' "$RAW" && [ -z "$(val blackhole established delivered)" ]; then
	pass "pps: a gateway that forwards nothing fails its round (no rate reported)"
else
	fail "pps: blackhole" "$(grep blackhole "$RAW" | tr '\n' ' ')"
fi
if grep -qP '^1\tno-fin\t-\tfailed\t' "$RAW" && [ -z "$(val no-fin conn delivered)" ] &&
	grep -q 'no-fin.*FAILED: pps: connections: of' "$TMP/log"; then
	pass "pps: a gateway that passes no FIN fails its round in phase conn"
else
	fail "pps: no-fin" "$(grep no-fin "$TMP/log" "$RAW" | tr '\n' ' ')"
fi
grep -E 'ns/packet|ns/connection' "$TMP/log" | while read -r line; do info "$line"; done
e2e_status
