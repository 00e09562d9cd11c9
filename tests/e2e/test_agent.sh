#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `tcpshift agent` (health checks, Prometheus metrics) and
# `tcpshift health`, IPv4. The agent runs in the gateway namespace with its
# metrics on 127.0.0.1 there; a real Prometheus (Debian's), a child of this
# script in the same namespace, scrapes it every second.
#  (c) Prometheus: a PromQL query for the new connections per backend equals
#      what the client opened.
#  (a) v2's server killed: within fall x interval + 1 s no new connection goes
#      to v2 and none fails; a held connection on v1 is untouched; v2
#      restarted: its weight is back within rise x interval + 1 s; `service
#      list` shows the operator's weights throughout (invariant 2, 3).
#  (b) the agent SIGKILLed and restarted during traffic: no flow moved, no
#      weight changed, no health transition (invariant 7); again with v2
#      down: the restarted agent resumes from "down", no flap.
# Also: a metrics address in use is refused with a clear error and exit 4; SIGTERM stops
# the agent cleanly.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

INTERVAL_MS=500
RISE=2
FALL=2
N=30		# connections counted by Prometheus

e2e_init agent
e2e_need jq curl prometheus
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0
e2e_service tcp-echo6 "$VIP6" 50 50	# IPv6 checks: v2 goes down here too
for s in tcp-echo tcp-echo6; do
	must "health checks of $s" ts health "$s" --check tcp --interval "${INTERVAL_MS}ms" \
		--timeout 300ms --rise "$RISE" --fall "$FALL"
done

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }
# a free port on the gateway's loopback (nothing else listens there)
free_port() {
	local p i
	for ((i = 0; i < 20; i++)); do
		p=$((20000 + RANDOM % 20000))
		in_ns "$NS_GW" ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return 0; }
	done
	return 1
}
METRICS_PORT=$(free_port) || e2e_abort "no free port"
PROM_PORT=$(free_port) || e2e_abort "no free port"
[ "$METRICS_PORT" != "$PROM_PORT" ] || PROM_PORT=$((METRICS_PORT + 1))
METRICS=127.0.0.1:$METRICS_PORT

AGENT_PID=
agent_start() {
	nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent \
		--metrics "$METRICS" "$@" 2>>"$E2E_TMP/agent.log" &
	AGENT_PID=$!
	e2e_track_pid "$AGENT_PID"
	local i
	for ((i = 0; i < 50; i++)); do
		in_ns "$NS_GW" curl -sf -o /dev/null "http://$METRICS/metrics" && return 0
		sleep 0.1
	done
	return 1
}
agent_start || e2e_abort "the agent serves no metrics ($(tail -n 3 "$E2E_TMP/agent.log"))"

# ---- a metrics address in use ---------------------------------------------------
err=$(timeout 10 nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent \
	--metrics "$METRICS" 2>&1 >/dev/null)
rc=$?
# exit 4, which the unit's Restart=on-failure tries again (2, a wrong option, it does not)
if [ "$rc" -eq 4 ] && grep -q "^tcpshift: .*in use" <<<"$err"; then
	pass "agent: a metrics address in use is refused with exit 4 ($err)"
else
	fail "agent: a metrics address in use is refused" "exit $rc: $err"
fi

# ---- Prometheus ------------------------------------------------------------------
mkdir -p "$E2E_TMP/prom" || e2e_abort "mkdir failed"
cat >"$E2E_TMP/prometheus.yml" <<EOC
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tcpshift
    static_configs:
      - targets: ['$METRICS']
EOC
nsenter --net="/run/netns/$NS_GW" prometheus --config.file="$E2E_TMP/prometheus.yml" \
	--storage.tsdb.path="$E2E_TMP/prom" --web.listen-address="127.0.0.1:$PROM_PORT" \
	>>"$E2E_TMP/prometheus.log" 2>&1 &
PROM_PID=$!
e2e_track_pid "$PROM_PID"

# promql QUERY: the result vector as "backend value" lines
promql() {
	in_ns "$NS_GW" curl -sf --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
		--data-urlencode "query=$1" 2>/dev/null |
		jq -r '.data.result[] | "\(.metric.backend) \(.value[1])"' 2>/dev/null | sort
}

