#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# tcpshift rollout: a progressive shift gated on the data plane's
# canary signals, with new connections arriving all along (a bounded
# background client) and a held connection on v1:
#  1. a healthy v2: 10/25/50/100 completes, every gate passes, it ends at
#     v1=0 v2=100, and the held connection is still answered by v1 — all under
#     a spray of spoofed SYNs that cannot reach a backend (TTL 1, a bad TCP
#     checksum), each sent again 1.1 s later as a client that timed out would:
#     they count no failure (before: v2 rolled back);
#  2. a v2 that refuses connections (its server killed), under the same spray:
#     the first gate fails, the weights go back to where they started in one
#     switch, exit 3, the held connection answered;
#  2b. a TO down by its health checks, drained past its deadline, or removed:
#     refused at once (exit 2, one line), nothing changed;
#  3. interrupted by SIGTERM: the weights of its step stay and `status` says
#     so; a second rollout of the service while one runs is refused, also
#     after the service's table changed size (its record moves with it);
#  4. bad input: clear errors, exit 2, nothing changed.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init rollout
e2e_need jq
e2e_topology
V2_PID=${E2E_PIDS[1]:-}
tr '\0' ' ' <"/proc/$V2_PID/cmdline" 2>/dev/null | grep -q -- '--name v2' ||
	e2e_abort "cannot tell v2's server pid"
e2e_load
e2e_service tcp-echo "$VIP4" 100 0

hold_open "$VIP4"
hold_send hello && [ "${HOLD_REPLY%% *}" = v1 ] || e2e_abort "the held connection: '$HOLD_REPLY'"

# traffic: new connections, five at a time, for at most 120 s
( for ((i = 0; i < 600; i++)); do
	nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" count --connect "$VIP4" --n 5 \
		--timeout-ms 500 >/dev/null 2>&1
	sleep 0.05
done ) &
TRAFFIC=$!
e2e_track_pid "$TRAFFIC"

# spray: an off-path attacker on the clients' side, for at most 100 rounds
# (about 120 s): per round, 50 SYNs to the VIP with TTL 1 and 50 with a bad
# TCP checksum from spoofed sources (routed back through the client's link,
# whose host drops the answers), then the same 100 again 1.1 s later
SPRAY_NET=198.19.0.0/16
must "route to the spoofed sources" ip -n "$NS_GW" route add "$SPRAY_NET" via 198.18.1.2
SPRAY_KINDS=(--ttl=1 --bad-checksum)
( for ((i = 0; i < 100; i++)); do
	for again in 0 1; do
		for k in 0 1; do	# (the same seed: the same segments again)
			timeout 10 nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" synflood \
				--to "$VIP4" --src-net "$SPRAY_NET" --n 50 --repeat 1 \
				--seed $((1000 + i * 2 + k)) "${SPRAY_KINDS[k]}" --max-seconds 5 \
				>/dev/null 2>&1
		done
		sleep 1.1
	done
done ) &
SPRAY=$!
e2e_track_pid "$SPRAY"

weights() { # weights: "v1=W v2=W" of tcp-echo
	ts -j service list | jq -r '.[] | select(.name == "tcp-echo") | .backends |
		map("\(.name)=\(.weight)") | join(" ")'
}

# ---- 1. healthy ----------------------------------------------------------------
ts -j rollout tcp-echo v1 v2 --steps 10,25,50,100 --interval 1s --min-connections 3 \
	>"$E2E_TMP/ok.json" 2>"$E2E_TMP/ok.err"
rc=$?
gates=$(jq -s '[.[] | select(.event == "gate" and .ok)] | length' "$E2E_TMP/ok.json")
if [ "$rc" -eq 0 ] && [ "$gates" -eq 4 ] && [ "$(weights)" = "v1=0 v2=100" ] &&
	jq -se '.[-1].event == "done"' "$E2E_TMP/ok.json" >/dev/null; then
	pass "rollout: 10/25/50/100 with a healthy v2: 4 gates passed, ends at $(weights)"
else
	fail "rollout: healthy v2" "exit $rc, $gates gates passed, weights $(weights):" \
		"$(tr '\n' ' ' <"$E2E_TMP/ok.json" | head -c 600) $(head -c 200 "$E2E_TMP/ok.err")"
