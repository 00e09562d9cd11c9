#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `tcpshift agent --config etcd://HOST:PORT/KEY` with a real etcd
# (Debian's etcd-server) in a namespace of its own, reached by two gateways:
#
#   gateway A (the e2e topology: client, v1, v2)  etc 198.18.60.2 --+
#                                                                   +-- etcd 198.18.60.1
#   gateway B (tcpshift on a bare veth)           etc 198.18.60.6 --+         198.18.60.5
#
# Each gateway runs an agent watching /tcpshift/site, reporting to
# /tcpshift/status/{a,b}. Checked:
#  - bad URLs are refused before anything starts (exit 2, one line);
#  - agents started before etcd say so, change nothing, and catch up;
#  - a missing key changes nothing;
#  - both gateways switch within 1 s of each `etcdctl put` (measured), new
#    connections follow the weights, a held connection stays (invariant 2);
#  - hostile documents (not JSON, another instance's settings, a loopback VIP,
#    a weight out of range, 17 MiB, empty, binary) are refused with their
#    reason and counted; the document in force stays; a good one applies after;
#  - a deleted key changes nothing;
#  - etcd stopped: traffic and held connections go on, the agents retry;
#    started again: the next put reaches both;
#  - B cut off from etcd (its link down): a put and a compaction meanwhile;
#    B applies the latest document when the link is back;
#  - metrics (revision = etcd's mod revision, counters) and the status keys.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init etcd
e2e_need jq curl etcd etcdctl

NS_ET=$(gw_ns etcd)
NS_G2=$(gw_ns g2)
KEY=/tcpshift/site
METRICS=127.0.0.1:9470	# on each gateway's own loopback
T=$E2E_TMP

now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# ---- topology: gateway A, gateway B, etcd -----------------------------------------
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0
e2e_netns_add "$NS_G2"
must "g2 veth" ip -n "$NS_G2" link add g2a type veth peer name g2b
must "g2a up" ip -n "$NS_G2" link set g2a up
must "g2b up" ip -n "$NS_G2" link set g2b up
e2e_gw_load g2 --dev g2a --seed "$E2E_SEED"
e2e_netns_add "$NS_ET"
# etcd_link DEV NS NET: veth DEV (etcd side) to etc in NS, 198.18.60.NET/30.
etcd_link() {
	must "etcd link $1" ip -n "$NS_ET" link add "$1" type veth peer name etc netns "$2"
	must "etcd $1 address" ip -n "$NS_ET" addr add "198.18.60.$3/30" dev "$1"
	must "etcd $1 up" ip -n "$NS_ET" link set "$1" up
	must "etc address" ip -n "$2" addr add "198.18.60.$(($3 + 1))/30" dev etc
	must "etc up" ip -n "$2" link set etc up
}
etcd_link et1 "$NS_GW" 1
etcd_link et2 "$NS_G2" 5

