#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The agent on an ordinary bad day, with the 1,024 descriptors systemd gives a
# service:
#  (a) 2,000 slow clients on the metrics endpoint, from ten addresses, each
#      sending a byte every 2 s: the agent stays up, keeps under its descriptor
#      limit, keeps checking health (v2's server killed meanwhile goes DOWN in
#      time), logs nothing per connection, and answers a normal scrape once the
#      clients are gone;
#  (b) backends it cannot reach are DOWN: an address with no route (IPv4 and
#      IPv6), a multicast address, the broadcast address (connect() fails at
#      once: that is a failed check, not a success);
#  (c) scrapes back to back for 20 s, each walking 400,000 pinned flows, while
#      checks are in flight (every other SYN to v1 is dropped, so each check
#      waits a second for its answer; timeout 2 s, a second of room for the
#      retransmission on two cores busy with the scrapes; fall 1): a scrape
#      never holds up a check, and an answer that came in time is never a
#      timeout (no false DOWN);
#  (d) a check in flight when its service's settings change: a timeout
#      raised gives it the time (its answer 2 s in counts, past the 1.5 s
#      it started with), a timeout lowered ends it at once, and the failure
#      names the timeout it was given;
#  (e) systemd's notify protocol: READY=1 once it serves, WATCHDOG=1 from the
#      event loop (none while the process is stopped), SIGHUP: RELOADING=1,
#      the configuration read again, READY=1; SIGTERM: STOPPING=1, exit 0.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init agent-abuse
e2e_need curl python3 iptables
E2E_LOAD_ARGS="--max-flows 1048576"
SYNCTEST=$E2E_ROOT/build/ts-synctest
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 50 50
SLOW=$(dirname "$0")/slow_clients.py

METRICS_PORT=$((20000 + $$ % 20000))
METRICS=127.0.0.1:$METRICS_PORT
LOG=$E2E_TMP/agent.log
: >"$LOG"

# the agent as systemd runs it: 1,024 descriptors
AGENT_PID=
agent_start() {
	nsenter --net="/run/netns/$NS_GW" bash -c 'ulimit -n 1024 && exec "$@"' agent \
		"$TCPSHIFT" --pin-dir "$E2E_PIN" agent --metrics "$METRICS" 2>>"$LOG" &
	AGENT_PID=$!
	e2e_track_pid "$AGENT_PID"
	for ((i = 0; i < 50; i++)); do
		in_ns "$NS_GW" curl -sf -o /dev/null --max-time 2 "http://$METRICS/metrics" &&
			return 0
		sleep 0.1
	done
	return 1
}
agent_start || e2e_abort "the agent serves no metrics ($(tail -n 3 "$LOG"))"