# the client's connections, split 50/50
must "weights 50/50" ts weight tcp-echo v1=50 v2=50
opened=$(client_count "$VIP4" "$N")
info "client opened: $(tr '\n' ' ' <<<"$opened")"
want="v1 $(count_of "$opened" v1)
v2 $(count_of "$opened" v2)"
Q='sum by (backend) (tcpshift_backend_connection_attempts_total{service="tcp-echo"})'
got=
for ((i = 0; i < 60; i++)); do	# Prometheus starts, then scrapes every second
	got=$(promql "$Q")
	[ "$got" = "$want" ] && break
	sleep 0.5
done
if [ "$(count_total "$opened")" -eq "$N" ] && [ "$(count_of "$opened" error)" -eq 0 ] &&
	[ "$got" = "$want" ]; then
	pass "prometheus: PromQL connection attempts per backend = what the client opened" \
		"($(tr '\n' ' ' <<<"$got"))"
else
	fail "prometheus: PromQL connection attempts per backend = what the client opened" \
		"client: $(tr '\n' ' ' <<<"$opened"); prometheus: '$(tr '\n' ' ' <<<"$got")'" \
		"($(tail -n 2 "$E2E_TMP/prometheus.log" | tr '\n' ' '))"
fi
hs=$(promql 'sum by (backend) (tcpshift_backend_handshake_seconds_count{service="tcp-echo"})')
if [ "$hs" = "$want" ]; then
	pass "prometheus: the handshake histogram counts every handshake ($(tr '\n' ' ' <<<"$hs"))"
else
	fail "prometheus: the handshake histogram counts every handshake" "got '$hs', want '$want'"
fi

# ---- (a) v2's server killed, then restarted ---------------------------------------
must "weights 100/0" ts weight tcp-echo v1=100 v2=0
hold_open "$VIP4"
hold_send first && [ "$HOLD_REPLY" = "v1 first" ] ||
	e2e_abort "the held connection is not on v1: '$HOLD_REPLY'"
must "weights 50/50" ts weight tcp-echo v1=50 v2=50

# backend NAME's FIELD in service list, "?" when absent
field() {
	ts -j service list | jq -r --arg b "$1" --arg f "$2" --arg s "${3:-tcp-echo}" \
		'.[] | select(.name == $s) | .backends[] | select(.name == $b) |
		 .[$f] // "?"'
}
operator_ok=1
# wait_effective NAME WANT MAX_MS [SERVICE]: until NAME's effective weight (in
# SERVICE, default tcp-echo) is WANT; checks
# on the way that the operator's weights stay 50/50. Prints the ms it took.
wait_effective() {
	local t0 t i eff
	t0=$(now_ms)
	for ((i = 0; i < 100; i++)); do
		eff=$(field "$1" effective_weight "${4:-tcp-echo}")
		[ "$(field v1 weight)/$(field v2 weight)" = "50/50" ] || operator_ok=0
		t=$(now_ms)
		[ "$eff" = "$2" ] && { echo $((t - t0)); return 0; }
		[ $((t - t0)) -gt "$3" ] && { echo $((t - t0)); return 1; }
		sleep 0.1
	done
	return 1
}

[ "$(field v2 health)" = up ] && [ "$(field v2 effective_weight)" = 50 ] ||
	fail "health: v2 up before its server is killed" "$(ts -j service list)"
kill "${E2E_SERVER_PIDS[v2]}"
wait "${E2E_SERVER_PIDS[v2]}" 2>/dev/null
LIMIT_DOWN=$((FALL * INTERVAL_MS + 1000))
if ms=$(wait_effective v2 0 "$LIMIT_DOWN"); then
	pass "health: v2's server killed: effective weight 0 after $ms ms (limit $LIMIT_DOWN ms)"
else
	fail "health: v2's server killed: effective weight 0 within $LIMIT_DOWN ms" \
		"after $ms ms: $(ts -j service list)"
