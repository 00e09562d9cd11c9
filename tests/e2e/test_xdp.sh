#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# load --mode xdp (doc/DESIGN.md, "XDP"): the XDP program carries the
# established flows of both directions (the veth devices' own XDP counters
# say so), a switch to tc and back in place keeps a held connection on its
# backend, status shows the mode per device, and what XDP cannot take is
# refused with nothing changed: a device without native XDP, another tool's
# XDP program, --xdp-generic without --mode xdp. unload leaves no XDP program.
# (Every other e2e test also runs in this mode: tests/run.sh e2e-xdp.)
set -u
E2E_MODE=xdp
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

LINES=200

e2e_init xdp
e2e_need jq ethtool clang
e2e_topology
# complete checksums, as frames from a wire have them: XDP finishes those
# (partial ones go on to tc: test_xdp_offloads.sh)
for ns in "$NS_CL" "$NS_B1" "$NS_B2"; do
	must "tx checksum offload off in $ns" in_ns "$ns" ethtool -K eth0 tx off
done
e2e_load
e2e_service tcp-echo "$VIP4" 100 0
e2e_service tcp-echo6 "$VIP6" 100 0

# xdp_redirects DEV: frames DEV's XDP program redirected so far.
xdp_redirects() {
	in_ns "$NS_GW" ethtool -S "$1" 2>/dev/null |
		awk '/xdp_redirect:/ { s += $2 } END { print s + 0 }'
}

xdp_ids() {
	ts -j status | jq -r '[.devices[] | "\(.name)=\(.xdp_mode):\(.xdp_prog_id)"] | join(" ")'
}

