#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `tcpshift agent --config etcd://...` against a hostile etcd: tests/e2e/fake_etcd.py
# on the gateway's loopback, answering what the agent asks with what a broken or
# malicious etcd, or any host on the plain-HTTP path, could send:
#
#   a 50 MB value; 50 MB answers to every range read; 2 MB of "{}," in an
#   answer; 100000 '[' as an answer and as the document; 1.5 MB of "{}," as the
#   document; 1 MB of random bytes; a 50 MB watch event; a range answer and a
#   watch message trickled a byte every 0.5 s; a watch that never answers.
#
# After each: the agent still runs, its peak resident memory (VmHWM) stays under
# 64 MiB, `tcpshift export` shows the last good document, the log has one line
# saying what was refused, and the metrics counted it (a document as rejected,
# an answer as an etcd error). While the watch trickles, the agent's health
# checks go on: v2's server killed, v2 goes down. Last, a good document applies.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init etcd-abuse
e2e_need jq curl python3

T=$E2E_TMP
KEY=/tcpshift/site
# ports of the gateway's own loopback, in a namespace of this test's
ETCD_PORT=$((20000 + $$ % 20000))
METRICS=127.0.0.1:$((ETCD_PORT + 1))
HWM_LIMIT_KB=$((64 << 10))
HWM_KILL_KB=$((512 << 10))	# past this the agent is stopped: the machine is shared

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0
must "health checks" ts health tcp-echo --check tcp --interval 200ms --timeout 100ms \
	--rise 1 --fall 1
# the good document: the configuration with weights 30/70
ts export | jq '.services[0].backends[0].weight = 30 | .services[0].backends[1].weight = 70' \
	>"$T/good.json" || e2e_abort "tcpshift export failed"
echo "good $((10))" >"$T/mode"

nsenter --net="/run/netns/$NS_GW" python3 "$E2E_ROOT/tests/e2e/fake_etcd.py" \
	--port "$ETCD_PORT" --mode-file "$T/mode" --doc-file "$T/good.json" --key "$KEY" \
	--lifetime 600 >>"$T/fake.log" 2>&1 &
e2e_track_pid $!
for ((i = 0; i < 50; i++)); do
	in_ns "$NS_GW" ss -Htln "sport = :$ETCD_PORT" | grep -q . && break
	sleep 0.1
done

nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent --metrics "$METRICS" \
	--config "etcd://127.0.0.1:$ETCD_PORT$KEY" 2>>"$T/agent.log" &
AGENT_PID=$!
e2e_track_pid "$AGENT_PID"

metric() {
	in_ns "$NS_GW" curl -sf --max-time 2 "http://$METRICS/metrics" 2>/dev/null |
		awk -v n="$1" '$1 == n { print $2 }'
}
hwm_kb() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$AGENT_PID/status" 2>/dev/null; }
weights() { ts export 2>/dev/null | jq -r '[.services[0].backends[].weight] | join(" ")'; }
field() {
	ts -j service list | jq -r --arg b "$1" \
		'.[] | select(.name == "tcp-echo") | .backends[] | select(.name == $b) | .'"$2"
}

for ((i = 0; i < 100; i++)); do
	[ "$(weights)" = "30 70" ] && break
	sleep 0.1
done
[ "$(weights)" = "30 70" ] ||
	e2e_abort "the good document is not applied: $(tail -n 3 "$T/agent.log")"
GOOD=$(ts export | jq -S .)
info "the good document applied; the agent's VmHWM: $(hwm_kb) KiB"

# watch_memory SECONDS: wait, sampling VmHWM every 0.1 s; stop the agent past
# HWM_KILL_KB (a failure anyway). Returns 1 when the agent is gone.
watch_memory() {
	local n=$(($1 * 10)) i h
	for ((i = 0; i < n; i++)); do
		h=$(hwm_kb)
		[ -n "$h" ] || return 1
		if [ "$h" -gt "$HWM_KILL_KB" ]; then
			kill "$AGENT_PID" 2>/dev/null
			info "the agent's VmHWM passed $h KiB: stopped"
			return 1
		fi
		sleep 0.1
	done
}