ETCD_PID=
etcd_start() {
	nsenter --net="/run/netns/$NS_ET" etcd --name tse2e --data-dir "$T/etcd" \
		--listen-client-urls http://198.18.60.1:2379,http://198.18.60.5:2379,http://127.0.0.1:2379 \
		--advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 \
		--initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster tse2e=http://127.0.0.1:2380 \
		--max-request-bytes 33554432 --logger zap --log-level error >>"$T/etcd.log" 2>&1 &
	ETCD_PID=$!
	e2e_track_pid "$ETCD_PID"
	local i
	for ((i = 0; i < 100; i++)); do
		etcdctl_ endpoint health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
etcd_stop() {
	local i
	kill "$ETCD_PID" 2>/dev/null
	for ((i = 0; i < 50; i++)); do
		kill -0 "$ETCD_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$ETCD_PID" 2>/dev/null
}
etcdctl_() {
	ETCDCTL_API=3 timeout 20 nsenter --net="/run/netns/$NS_ET" etcdctl \
		--endpoints http://127.0.0.1:2379 "$@"
}
# put VALUE: the key's new value (through stdin: any bytes, any size); prints
# the revision that wrote it.
# @FILE: FILE's bytes, put through etcd's JSON gateway (etcdctl sends at most 2 MiB).
put() {
	if [ "${1:0:1}" = @ ]; then
		{ printf '{"key":"%s","value":"' "$(printf %s "$KEY" | base64 -w0)"
		  base64 -w0 <"${1:1}"; printf '"}'; } >"$T/put.json"
		in_ns "$NS_ET" curl -sf --max-time 30 -o /dev/null \
			http://127.0.0.1:2379/v3/kv/put --data-binary @"$T/put.json" || return 1
		rm -f "$T/put.json"
	else
		printf '%s' "$1" | etcdctl_ put "$KEY" >/dev/null || return 1
	fi
	etcdctl_ get "$KEY" -w json | jq -r '.kvs[0].mod_revision'
}

# ---- agents -------------------------------------------------------------------------
declare -A AGENT_PID AGENT_NS=([a]=$NS_GW [b]=$NS_G2) AGENT_PIN=([a]=$E2E_PIN [b]=$(gw_pin g2))
declare -A AGENT_EP=([a]=198.18.60.1 [b]=198.18.60.5)
agent_start() {
	nsenter --net="/run/netns/${AGENT_NS[$1]}" "$TCPSHIFT" --pin-dir "${AGENT_PIN[$1]}" agent \
		--metrics "$METRICS" --config "etcd://${AGENT_EP[$1]}:2379$KEY" \
		--status-key "/tcpshift/status/$1" 2>>"$T/agent-$1.log" &
	AGENT_PID[$1]=$!
	e2e_track_pid "${AGENT_PID[$1]}"
}
# metric AGENT NAME: a series' value from the agent's /metrics.
metric() {
	in_ns "${AGENT_NS[$1]}" curl -sf --max-time 2 "http://$METRICS/metrics" 2>/dev/null |
		awk -v n="$2" '$1 == n { print $2 }'
}
# weights GATEWAY: "W1 W2" of tcp-echo there (empty without the service).
weights() {
	"$TCPSHIFT" --pin-dir "${AGENT_PIN[$1]}" export 2>/dev/null |
		jq -r '.services[] | select(.name == "tcp-echo") | [.backends[].weight] | join(" ")'
}
# doc W1 W2: the document of tcp-echo with those weights.
doc() {
	jq -c --argjson a "$1" --argjson b "$2" \
		'.services[0].backends[0].weight = $a | .services[0].backends[1].weight = $b' \
		"$T/base.json"
}
# wait_weights GATEWAY "W1 W2" MAX_MS: until GATEWAY has those weights; prints the ms
# since T0 (global, ms) when it saw them, fails after MAX_MS.
wait_weights() {
	local g=$1 want=$2 max=$3 t
	while :; do
		t=$(now_ms)
		[ "$(weights "$g")" = "$want" ] && { echo $((t - T0)); return 0; }
		[ $((t - T0)) -gt "$max" ] && return 1
		sleep 0.01
	done
}
# wait_metric AGENT NAME VALUE MAX_S: until the metric has that value.
wait_metric() {
	local i
	for ((i = 0; i < $4 * 10; i++)); do
		[ "$(metric "$1" "$2")" = "$3" ] && return 0
		sleep 0.1
	done
	return 1
}

ts export >"$T/base.json" || e2e_abort "tcpshift export failed"
[ "$(weights a)" = "100 0" ] || e2e_abort "gateway A's weights are $(weights a)"

# ---- bad input ------------------------------------------------------------------------
for bad in 'http://198.18.60.1:2379/k' 'etcd://198.18.60.1:2379' 'etcd://198.18.60.1:99999/k' \
	'etcd://[2001:2::1/k' 'etcd://198.18.60.1:2379/k?x=1' 'etcd://a b/k'; do
	err=$(timeout 10 "$TCPSHIFT" --pin-dir "$E2E_PIN" agent --config "$bad" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && [[ $err == "tcpshift: "* ]]; then
		pass "bad URL $bad: exit 2 ($err)"
	else
		fail "bad URL $bad: exit 2 and one line" "exit $rc: $err"
	fi
done
err=$(timeout 10 "$TCPSHIFT" --pin-dir "$E2E_PIN" agent --config "etcd://h$KEY" \
	--status-key "$KEY" 2>&1 >/dev/null)
rc=$?
if [ "$rc" -eq 2 ] && grep -q 'is the configuration key' <<<"$err"; then
	pass "--status-key equal to the configuration key is refused ($err)"
else
	fail "--status-key equal to the configuration key is refused" "exit $rc: $err"
fi

# ---- agents before etcd -----------------------------------------------------------------
agent_start a
agent_start b
sleep 1.5
if [ "$(weights a)" = "100 0" ] && [ -z "$(weights b)" ] &&
	grep -q "198.18.60.1:2379.*stays in force; retrying" "$T/agent-a.log" &&
	kill -0 "${AGENT_PID[a]}" && [ "$(metric a tcpshift_config_up)" = 0 ]; then
	pass "etcd unreachable at start: the agent says so, retries, changes nothing" \
		"($(grep -m1 'retrying' "$T/agent-a.log" | cut -d' ' -f4-))"
else
	fail "etcd unreachable at start: the agent says so, retries, changes nothing" \
		"weights a '$(weights a)' b '$(weights b)'; log: $(tail -n 2 "$T/agent-a.log")"
fi

etcd_start || e2e_abort "etcd does not start ($(tail -n 3 "$T/etcd.log"))"
if wait_metric a tcpshift_config_up 1 8 && wait_metric b tcpshift_config_up 1 8 &&
	grep -q "$KEY is not in etcd" "$T/agent-a.log" && [ "$(weights a)" = "100 0" ] &&
	[ "$(etcdctl_ get /tcpshift/status/b --print-value-only | jq -r .state)" = missing ]; then
	pass "etcd up, the key missing: both agents watch it, nothing changes, status 'missing'"
else
	fail "etcd up, the key missing: nothing changes" \
		"up a=$(metric a tcpshift_config_up) b=$(metric b tcpshift_config_up)," \
		"weights '$(weights a)'; $(tail -n 2 "$T/agent-a.log")"
fi

# ---- convergence ------------------------------------------------------------------------
# round W1 W2: put, then the ms until each gateway has the weights, in RA and RB
# ("timeout" after 3 s), also appended to LAT; etcd's revision in REV.
# The times count from the start of `etcdctl put`, whose own run (a process
# start, a connection, the commit) is in PUTMS.
LAT=() PUTMS=()
round() {
	local want="$1 $2" value
	value=$(doc "$1" "$2")
	T0=$(now_ms)
	printf '%s' "$value" | etcdctl_ put "$KEY" >/dev/null || { RA=timeout RB=timeout; return 1; }
	PUTMS+=($(($(now_ms) - T0)))
	RA=$(wait_weights a "$want" 3000) || RA=timeout
	RB=$(wait_weights b "$want" 3000) || RB=timeout
	LAT+=("$RA" "$RB")
	REV=$(etcdctl_ get "$KEY" -w json | jq -r '.kvs[0].mod_revision')
}
round 100 0
info "first document: gateway A $RA ms, B $RB ms"
hold_open "$VIP4"
hold_send first && [ "$HOLD_REPLY" = "v1 first" ] ||
	e2e_abort "the held connection is not on v1: '$HOLD_REPLY'"
for w in "50 50" "20 80" "0 100" "70 30" "10 90" "0 100"; do
	round $w
	info "put weights $w (revision $REV): gateway A $RA ms, B $RB ms"
done
max=0 ok=1
for l in "${LAT[@]}"; do
	[ "$l" = timeout ] && { ok=0; continue; }
	[ "$l" -gt "$max" ] && max=$l
done
sorted=$(printf '%s\n' "${LAT[@]}" | sort -n | tr '\n' ' ')
if [ "$ok" -eq 1 ] && [ "$max" -lt 1000 ]; then
	pass "both gateways switch within 1 s of each put: ${#LAT[@]} switches, max $max ms" \
		"from the start of etcdctl put (all, ms: $sorted; etcdctl put itself, ms:" \
		"$(printf '%s\n' "${PUTMS[@]}" | sort -n | tr '\n' ' '))"
else
	fail "both gateways switch within 1 s of each put" "ms: $sorted"
fi
out=$(client_count "$VIP4" 20)
if [ "$(count_of "$out" v2)" -eq 20 ] && hold_send second && [ "$HOLD_REPLY" = "v1 second" ]; then
	pass "new connections follow the document (20/20 on v2), the held one stays on v1"
else
	fail "new connections follow the document, the held one stays" \
		"$(tr '\n' ' ' <<<"$out"); held: '$HOLD_REPLY'"
fi
mod=$(etcdctl_ get "$KEY" -w json | jq -r '.kvs[0].mod_revision')
st=$(etcdctl_ get /tcpshift/status/b --print-value-only)
if [ "$(metric a tcpshift_config_revision)" = "$mod" ] &&
	[ "$(metric b tcpshift_config_revision)" = "$mod" ] &&
	[ "$(jq -r '"\(.revision) \(.state)"' <<<"$st")" = "$mod applied" ]; then
	pass "metrics and status key: revision $mod in force on both ($st)"
else
	fail "metrics and status key: revision $mod in force" \
		"a=$(metric a tcpshift_config_revision) b=$(metric b tcpshift_config_revision); $st"
fi

# ---- hostile documents ------------------------------------------------------------------------
# hostile NAME VALUE REASON-REGEX: refused with that reason on both, counted, nothing changed.
hostile() {
	local name=$1 value=$2 why=$3 rej_a rej_b rev la lb wa wb
	wa=$(weights a) wb=$(weights b)
	rej_a=$(metric a tcpshift_config_rejected_total)
	rej_b=$(metric b tcpshift_config_rejected_total)
	rev=$(put "$value") || { fail "hostile document $name" "etcdctl failed"; return; }
	# counted when refused
	wait_metric a tcpshift_config_rejected_total $((rej_a + 1)) 20
	wait_metric b tcpshift_config_rejected_total $((rej_b + 1)) 20
	la=$(grep "revision $rev REJECTED" "$T/agent-a.log" | tail -n 1)
	lb=$(grep "revision $rev REJECTED" "$T/agent-b.log" | tail -n 1)
	if [ "$(metric a tcpshift_config_rejected_total)" = $((rej_a + 1)) ] &&
		[ "$(metric b tcpshift_config_rejected_total)" = $((rej_b + 1)) ] &&
		[ -n "$wa" ] && [ "$(weights a)" = "$wa" ] && [ "$(weights b)" = "$wb" ] &&
		grep -Eq "$why" <<<"$la" && grep -Eq "$why" <<<"$lb" &&
		[ "$(metric a tcpshift_config_revision)" = "$mod" ]; then
		pass "hostile document ($name): refused on both, counted, revision $mod stays" \
			"(${la#*REJECTED: })"
	else
		fail "hostile document ($name)" "rejected a=$(metric a tcpshift_config_rejected_total)" \
			"b=$(metric b tcpshift_config_rejected_total), weights '$(weights a)'" \
			"'$(weights b)', log a: ${la:-$(tail -n 1 "$T/agent-a.log")}"
	fi
}
hostile "not JSON" '{"tcpshift": 1, "seed": ' 'ends early|not valid JSON'
hostile "another instance's settings" \
	"$(jq -c '. + {"pin_dir": "/sys/fs/bpf/tcpshift", "devices": ["eth0"]}' <<<"$(doc 0 100)")" \
	'unknown key'
hostile "a loopback VIP" "$(doc 0 100 | jq -c '.services[0].vip = "127.0.0.1:8008"')" \
	'services\[0\]\.vip'
hostile "a weight out of range" "$(doc 70000 0)" 'services\[0\]\.backends\[0\]\.weight'
hostile "binary" "$(printf '\x01\x02\xff\xfe')" 'not valid JSON|UTF-8|JSON'
round 30 70
if [ "$RA" != timeout ] && [ "$RB" != timeout ] && [ "$RA" -lt 1000 ] && [ "$RB" -lt 1000 ]; then
	pass "a good document after the hostile ones applies: A $RA ms, B $RB ms"
else
	fail "a good document after the hostile ones applies" "A $RA, B $RB"
fi
mod=$(etcdctl_ get "$KEY" -w json | jq -r '.kvs[0].mod_revision')

# ---- the key deleted --------------------------------------------------------------------------
etcdctl_ del "$KEY" >/dev/null
sleep 1
if [ "$(weights a)" = "30 70" ] && [ "$(weights b)" = "30 70" ] &&
	grep -q "$KEY is not in etcd (deleted)" "$T/agent-b.log"; then
	pass "the key deleted: the configuration in force stays on both"
else
	fail "the key deleted: the configuration stays" "'$(weights a)' '$(weights b)'"
fi

# ---- etcd stopped and started again --------------------------------------------------------------
errs=$(metric a tcpshift_config_etcd_errors_total)
etcd_stop
sleep 2
out=$(client_count "$VIP4" 20)
if hold_send third && [ "$HOLD_REPLY" = "v1 third" ] && [ "$(count_total "$out")" -eq 20 ] &&
	[ "$(count_of "$out" error)" -eq 0 ] && [ "$(weights a)" = "30 70" ] &&
	kill -0 "${AGENT_PID[a]}" && kill -0 "${AGENT_PID[b]}" &&
	[ "$(metric a tcpshift_config_up)" = 0 ] &&
	[ "$(metric a tcpshift_config_etcd_errors_total)" -gt "$errs" ]; then
	pass "etcd stopped: held and new connections work, weights stay, agents retry" \
		"($(tr '\n' ' ' <<<"$out"); $(grep 'retrying' "$T/agent-a.log" | tail -n 1 |
			cut -d' ' -f4-))"
