#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade safety: maps pinned by a version with another layout are
# detected and refused with a clear message; nothing is attached or changed.
# A newer layout than this build's (a downgrade) is refused with a line that
# says what loading over it would lose. A foreign map beside one that load
# would remake is refused before anything is made anew.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init layout
e2e_need jq bpftool
e2e_netns_add "$NS_GW"
must "veth" ip -n "$NS_GW" link add gwc type veth peer name gwx
must "pin dir" mkdir -p "$E2E_PIN"
# a `settings` map as another version might have left it: 64-byte values
must "foreign settings map" bpftool map create "$E2E_PIN/settings" type array key 4 value 64 \
	entries 1 name settings

out=$(ts load --dev gwc 2>&1 >/dev/null)
rc=$?
info "load: exit $rc: $out"
if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
	grep -q "^tcpshift: pinned map .*/settings has another layout" <<<"$out"; then
	pass "layout: a pinned map of another layout is refused (exit 1, one line)"
else
	fail "layout: refusal" "exit $rc, stderr: $out"
fi
filters=$(tc -n "$NS_GW" filter show dev gwc ingress 2>/dev/null)
pins=$(ls "$E2E_PIN")
if [ -z "$filters" ] && [ "$pins" = settings ]; then
	pass "layout: nothing attached, the foreign pin left as it was"
else
	fail "layout: nothing changed" "filters: '$filters', pins: $(echo $pins)"
fi

# a newer layout's settings: one u64 more than today's, layout version 99
must "remove the foreign pin" rm "$E2E_PIN/settings"
value=$(printf '99 00 00 00'; for ((i = 4; i < 568; i++)); do printf ' 00'; done)
must "newer settings map" bpftool map create "$E2E_PIN/settings" type array key 4 value 568 \
	entries 1 name settings
# shellcheck disable=SC2086 # the value's bytes, word-split
must "newer settings" bpftool map update pinned "$E2E_PIN/settings" key 0 0 0 0 value $value
out=$(ts load --dev gwc 2>&1 >/dev/null)
rc=$?
info "load: exit $rc: $out"
if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
	grep -q "layout 99, newer than this tcpshift's .*would lose every pinned flow" <<<"$out"; then
	pass "layout: a newer layout is refused, saying what would be lost (exit 1, one line)"
else
	fail "layout: newer layout refusal" "exit $rc, stderr: $out"
fi
filters=$(tc -n "$NS_GW" filter show dev gwc ingress 2>/dev/null)
if [ -z "$filters" ] && [ "$(ls "$E2E_PIN")" = settings ]; then
	pass "layout: newer layout: nothing attached, its pin left as it was"
else
	fail "layout: newer layout: nothing changed" "filters: '$filters', pins: $(ls "$E2E_PIN")"
fi
# Today's settings, a `tables` of the earlier layout-8 template (load would
# remake it) and a `services` of another layout, with an entry: refused by
# services' check before anything is made anew, the tables pin untouched
must "remove the newer pin" rm "$E2E_PIN/settings"
must "settings" bpftool map create "$E2E_PIN/settings" type array key 4 value 560 entries 1 \
	name settings
must "an earlier template" bpftool map create "$E2E_PIN/tmpl" type array key 4 value 8 \
	entries 1 name tmpl flags 0x1400
must "tables of it" bpftool map create "$E2E_PIN/tables" type array_of_maps key 4 value 4 \
	entries 65536 name tables inner_map pinned "$E2E_PIN/tmpl"
must "drop the template's pin" rm "$E2E_PIN/tmpl"
must "foreign services" bpftool map create "$E2E_PIN/services" type hash key 20 value 4096 \
	entries 16 name services flags 1
# shellcheck disable=SC2046 # the bytes, word-split
must "a service in it" bpftool map update pinned "$E2E_PIN/services" key $(printf '0 %.0s' \
	{1..20}) value $(printf '7 %.0s' {1..4096})
tables_id=$(bpftool -j map show pinned "$E2E_PIN/tables" | jq .id)
out=$(ts load --dev gwc 2>&1 >/dev/null)
rc=$?
info "load: exit $rc: $out"
if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$out")" -eq 1 ] &&
	grep -q "^tcpshift: pinned map .*/services has another layout" <<<"$out" &&
	[ "$(bpftool -j map show pinned "$E2E_PIN/tables" | jq .id)" = "$tables_id" ]; then
	pass "layout: a foreign services beside tables to remake is refused, the tables pin" \
		"untouched (exit 1, one line)"
else
	fail "layout: foreign services beside tables to remake" "exit $rc, stderr: $out;" \
		"tables $tables_id -> $(bpftool -j map show pinned "$E2E_PIN/tables" | jq .id)"
fi
e2e_status