# scenario NAME MODE REVISION LOG-REGEX COUNTER WAIT_S: set the fake's mode, wait until
# the log has the refusal (at most WAIT_S s), watch 3 s more, then check.
scenario() {
	local name=$1 mode=$2 rev=$3 re=$4 counter=$5 wait_s=$6 c0 c1 lines h alive=1 i
	c0=$(metric "$counter")
	local from
	from=$(wc -l <"$T/agent.log")
	echo "$mode $rev" >"$T/mode"
	for ((i = 0; i < wait_s * 10; i += 10)); do
		tail -n +"$((from + 1))" "$T/agent.log" | grep -Eq "$re" && break
		watch_memory 1 || { alive=0; break; }
	done
	[ "$alive" = 1 ] && { watch_memory 3 || alive=0; }
	h=$(hwm_kb)
	c1=$(metric "$counter")
	lines=$(tail -n +"$((from + 1))" "$T/agent.log" | grep -Ec "$re")
	HWM_MAX=$((${h:-0} > HWM_MAX ? ${h:-0} : HWM_MAX))
	if [ "$alive" = 1 ] && kill -0 "$AGENT_PID" 2>/dev/null && [ "${h:-0}" -lt "$HWM_LIMIT_KB" ] &&
		[ "$(ts export | jq -S .)" = "$GOOD" ] && [ "$lines" -ge 1 ] && [ "$lines" -le 2 ] &&
		[ -n "$c0" ] && [ "${c1:-0}" -gt "$c0" ]; then
		pass "$name: refused, VmHWM $h KiB, last good document in force, $counter" \
			"$c0 -> $c1 ($(tail -n +"$((from + 1))" "$T/agent.log" | grep -E "$re" |
				head -n 1 | cut -d' ' -f4- | cut -c1-160))"
	else
		fail "$name: refused with the agent under 64 MiB, the last good document in force" \
			"alive $alive, VmHWM ${h:-?} KiB, $lines log lines, $counter $c0 -> $c1," \
			"weights '$(weights)'; $(tail -n 2 "$T/agent.log" | cut -c1-200 | tr '\n' ' ')"
	fi
	# the agent gone, nothing after this can pass: stop here
	[ "$alive" = 1 ] || e2e_abort "the agent is gone"
}

HWM_MAX=0
R=tcpshift_config_rejected_total E=tcpshift_config_etcd_errors_total
scenario "a 50 MB value" range_huge 11 \
	'revision 11 REJECTED: the document has more than 1572864 bytes' \
	$R 15
scenario "50 MB answers to every range read" range_huge_all 12 \
	'answer to a range read has more than 2162688 bytes: refused unread' \
	$E 15
scenario "2 MB of {}, in a range answer" range_flat 13 \
	'refused unparsed: line 1, column [0-9]+: more than 1024 arrays and objects' \
	$E 15
scenario "100000 '[' as a range answer" envelope_nested 14 \
	'refused unparsed: line 1, column 17: nested deeper than 16 levels' \
	$E 15
scenario "1 MB of random bytes" garbage 15 \
	'answer to the range request (is not JSON|is refused unparsed: line [0-9]+, column [0-9]+: )' \
	$E 15
scenario "100000 '[' as the document" doc_nested 16 \
	'revision 16 REJECTED: line 1, column 17: nested deeper than 16 levels' \
	$R 15
scenario "1.5 MB of {}, as the document" doc_flat 17 \
	'revision 17 REJECTED: line 1, column [0-9]+: more than 16384 arrays and objects' \
	$R 15
scenario "a 50 MB watch event" watch_huge 18 \
	'a watch message of more than 2162688 bytes: refused unread' \
	$E 15
scenario "a range answer trickled" range_trickle 19 \
	'a range read failed: Operation timed out after 10[0-9]{3} milliseconds' \
	$E 20
scenario "a watch that never answers" watch_silent 20 \
	'the watch was not set up within 10 s' $E 20

# The watch trickles; meanwhile v2's server goes away: the health checks notice.
[ "$(field v2 health)" = up ] || fail "health: v2 up before the trickle" "$(field v2 health)"
echo "watch_trickle 21" >"$T/mode"
sleep 2
kill "${E2E_SERVER_PIDS[v2]}"
wait "${E2E_SERVER_PIDS[v2]}" 2>/dev/null
t0=$(now_ms)
for ((i = 0; i < 50; i++)); do
	[ "$(field v2 health)" = down ] && break
	sleep 0.1
done
down_ms=$(($(now_ms) - t0))
if [ "$(field v2 health)" = down ]; then
	pass "health checks go on while the watch trickles: v2 down $down_ms ms after its server"
else
	fail "health checks go on while the watch trickles" "v2 $(field v2 health) after" \
		"$down_ms ms"
fi
scenario "a watch message trickled" watch_trickle 21 \
	'a watch message was not whole 10 s after it began \([0-9]+ bytes so far\): dropped' \
	$E 20

# Whatever came before, a good document applies.
jq '.services[0].backends[0].weight = 60 | .services[0].backends[1].weight = 40' \
	"$T/good.json" >"$T/good2.json"
mv "$T/good2.json" "$T/good.json"
echo "good 30" >"$T/mode"
for ((i = 0; i < 150; i++)); do
	[ "$(weights)" = "60 40" ] && break
	sleep 0.1
done
if [ "$(weights)" = "60 40" ] && grep -q "revision 30 applied" "$T/agent.log"; then
	pass "after all of it, a good document (revision 30) applies; peak VmHWM $(hwm_kb) KiB"
else
	fail "after all of it, a good document applies" "weights '$(weights)';" \
		"$(tail -n 2 "$T/agent.log" | tr '\n' ' ')"
fi
info "the agent's peak VmHWM over the test: $(hwm_kb) KiB (limit $HWM_LIMIT_KB KiB)"
[ -n "${E2E_KEEP_LOGS:-}" ] && cp "$T"/agent.log "$E2E_KEEP_LOGS"/
e2e_status
