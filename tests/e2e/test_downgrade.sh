#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Downgrade in place to the previous release (05c97dc, layout 5), built from a
# worktree of this repository: an instance loaded by this build carries held
# connections and steady new ones; `downgrade --to-layout 5` converts its pins
# and the old build's `load` takes it over: every held connection is answered by
# its own backend, no new connection fails during the hand-over and they follow
# the weights, the configuration and counters are kept, the old build's
# `status` works. Then, upgraded again and with a SYN that can lead nowhere
# counted (syn_not_viable, which layout 5 has no place for): `downgrade`
# without --accept-loss exits 2 with one line naming it and changes nothing;
# killed after the 7 -> 6 commit point, it is run again to finish; with --accept-loss
# the old build takes over again, held connections kept.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

RELEASE=05c97dc
NCONN=40
NEW=600		# new connections during the hand-over, one after another

e2e_init downgrade
e2e_need jq
e2e_release "$RELEASE"
old_ts() {
	"$E2E_OLD_TS" --pin-dir "$E2E_PIN" -n "$NS_GW" "$@"
}

e2e_topology
e2e_senders_tx off	# xdp mode: the old build's XDP needs complete checksums
e2e_load
e2e_service tcp-echo "$VIP4" 30 70
export_before=$(ts export)
many_open "$VIP4" "$NCONN"
many_read 30
read -r _ greeted _ <<<"${MANY_END:-end 0 0}"
[ "$greeted" -eq "$NCONN" ] || e2e_abort "the $NCONN held connections: ${MANY_END:-no answer}"
new_flows_before=$(ts_counter new_flows)

# ---- 1. downgraded and taken over under traffic --------------------------------------
nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" count --connect "$VIP4" --n "$NEW" \
	>"$E2E_TMP/during" 2>>"$E2E_TMP/count.err" &
counter=$!
e2e_track_pid "$counter"
sleep 0.5
if out=$(ts downgrade --to-layout 5 2>&1) && old=$(old_ts load "${E2E_OLD_DEV_ARGS[@]}" 2>&1); then
	pass "downgrade: to layout 5, then load by release $RELEASE ($(tail -n 1 <<<"$out"))"
else
	fail "downgrade: to layout 5 and load by release $RELEASE" "$out ${old:-}"
fi
wait "$counter"
during=$(cat "$E2E_TMP/during")
info "new connections during the hand-over: $(echo $during)"
total=$(count_total "$during")
v1=$(count_of "$during" v1)
if [ "$(count_of "$during" error)" -eq 0 ] && [ "$total" -eq "$NEW" ]; then
	pass "downgrade: none of $NEW new connections failed during the hand-over"
else
	fail "downgrade: new connections during the hand-over" "$(echo $during)"
fi
if expect=$(within_sigmas "$v1" "$NEW" 0.3 4); then
	pass "downgrade: new connections split 30/70 ($v1 of $NEW on v1, $expect)"
else
	fail "downgrade: new connections split 30/70" "$v1 of $NEW on v1, $expect"
fi
many_check "downgrade: held connections across the hand-over" after-downgrade
status=$(old_ts -j status 2>&1)
# layout 5 tells every table's size, layout 7 only one given (each follows its
# backends unless given): the rest is the same
no_sizes() {
	jq -S 'del(.services[].table_size)'
}
if jq -e '.counters' <<<"$status" >/dev/null 2>&1 &&
	[ "$(old_ts export | no_sizes)" = "$(no_sizes <<<"$export_before")" ]
then
	pass "downgrade: release $RELEASE's status works, its export is the configuration before"
else
	fail "downgrade: the old build's status and export" "$(head -c 300 <<<"$status")"
fi
new_flows_after=$(jq '.counters.new_flows // 0' <<<"$status")
if [ "$new_flows_after" -ge $((new_flows_before + NEW)) ]; then
	pass "downgrade: counters kept (new_flows $new_flows_before -> $new_flows_after)"
else
	fail "downgrade: counters kept" "new_flows $new_flows_before before, $new_flows_after" \
		"after $NEW more"
fi
if [ ! -e "$E2E_PIN/direct_pending" ] && [ ! -e "$E2E_PIN/service_names" ] &&
	[ ! -e "$E2E_PIN/migrating" ]; then
	pass "downgrade: no pin of layouts 6 to 8 left, nothing staged"
else
	fail "downgrade: pins" "$(ls -a "$E2E_PIN" | tr '\n' ' ')"
fi

# ---- 2. a lossy downgrade ----------------------------------------------------------------
must "upgrade again" ts load "${E2E_DEV_ARGS[@]}"
# SYNs with a TTL of 1: counted as syn_not_viable, which layout 5 cannot hold
timeout 10 nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" synflood --to "$VIP4" \
	--src-net 198.18.1.0/24 --n 5 --repeat 1 --seed 7 --ttl=1 --max-seconds 5 >/dev/null 2>&1
viable=$(ts_counter syn_not_viable)
[ "${viable:-0}" -gt 0 ] || e2e_abort "no SYN counted as syn_not_viable ('${viable:-}')"
pins_before=$(stat -c '%n %i' "$E2E_PIN"/* | sort)
err=$(ts downgrade --to-layout 5 2>&1 >/dev/null)
rc=$?
want="tcpshift: a downgrade to layout 5 would lose the syn_not_viable counter ($viable SYNs)"
if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && [[ $err == "$want"* ]] &&
	[[ $err == *"--accept-loss"* ]] &&
	[ "$(stat -c '%n %i' "$E2E_PIN"/* | sort)" = "$pins_before" ] && ts status >/dev/null 2>&1
then
	pass "downgrade: a loss not accepted: exit 2, one line, every pin the same ($err)"
else
	fail "downgrade: a loss not accepted" "exit $rc: $err"
fi
# killed after the 7 -> 6 commit point (8 -> 7 done), its tables converted and its services
# not: run again, it finishes both steps
TCPSHIFT_TEST_KILL_AT=down-7-tables ts downgrade --to-layout 5 --accept-loss >/dev/null 2>&1
rc=$?
# (layout 6's step to 5 not done yet: its loss is told again)
out=$(ts downgrade --to-layout 5 --accept-loss 2>&1)
rc2=$?
if [ "$rc" -eq 137 ] && [ "$rc2" -eq 0 ] && [ ! -e "$E2E_PIN/direct_pending" ] &&
	[ ! -e "$E2E_PIN/service_names" ] &&
	old=$(old_ts load "${E2E_OLD_DEV_ARGS[@]}" 2>&1) && old_ts status >/dev/null 2>&1; then
	pass "downgrade: killed after its commit point, run again it finishes; release" \
		"$RELEASE loads it"
else
	fail "downgrade: killed after its commit point" "exit $rc then $rc2: $out ${old:-}"
fi
many_check "downgrade: held connections after a second hand-over" after-second
now=$(client_count "$VIP4" 20)
[ "$(count_of "$now" error)" -eq 0 ] &&
	pass "downgrade: new connections through release $RELEASE ($(echo $now))" ||
	fail "downgrade: new connections through release $RELEASE" "$(echo $now)"

# ---- 3. bad input ---------------------------------------------------------------------
for args in "" "--to-layout 4" "--to-layout 8" "--to-layout x" "--to-layout 5 extra"; do
	# shellcheck disable=SC2086 # word-split on purpose
	err=$(ts downgrade $args 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && [[ $err == "tcpshift: "* ]]; then
		pass "downgrade: rejected '$args' (exit 2: $err)"
	else
		fail "downgrade: rejected '$args'" "exit $rc: $err"
	fi
done
e2e_status