fi
hold_send after-rollout && [ "${HOLD_REPLY%% *}" = v1 ] &&
	pass "rollout: the held connection is still answered by v1 (at weight 0)" ||
	fail "rollout: held connection after the rollout" "reply '$HOLD_REPLY'"

# ---- 2. v2 refuses connections ---------------------------------------------------
must "weights back to 100/0" ts weight tcp-echo v1=100 v2=0
kill "$V2_PID"
for ((i = 0; i < 50; i++)); do kill -0 "$V2_PID" 2>/dev/null || break; sleep 0.1; done
ts rollout tcp-echo v1 v2 --steps 10,25,50,100 --interval 1s --min-connections 3 \
	>"$E2E_TMP/bad.out" 2>"$E2E_TMP/bad.err"
rc=$?
if [ "$rc" -eq 3 ] && [ "$(weights)" = "v1=100 v2=0" ] &&
	grep -q '^gate 1/4: .*FAILED' "$E2E_TMP/bad.out" &&
	grep -q '^rolled back to v1=100 v2=0: v2 failed' "$E2E_TMP/bad.out"; then
	pass "rollout: v2 refusing connections: rolled back at the first gate, exit 3," \
		"weights $(weights) ($(grep '^gate' "$E2E_TMP/bad.out" | head -n 1))"
else
	fail "rollout: v2 refusing connections" "exit $rc, weights $(weights):" \
		"$(tr '\n' '|' <"$E2E_TMP/bad.out") $(head -c 200 "$E2E_TMP/bad.err")"
fi
hold_send after-rollback && [ "${HOLD_REPLY%% *}" = v1 ] &&
	pass "rollout: the held connection is answered by v1 after the rollback" ||
	fail "rollout: held connection after the rollback" "reply '$HOLD_REPLY'"

kill "$SPRAY" 2>/dev/null
wait "$SPRAY" 2>/dev/null
viable=$(ts_counter syn_not_viable)
[ "${viable:-0}" -gt 0 ] &&
	pass "rollout: the spray reached tcpshift and pinned nothing (syn_not_viable $viable)" ||
	fail "rollout: the spray reached tcpshift" "syn_not_viable '${viable:-}'"

# ---- 2b. a TO that cannot take connections is refused at once --------------------------
# (v2's server is still dead.) Each refusal: exit 2, one line, within a second (a
# rollout that started would hold its first step for the 5 s interval), weights and
# the rollout record untouched.
refused() { # refused WHAT PATTERN: a rollout to v2 refused at once
	local before t0 t1 out rc
	before=$(weights)
	t0=${EPOCHREALTIME/./}
	out=$(ts rollout tcp-echo v1 v2 --interval 5s 2>&1 >/dev/null)
	rc=$?
	t1=${EPOCHREALTIME/./}
	if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && [[ $out == "tcpshift: "$2 ]] &&
		[ $((t1 - t0)) -lt 1000000 ] && [ "$(weights)" = "$before" ] &&
		[ "$(ts -j status | jq '.rollouts | length')" = 0 ]; then
		pass "rollout: to $1: refused at once ($(((t1 - t0) / 1000)) ms, exit 2: $out)"
	else
		fail "rollout: to $1: refused at once" "exit $rc after $(((t1 - t0) / 1000)) ms," 			"weights $before -> $(weights): $out"
	fi
}
must "health checks of tcp-echo" ts health tcp-echo --check tcp --interval 200ms \
	--timeout 100ms --rise 1 --fall 1
nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent \
	2>>"$E2E_TMP/agent.log" &
AGENT=$!
e2e_track_pid "$AGENT"
for ((i = 0; i < 50; i++)); do
	[ "$(ts -j service list | jq -r '.[0].backends[] | select(.name == "v2") | .health')" = \
		down ] && break
	sleep 0.1
