#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade in place across layouts: an older build (UPGRADE_FROM, default
# release 05c97dc, layout 5; tests/e2e/test_upgrade_layout7.sh gives release
# 0.3.0, layout 7) is built from a worktree of this repository, loaded (E2E_MODE=xdp:
# with the senders' TX checksum offload off, which 0.2.0's XDP program needs),
# and carries held connections and steady new ones; `load` by this build then
# migrates its state: every held connection is answered by its own backend, no
# new connection fails during the swap and they follow the weights, the
# configuration and counters are kept. Then migrations killed at each step
# each leave a working instance (the old one, or the new one complete), which
# the next `load` upgrades.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

RELEASE=${UPGRADE_FROM:-05c97dc}
NCONN=40
NEW=600		# new connections during the upgrade, one after another

e2e_init upgrade
e2e_need jq
e2e_need git

# The previous release's CLI, built once and cached in build/.
e2e_release "$RELEASE"
OLD_TS=$E2E_OLD_TS
old_ts() {
	"$OLD_TS" --pin-dir "$E2E_PIN" -n "$NS_GW" "$@"
}
layout_of() { "$1" --version | sed -n 's/.*(map layout \([0-9]*\)).*/\1/p'; }
old_layout=$(layout_of "$OLD_TS")
# the previous release's layout: `downgrade` goes back to it in one step, and
# its stats read like ours
previous=0
[ "${old_layout:-0}" -eq $(($(layout_of "$TCPSHIFT") - 1)) ] && previous=1
packets() {	# CLI: every backend's packets, "name packets" lines
	"$@" -j stats | jq -r '.services[].backends[] | "\(.name) \(.packets)"' | sort
}
# counts_kept WHAT BEFORE AFTER: every backend's packets after at least before's
counts_kept() {
	if [ -n "$2" ] && [ "$(wc -l <<<"$2")" -eq "$(wc -l <<<"$3")" ] &&
		join <(echo "$2") <(echo "$3") | awk '$3 < $2 || $2 == 0 { bad = 1 } END { exit bad }'
	then
		pass "$1: every backend's counters kept ($(echo $3))"
	else
		fail "$1: every backend's counters kept" "before: $(echo $2); after: $(echo $3)"
	fi
}

e2e_topology
e2e_senders_tx off	# xdp mode: the old build's XDP needs complete checksums
E2E_LOADED=1
must "load by release $RELEASE" old_ts load "${E2E_OLD_DEV_ARGS[@]}" --seed "$E2E_SEED"
must "service add (old)" old_ts service add tcp-echo "$VIP4"
must "backend add v1 (old)" old_ts backend add tcp-echo v1 "$V1_4" --weight 30
must "backend add v2 (old)" old_ts backend add tcp-echo v2 "$V2_4" --weight 70
export_before=$(old_ts export)
first=$(client_count "$VIP4" 20)
info "through release $RELEASE: $(echo $first)"

many_open "$VIP4" "$NCONN"
many_read 30
read -r _ greeted _ <<<"${MANY_END:-end 0 0}"
[ "$greeted" -eq "$NCONN" ] ||
	e2e_abort "the $NCONN held connections through release $RELEASE: ${MANY_END:-no answer}"
new_flows_before=$(old_ts -j status | jq '.counters.new_flows // 0')
[ "$previous" = 1 ] && up_before=$(packets old_ts)

# steady new connections while this build loads over the old one
nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" count --connect "$VIP4" --n "$NEW" \
	>"$E2E_TMP/during" 2>>"$E2E_TMP/count.err" &
counter=$!
e2e_track_pid "$counter"
sleep 0.5
if out=$(ts load "${E2E_DEV_ARGS[@]}" 2>&1); then
	pass "upgrade: load by this build over release $RELEASE's instance succeeds"
else
	fail "upgrade: load over release $RELEASE" "$out"
fi
wait "$counter"
during=$(cat "$E2E_TMP/during")
info "new connections during the upgrade: $(echo $during)"
total=$(count_total "$during")
v1=$(count_of "$during" v1)
if [ "$(count_of "$during" error)" -eq 0 ] && [ "$total" -eq "$NEW" ]; then
	pass "upgrade: none of $NEW new connections failed during the swap"
else
	fail "upgrade: new connections during the swap" "$(echo $during)"
fi
if expect=$(within_sigmas "$v1" "$NEW" 0.3 4); then
	pass "upgrade: new connections split 30/70 ($v1 of $NEW on v1, $expect)"
else
	fail "upgrade: new connections split 30/70" "$v1 of $NEW on v1, $expect"
fi
many_check "upgrade: held connections across the migration" after
[ "$previous" = 1 ] && counts_kept "upgrade" "$up_before" "$(packets ts)"

status=$(ts -j status 2>&1)
if [ "$(ts export 2>&1)" = "$export_before" ]; then
	pass "upgrade: the configuration is the same, read by this build"
