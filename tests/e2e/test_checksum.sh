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
# them. Bulk lines both ways through an IPv4 and an IPv6 VIP must arrive intact,
# and so must a bulk transfer in BIG TCP packets (over 64 KiB, below), and no
# namespace may count a TCP checksum error.
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

# BIG TCP: a client's device that allows GSO packets over 64 KiB
# (gso_max_size, gso_ipv4_max_size) hands the gateway single packets of up to
# BIG bytes whose IP header gives no length (IPv4 tot_len 0, IPv6 payload_len
# 0), and whose check field holds the pseudo-header sum of all of it. A client
# writes BIG_MB MiB in one call to a sink behind a VIP of its own, which
# answers with the SHA-256 of what it received: that must be what was sent,
# and the gateway's device must have received over 64 KiB a packet on average
# (nothing else flows that way meanwhile but the connection's handshake and
# end).
BIG=196608
BIG_MB=16
big_vips=()
# IPv6's limit is gso_max_size; IPv4's gso_ipv4_max_size (Linux 6.3, iproute2 6.3)
big_set() {	# ATTRIBUTE: raise it on the client's device; false when it cannot
	in_ns "$NS_CL" ip link set dev eth0 "$1" "$BIG" 2>/dev/null &&
		in_ns "$NS_CL" ip -d link show dev eth0 | grep -q "$1 $BIG"
}
# The same for gso_ipv4_max_size where iproute2 is older than the kernel:
# IFLA_GSO_IPV4_MAX_SIZE (63) in an RTM_NEWLINK of its own; Linux 6.3 or later
# (an older one would ignore the attribute and still answer 0).
big_set_ipv4() {
	big_set gso_ipv4_max_size && return 0
	printf '%s\n6.3\n' "$(uname -r | cut -d- -f1)" | sort -C -V -r || return 1
	in_ns "$NS_CL" python3 -c '
import socket, struct, sys
index = socket.if_nametoindex("eth0")
attr = struct.pack("HHI", 8, 63, int(sys.argv[1]))
body = struct.pack("BxHiII", socket.AF_UNSPEC, 0, index, 0, 0) + attr
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
s.send(struct.pack("IHHII", 16 + len(body), 16, 0x1 | 0x4, 1, 0) + body)
sys.exit(struct.unpack("i", s.recv(4096)[16:20])[0] != 0)
' "$BIG"
}
# Forwarded, a BIG TCP packet of IPv6 is judged by the size of its segments with
# the jumbo header, 8 bytes over the client's MTU: this kernel's forwarding
# would refuse it (Packet Too Big) however it was rewritten. v1's side gets
# room for them. (Under XDP a veth hands the gateway segments, never a BIG
# packet: nothing to see there.)
if [ "$E2E_MODE" = tc ]; then
	for dev in b1 br0; do
		must "MTU 2000 on $dev" in_ns "$NS_GW" ip link set dev "$dev" mtu 2000
	done
	must "MTU 2000 on v1" in_ns "$NS_B1" ip link set dev eth0 mtu 2000
	# The client's TCP sizes a GSO packet by its pacing rate (about 1 ms of
	# it): on a busy machine the rate it measures can keep most packets
	# under 64 KiB (264 for 16 MiB once, against 101). At least 128
	# segments a packet (182 KB; gso_max_size still caps it) makes them BIG.
	must "tcp_min_tso_segs on the client" in_ns "$NS_CL" sysctl -qw net.ipv4.tcp_min_tso_segs=128
	big_set gso_max_size && big_vips+=("[2001:2:100::1]:8009 [2001:2:2::11]:8009")
	big_set_ipv4 && big_vips+=("198.18.100.1:8009 198.18.2.11:8009")
	[ "${#big_vips[@]}" -eq 2 ] ||
		info "BIG TCP for ${#big_vips[@]} of 2 families: this kernel or iproute2 cannot raise the other limit on veth"
else
	info "BIG TCP: not in XDP mode, where a veth hands the gateway segments"
fi
# big_sink ADDR:PORT: in v1's namespace, answer one connection with the
# SHA-256 of all it sent
big_sink() {
	nsenter --net="/run/netns/$NS_B1" timeout 60 python3 -c '
import hashlib, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
host = host.strip("[]")
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, int(port)))
s.listen(1)
print("listening", flush=True)
c, _ = s.accept()
h = hashlib.sha256()
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
c.sendall(h.hexdigest().encode() + b"\n")
c.close()
' "$1"
}
# big_send ADDR:PORT: from the client, BIG_MB MiB in one call; prints
# "SENT_SHA256 ANSWERED_SHA256"
big_send() {
	timeout 60 nsenter --net="/run/netns/$NS_CL" python3 -c '
import hashlib, os, socket, sys
host, port = sys.argv[1].rsplit(":", 1)
data = os.urandom(int(sys.argv[2]) << 20)
s = socket.create_connection((host.strip("[]"), int(port)), timeout=30)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
answer = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    answer += b
print(hashlib.sha256(data).hexdigest(), answer.decode().strip() or "none")
' "$1" "$BIG_MB"
}
# the bytes and packets the gateway's client-side device received
gwc_rx() { in_ns "$NS_GW" awk -F'[: ]+' '$2 == "gwc" { print $3, $4 }' /proc/net/dev; }
i=0
for pair in "${big_vips[@]}"; do
	read -r vip be <<<"$pair"
	i=$((i + 1))
	must "service big$i" ts service add "big$i" "$vip"
	must "backend big$i v1" ts backend add "big$i" v1 "$be" --weight 1
	coproc SINK { big_sink "$be" 2>>"$E2E_TMP/big.err"; }
	sink_pid=$SINK_PID	# bash unsets it when the coprocess ends
	e2e_track_pid "$sink_pid"
	read -r -t 10 -u "${SINK[0]}" _ || e2e_abort "the sink at $be did not start"
	read -r bytes packets < <(gwc_rx)
	read -r sent answered < <(big_send "$vip" 2>>"$E2E_TMP/big.err")
	read -r b p < <(gwc_rx)
	bytes=$((b - bytes)) packets=$((p - packets))
	wait "$sink_pid" 2>/dev/null
	info "$vip: $BIG_MB MiB sent, the sink's SHA-256 ${answered:-none} (sent ${sent:-?}); the gateway received $bytes bytes in $packets packets"
	if [ -n "${sent:-}" ] && [ "$sent" = "${answered:-}" ] && [ "$packets" -gt 0 ] &&
		[ "$bytes" -gt $((packets * 65536)) ]; then
		pass "checksum: $vip BIG TCP packets through NAT intact"
	else
		fail "checksum: $vip BIG TCP packets" "the sink's SHA-256 ${answered:-none}, sent ${sent:-?}; $bytes bytes in $packets packets"
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