fi
[ "$(field v2 health)" = down ] || fail "health: service list shows v2 down" "$(field v2 health)"
st=$(ts -j stats tcp-echo | jq -r '.services[0].backends[] | select(.name == "v2") |
	"\(.health)/\(.effective_weight)"')
[ "$st" = down/0 ] && pass "health: stats shows v2 down, effective weight 0" ||
	fail "health: stats shows v2 down" "health/effective '$st'"
out=$(client_count "$VIP4" 20)
if [ "$(count_of "$out" v1)" -eq 20 ]; then
	pass "health: v2 down: 20 new connections all on v1, none failed"
else
	fail "health: v2 down: new connections all on v1, none failed" "$(tr '\n' ' ' <<<"$out")"
fi
if hold_send during && [ "$HOLD_REPLY" = "v1 during" ]; then
	pass "health: the held connection on v1 is untouched"
else
	fail "health: the held connection on v1 is untouched" "reply '$HOLD_REPLY'"
fi
# an operator's weight change while v2 is down keeps it at effective 0
must "weight v2=60 while down" ts weight tcp-echo v2=60
w=$(field v2 weight)/$(field v2 effective_weight)
must "weight v2=50" ts weight tcp-echo v2=50
if [ "$w" = "60/0" ]; then
	pass "health: a weight change while v2 is down: weight 60 shown, effective weight stays 0"
else
	fail "health: a weight change while v2 is down keeps effective weight 0" "weight/effective $w"
fi
wait_effective v2 0 "$LIMIT_DOWN" tcp-echo6 >/dev/null	# its checks run at other moments
v6=$(field v2 health tcp-echo6)/$(field v2 effective_weight tcp-echo6)
if [ "$v6" = down/0 ] && [ "$(client_count "$VIP6" 10 | awk '$1 == "v1" { print $2 }')" = 10 ]
then
	pass "health: IPv6 checks: v2 of tcp-echo6 down too, its new connections on v1"
else
	fail "health: IPv6 checks: v2 of tcp-echo6 down too" "health/effective $v6"
fi
grep -q "service tcp-echo backend v2: DOWN" "$E2E_TMP/agent.log" &&
	pass "agent: one log line for the transition ($(grep -m1 'v2: DOWN' "$E2E_TMP/agent.log"))" ||
	fail "agent: logs the transition" "$(cat "$E2E_TMP/agent.log")"

e2e_server "$NS_B2" v2 "$V2_4" "$V2_6"
LIMIT_UP=$((RISE * INTERVAL_MS + 1000))
if ms=$(wait_effective v2 50 "$LIMIT_UP"); then
	pass "health: v2 restarted: its weight 50 is back after $ms ms (limit $LIMIT_UP ms)"
else
	fail "health: v2 restarted: its weight is back within $LIMIT_UP ms" \
		"after $ms ms: $(ts -j service list)"
fi
out=$(client_count "$VIP4" 20)
if [ "$(count_of "$out" v2)" -gt 0 ] && [ "$(count_of "$out" error)" -eq 0 ]; then
	pass "health: v2 up again takes new connections ($(tr '\n' ' ' <<<"$out"))"
else
	fail "health: v2 up again takes new connections" "$(tr '\n' ' ' <<<"$out")"
fi
if [ "$operator_ok" -eq 1 ]; then
	pass "health: service list showed the operator's weights 50/50 throughout"
else
	fail "health: service list showed the operator's weights throughout" "they changed"
fi

# ---- (b) the agent SIGKILLed and restarted during traffic -------------------------
wait_effective v2 50 "$LIMIT_UP" tcp-echo6 >/dev/null ||
	fail "health: v2 of tcp-echo6 up again" "$(ts -j service list)"
sleep 1	# a few checks after the transitions
before=$(ts -j service list)
flows_before=$(ts -j flows tcp-echo | jq -c '[.[] | select(.state == "established") |
	{client, backend}] | sort')
client_count "$VIP4" 40 >"$E2E_TMP/during.out" &
traffic=$!
sleep 0.3
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
agent_start || fail "agent: restarts" "$(tail -n 3 "$E2E_TMP/agent.log")"
wait "$traffic"
sleep $(((FALL + RISE) * INTERVAL_MS / 1000 + 1))	# room for a flap to show
after=$(ts -j service list)
during=$(tr '\n' ' ' <"$E2E_TMP/during.out")
if [ "$before" = "$after" ]; then
	pass "agent: SIGKILL and restart: weights, effective weights and health unchanged"
else
	fail "agent: SIGKILL and restart: nothing changed" "before $before after $after"
fi
flows_after=$(ts -j flows tcp-echo | jq -c --argjson b "$flows_before" \
	'[.[] | select(.state == "established") | {client, backend}] | sort as $a |
	 [$b[] | select(. as $x | $a | index($x) | not)]')
if [ "$flows_after" = "[]" ] && hold_send after && [ "$HOLD_REPLY" = "v1 after" ] &&
	[ "$(count_of "$during" error)" -eq 0 ]; then
	pass "agent: SIGKILL and restart during traffic: no flow moved, none failed ($during)"
else
	fail "agent: SIGKILL and restart: no flow moved" "moved: $flows_after; held reply" \
		"'$HOLD_REPLY'; traffic: $during"
fi
if [ "$(grep -c 'service tcp-echo backend v2: \(DOWN\|UP\)' "$E2E_TMP/agent.log")" -eq 2 ]; then
	pass "agent: no health transition across the restart"
else
	fail "agent: no health flap across the restart" "$(grep 'backend' "$E2E_TMP/agent.log")"
fi

# ---- (b) again with v2 down: the restarted agent resumes from "down" -----------
kill "${E2E_SERVER_PIDS[v2]}"
wait "${E2E_SERVER_PIDS[v2]}" 2>/dev/null
# both services' v2 (their checks run at other moments)
for s in tcp-echo tcp-echo6; do
	wait_effective v2 0 "$LIMIT_DOWN" "$s" >/dev/null ||
		fail "health: v2 of $s down again" "$(ts -j service list)"
done
before=$(ts -j service list)
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
agent_start || fail "agent: restarts" "$(tail -n 3 "$E2E_TMP/agent.log")"
sleep $(((FALL + RISE) * INTERVAL_MS / 1000 + 1))
after=$(ts -j service list)
if [ "$before" = "$after" ] && [ "$(field v2 health)" = down ] &&
	[ "$(grep -c 'service tcp-echo backend v2: \(DOWN\|UP\)' "$E2E_TMP/agent.log")" -eq 3 ]; then
	pass "agent: SIGKILLed and restarted with v2 down: v2 stays down, since unchanged, no flap"
else
	fail "agent: restarted with v2 down resumes from down" "before $before after $after;" \
		"$(grep backend "$E2E_TMP/agent.log" | tr '\n' ' ')"
fi
out=$(client_count "$VIP4" 10)
[ "$(count_of "$out" v1)" -eq 10 ] ||
	fail "health: after the restart, new connections avoid the down v2" "$(tr '\n' ' ' <<<"$out")"

# ---- the checks in export/import, bad input ------------------------------------------
doc=$(ts export)
h=$(jq -c '.services[] | select(.name == "tcp-echo") | .health' <<<"$doc")
if [ "$h" = '{"check":"tcp","interval_ms":500,"timeout_ms":300,"rise":2,"fall":2}' ] &&
	must "health none" ts health tcp-echo --check none &&
	[ "$(ts export | jq -c '.services[0].health')" = null ] &&
	ts import - <<<"$doc" >/dev/null 2>&1 &&
	[ "$(ts export)" = "$doc" ]; then
	pass "health: export carries the checks, import restores them byte for byte"
else
	fail "health: export/import carry the checks" "exported $h"
fi
err=$(ts health nosuch --check tcp 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && grep -q "^tcpshift: unknown service 'nosuch'" <<<"$err"; then
	pass "health: on a service that does not exist: exit 2 ($err)"
else
	fail "health: on a service that does not exist: exit 2" "exit $rc: $err"
fi
err=$(ts health tcp-echo --check tcp --interval 1s --timeout 2s 2>&1)
rc=$?
if [ "$rc" -eq 2 ] && [ "$(ts export)" = "$doc" ]; then
	pass "health: a timeout longer than the interval: exit 2, nothing changed ($err)"
else
	fail "health: a timeout longer than the interval is refused" "exit $rc: $err"
fi

# ---- per-backend series bounded by the number of backends ---------------------------
# The instance has 4 backends (2 services of 2); an agent bounded at 2 serves
# the totals without per-backend series, and one service's on request.
# scrape QUERY: the body in $E2E_TMP/scrape, the HTTP status printed
scrape() {
	in_ns "$NS_GW" curl -s --max-time 5 -o "$E2E_TMP/scrape" -w '%{http_code}' \
		"http://$METRICS/metrics$1"
}
# series NAME: the samples of NAME (with labels) in the last scrape
series() { grep -c "^$1[{ ]" "$E2E_TMP/scrape"; }
sample() { awk -v n="$1" '$1 == n { print $2 }' "$E2E_TMP/scrape"; }
err=$(timeout 10 nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent \
	--metrics-max-backends 2 2>&1 >/dev/null)
rc=$?
if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "^tcpshift: .*--metrics" <<<"$err"
then
	pass "agent: --metrics-max-backends without --metrics: exit 2 ($err)"
else
	fail "agent: --metrics-max-backends without --metrics is a usage error" "exit $rc: $err"
fi
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
agent_start --metrics-max-backends 2 || fail "agent: starts bounded" "$(tail -n 3 "$E2E_TMP/agent.log")"
code=$(scrape "")
if [ "$code" = 200 ] && [ "$(series tcpshift_backend_weight)" -eq 0 ] &&
	[ "$(series tcpshift_backend_connection_attempts_total)" -eq 0 ] &&
	[ "$(sample tcpshift_services)" = 2 ] && [ "$(sample tcpshift_backends)" = 4 ] &&
	[ "$(sample tcpshift_metrics_backends_omitted)" = 4 ] &&
	[ "$(series tcpshift_events_total)" -gt 0 ]; then
	pass "metrics: 4 backends over --metrics-max-backends 2: totals, no per-backend series" \
		"($(wc -c <"$E2E_TMP/scrape") bytes)"
else
	fail "metrics: over the bound, no per-backend series" "HTTP $code," \
		"$(grep -E '^tcpshift_(services|backends|metrics_backends_omitted) ' "$E2E_TMP/scrape" |
		tr '\n' ' ')$(series tcpshift_backend_weight) weight series"
fi
code=$(scrape "?service=tcp-echo6")
if [ "$code" = 200 ] && [ "$(series tcpshift_backend_weight)" -eq 2 ] &&
	[ "$(grep -c '^tcpshift_backend_weight{service="tcp-echo6"' "$E2E_TMP/scrape")" -eq 2 ] &&
	[ "$(series tcpshift_service_table_size)" -eq 1 ] &&
	[ "$(sample tcpshift_metrics_backends_omitted)" = 2 ]; then
	pass "metrics: ?service=tcp-echo6 has that service's 2 backends' series alone"
else
	fail "metrics: ?service=NAME has that service's series" "HTTP $code:" \
		"$(grep '^tcpshift_backend_weight' "$E2E_TMP/scrape" | tr '\n' ' ')"
fi
code=$(scrape "?service=tcp-echo&service=tcp-echo6&service=tcp-echo")
if [ "$code" = 200 ] && [ "$(series tcpshift_backend_weight)" -eq 4 ] &&
	[ "$(sample tcpshift_metrics_backends_omitted)" = 0 ]; then
	pass "metrics: two services asked for (one twice): their 4 backends' series once each"
else
	fail "metrics: several services asked for" "HTTP $code, $(series tcpshift_backend_weight)"
fi
code=$(scrape "?service=nosuch")
if [ "$code" = 404 ] && grep -q "^tcpshift: no service nosuch" "$E2E_TMP/scrape"; then
	pass "metrics: ?service= of no service: 404, $(head -n 1 "$E2E_TMP/scrape")"
else
	fail "metrics: ?service= of no service is a 404" "HTTP $code: $(head -c 200 "$E2E_TMP/scrape")"
fi
q=$(printf 'service=tcp-echo&%.0s' {1..17})
code=$(scrape "?${q%&}")
code2=$(scrape "?service=")
if [ "$code" = 400 ] && [ "$code2" = 400 ]; then
	pass "metrics: 17 services asked for, or an empty name: 400"
else
	fail "metrics: too many or empty service names are a 400" "HTTP $code and $code2"
fi
kill -9 "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null
agent_start || fail "agent: starts again" "$(tail -n 3 "$E2E_TMP/agent.log")"

# ---- clean shutdown --------------------------------------------------------------
kill -TERM "$AGENT_PID"
rc=0
for ((i = 0; i < 50; i++)); do
	kill -0 "$AGENT_PID" 2>/dev/null || break
	sleep 0.1
done
wait "$AGENT_PID"
rc=$?
if [ "$rc" -eq 0 ] && tail -n 1 "$E2E_TMP/agent.log" | grep -q "stopped$"; then
	pass "agent: SIGTERM: exit 0, '$(tail -n 1 "$E2E_TMP/agent.log")'"
else
	fail "agent: SIGTERM stops it cleanly" "exit $rc; $(tail -n 2 "$E2E_TMP/agent.log")"
fi
kill "$PROM_PID"

# ---- the instance unloaded under a running agent: it stops, exit 1 ---------------
agent_start || fail "agent: starts again" "$(tail -n 3 "$E2E_TMP/agent.log")"
must "unload" ts unload
for ((i = 0; i < 50; i++)); do
	kill -0 "$AGENT_PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$AGENT_PID" 2>/dev/null && kill "$AGENT_PID"
wait "$AGENT_PID"
rc=$?
if [ "$rc" -eq 1 ] && tail -n 1 "$E2E_TMP/agent.log" | grep -q "stopped: the instance is gone"; then
	pass "agent: tcpshift unloaded under it: it stops, exit 1"
else
	fail "agent: stops when the instance is unloaded" "exit $rc; $(tail -n 2 "$E2E_TMP/agent.log")"
fi
e2e_status
