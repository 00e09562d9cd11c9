#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Instance identity and tc ownership (invariant 9):
# an instance is its pin directory plus the network namespace load ran in;
# commands that touch devices refuse from another namespace instead of
# acting on its ifindexes; a second instance, or another tool's filter at
# tcpshift's tc handle and priority, is refused, never replaced.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init identity
e2e_need bpftool jq
NS_B=tse2e-$E2E_ID-b
PIN2=$E2E_PIN-2
e2e_netns_add "$NS_GW"
e2e_netns_add "$NS_B"
for ns in "$NS_GW" "$NS_B"; do
	must "veth in $ns" ip -n "$ns" link add gwc type veth peer name gwx
	must "veth 2 in $ns" ip -n "$ns" link add gwd type veth peer name gwy
	must "gwc up in $ns" ip -n "$ns" link set gwc up
	must "gwd up in $ns" ip -n "$ns" link set gwd up
done
trap 'rm -rf -- "$PIN2"; e2e_cleanup' EXIT
[ -e "$PIN2" ] && e2e_abort "$PIN2 already exists"

# refused NAME PATTERN CMD...: CMD exits 1 with one stderr line matching PATTERN
refused() {
	local name=$1 pat=$2 out rc
	shift 2

	out=$("$@" 2>&1 >/dev/null </dev/null)
	rc=$?
	if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
		grep -q "^tcpshift: .*$pat" <<<"$out"; then
		pass "$name (exit 1: $out)"
	else
		fail "$name" "exit $rc (want 1), stderr: $out"
	fi
}

# filter_id NS DEV: the program id of the tc ingress filter on DEV in NS ("" if none)
filter_id() {
	tc -n "$1" filter show dev "$2" ingress 2>/dev/null | grep -o ' id [0-9]*' |
		awk '{ print $2 }' | head -n 1
}

E2E_LOADED=1
must "load in $NS_GW" ts load --dev gwc
id_a=$(filter_id "$NS_GW" gwc)
[ -n "$id_a" ] || e2e_abort "no filter on gwc after load"

# namespace B: a device with a clsact qdisc and a filter of its own at our slot
must "clsact in B" tc -n "$NS_B" qdisc add dev gwc clsact
must "filter in B" tc -n "$NS_B" filter add dev gwc ingress prio 117 handle 0x75 protocol all \
	bpf bytecode '1,6 0 0 0'
b_before=$(tc -n "$NS_B" filter show dev gwc ingress)

# 1. identity: unload, status and load from another namespace refuse
other=("$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_B")
host=("$TCPSHIFT" --pin-dir "$E2E_PIN")
refused "identity: unload -n other refused" "loaded in another network namespace; run with -n $NS_GW" \
	"${other[@]}" unload
refused "identity: unload from the host refused" "loaded in another network namespace; run with -n $NS_GW" \
	"${host[@]}" unload
refused "identity: status -n other refused" "loaded in another network namespace" \
	"${other[@]}" status
refused "identity: load -n other refused" "loaded in another network namespace" \
	"${other[@]}" load --dev gwd
if [ "$(filter_id "$NS_GW" gwc)" = "$id_a" ] && [ -e "$E2E_PIN/settings" ] &&
	[ "$(tc -n "$NS_B" filter show dev gwc ingress)" = "$b_before" ]; then
	pass "identity: the instance and the other namespace's filter untouched"
else
	fail "identity: nothing touched" "gwc in A: '$(filter_id "$NS_GW" gwc)' (was $id_a)," \
		"B: '$(tc -n "$NS_B" filter show dev gwc ingress)'"
fi
if "${host[@]}" service list >/dev/null 2>&1; then
	pass "identity: commands that touch no device still run from anywhere"
else
	fail "identity: service list from the host" "$("${host[@]}" service list 2>&1)"
fi
if ts -j status | jq -e '.devices[0].state == "attached"' >/dev/null; then
	pass "identity: status in the right namespace shows the device attached"
else
	fail "identity: status in the right namespace" "$(ts -j status 2>&1 | head -c 300)"
fi

# 2. ownership: a second instance on the same device is refused, not a replacement
second=("$TCPSHIFT" --pin-dir "$PIN2" -n "$NS_GW")
refused "ownership: a second instance on gwc refused" "another tcpshift instance" \
	"${second[@]}" load --dev gwc
if [ "$(filter_id "$NS_GW" gwc)" = "$id_a" ] && [ ! -e "$PIN2" ]; then
	pass "ownership: the first instance's filter stays; the second left nothing pinned"
else
	fail "ownership: first stays" "filter $(filter_id "$NS_GW" gwc) (was $id_a)," \
		"$PIN2: $(ls "$PIN2" 2>&1 | tr '\n' ' ')"
fi

