#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade safety: maps pinned by a version with another layout are
# detected and refused with a clear message; nothing is attached or changed.
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
e2e_status