else
	fail "etcd stopped: nothing broken meanwhile" "held '$HOLD_REPLY'; $(tr '\n' ' ' <<<"$out");" \
		"up=$(metric a tcpshift_config_up)"
fi
T0=$(now_ms)
etcd_start || e2e_abort "etcd does not start again ($(tail -n 3 "$T/etcd.log"))"
info "etcd answers again after $(($(now_ms) - T0)) ms"
round 60 40
if [ "$RA" != timeout ] && [ "$RB" != timeout ]; then
	pass "etcd started again: a put reaches both gateways (A $RA ms, B $RB ms after the put)"
else
	fail "etcd started again: a put reaches both gateways" "A $RA, B $RB"
fi

# ---- gateway B cut off from etcd ---------------------------------------------------------------
must "cut B's link" ip -n "$NS_ET" link set et2 down
round 40 60
lost_b=$(weights b)
rev=$(put "$(doc 45 55)")
etcdctl_ compact "$rev" >/dev/null
# B notices the dead connection by its keepalive probes (about 6 s)
errs=$(metric b tcpshift_config_etcd_errors_total)
for ((i = 0; i < 150; i++)); do
	[ "$(metric b tcpshift_config_up)" = 0 ] && break
	sleep 0.1
done
info "B noticed the cut after $(($(now_ms) - T0)) ms: $(grep -E 'failed|timed out' \
	"$T/agent-b.log" | tail -n 1 | cut -d' ' -f4-)"