else
	fail "upgrade: configuration kept" "export differs: $(ts export 2>&1 | head -c 300)"
fi
new_flows_after=$(jq '.counters.new_flows // 0' <<<"$status")
if [ "$new_flows_after" -ge $((new_flows_before + NEW)) ]; then
	pass "upgrade: counters kept (new_flows $new_flows_before -> $new_flows_after)"
else
	fail "upgrade: counters kept" "new_flows $new_flows_before before, $new_flows_after" \
		"after $NEW more"
fi
if [ -e "$E2E_PIN/direct_pending" ] && [ -e "$E2E_PIN/service_names" ] &&
	[ ! -e "$E2E_PIN/migrating" ] &&
	old_ts status 2>&1 | grep -q "has another layout\|newer than this tcpshift"; then
	pass "upgrade: the new maps are pinned, nothing staged is left, the old CLI refuses them"
else
	fail "upgrade: pins" "$(ls -a "$E2E_PIN" | tr '\n' ' '); old status: $(old_ts status 2>&1 |
		head -n 1)"
fi

# xdp mode: this build's XDP program with partial checksums again (it leaves
# those frames to tc), the held connections still answered
e2e_senders_tx on
if [ "$E2E_MODE" = xdp ]; then
	many_check "upgrade: held connections, senders' TX checksum offload on again" tx-on
	e2e_senders_tx off
fi

# Killed at each step: the instance left works, and `load` completes it.
must "unload" ts unload
must "load by release $RELEASE again" old_ts load "${E2E_OLD_DEV_ARGS[@]}" --seed "$E2E_SEED"
must "import (old)" old_ts import - <<<"$export_before"
many_cmd "open" 10 >/dev/null
killed_ok=0
steps=(loaded first-device staged attached before-settings-pin)
for step in "${steps[@]}"; do
	TCPSHIFT_TEST_KILL_AT=$step ts load "${E2E_DEV_ARGS[@]}" >/dev/null 2>&1
	rc=$?
	layout=new
	old_ts status >/dev/null 2>&1 && layout=old
	now=$(client_count "$VIP4" 10)
	if [ "$rc" -eq 137 ] && [ "$(count_of "$now" error)" -eq 0 ] &&
		many_cmd "send-to $((NCONN + 1)) killed-$step" 10 && [ "${MANY_END#end 1 0}" != "$MANY_END" ]; then
		killed_ok=$((killed_ok + 1))
		info "killed at $step: the $layout instance works ($(echo $now))"
	else
		fail "upgrade: killed at $step" "exit $rc, new: $(echo $now), held: ${MANY_END:-none}"
	fi
done
[ "$killed_ok" -eq "${#steps[@]}" ] &&
	pass "upgrade: a migration killed at each of ${#steps[@]} steps leaves a working instance"
if out=$(ts load "${E2E_DEV_ARGS[@]}" 2>&1) && ts status >/dev/null 2>&1 &&
	[ "$(ts export)" = "$export_before" ] && [ ! -e "$E2E_PIN/migrating" ] &&
	many_cmd "send-to $((NCONN + 1)) completed" 10 && [ "${MANY_END#end 1 0}" != "$MANY_END" ]; then
	pass "upgrade: the next load completes the killed migrations, held connection kept"
else
	fail "upgrade: load after the killed migrations" "${out:-} held: ${MANY_END:-none}"
fi

# The previous release (the layout downgrade goes to in one step): back to it.
if [ "$previous" = 1 ]; then
	before=$(packets ts)
	if out=$(ts downgrade --to-layout "$old_layout" 2>&1) &&
		old=$(old_ts load "${E2E_OLD_DEV_ARGS[@]}" 2>&1) && old_ts status >/dev/null 2>&1 &&
		many_cmd "send-to $((NCONN + 1)) downgraded" 10 &&
		[ "${MANY_END#end 1 0}" != "$MANY_END" ]; then
		pass "downgrade: to layout $old_layout, release $RELEASE's load takes it, held" \
			"connection answered"
	else
		fail "downgrade: to layout $old_layout" "${out:-} ${old:-} held: ${MANY_END:-none}"
	fi
	counts_kept "downgrade" "$before" "$(packets old_ts)"
	# the release's own changes on what the downgrade left: a weight written
	# into a table made for it, a service whose new table goes into `tables`
	if out=$(old_ts weight tcp-echo v1=50 v2=50 2>&1 &&
		old_ts service add extra 198.18.100.9:8009 2>&1 &&
		old_ts backend add extra v1 198.18.3.9:9 --weight 1 2>&1 &&
		old_ts service del extra 2>&1); then
		pass "downgrade: release $RELEASE changes weights and adds a service after it"
	else
		fail "downgrade: release $RELEASE's changes after it" "$out"
	fi
fi
e2e_status
