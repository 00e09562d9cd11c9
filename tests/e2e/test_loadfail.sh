#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# All-or-nothing load (invariant 3 for load): a first load
# that fails leaves nothing attached and nothing pinned; one killed at any
# point leaves a state that status shows truthfully (every device carrying
# our filter is listed) and that the next unload, or load, completes.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init loadfail
e2e_need strace jq
e2e_bare_gateway gwc gwd
E2E_LOADED=1

has_filter() { # ingress or egress
	{ tc -n "$NS_GW" filter show dev "$1" ingress; tc -n "$NS_GW" filter show dev "$1" egress; } \
		2>/dev/null | grep -q 'tcpshift_tc'
}

# 1. the second device fails to attach: the first is detached, nothing pinned
must "clsact on gwd" tc -n "$NS_GW" qdisc add dev gwd clsact
must "foreign filter on gwd" tc -n "$NS_GW" filter add dev gwd ingress prio 117 handle 0x75 \
	protocol all bpf bytecode '1,6 0 0 0'
out=$(ts load --dev gwc --dev gwd 2>&1)
rc=$?
if [ "$rc" -eq 1 ] && ! has_filter gwc && [ ! -e "$E2E_PIN" ]; then
	pass "failed first load: gwc detached again, nothing pinned ($out)"
else
	fail "failed first load leaves nothing" "exit $rc ($out); gwc filter:" \
		"$(tc -n "$NS_GW" filter show dev gwc ingress); pins: $(ls "$E2E_PIN" 2>&1)"
fi
must "foreign filter away" tc -n "$NS_GW" qdisc del dev gwd clsact

# 2. a first load killed at the k-th netlink message or bpf() call
# check_after_kill WHAT: status truthful; then unload (or load, then unload) cleans up
check_after_kill() {
	local what=$1 mode=$2 st listed dev ok=1 why=""

	if [ -e "$E2E_PIN" ] && st=$(ts -j status 2>/dev/null); then
		for dev in gwc gwd; do
			if has_filter "$dev"; then
				listed=$(jq -r --arg d "$dev" \
					'[.devices[] | select(.name == $d and (.state == "attached" or
						.state == "partly attached"))] | length' <<<"$st")
				[ "$listed" = 1 ] || { ok=0; why+="$dev has our filter, status does not say so; "; }
			fi
		done
	else
		for dev in gwc gwd; do
			has_filter "$dev" && { ok=0; why+="$dev has our filter, status shows nothing; "; }
		done
	fi
	if [ "$mode" = load ]; then
		out=$(ts load --dev gwc --dev gwd 2>&1) || { ok=0; why+="load again: $out; "; }
		st=$(ts -j status 2>&1)
		jq -e '.load_finished and ([.devices[] | select(.state == "attached")] | length == 2)' \
			<<<"$st" >/dev/null || { ok=0; why+="after load again: $st; "; }
	fi
	if [ -e "$E2E_PIN" ]; then
		out=$(ts unload 2>&1) || { ok=0; why+="unload: $out; "; }
	fi
	for dev in gwc gwd; do
		has_filter "$dev" && { ok=0; why+="$dev filter left after unload; "; }
	done
	[ -e "$E2E_PIN" ] && { ok=0; why+="pins left: $(ls "$E2E_PIN" | tr '\n' ' ')"; }
	rm -rf -- "$E2E_PIN"
	if [ "$ok" -eq 1 ]; then
		pass "killed load ($what), then $mode: status truthful, nothing left"
	else
		fail "killed load ($what), then $mode" "$why"
	fi
}

for k in 1 2 3 4 5 6 7 8 9; do
	mode=unload
	[ $((k % 2)) -eq 1 ] && mode=load
	( timeout 60 strace -f -qq -o /dev/null -e trace=sendto \
		-e inject=sendto:signal=KILL:when="$k" \
		"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" load --dev gwc --dev gwd >/dev/null ) 2>/dev/null
	check_after_kill "netlink message $k" "$mode"
done
for k in 40 80 120 160; do
	( timeout 60 strace -f -qq -o /dev/null -e trace=bpf -e inject=bpf:signal=KILL:when="$k" \
		"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" load --dev gwc --dev gwd >/dev/null ) 2>/dev/null
	check_after_kill "bpf() call $k" unload
done
e2e_status
