#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Foreign state is never read or removed (invariant 9):
# every command validates the pinned maps (type, key and value size, the ABI
# version in settings) before use and refuses with one line, exit 1; unload
# removes nothing it has not validated; only load creates pins, and a pin
# directory too long for PATH_MAX is refused up front (exit 2).
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init foreign
e2e_need bpftool jq
e2e_bare_gateway gwc gwd

# refused NAME WANT_EXIT PATTERN CMD...: CMD exits WANT_EXIT with one stderr
# line matching PATTERN.
refused() {
	local name=$1 want=$2 pat=$3 out rc
	shift 3

	out=$("$@" 2>&1 >/dev/null </dev/null)
	rc=$?
	if [ "$rc" -eq "$want" ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
		grep -q "^tcpshift: .*$pat" <<<"$out"; then
		pass "$name (exit $rc: $out)"
	else
		fail "$name" "exit $rc (want $want), stderr: $out"
	fi
}

# 1. a directory holding a foreign `flows` map (another layout) and nothing else
must "pin dir" mkdir -p "$E2E_PIN"
must "foreign flows map" bpftool map create "$E2E_PIN/flows" type hash key 8 value 8 \
	entries 16 name flows
foreign_id=$(bpftool -j map show pinned "$E2E_PIN/flows" | jq -r .id)
for cmd in "status" "service list" "export" "stats" "flows" \
	"backend add web v1 198.18.2.11:8008" "pick web 198.18.1.2:1000" "unload"; do
	read -r -a argv <<<"$cmd"
	refused "foreign map: $cmd refused" 1 "flows has another layout" ts "${argv[@]}"
done
now_id=$(bpftool -j map show pinned "$E2E_PIN/flows" 2>/dev/null | jq -r .id)
if [ "$now_id" = "$foreign_id" ] && [ "$(ls "$E2E_PIN")" = flows ]; then
	pass "foreign map: left as it was, nothing created beside it"
else
	fail "foreign map: left as it was" "id $foreign_id -> '$now_id', pins: $(ls "$E2E_PIN")"
fi
rm -f "$E2E_PIN/flows"

# 2. a loaded instance whose settings say another ABI version
E2E_LOADED=1
must "load" ts load --dev gwc
must "service add" ts service add web 198.18.100.1:8008
key='0 0 0 0'
mapfile -t val < <(bpftool -j map lookup pinned "$E2E_PIN/settings" key $key |
	jq -r '.value[]')
[ "${#val[@]}" -gt 8 ] || e2e_abort "cannot read the settings map"
val[0]=0x63	# abi_version 99
must "settings abi 99" bpftool map update pinned "$E2E_PIN/settings" key $key \
	value "${val[@]}"
for cmd in "status" "service list" "export" "stats" "flows" "weight web v1=1" \
	"backend add web v1 198.18.2.11:8008" "pick web 198.18.1.2:1000" "unload"; do
	read -r -a argv <<<"$cmd"
	refused "ABI version 99: $cmd refused" 1 "layout version 99" ts "${argv[@]}"
done
filters=$(tc -n "$NS_GW" filter show dev gwc ingress 2>/dev/null)
if [ -n "$filters" ] && [ -e "$E2E_PIN/settings" ]; then
	pass "ABI version 99: unload refused before detaching or unpinning anything"
else
	fail "ABI version 99: nothing touched" "filters: '$filters', pins: $(ls "$E2E_PIN")"
fi
val[0]=0x03
must "settings abi back" bpftool map update pinned "$E2E_PIN/settings" key $key \
	value "${val[@]}"

# 3. pick never creates a pin, also when the instance is gone
pins_before=$(ls "$E2E_PIN" | tr '\n' ' ')
rm -f "$E2E_PIN/backends"
refused "pick with a pin missing" 1 "backends" ts pick web 198.18.1.2:1000
if [ ! -e "$E2E_PIN/backends" ]; then
	pass "pick with a pin missing: no pin re-created (had: $pins_before)"
else
	fail "pick re-created a pin" "$(ls "$E2E_PIN" | tr '\n' ' ')"
fi
gone=$E2E_PIN-gone
refused "pick on no instance" 1 "not loaded" \
	"$TCPSHIFT" --pin-dir "$gone" -n "$NS_GW" pick web 198.18.1.2:1000
if [ ! -e "$gone" ]; then
	pass "pick on no instance: no pin directory created"
else
	fail "pick on no instance created $gone" "$(ls "$gone")"
	rm -rf -- "$gone"
fi

# 4. pin paths too long: refused up front by every command, nothing created
long=$E2E_PIN-d/$(printf 'e%.0s' {1..200})
long=$long/$(printf 'f%.0s' {1..200})
while [ "${#long}" -lt 4100 ]; do long=$long/$(printf 'g%.0s' {1..200}); done
refused "load with a pin path past PATH_MAX" 2 "too long" \
	"$TCPSHIFT" --pin-dir "$long" -n "$NS_GW" load --dev gwc
refused "load with a 256-character name" 2 "longer than 255" \
	"$TCPSHIFT" --pin-dir "$E2E_PIN-$(printf 'h%.0s' {1..256})" -n "$NS_GW" load --dev gwc
refused "pick with a pin path past PATH_MAX" 2 "too long" \
	"$TCPSHIFT" --pin-dir "$long" -n "$NS_GW" pick web 198.18.1.2:1000
if ! ls -d "$E2E_PIN"-d* "$E2E_PIN"-h* >/dev/null 2>&1; then
	pass "long pin paths: nothing created"
else
	fail "long pin paths: nothing created" "$(ls -d "$E2E_PIN"-* | head -c 200)"
	rm -rf -- "$E2E_PIN"-d* "$E2E_PIN"-h*
fi
# 5. a pin path longer than 256 characters that fits PATH_MAX works, whole:
# nothing is created at a truncated path
parent=$E2E_PIN-p$(printf 'p%.0s' {1..200})
deep=$parent/$(printf 'q%.0s' {1..100})
trap 'rm -rf -- "$parent"; e2e_cleanup' EXIT
must "parent of a long pin dir" mkdir -p "$parent"
deep_ts=("$TCPSHIFT" --pin-dir "$deep" -n "$NS_GW")
must "load at a ${#deep}-character pin dir" "${deep_ts[@]}" load --dev gwd
must "service add (long pin dir)" "${deep_ts[@]}" service add web 198.18.100.1:8008
must "backend add (long pin dir)" "${deep_ts[@]}" backend add web v1 198.18.2.11:8008
got=$("${deep_ts[@]}" pick web 198.18.1.2:1000 2>&1)
others=$(find "$parent" -mindepth 1 -maxdepth 1 ! -path "$deep" | head -n 3)
if grep -q ' v1 ' <<<"$got" && [ -e "$deep/settings" ] && [ -z "$others" ]; then
	pass "a ${#deep}-character pin dir: load, service add, pick work; nothing created elsewhere"
else
	fail "a ${#deep}-character pin dir" "pick: $got; beside it: $others"
fi
must "unload (long pin dir)" "${deep_ts[@]}" unload
e2e_status