# health NAME: v1's or v2's health as `stats -j` shows it
health() {
	ts -j stats tcp-echo | jq -r --arg b "$1" '.services[0].backends[] | select(.name == $b) |
		.health // "?"'
}
# wait_health NAME STATE SECONDS: true when NAME is STATE within SECONDS
wait_health() {
	local i
	for ((i = 0; i < $3 * 10; i++)); do
		[ "$(health "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- (a) 2,000 slow clients ------------------------------------------------------
must "health checks" ts health tcp-echo --check tcp --interval 300ms --timeout 200ms \
	--rise 2 --fall 2
wait_health v2 up 5 || e2e_abort "v2 is not up before the flood: $(health v2)"
lines_before=$(wc -l <"$LOG")
in_ns "$NS_GW" bash -c 'ulimit -n 4096 && exec "$@"' slow python3 "$SLOW" 127.0.0.1 \
	"$METRICS_PORT" 2000 12 10 >"$E2E_TMP/slow.out" 2>&1 &
SLOW_PID=$!
e2e_track_pid "$SLOW_PID"
sleep 3
# during the flood: v2's server killed goes DOWN within fall x interval + 1 s
kill "${E2E_SERVER_PIDS[v2]}"
wait "${E2E_SERVER_PIDS[v2]}" 2>/dev/null
t0=$(date +%s%N)
if wait_health v2 down 4; then
	pass "slow clients: v2 killed during the flood is DOWN after" \
		"$((($(date +%s%N) - t0) / 1000000)) ms (limit 1600 ms + scheduling)"
else
	fail "slow clients: v2 killed during the flood goes DOWN" "health $(health v2)" \
		"($(tail -n 3 "$LOG" | tr '\n' ' '))"
fi
fds=0
for ((i = 0; i < 5; i++)); do
	n=$(ls /proc/"$AGENT_PID"/fd 2>/dev/null | wc -l)
	[ "$n" -gt "$fds" ] && fds=$n
	sleep 0.5
done
e2e_server "$NS_B2" v2 "$V2_4" "$V2_6"
wait "$SLOW_PID" 2>/dev/null
if kill -0 "$AGENT_PID" 2>/dev/null; then
	pass "slow clients: the agent is up after 2,000 slow connections" \
		"($(tr '\n' ' ' <"$E2E_TMP/slow.out"); at most $fds descriptors open)"
else
	fail "slow clients: the agent is up after 2,000 slow connections" \
		"it exited: $(tail -n 3 "$LOG" | tr '\n' ' ')"
fi
if [ "$fds" -gt 0 ] && [ "$fds" -lt 200 ]; then
	pass "slow clients: the agent held $fds descriptors (the endpoint takes at most 64)"
else
	fail "slow clients: the agent's descriptors stay bounded" "$fds open"
fi
if wait_health v2 up 4; then
	pass "slow clients: v2 restarted is UP again"
else
	fail "slow clients: v2 restarted is UP again" "health $(health v2)"
fi
other=$(tail -n +"$((lines_before + 1))" "$LOG" | grep -cv ': \(DOWN\|UP\) after ')
if [ "$other" -eq 0 ]; then
	pass "slow clients: nothing logged but the two health transitions"
else
	fail "slow clients: nothing logged per connection" "$other other lines:" \
		"$(tail -n +"$((lines_before + 1))" "$LOG" | head -n 3 | tr '\n' ' ')"
fi
ok=
for ((i = 0; i < 20; i++)); do
	if in_ns "$NS_GW" curl -sf --max-time 2 "http://$METRICS/metrics" |
		grep -q '^tcpshift_backend_weight{'; then
		ok=1
		break
	fi
	sleep 0.5
done
if [ -n "$ok" ]; then
	pass "slow clients: a normal scrape is answered once they are gone"
else
	fail "slow clients: a normal scrape is answered once they are gone"
fi

# ---- (b) backends the agent cannot reach -----------------------------------------
must "service unreach" ts service add unreach 198.18.100.9:8008
must "backend norute4" ts backend add unreach norute4 198.19.200.1:8008
must "backend mcast" ts backend add unreach mcast 224.0.0.1:8008
must "backend bcast" ts backend add unreach bcast 255.255.255.255:8008
must "service unreach6" ts service add unreach6 "[2001:2:100::9]:8008"
must "backend norute6" ts backend add unreach6 norute6 "[2001:2:ff::1]:8008"
must "backend mcast6" ts backend add unreach6 mcast6 "[ff02::1]:8008"
for s in unreach unreach6; do
	must "health $s" ts health "$s" --check tcp --interval 200ms --timeout 100ms --rise 1 \
		--fall 1
done
# health_of SERVICE NAME
health_of() {
	ts -j stats "$1" | jq -r --arg b "$2" '.services[0].backends[] | select(.name == $b) |
		.health // "?"'
}
for sb in "unreach norute4" "unreach mcast" "unreach bcast" "unreach6 norute6" \
	"unreach6 mcast6"; do
	read -r s b <<<"$sb"
	st=
	for ((i = 0; i < 30; i++)); do
		st=$(health_of "$s" "$b")
		[ "$st" = down ] && break
		sleep 0.1
	done
	if [ "$st" = down ]; then
		pass "unreachable: backend $b ($s) is DOWN"
	else
		fail "unreachable: backend $b ($s) is DOWN" "health '$st'" \
			"($(grep "backend $b" "$LOG" | tail -n 1))"
	fi
done
must "service del unreach" ts service del unreach
must "service del unreach6" ts service del unreach6

# ---- (c) scrapes walking a big flow table while checks are in flight --------------
NFLOWS=400000
out=$("$SYNCTEST" fill --pin-dir "$E2E_PIN" --service tcp-echo --n "$NFLOWS" 2>&1) ||
	e2e_abort "fill: $out"
t0=$(date +%s%N)
in_ns "$NS_GW" curl -sf -o /dev/null --max-time 30 "http://$METRICS/metrics" ||
	e2e_abort "no scrape with $NFLOWS flows"
scrape_ms=$((($(date +%s%N) - t0) / 1000000))
must "slow checks" ts health tcp-echo --check tcp --interval 3s --timeout 2000ms --rise 1 \
	--fall 1
# the drops only once the agent follows the change (within 100 ms and a read):
# a check of (a)'s 200 ms timeout would fail by it
sleep 1
must "drop every other SYN to v1" in_ns "$NS_B1" iptables -A INPUT -p tcp --syn --dport 8008 \
	-m statistic --mode nth --every 2 --packet 0 -j DROP
wait_health v1 up 5 || e2e_abort "v1 is not up before the scrapes: $(health v1)"
lines_before=$(wc -l <"$LOG")
scrapes=0
end=$((SECONDS + 20))
while [ "$SECONDS" -lt "$end" ]; do
	in_ns "$NS_GW" curl -s -o /dev/null --max-time 30 "http://$METRICS/metrics"
	scrapes=$((scrapes + 1))
done
drops=$(in_ns "$NS_B1" iptables -vnL INPUT | awk '/statistic/ {print $1}')
downs=$(tail -n +"$((lines_before + 1))" "$LOG" | grep -c 'backend v1: DOWN')
if [ "$downs" -eq 0 ] && [ "$(health v1)" = up ] && [ "${drops:-0}" -gt 3 ]; then
	pass "busy scrapes: $scrapes back-to-back scrapes of $NFLOWS flows ($scrape_ms ms each)" \
		"for 20 s, checks a second in flight ($drops SYNs dropped): no false DOWN"
else
	fail "busy scrapes: no false DOWN" "$downs DOWN lines, health $(health v1)," \
		"${drops:-0} SYNs dropped, scrape $scrape_ms ms:" \
		"$(grep 'backend v1' "$LOG" | tail -n 2 | tr '\n' ' ')"
fi
in_ns "$NS_B1" iptables -F INPUT

# ---- (d) a check in flight when its settings change ---------------------------------
# syn_drops: SYNs to v1 the DROP rule below took
syn_drops() {
	in_ns "$NS_B1" iptables -vnL INPUT | awk '/syn-drop/ {print $1; n = 1} END {if (!n) print 0}'
}
drop_syns() {
	in_ns "$NS_B1" iptables -A INPUT -p tcp --syn --dport 8008 -m comment --comment syn-drop \
		-j DROP
}
# wait_drops N: true when the rule took N SYNs within 8 s (a check is under way)
wait_drops() {
	local i
	for ((i = 0; i < 160; i++)); do
		[ "$(syn_drops)" -ge "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
v1_lines() { tail -n +"$((lines_before + 1))" "$LOG" | grep 'backend v1:'; }
must "checks every 6 s, timeout 1.5 s" ts health tcp-echo --check tcp --interval 6s \
	--timeout 1500ms --rise 1 --fall 1
wait_health v1 up 5 || e2e_abort "v1 is not up: $(health v1)"
lines_before=$(wc -l <"$LOG")
# A timeout raised while a check waits gives that check the time: its first
# two SYNs are dropped (the kernel sends them 1 s apart), the third, 2 s in,
# is answered: past the 1.5 s it started with, within the 5 s it was given.
drop_syns
wait_drops 1 || e2e_abort "no health check of v1 within 8 s"
must "timeout 5 s" ts health tcp-echo --check tcp --interval 6s --timeout 5000ms --rise 1 \
	--fall 1
wait_drops 2 || e2e_abort "the check of v1 sent no second SYN"
in_ns "$NS_B1" iptables -F INPUT
sleep 3.5
if [ -z "$(v1_lines)" ] && [ "$(health v1)" = up ]; then
	pass "settings: a check whose timeout was raised from 1.5 to 5 s while it waited is" \
		"given 5 s (its third SYN, 2 s in, was answered): no DOWN"
else
	fail "settings: a check whose timeout was raised while it waited" "health $(health v1):" \
		"$(v1_lines | tr '\n' ' ')"
fi
# ... and one lowered ends by the new timeout, which its failure names.
lines_before=$(wc -l <"$LOG")
drop_syns
wait_drops 1 || e2e_abort "no health check of v1 within 8 s"
must "timeout 300 ms" ts health tcp-echo --check tcp --interval 6s --timeout 300ms --rise 1 \
	--fall 1
wait_health v1 down 2
down=$(v1_lines | grep DOWN)
if grep -q "no answer within 300 ms" <<<"$down"; then
	pass "settings: a check whose timeout was lowered from 5 s to 300 ms while it waited" \
		"fails by the new one, at once: '${down#*: }'"
else
	fail "settings: a check whose timeout was lowered while it waited" \
		"within 2 s: '${down:-no DOWN}'"
fi
in_ns "$NS_B1" iptables -F INPUT

kill -TERM "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null

# ---- (e) readiness, watchdog, reload ------------------------------------------------
NOTIFY=$E2E_TMP/notify.sock
python3 "$(dirname "$0")/notify_listen.py" "$NOTIFY" 12 >"$E2E_TMP/notify.out" 2>&1 &
e2e_track_pid $!
for ((i = 0; i < 50; i++)); do [ -S "$NOTIFY" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$NOTIFY WATCHDOG_USEC=400000 nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" \
	--pin-dir "$E2E_PIN" agent --metrics "$METRICS" 2>>"$LOG" &
AGENT_PID=$!
e2e_track_pid "$AGENT_PID"
ready=
for ((i = 0; i < 100; i++)); do
	grep -q 'READY=1' "$E2E_TMP/notify.out" && { ready=1; break; }
	sleep 0.1
done
# the status page answers at once; /metrics would sum the 400,000 flows of (c)
if [ -n "$ready" ] && in_ns "$NS_GW" curl -sf -o /dev/null --max-time 5 "http://$METRICS/"
then
	pass "notify: READY=1 ($(grep -m1 READY "$E2E_TMP/notify.out" | cut -d' ' -f2-))," \
		"and the endpoint answers"
else
	fail "notify: READY=1 once the agent serves" "$(head -n 3 "$E2E_TMP/notify.out")"
fi
sleep 1
kill -STOP "$AGENT_PID"
sleep 1.2
kill -CONT "$AGENT_PID"
sleep 1
# the longest gap between pings (ms), and how many there were
gap=$(grep 'WATCHDOG=1' "$E2E_TMP/notify.out" | awk 'NR > 1 && $1 - p > g {g = $1 - p} {p = $1}
	END {print g + 0, NR}')
read -r longest pings <<<"$gap"
if [ "$pings" -ge 8 ] && [ "$longest" -ge 1000 ]; then
	pass "notify: WATCHDOG=1 every 200 ms from the loop ($pings pings), none while stopped" \
		"(longest gap $longest ms)"
else
	fail "notify: WATCHDOG=1 from the loop" "$pings pings, longest gap $longest ms"
fi
lines_before=$(wc -l <"$LOG")
kill -HUP "$AGENT_PID"
sleep 0.5
if tail -n +"$((lines_before + 1))" "$LOG" | grep -q 'SIGHUP: reading the configuration again' &&
	grep -q 'RELOADING=1' "$E2E_TMP/notify.out" &&
	[ "$(grep -c 'READY=1' "$E2E_TMP/notify.out")" -ge 2 ] && kill -0 "$AGENT_PID"; then
	pass "notify: SIGHUP reads the configuration again (RELOADING=1, READY=1), still running"
else
	fail "notify: SIGHUP reloads" "$(tail -n 2 "$LOG" | tr '\n' ' ') $(grep -v WATCHDOG \
		"$E2E_TMP/notify.out" | tr '\n' ' ')"
fi
kill -TERM "$AGENT_PID"
wait "$AGENT_PID"
rc=$?
sleep 0.2
if [ "$rc" -eq 0 ] && grep -q 'STOPPING=1' "$E2E_TMP/notify.out"; then
	pass "notify: SIGTERM: STOPPING=1, exit 0"
else
	fail "notify: SIGTERM: STOPPING=1, exit 0" "exit $rc"
fi
e2e_status
