#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Command-line details: VIPs no client reaches and
# backends at a VIP are refused (exit 2); backend 1,025 of a service is exit 2 from
# backend add as from import; import refuses a key given twice; --seed 010 is
# ten, not eight; a long option missing its value is named as typed; global
# option errors point at 'tcpshift --help'; load --help names --forward and
# the memory a flow costs; service list and stats show a drain's deadline;
# a name the CLI refuses, written into the maps, breaks neither tables nor JSON.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init cli
e2e_need jq
e2e_bare_gateway gwc
E2E_LOADED=1
must "load" ts load --dev gwc --seed 010
must "service add" ts service add web 198.18.100.1:8008
must "backend add" ts backend add web v1 198.18.2.11:8008 --weight 5

# usage NAME PATTERN CMD...: exit 2, one stderr line matching PATTERN, config unchanged
usage() {
	local name=$1 pat=$2 out rc before after
	shift 2

	before=$(ts -j service list 2>&1)
	out=$("$@" 2>&1 >/dev/null </dev/null)
	rc=$?
	after=$(ts -j service list 2>&1)
	if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
		grep -q "^tcpshift: .*$pat" <<<"$out" && [ "$before" = "$after" ]; then
		pass "$name (exit 2: $out)"
	else
		fail "$name" "exit $rc (want 2), stderr: $out; config changed: $([ "$before" = "$after" ] && echo no || echo yes)"
	fi
}

for vip in 0.0.0.0:80 127.0.0.1:80 224.0.0.1:80 255.255.255.255:80 '[::]:80' '[::1]:80' \
	'[::ffff:198.18.0.1]:80' '[ff02::1]:80'; do
	usage "service add at $vip refused" "cannot be a VIP" ts service add bad "$vip"
done
usage "backend at a service's VIP refused" "is the VIP of service 'web'" \
	ts backend add web v2 198.18.100.1:8008
usage "service at a backend's address refused" "is backend 'v1' of service 'web'" \
	ts service add bad 198.18.2.11:8008

printf '{"tcpshift":1,"seed":10,"services":[],"services":[]}' >"$E2E_TMP/dup.json"
usage "import with a key given twice refused" 'key "services" is given twice' \
	ts import "$E2E_TMP/dup.json"

# --seed 010 is decimal
seed=$(ts -j status | jq .seed)
if [ "$seed" = 10 ]; then
	pass "--seed 010 is decimal (seed $seed)"
else
	fail "--seed 010 is decimal" "status says seed $seed"
fi
usage "--seed 0x is refused" "--seed '0x' is not a 32-bit number" ts load --dev gwc --seed 0x

# options missing their value, named as typed
usage "load --max-flows without a value" "option --max-flows needs a value" \
	ts load --dev gwc --max-flows
usage "service add --table-size without a value" "option --table-size needs a value" \
	ts service add x 198.18.100.2:80 --table-size
out=$("$TCPSHIFT" --pin-dir 2>&1)
if grep -q "^tcpshift: option --pin-dir needs a value (see 'tcpshift --help')$" <<<"$out"; then
	pass "global option error points at 'tcpshift --help' ($out)"
else
	fail "global option error points at 'tcpshift --help'" "$out"
fi

help=$("$TCPSHIFT" load --help)
if grep -q '^Usage: .*' <<<"$help" && sed -n '1,2p' <<<"$help" | grep -q -- '--forward' &&
	grep -q '432 bytes' <<<"$help"; then
	pass "load --help: the usage names --forward, --max-flows its memory cost"
else
	fail "load --help" "$(head -n 3 <<<"$help")"
fi

# the backend past a service's most (1,024): exit 2, from backend add as from
# import
MAXB=1024
{
	printf '{"tcpshift":1,"seed":10,"services":[{"name":"big","vip":"198.18.100.2:80","backends":['
	for ((i = 0; i < MAXB; i++)); do
		printf '%s{"name":"b%d","addr":"198.18.%d.%d:80"}' "$([ $i -gt 0 ] && echo ,)" \
			"$i" $((10 + i / 200)) $((1 + i % 200))
	done
	printf ']},{"name":"web","vip":"198.18.100.1:8008","backends":[{"name":"v1","addr":"198.18.2.11:8008","weight":5}]}]}'
} >"$E2E_TMP/big.json"
must "import $MAXB backends" ts import "$E2E_TMP/big.json"
usage "backend add: backend $((MAXB + 1))" "has $MAXB backends, the most allowed" \
	ts backend add big "b$MAXB" 198.18.30.1:80
sed "s/\"b0\",/\"b$MAXB\",\"addr\":\"198.18.30.1:80\"},{\"name\":\"b0\",/" "$E2E_TMP/big.json" \
	>"$E2E_TMP/big-past.json"
usage "import: backend $((MAXB + 1))" "$((MAXB + 1)) backends" ts import "$E2E_TMP/big-past.json"

# a drain's deadline is shown
must "drain" ts drain web v1 --timeout 1h
left=$(ts -j service list | jq '.[] | select(.name == "web") | .backends[0].drain_deadline_s')
sleft=$(ts -j stats web | jq '.services[0].backends[0].drain_deadline_s')
text=$(ts service list)
if [ "${left:-0}" -gt 3000 ] && [ "${left:-0}" -le 3600 ] && [ "${sleft:-0}" -gt 3000 ] &&
	grep -q 'draining: flows closed in' <<<"$text"; then
	pass "drain deadline shown: $left s left (service list), $sleft s (stats)"
else
	fail "drain deadline shown" "service list: '$left', stats: '$sleft', text: $text"
fi

# A name the CLI refuses, written straight into the pinned backends map (as
# anything with the rights may): a newline, a quote, a backslash, an escape.
# The tables show it escaped on its own line; the JSON carries it whole.
must "service add odd" ts service add odd 198.18.100.3:80
must "backend add odd x1" ts backend add odd x1 198.18.2.21:80
# struct ts_backend: name[32] at byte 40 (include/tcpshift.h)
entry=$(bpftool -j map dump pinned "$E2E_PIN/backends" |
	jq -c 'first(.[] | select(.value[40:43] == ["0x78","0x31","0x00"]))')
if [ -n "$entry" ]; then
	odd=$(printf 'x1\nFAKE "q\\\033')
	mapfile -t key < <(jq -r '.key[]' <<<"$entry")
	mapfile -t value < <(jq -r '.value[]' <<<"$entry")
	for ((i = 0; i < 32; i++)); do
		c=${odd:i:1}
		value[40 + i]=$(printf '0x%02x' "'${c:-}")
		[ -z "$c" ] && value[40 + i]=0x00
	done
	bpftool map update pinned "$E2E_PIN/backends" key hex "${key[@]#0x}" \
		value hex "${value[@]#0x}" || fail "odd name written" "bpftool map update failed"
fi
for cmd in "service list" "stats odd"; do
	# shellcheck disable=SC2086 # cmd: the command's words
	text=$(ts $cmd 2>&1)
	# shellcheck disable=SC2086
	name=$(ts -j $cmd 2>/dev/null | jq -r '[.. | objects | select(.addr? == "198.18.2.21:80") |
		.name] | first')
	if [ -n "$entry" ] && ! grep -q '^FAKE' <<<"$text" &&
		grep -qF 'x1\x0aFAKE "q\x5c\x1b' <<<"$text" && [ "$name" = "$odd" ]; then
		pass "$cmd: a name with a newline, a quote, a backslash and an escape stays on its line, whole in JSON"
	else
		fail "$cmd: odd name" "JSON name '$name', text: $text"
	fi
done
e2e_status
