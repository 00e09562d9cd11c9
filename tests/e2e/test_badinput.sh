#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Bad input is rejected: exit 2 (usage) or 1 (runtime), exactly one stderr
# line starting "tcpshift: ", the configuration (`tcpshift -j service list`)
# byte-identical before and after, no change left under way
# (TS_SETTINGS_F_CHANGING, which would keep the data plane from trusting its
# copies of backends' entries and make the next change repair the instance),
# and the settings' generation as it was (moved, it would make every flow read
# its backend's entry again and the agent read the whole configuration). A
# change that is made moves the generation: the check can fail.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init badinput
e2e_need setpriv cmp bpftool jq
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 90 10

before=$E2E_TMP/list.before
after=$E2E_TMP/list.after
ts -j service list >"$before" 2>"$E2E_TMP/list.err" ||
	e2e_abort "service list failed: $(head -n 1 "$E2E_TMP/list.err")"
[ -s "$before" ] || e2e_abort "service list printed nothing"
info "config: $(tr -d '\n' <"$before" | head -c 300)"

# TS_SETTINGS_F_CHANGING (include/tcpshift.h) in the settings: 1 or 0
changing() {
	bpftool -j map lookup pinned "$E2E_PIN/settings" key 0 0 0 0 2>/dev/null |
		jq '(.formatted.value.flags / 64 | floor) % 2'
}

# the settings' generation (ts_maps_unlock)
generation() {
	bpftool -j map lookup pinned "$E2E_PIN/settings" key 0 0 0 0 2>/dev/null |
		jq '.formatted.value.generation'
}

# check_rejected NAME WANT_EXIT CMD...: CMD fails as it should and changes nothing.
check_rejected() {
	local name="reject $1" want=$2 rc lines first gen
	shift 2

	gen=$(generation)
	"$@" >"$E2E_TMP/out" 2>"$E2E_TMP/err" </dev/null
	rc=$?
	lines=$(wc -l <"$E2E_TMP/err")
	first=$(head -n 1 "$E2E_TMP/err")
	if ! ts -j service list >"$after" 2>/dev/null || ! cmp -s "$before" "$after"; then
		fail "$name" "the configuration changed (exit $rc: $first)"
	elif [ "$(changing)" != 0 ]; then
		fail "$name" "it left a change under way (TS_SETTINGS_F_CHANGING set; exit $rc: $first)"
	elif [ -z "$gen" ] || [ "$(generation)" != "$gen" ]; then
		fail "$name" "the generation moved from '$gen' to '$(generation)' (exit $rc: $first)"
	elif [ "$rc" -ne "$want" ]; then
		fail "$name" "exit $rc, want $want (stderr: $(head -c 200 "$E2E_TMP/err"))"
	elif [ "$lines" -ne 1 ] || [ "${first#tcpshift: }" = "$first" ]; then
		fail "$name" "stderr must be one line starting 'tcpshift: ', got $lines: $(
			head -c 200 "$E2E_TMP/err" | tr '\n' '|')"
	else
		pass "$name (exit $rc: $first)"
	fi
}

# malformed addresses
for a in 198.18.100.300:8008 198.18.100.1 '[2001:2::1:8008' 198.18.100.1:0 \
	198.18.100.1:70000; do
	check_rejected "service add at $a" 2 ts service add bad "$a"
done
check_rejected "backend add at 198.18.2.300:8008" 2 \
	ts backend add tcp-echo v3 198.18.2.300:8008

# unknown names
check_rejected "unknown service (backend add)" 2 ts backend add nosuch v3 198.18.2.13:8008
check_rejected "unknown service (weight)" 2 ts weight nosuch v1=1
check_rejected "unknown service (service del)" 2 ts service del nosuch
check_rejected "unknown backend (weight)" 2 ts weight tcp-echo nosuch=5
check_rejected "unknown backend (backend del)" 2 ts backend del tcp-echo nosuch

# weights
for w in 65536 -1 abc ''; do
	check_rejected "weight '$w'" 2 ts weight tcp-echo "v1=$w"
done
check_rejected "backend add --weight 65536" 2 \
	ts backend add tcp-echo v3 198.18.2.13:8008 --weight 65536

# duplicates
check_rejected "duplicate service name" 2 ts service add tcp-echo 198.18.100.2:8008
check_rejected "duplicate backend name" 2 ts backend add tcp-echo v1 198.18.2.13:8008
check_rejected "VIP:port already in use" 2 ts service add other "$VIP4"

# a device that does not exist: refused, and what was attached stays attached
filters_before=$(in_ns "$NS_GW" tc filter show dev gwc ingress 2>&1)
check_rejected "load --dev nosuchdev0" 2 ts load --dev nosuchdev0
# not Ethernet (loopback: no Ethernet header for the program to parse)
check_rejected "load --dev lo (not Ethernet)" 2 ts load --dev gwc --dev lo
filters_after=$(in_ns "$NS_GW" tc filter show dev gwc ingress 2>&1)
if [ -n "$filters_before" ] && [ "$filters_before" = "$filters_after" ]; then
	pass "load --dev nosuchdev0 leaves the attached program in place"
else
	fail "load --dev nosuchdev0 leaves the attached program in place" \
		"tc filters on gwc before: '$filters_before', after: '$filters_after'"
fi

# the environment: a pin directory not on bpffs, not root
mkdir -p "$E2E_TMP/notbpf"
check_rejected "pin dir not on bpffs" 1 "$TCPSHIFT" --pin-dir "$E2E_TMP/notbpf" service list
check_rejected "not root" 1 setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$TCPSHIFT" --pin-dir "$E2E_PIN" service list

# the control: a change that is made moves the generation and clears the flag
gen=$(generation)
if ! ts weight tcp-echo v1=80 v2=20 >/dev/null 2>"$E2E_TMP/err"; then
	fail "a weight change moves the generation" "weight failed: $(head -n 1 "$E2E_TMP/err")"
elif [ "$(generation)" = "$gen" ] || [ "$(changing)" != 0 ]; then
	fail "a weight change moves the generation" \
		"generation '$gen' -> '$(generation)', TS_SETTINGS_F_CHANGING $(changing)"
else
	pass "a weight change moves the generation ($gen -> $(generation)) and clears the flag"
fi

# help
for args in "--help" "weight --help"; do
	read -r -a argv <<<"$args"
	"$TCPSHIFT" "${argv[@]}" >"$E2E_TMP/out" 2>"$E2E_TMP/err"
	rc=$?
	if [ "$rc" -eq 0 ] && [ -s "$E2E_TMP/out" ]; then
		pass "tcpshift $args exits 0"
	else
		fail "tcpshift $args exits 0" "exit $rc, $(wc -c <"$E2E_TMP/out") bytes on stdout"
	fi
done
e2e_status