done
refused "a backend down by its health checks" "backend v2 of tcp-echo is down by its health*"
kill "$AGENT"
wait "$AGENT" 2>/dev/null
must "no health checks (v2 up again)" ts health tcp-echo --check none
must "v2 drained with a deadline of 1 s" ts drain tcp-echo v2 --timeout 1s
sleep 1.2
refused "a backend drained past its deadline" "backend v2 of tcp-echo was drained and its*"
# a weight ends the drain
must "v2 undrained" ts weight tcp-echo v2=1
must "v2 back at weight 0" ts weight tcp-echo v2=0
must "v2 removed" ts backend del tcp-echo v2
refused "a removed backend" "service tcp-echo has no backend 'v2'*"
must "v2 added again" ts backend add tcp-echo v2 "$V2_4" --weight 0

# ---- 3. interrupted, and one at a time ---------------------------------------------
"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" rollout tcp-echo v1 v2 --steps 10,100 \
	--interval 60s >"$E2E_TMP/int.out" 2>"$E2E_TMP/int.err" &
RPID=$!
e2e_track_pid "$RPID"
for ((i = 0; i < 50; i++)); do grep -q '^step 1/2' "$E2E_TMP/int.out" && break; sleep 0.1; done
# the service's table grows and shrinks (2 -> 3 -> 2 backends: M 251 -> 509 -> 251, each a
# table of its own): the rollout's record follows the service
size() { ts -j service list | jq '.[] | select(.name == "tcp-echo") | .table_size'; }
size0=$(size)
must "v3 added during the rollout" ts backend add tcp-echo v3 198.18.3.3:9 --weight 0
size1=$(size)
running=$(ts -j status | jq -r '.rollouts[0].state // "none"')
must "v3 removed during the rollout" ts backend del tcp-echo v3
if [ "$size0" != "$size1" ] && [ "$(size)" = "$size0" ] && [ "$running" = running ]; then
	pass "rollout: the service's table resized ($size0 -> $size1 -> $size0 slots) during" \
		"its rollout: status still shows it running"
else
	fail "rollout: resize during a rollout" "sizes $size0 $size1 $(size), state $running"
fi
out=$(ts rollout tcp-echo v1 v2 --interval 1s 2>&1 >/dev/null)
rc=$?
[ "$rc" -eq 1 ] && [[ $out == *"a rollout of tcp-echo is running (pid $RPID)"* ]] &&
	pass "rollout: a second rollout of the service is refused (exit 1: $out)" ||
	fail "rollout: a second rollout is refused" "exit $rc: $out"
running=$(ts -j status | jq -r '.rollouts[0].state // "none"')
kill -TERM "$RPID"
wait "$RPID" 2>/dev/null
st=$(ts -j status | jq -c '.rollouts')
if [ "$running" = running ] && [ "$(jq -r '.[0].state' <<<"$st")" = interrupted ] &&
	[ "$(jq -r '.[0].step' <<<"$st")" = 1 ] && [ "$(weights)" = "v1=90 v2=10" ]; then
	pass "rollout: SIGTERM leaves step 1's weights ($(weights)); status says interrupted"
else
	fail "rollout: interrupted" "status before '$running', after $st, weights $(weights)," \
		"stderr $(head -c 200 "$E2E_TMP/int.err")"
fi
ts status | grep -q '^rollout   tcp-echo: v1 -> v2, step 1 of 2 (10 % to v2) INTERRUPTED' &&
	pass "rollout: status (text) shows the interrupted rollout" ||
	fail "rollout: status (text)" "$(ts status | grep rollout)"

# ---- 4. bad input ---------------------------------------------------------------------
before=$(weights)
for args in "tcp-echo v1 v1" "tcp-echo v1 v9" "nosuch v1 v2" "tcp-echo v1 v2 --steps 50,10" \
	"tcp-echo v1 v2 --steps 10,,100" "tcp-echo v1 v2 --steps 0,100" \
	"tcp-echo v1 v2 --max-failures 101" "tcp-echo v1 v2 --interval 0s" "tcp-echo v1"; do
	# shellcheck disable=SC2086 # word-split on purpose
	out=$(ts rollout $args 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$out")" -eq 1 ] && [[ $out == "tcpshift: "* ]] &&
		[ "$(weights)" = "$before" ]; then
		pass "rollout: rejected '$args' (exit 2: $out)"
	else
		fail "rollout: rejected '$args'" "exit $rc: $out"
	fi
done
e2e_status