# held connections on v1, both families (FIFOs: bash runs one coprocess)
declare -A hold_in=() hold_out=()
for vip in "$VIP4" "$VIP6"; do
	f=$E2E_TMP/hold-${vip//[^0-9]/}
	mkfifo "$f.in" "$f.out"
	exec {fd_in}<>"$f.in" {fd_out}<>"$f.out"
	nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" hold --connect "$vip" <"$f.in" \
		>"$f.out" 2>>"$E2E_TMP/hold.err" &
	e2e_track_pid "$!"
	hold_in[$vip]=$fd_in
	hold_out[$vip]=$fd_out
done

# send_lines VIP N TAG: N lines over VIP's held connection; prints how many
# were answered by v1.
send_lines() {
	local vip=$1 n=$2 tag=$3 ok=0 reply i

	for ((i = 0; i < n; i++)); do
		echo "$tag-$i" >&"${hold_in[$vip]}" 2>/dev/null || break
		read -r -t 3 -u "${hold_out[$vip]}" reply 2>/dev/null || break
		[ "$reply" = "v1 $tag-$i" ] && ok=$((ok + 1))
	done
	echo "$ok"
}

mode=$(ts -j status | jq -r .mode)
ids=$(xdp_ids)
if [ "$mode" = xdp ] && [[ "$ids" == *"gwc=native:"* ]] && [[ "$ids" == *"b1=native:"* ]] &&
	[[ "$ids" != *":0"* ]]; then
	pass "xdp: status shows mode xdp and a native XDP program on every device ($ids)"
else
	fail "xdp: status shows the mode" "mode '$mode', devices '$ids'"
fi
if ts status | grep -q "^mode      xdp$"; then
	pass "xdp: status (text) says mode xdp"
else
	fail "xdp: status (text) says mode xdp" "$(ts status | head -5 | tr '\n' '|')"
fi

# ---- the established path is XDP's ------------------------------------------------
for vip in "$VIP4" "$VIP6"; do
	cl0=$(xdp_redirects gwc)
	be0=$(xdp_redirects b1)
	ok=$(send_lines "$vip" "$LINES" xdp)
	cl=$(($(xdp_redirects gwc) - cl0))
	be=$(($(xdp_redirects b1) - be0))
	# each line: the request and the client's ACKs one way, the reply the other
	if [ "$ok" -eq "$LINES" ] && [ "$cl" -ge "$LINES" ] && [ "$be" -ge "$LINES" ]; then
		pass "xdp: $LINES lines over a held connection to $vip answered by v1; XDP" \
			"redirected $cl frames from the client and $be from the backend"
	else
		fail "xdp: established flows at XDP ($vip)" \
			"$ok of $LINES answered; XDP redirected $cl client and $be backend frames"
	fi
done

# ---- switched in place, both ways ---------------------------------------------------
ids_before=$(xdp_ids)
must "load --mode tc" ts load "${E2E_DEVS[@]/#/--dev=}" --mode tc
xdp_left=$(in_ns "$NS_GW" ip -d link show | grep -c "prog/xdp")
cl0=$(xdp_redirects gwc)
ok4=$(send_lines "$VIP4" 20 tc)
ok6=$(send_lines "$VIP6" 20 tc)
cl=$(($(xdp_redirects gwc) - cl0))
if [ "$(ts -j status | jq -r .mode)" = tc ] && [ "$xdp_left" -eq 0 ] && [ "$ok4" -eq 20 ] &&
	[ "$ok6" -eq 20 ] && [ "$cl" -eq 0 ]; then
	pass "xdp: switched to tc in place: no XDP program left, the held connections" \
		"answered by v1 (20 + 20 lines), none through XDP"
else
	fail "xdp: switch to tc in place" "mode $(ts -j status | jq -r .mode), $xdp_left XDP" \
		"programs left, $ok4 + $ok6 of 20 + 20 answered, $cl XDP redirects"
fi
must "load --mode xdp" ts load "${E2E_DEV_ARGS[@]}"
cl0=$(xdp_redirects gwc)
ok4=$(send_lines "$VIP4" 20 back)
ok6=$(send_lines "$VIP6" 20 back)
cl=$(($(xdp_redirects gwc) - cl0))
if [ "$(ts -j status | jq -r .mode)" = xdp ] && [ "$ok4" -eq 20 ] && [ "$ok6" -eq 20 ] &&
	[ "$cl" -ge 40 ] && [ "$(ts -j flows | jq '[.[] | select(.backend == "v1")] | length')" -ge 2 ]; then
	pass "xdp: and back to xdp: the held connections answered by v1 through XDP again" \
		"($cl redirects), still pinned"
else
	fail "xdp: back to xdp in place" "$ok4 + $ok6 of 20 + 20 answered, $cl XDP redirects"
fi
# an upgrade keeps the mode
must "load again" ts load "${E2E_DEVS[@]/#/--dev=}"
if [ "$(ts -j status | jq -r .mode)" = xdp ] && [ "$(send_lines "$VIP4" 5 upg)" -eq 5 ]; then
	pass "xdp: load again without --mode keeps xdp, the held connection answered"
else
	fail "xdp: load again keeps the mode" "mode $(ts -j status | jq -r .mode)"
fi

# ---- refusals: nothing changed ------------------------------------------------------
ids_before=$(xdp_ids)
refused() { # refused DESC WANT_EXIT WANT_TEXT CMD...
	local desc=$1 want=$2 text=$3 out rc
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" -eq "$want" ] && [ "$(wc -l <<<"$out")" -eq 1 ] && [[ "$out" == *"$text"* ]] &&
		[ "$(xdp_ids)" = "$ids_before" ] && [ "$(ts -j status | jq -r .mode)" = xdp ]; then
		pass "xdp: $desc refused (exit $rc: $out), nothing changed"
	else
		fail "xdp: $desc refused" "exit $rc (want $want), '$out', devices $(xdp_ids)" \
			"(before: $ids_before)"
	fi
}
refused "--xdp-generic without --mode xdp" 2 "--xdp-generic goes with --mode xdp" \
	ts load "${E2E_DEVS[@]/#/--dev=}" --xdp-generic
refused "--mode fast" 2 "tc or xdp" ts load "${E2E_DEVS[@]/#/--dev=}" --mode fast

must "bridge" ip -n "$NS_GW" link add brx type bridge
must "bridge up" ip -n "$NS_GW" link set brx up
refused "a bridge (no native XDP)" 1 "has no native XDP" \
	ts load "${E2E_DEV_ARGS[@]}" --dev brx
if in_ns "$NS_GW" tc filter show dev brx ingress 2>/dev/null | grep -q bpf; then
	fail "xdp: the refused bridge" "was left with a tc filter"
else
	pass "xdp: the refused bridge was left without a filter"
fi

# another tool's XDP program on a device of ours-to-be
cat >"$E2E_TMP/other.c" <<'EOF'
__attribute__((section("xdp"), used)) int other_xdp(void *ctx) { return 2; /* XDP_PASS */ }
char LICENSE[] __attribute__((section("license"), used)) = "GPL";
EOF
must "compile another tool's XDP program" clang -O2 -g -target bpf -c "$E2E_TMP/other.c" \
	-o "$E2E_TMP/other.o"
must "veth gwx" ip -n "$NS_GW" link add gwx type veth peer name gwxp
must "gwx up" ip -n "$NS_GW" link set gwx up
must "gwxp up" ip -n "$NS_GW" link set gwxp up
must "another tool's XDP on gwx" ip -n "$NS_GW" link set dev gwx xdpdrv obj "$E2E_TMP/other.o" \
	sec xdp
other=$(in_ns "$NS_GW" ip -j link show gwx | jq -r '.[0].xdp.prog.id // 0')
refused "a device with another tool's XDP program" 1 "not this instance's" \
	ts load "${E2E_DEV_ARGS[@]}" --dev gwx
now=$(in_ns "$NS_GW" ip -j link show gwx | jq -r '.[0].xdp.prog.id // 0')
if [ "$other" != 0 ] && [ "$now" = "$other" ] &&
	! in_ns "$NS_GW" tc filter show dev gwx ingress 2>/dev/null | grep -q bpf; then
	pass "xdp: the other tool's XDP program on gwx stays (id $now), no filter of ours there"
else
	fail "xdp: the other tool's XDP program" "id $other before, $now after"
fi
# in tc mode another tool's XDP program is not ours to judge: it stays
if ts load --dev gwx --mode tc >/dev/null 2>&1 &&
	[ "$(in_ns "$NS_GW" ip -j link show gwx | jq -r '.[0].xdp.prog.id // 0')" = "$other" ]; then
	pass "xdp: --mode tc on gwx attaches at tc and leaves its XDP program alone"
else
	fail "xdp: --mode tc next to another XDP program" "load failed or the program changed"
fi
must "back to xdp" ts load "${E2E_DEV_ARGS[@]}"

# ---- unload ---------------------------------------------------------------------------
must "unload" ts unload
E2E_LOADED=0
left=$(in_ns "$NS_GW" ip -j link show | jq -r \
	'[.[] | select(.xdp.prog.name? // "" | startswith("tcpshift"))] | length')
if [ "$left" -eq 0 ] &&
	[ "$(in_ns "$NS_GW" ip -j link show gwx | jq -r '.[0].xdp.prog.id // 0')" = "$other" ]; then
	pass "xdp: unload leaves no XDP program of ours; the other tool's stays"
else
	fail "xdp: unload" "$left XDP programs of ours left"
fi
e2e_status