T0=$(now_ms)
must "B's link back" ip -n "$NS_ET" link set et2 up
tb=$(wait_weights b "45 55" 15000) || tb=timeout
ta=$(weights a)
if [ "$lost_b" = "60 40" ] && [ "$ta" = "45 55" ] && [ "$tb" != timeout ]; then
	pass "B cut off: puts and a compaction meanwhile; B applies the latest $tb ms after" \
		"its link is back (A had it at once)"
else
	fail "B cut off: B applies the latest when its link is back" \
		"B during the cut '$lost_b', A '$ta', B after: $tb"
fi

# ---- a document of 17 MiB ---------------------------------------------------------------
# A valid document padded with spaces, past the 1.5 MiB limit of a document in etcd
# (this etcd takes requests of 32 MiB): refused unread, with its revision. Last: etcd 3.4
# cannot replay a WAL entry this large, so it could not be restarted after it.
mod=$(etcdctl_ get "$KEY" -w json | jq -r '.kvs[0].mod_revision')
{ doc 0 100; head -c $((17 << 20)) /dev/zero | tr '\0' ' '; } >"$T/huge.json"
t0=$(now_ms)
hostile "17 MiB" "@$T/huge.json" 'more than 1572864 bytes'
info "the 17 MiB document took $(($(now_ms) - t0)) ms from put to refusal"
rm -f "$T/huge.json"
# ---- the agent stops cleanly -----------------------------------------------------------------------
kill -TERM "${AGENT_PID[a]}"
rc=
for ((i = 0; i < 30; i++)); do
	kill -0 "${AGENT_PID[a]}" 2>/dev/null || { wait "${AGENT_PID[a]}"; rc=$?; break; }
	sleep 0.1
done
if [ "$rc" = 0 ] && [ "$(weights a)" = "45 55" ] && hold_send last && [ "$HOLD_REPLY" = "v1 last" ]
then
	pass "SIGTERM: the agent exits 0 within $((i * 100)) ms; weights and flows stay"
else
	fail "SIGTERM: the agent exits 0" "rc '$rc' after $((i * 100)) ms; $(tail -n 2 "$T/agent-a.log")"
fi
[ -n "${E2E_KEEP_LOGS:-}" ] && cp "$T"/agent-*.log "$E2E_KEEP_LOGS"/
e2e_status
