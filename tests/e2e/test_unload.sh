#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `tcpshift unload` leaves nothing behind: no tc filter on the gateway's
# interfaces, no pin directory, and the program and maps that were attached
# are gone from the kernel. Only the ids this test attached are checked, so
# other instances of tcpshift running beside it do not matter.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init unload
e2e_need jq bpftool od
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 50 50

# some traffic, so that the flow and reply maps hold entries
out=$(client_count "$VIP4" 20)
info "before unload: $(echo "$out" | tr '\n' ' ')"
[ $(($(count_of "$out" v1) + $(count_of "$out" v2))) -eq 20 ] ||
	info "(traffic through the VIP failed; unload is checked anyway)"

# the ids of what is attached now
prog_ids=()
for dev in "${E2E_DEVS[@]}"; do
	f=$(in_ns "$NS_GW" tc filter show dev "$dev" ingress)
	id=$(grep -o ' id [0-9]*' <<<"$f" | head -n 1 | awk '{ print $2 }')
	[ -n "$id" ] || e2e_abort "no tc filter with a program id on $dev after load: '$f'"
	prog_ids+=("$id")
done
mapfile -t map_ids < <(for id in $(printf '%s\n' "${prog_ids[@]}" | sort -u); do
	bpftool -j prog show id "$id" | jq -r '.map_ids[]?'
done | sort -u)
[ "${#map_ids[@]}" -gt 0 ] || e2e_abort "bpftool shows no maps for program ${prog_ids[0]}"
mapfile -t prog_ids < <(printf '%s\n' "${prog_ids[@]}" | sort -u)
# and the inner maps (the per-service tables) held by maps of maps
inner_ids=()
for id in "${map_ids[@]}"; do
	type=$(bpftool -j map show id "$id" | jq -r '.type')
	case $type in
	array_of_maps | hash_of_maps) ;;
	*) continue ;;
	esac
	# "key: 00 00 00 00  value: 4a 00 00 00": the value is the inner map id, host order
	while read -r b0 b1 b2 b3; do
		[ -n "$b3" ] || continue
		if [ "$(printf '\1\0' | od -An -tu2 | tr -d ' ')" = 1 ]; then
			inner_ids+=($((16#$b3$b2$b1$b0)))
		else
			inner_ids+=($((16#$b0$b1$b2$b3)))
		fi
	done < <(bpftool map dump id "$id" | sed -n 's/.*value: \([0-9a-f ]*\)$/\1/p')
done
map_ids+=("${inner_ids[@]}")
info "attached program ids: ${prog_ids[*]}; their map ids: ${map_ids[*]}" \
	"(${#inner_ids[@]} inner)"

if ! out=$(ts unload 2>&1); then
	fail "unload: exits 0" "$out"
else
	pass "unload: exits 0"
fi

left=()
for dev in "${E2E_DEVS[@]}"; do
	f=$(in_ns "$NS_GW" tc filter show dev "$dev" ingress 2>&1)
	[ -z "$f" ] || left+=("filter on $dev: $f")
done
if [ "${#left[@]}" -eq 0 ]; then
	pass "unload: no tc filter left on ${E2E_DEVS[*]}"
else
	fail "unload: no tc filter left on ${E2E_DEVS[*]}" "${left[*]}"
fi

if [ ! -e "$E2E_PIN" ]; then
	pass "unload: pin directory removed"
else
	fail "unload: pin directory removed" \
		"$E2E_PIN holds: $(find "$E2E_PIN" -mindepth 1 -printf '%P ')"
fi

# the kernel frees programs and maps a little after their last reference: wait ≤ 10 s
gone=0
for ((i = 0; i < 50; i++)); do
	still=()
	for id in "${prog_ids[@]}"; do
		bpftool prog show id "$id" >/dev/null 2>&1 && still+=("prog $id")
	done
	for id in "${map_ids[@]}"; do
		bpftool map show id "$id" >/dev/null 2>&1 && still+=("map $id")
	done
	if [ "${#still[@]}" -eq 0 ]; then
		gone=1
		break
	fi
	sleep 0.2
done
if [ "$gone" -eq 1 ]; then
	pass "unload: programs ${prog_ids[*]} and their ${#map_ids[@]} maps gone from the kernel"
else
	fail "unload: programs ${prog_ids[*]} and their ${#map_ids[@]} maps gone from the kernel" \
		"still there after 10 s: ${still[*]}"
fi
e2e_status
