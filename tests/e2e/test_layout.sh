#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade safety: maps pinned by a version with another layout are
# detected and refused with a clear message; nothing is attached or changed.
# A newer layout than this build's (a downgrade) is refused with a line that
# says what loading over it would lose.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init layout
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
e2e_status
