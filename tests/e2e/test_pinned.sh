#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Invariant 2: one long-lived connection, opened at 100/0 (so on v1), is
# answered by v1 after each of 20 weight changes, including those that send
# every new connection to v2; `tcpshift -j flows` shows it pinned to v1.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

CHANGES=20

e2e_init pinned
e2e_need jq
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0

hold_open "$VIP4"
if ! hold_send "hello"; then
	fail "pinned: long-lived connection" "no reply to its first line" \
		"($(tr '\n' ' ' <"$E2E_TMP/hold.err"))"
	exit 1
fi
orig=${HOLD_REPLY%% *}
if [ "$HOLD_REPLY" != "v1 hello" ]; then
	fail "pinned: long-lived connection" \
		"opened at 100/0, answered '$HOLD_REPLY', want 'v1 hello'"
	exit 1
fi

# the weights of the 20 changes: fixed extremes first, then pseudo-random ones
weights=("0 100" "50 50" "100 0" "0 1" "65535 1" "1 65535" "0 65535" "10 90")
RANDOM=4242
while [ "${#weights[@]}" -lt "$CHANGES" ]; do
	w1=$((RANDOM % 101))
	w2=$((RANDOM % 101))
	[ $((w1 + w2)) -gt 0 ] && weights+=("$w1 $w2")
done

answered=0 silent=0 new_ok=0 new_checked=0 problems=()
for ((i = 1; i <= CHANGES; i++)); do
	read -r w1 w2 <<<"${weights[i - 1]}"
	if ! out=$(ts weight tcp-echo "v1=$w1" "v2=$w2" 2>&1); then
		problems+=("change $i: weight v1=$w1 v2=$w2 failed: $out")
		continue
	fi
	if [ "$silent" -ge 2 ]; then
		:	# the connection is gone: do not wait 3 s for each remaining change
	elif hold_send "line-$i" && [ "$HOLD_REPLY" = "$orig line-$i" ]; then
		answered=$((answered + 1))
		silent=0
	else
		[ -n "$HOLD_REPLY" ] || silent=$((silent + 1))
		problems+=("change $i (v1=$w1 v2=$w2): long-lived reply '${HOLD_REPLY:-none}'")
	fi
	# where one weight is 0, every new connection must go to the other
	if [ "$w1" -eq 0 ] || [ "$w2" -eq 0 ]; then
		want=v1
		[ "$w1" -eq 0 ] && want=v2
		new_checked=$((new_checked + 1))
		new=$(client_count "$VIP4" 5)
		if [ "$(count_of "$new" "$want")" -eq 5 ]; then
			new_ok=$((new_ok + 1))
		else
			problems+=("change $i (v1=$w1 v2=$w2): new connections $(echo "$new" |
				tr '\n' ' ')(want all $want)")
		fi
	fi
done
info "long-lived connection answered by $orig after $answered of $CHANGES weight changes;" \
	"new connections went to the only weighted backend at $new_ok of $new_checked changes"
if [ "$answered" -eq "$CHANGES" ] && [ "${#problems[@]}" -eq 0 ]; then
	pass "pinned: long-lived connection stays on $orig across $CHANGES weight changes"
else
	fail "pinned: long-lived connection stays on $orig across $CHANGES weight changes" \
		"${problems[*]:0:3}"
fi

# let the flow age a little, and use it once more, so that age_s and idle_s differ
sleep 2
hold_send "last" || info "no reply to the last line"

# the flow, as tcpshift shows it: find the long-lived connection's client port
client=$(in_ns "$NS_CL" ss -Htn state established "( dport = :8008 )" |
	grep -o '198\.18\.1\.2:[0-9]*' | head -n 1)
flows=$(ts -j flows 2>"$E2E_TMP/flows.err")
rc=$?
flow=$(jq -c --arg c "$client" '[.[] | select(.client == $c)] | .[0] // empty' \
	<<<"$flows" 2>/dev/null)
info "client $client: ${flow:-no flow}"
if [ "$rc" -ne 0 ]; then
	fail "pinned: flows -j shows the flow" "exit $rc: $(head -n 1 "$E2E_TMP/flows.err")"
elif [ -z "$client" ]; then
	fail "pinned: flows -j shows the flow" "the client has no established connection left"
elif ! jq -e 'type == "array"' <<<"$flows" >/dev/null 2>&1; then
	fail "pinned: flows -j shows the flow" "not a JSON array: $(head -c 200 <<<"$flows")"
elif [ -z "$flow" ]; then
	fail "pinned: flows -j shows the flow" "no flow with client $client in: $(head -c 300 \
		<<<"$flows")"
elif ! jq -e --arg b "$orig" --arg ba "$V1_4" --arg vip "$VIP4" '
	(has("client") and has("vip") and has("service") and has("backend") and
	 has("backend_addr") and has("age_s") and has("idle_s") and has("state")) and
	.vip == $vip and .service == "tcp-echo" and .backend == $b and
	.backend_addr == $ba and (.age_s | type == "number") and
	(.idle_s | type == "number") and .age_s >= 0 and .idle_s >= 0 and
	.age_s >= 1 and .idle_s <= .age_s and (.state | ascii_downcase | test("estab"))' \
	<<<"$flow" >/dev/null 2>&1; then
	fail "pinned: flows -j shows the flow" "want vip $VIP4, service tcp-echo, backend $orig" \
		"at $V1_4, numeric age_s >= 1 and >= idle_s, state established; got $flow"
else
	pass "pinned: flows -j shows the long-lived connection pinned to $orig"
fi

# --state filters: the batches' connections are closed, the held one is not
est=$(ts -j flows tcp-echo --state established | jq -r '.[].client' 2>/dev/null)
if [ "$est" = "$client" ]; then
	pass "pinned: flows --state established shows only the long-lived connection"
else
	fail "pinned: flows --state established" "want only $client, got: $(echo $est)"
fi

# Upgrade in place (`load` again, with weights pointing away from v1): the
# program is replaced, the pinned flow stays.
prog_before=$(ts -j status | jq '.devices[0].prog_id')
ts weight tcp-echo v1=0 v2=1 >/dev/null 2>&1
if ! out=$(ts load "${E2E_DEV_ARGS[@]}" 2>&1); then
	fail "pinned: load again (upgrade in place)" "$out"
else
	prog_after=$(ts -j status | jq '.devices[0].prog_id')
	if hold_send "after-upgrade" && [ "$HOLD_REPLY" = "$orig after-upgrade" ] &&
		[ "$prog_after" != "$prog_before" ]; then
		pass "pinned: long-lived connection stays on $orig across load again" 			"(program $prog_before -> $prog_after)"
	else
		fail "pinned: load again (upgrade in place)" "program $prog_before ->" 			"$prog_after, reply '${HOLD_REPLY:-none}', want '$orig after-upgrade'"
	fi
fi
e2e_status