# 3. another tool's filter at our handle and priority: refused, left as it was
must "clsact on gwd" tc -n "$NS_GW" qdisc add dev gwd clsact
must "foreign filter on gwd" tc -n "$NS_GW" filter add dev gwd ingress prio 117 handle 0x75 \
	protocol all bpf bytecode '1,6 0 0 0'
d_before=$(tc -n "$NS_GW" filter show dev gwd ingress)
refused "ownership: another tool's filter on gwd refused" "another tool's filter" \
	ts load --dev gwc --dev gwd
if [ "$(tc -n "$NS_GW" filter show dev gwd ingress)" = "$d_before" ] &&
	[ "$(filter_id "$NS_GW" gwc)" = "$id_a" ]; then
	pass "ownership: the foreign filter and our own attachment untouched"
else
	fail "ownership: untouched" "gwd: $(tc -n "$NS_GW" filter show dev gwd ingress)"
fi

# 4. an upgrade replaces our own filter (provably ours: it uses our settings map)
must "upgrade" ts load --dev gwc
id_new=$(filter_id "$NS_GW" gwc)
if [ -n "$id_new" ] && [ "$id_new" != "$id_a" ]; then
	pass "ownership: load again replaces our own program ($id_a -> $id_new)"
else
	fail "ownership: upgrade" "filter id $id_a -> '$id_new'"
fi
must "unload" ts unload
if [ -z "$(filter_id "$NS_GW" gwc)" ] && [ "$(tc -n "$NS_GW" filter show dev gwd ingress)" = "$d_before" ]; then
	pass "ownership: unload removes our filter only"
else
	fail "ownership: unload" "gwc: $(filter_id "$NS_GW" gwc), gwd: $(tc -n "$NS_GW" filter show dev gwd ingress)"
fi
# 5. a clsact qdisc load created is removed by unload, but not when another
# tool has put filters on it since
NS_D=tse2e-$E2E_ID-d
e2e_netns_add "$NS_D"
must "veth in D" ip -n "$NS_D" link add gwc type veth peer name gwx
must "gwc up in D" ip -n "$NS_D" link set gwc up
in_d=("$TCPSHIFT" --pin-dir "$PIN2" -n "$NS_D")
must "load in D" "${in_d[@]}" load --dev gwc
must "unload in D" "${in_d[@]}" unload
if ! tc -n "$NS_D" qdisc show dev gwc | grep -q clsact; then
	pass "ownership: unload removes the clsact qdisc load created"
else
	fail "ownership: unload removes its clsact" "$(tc -n "$NS_D" qdisc show dev gwc)"
fi
must "load in D again" "${in_d[@]}" load --dev gwc
must "another tool's filter in D" tc -n "$NS_D" filter add dev gwc ingress prio 200 handle 7 \
	protocol all bpf bytecode '1,6 0 0 0'
must "unload in D again" "${in_d[@]}" unload
if tc -n "$NS_D" filter show dev gwc ingress | grep -q 'handle 0x7 ' &&
	! tc -n "$NS_D" filter show dev gwc ingress | grep -q tcpshift; then
	pass "ownership: unload keeps a clsact that another tool's filter now uses, and the filter"
else
	fail "ownership: another tool's filter on our clsact" \
		"$(tc -n "$NS_D" filter show dev gwc ingress 2>&1)"
fi

# 6. the namespace load ran in is gone: its devices and filters went with
# it; status says so, unload removes the pins from anywhere
NS_C=tse2e-$E2E_ID-c
PIN3=$E2E_PIN-3
trap 'rm -rf -- "$PIN2" "$PIN3"; e2e_cleanup' EXIT
[ -e "$PIN3" ] && e2e_abort "$PIN3 already exists"
e2e_netns_add "$NS_C"
must "veth in C" ip -n "$NS_C" link add gwc type veth peer name gwx
third=("$TCPSHIFT" --pin-dir "$PIN3")
must "load in C" "${third[@]}" -n "$NS_C" load --dev gwc
must "namespace C deleted" ip netns del "$NS_C"
st=""
for ((i = 0; i < 50; i++)); do
	st=$("${third[@]}" -j status 2>&1) && jq -e '.netns_gone' <<<"$st" >/dev/null && break
	sleep 0.1
done
if jq -e '.netns_gone and (.devices | length == 0)' <<<"$st" >/dev/null; then
	pass "identity: status says the namespace load ran in is gone"
else
	fail "identity: status after the namespace went" "$st"
fi
if out=$("${third[@]}" unload 2>&1) && [ ! -e "$PIN3" ]; then
	pass "identity: unload of an instance whose namespace is gone removes its pins"
else
	fail "identity: unload after the namespace went" "$out; $(ls "$PIN3" 2>&1)"
fi
e2e_status
