#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Local clients balanced at connect() (load --cgroup), IPv4 and
# IPv6. Clients are processes of the gateway's own namespace in a test cgroup
# (tse2e-<pid> under the cgroup v2 mount, removed by the trap):
#   - 1000 connections to a 90/10 service split within 4 sigma, every one
#     counted exactly in the canary counters (attempts, handshakes, closed,
#     open back to 0);
#   - a held connection: getpeername is the VIP, `flows` lists it as local and
#     established, its backend answers it across 20 weight changes, and `flows`
#     drops it within a second of its close;
#   - weight 0 gets no new local connection; the tc program leaves the
#     connections' packets alone (no counter of the tc path moves);
#   - a process outside the cgroup, and one of the cgroup in another network
#     namespace, are not balanced at the socket;
#   - two sockets of one port to one VIP, on two backends (the kernel allows
#     it): the first keeps its entry in `flows` through the second's life;
#   - `load` again keeps local connections and their pins; a load without
#     --cgroup detaches the programs;
#   - a drain's deadline closes local connections (the agent's sweep, and the
#     sweep of the next change), a removal closes them at once, counted;
#   - bad input: not a cgroup v2 directory, a cgroup of another instance (or
#     below it): refused, nothing changed; unload leaves no program attached.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

N=1000

e2e_init local
e2e_need jq python3
CG_ROOT=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
[ -n "$CG_ROOT" ] || e2e_abort "no cgroup v2 hierarchy is mounted (see /proc/mounts)"
CG=$CG_ROOT/tse2e-$E2E_ID
CG_MADE=0
local_cleanup() {
	e2e_cleanup
	# its processes were killed by e2e_cleanup; a cgroup goes when empty
	[ "$CG_MADE" -eq 1 ] && rmdir "$CG/child" "$CG" 2>/dev/null
	return 0
}
trap local_cleanup EXIT
mkdir "$CG" || e2e_abort "cannot create the test cgroup $CG"
CG_MADE=1

e2e_topology
E2E_LOAD_ARGS="--cgroup $CG"
e2e_load
e2e_service tcp-echo "$VIP4" 90 10
e2e_service tcp-echo6 "$VIP6" 90 10

# in_cg CMD...: CMD in the gateway's namespace, in the test cgroup.
in_cg() {
	nsenter --net="/run/netns/$NS_GW" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
		"$CG" "$@"
}

# canary SERVICE BACKEND FIELD: a canary counter of `tcpshift -j stats`.
canary() {
	ts -j stats "$1" | jq -r --arg b "$2" '.services[0].backends[] | select(.name == $b) |
		.canary[$ARGS.positional[0]]' --args "$3"
}

# local_flow CLIENT: "backend state local" of the flow whose client is CLIENT.
local_flow() {
	ts -j flows | jq -r --arg c "$1" '.[] | select(.client == $c) |
		"\(.backend) \(.state) \(.local)"'
}

# ---- status ---------------------------------------------------------------------
st=$(ts -j status)
if [ "$(jq -r '.cgroup.path' <<<"$st")" = "$CG" ] &&
	[ "$(jq -r '.cgroup.attached' <<<"$st")" = true ]; then
	pass "status shows the cgroup, all programs attached"
else
	fail "status shows the cgroup" "$(jq -c .cgroup <<<"$st")"
fi

# ---- the split, and the canary counters, exactly --------------------------------
tc_before=$(ts -j status | jq -c '.counters | {new_flows, non_syn_miss, promoted}')
for fam in 4 6; do
	svc=tcp-echo vip=$VIP4
	[ "$fam" = 6 ] && svc=tcp-echo6 vip=$VIP6
	a1=$(canary "$svc" v1 attempts) a2=$(canary "$svc" v2 attempts)
	h1=$(canary "$svc" v1 handshakes) c1=$(canary "$svc" v1 closed)
	before=$(ts_counter local_connects)
	out=$(in_cg timeout 120 "$TS_ECHO" count --connect "$vip" --n "$N")
	v1=$(count_of "$out" v1) v2=$(count_of "$out" v2)
	if [ "$(count_total "$out")" -eq "$N" ] && [ $((v1 + v2)) -eq "$N" ] &&
		bound=$(within_sigmas "$v1" "$N" 0.9 4); then
		pass "IPv$fam: 90/10 split of $N local connections: v1 $v1, v2 $v2 ($bound)"
	else
		fail "IPv$fam: 90/10 split of $N local connections" \
			"$(tr '\n' ' ' <<<"$out") (${bound:-})"
	fi
	d_conn=$(($(ts_counter local_connects) - before))
	d_a1=$(($(canary "$svc" v1 attempts) - a1)) d_a2=$(($(canary "$svc" v2 attempts) - a2))
	d_h1=$(($(canary "$svc" v1 handshakes) - h1)) d_c1=$(($(canary "$svc" v1 closed) - c1))
	o1=$(canary "$svc" v1 open) o2=$(canary "$svc" v2 open)
	if [ "$d_conn" -eq "$N" ] && [ "$d_a1" -eq "$v1" ] && [ "$d_a2" -eq "$v2" ] &&
		[ "$d_h1" -eq "$v1" ] && [ "$d_c1" -eq "$v1" ] && [ "$o1" -eq 0 ] && [ "$o2" -eq 0 ]; then
		pass "IPv$fam: canary counters count every local connection exactly" \
			"(attempts $d_a1+$d_a2, handshakes and closed $d_h1, open 0)"
	else
		fail "IPv$fam: canary counters exact" "local_connects +$d_conn, attempts +$d_a1/+$d_a2," \
			"handshakes +$d_h1, closed +$d_c1 (want $v1), open $o1/$o2"
	fi
done
tc_after=$(ts -j status | jq -c '.counters | {new_flows, non_syn_miss, promoted}')
if [ "$tc_before" = "$tc_after" ] && [ "$(ts -j status | jq '.maps.flows.entries +
	.maps.half_open.entries')" -eq 0 ]; then
	pass "the tc program saw no local connection as a flow of its own ($tc_after)"
else
	fail "tc program leaves local connections alone" "$tc_before -> $tc_after"
fi

# ---- a held connection of each family ---------------------------------------------
coproc E2E_MANY { exec nsenter --net="/run/netns/$NS_GW" sh -c \
	'echo $$ >"$0/cgroup.procs" && exec "$@"' "$CG" "$TS_ECHO" holdmany --connect "$VIP4" \
	2>>"$E2E_TMP/holdmany.err"; }
e2e_track_pid "$E2E_MANY_PID"
many_read 10 || e2e_abort "holdmany did not start ($(tr '\n' ' ' <"$E2E_TMP/holdmany.err"))"
many_cmd "timeout 1000" >/dev/null
declare -A ORIG=() LOCAL=()
# open_conn I EP: open connection I to EP; its backend and local address
open_conn() {
	many_cmd "open $2" || return 1
	ORIG[$1]=$(many_field "$1" 2)
	many_cmd "peer $1" || return 1
	PEER=$(awk '{ print $4 }' <<<"${MANY_LINES[0]:-}")
	LOCAL[$1]=$(awk '{ print $5 }' <<<"${MANY_LINES[0]:-}")
}
for c in "1 $VIP4" "2 $VIP6"; do
	read -r i ep <<<"$c"
	open_conn "$i" "$ep" || e2e_abort "holdmany open $ep failed"
	if [ "$PEER" = "$ep" ]; then
		pass "getpeername of a local connection is the VIP ($PEER), backend ${ORIG[$i]}"
	else
		fail "getpeername is the VIP" "'$PEER' (local ${LOCAL[$i]}, backend ${ORIG[$i]})"
	fi
	f=$(local_flow "${LOCAL[$i]}")
	if [ "$f" = "${ORIG[$i]} established true" ]; then
		pass "flows lists ${LOCAL[$i]} -> $ep as local, established, on ${ORIG[$i]}"
	else
		fail "flows lists the local connection" "'$f' for ${LOCAL[$i]}"
	fi
done
bad=''
for ((k = 1; k <= 20; k++)); do
	w=$((k % 2 ? 0 : 100))
	must "weight change $k" ts weight tcp-echo v1=$w v2=$((100 - w))
	must "weight change $k (v6)" ts weight tcp-echo6 v1=$((100 - w)) v2=$w
	many_cmd "send w$k"
	for i in 1 2; do
		r=$(many_field "$i" 3)
		[ "$r" = "${ORIG[$i]}" ] || bad="$bad change $k conn $i: '$r';"
	done
done
if [ -z "$bad" ]; then
	pass "held local connections answered by their backends across 20 weight changes"
else
	fail "held local connections across weight changes" "$bad"
fi

# weight 0: no new local connection
must "weight 0/100" ts weight tcp-echo v1=0 v2=100
must "weight 0/100 (v6)" ts weight tcp-echo6 v1=0 v2=100
o4=$(in_cg "$TS_ECHO" count --connect "$VIP4" --n 50)
o6=$(in_cg "$TS_ECHO" count --connect "$VIP6" --n 50)
if [ "$(count_of "$o4" v2)" -eq 50 ] && [ "$(count_of "$o6" v2)" -eq 50 ]; then
	pass "a backend of weight 0 gets no new local connection (50 + 50 to v2)"
else
	fail "weight 0 gets no local connection" "$(tr '\n' ' ' <<<"$o4") / $(tr '\n' ' ' <<<"$o6")"
fi
# no backend of weight > 0: connect() fails at once, refused, counted
must "weight 0/0" ts weight tcp-echo v1=0 v2=0
nb=$(ts_counter no_backend)
t0=${EPOCHREALTIME/./}
o4=$(in_cg "$TS_ECHO" count --connect "$VIP4" --n 3 2>&1)
ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
if [ "$(count_of "$o4" error)" -eq 3 ] && grep -q "connect: Connection refused" <<<"$o4" &&
	[ "$(($(ts_counter no_backend) - nb))" -eq 3 ] && [ "$ms" -lt 1000 ]; then
	pass "no backend of weight > 0: local connect() refused at once (3 in $ms ms), counted"
else
	fail "no backend: connect refused" "$(tr '\n' ' ' <<<"$o4") in $ms ms," \
		"no_backend +$(($(ts_counter no_backend) - nb))"
fi
must "weight 0/100" ts weight tcp-echo v1=0 v2=100

# Two sockets of one port to one VIP: the kernel gives the port to both, their
# backends differ (A on v1, then B on v2). local_flows holds one entry per
# port and VIP: A's stays, listed and established, through B's whole life,
# and B counts as untracked; A is answered by v1 after B's close.
PAIR=$E2E_TMP/pair
must "weight 100/0" ts weight tcp-echo v1=100 v2=0
untracked=$(ts_counter local_untracked)
in_cg python3 - "${VIP4%:*}" "${VIP4##*:}" "$PAIR" <<'PY' >"$PAIR.out" 2>&1 &
import os, socket, sys, time
vip, port, pair = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def sock(p):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", p))
    s.settimeout(5)
    return s
def ask(s, what):
    s.sendall(what.encode() + b"\n")
    return s.makefile().readline().split()[0]
def wait(name):
    for _ in range(200):
        if os.path.exists(pair + "." + name):
            return
        time.sleep(0.05)
    sys.exit("no " + name)
a = sock(0)
a.connect((vip, port))
addr, p = a.getsockname()[:2]
open(pair + ".a", "w").write("%s:%d %s\n" % (addr, p, ask(a, "a")))
wait("go")
b = sock(p)
b.connect((vip, port))
open(pair + ".b", "w").write("%s:%d %s\n" % (b.getsockname()[0], b.getsockname()[1], ask(b, "b")))
b.close()
wait("end")
open(pair + ".c", "w").write(ask(a, "again") + "\n")
a.close()
PY
PAIR_PID=$!
e2e_track_pid "$PAIR_PID"
wait_file() { # wait_file PATH: true when PATH has a line within 10 s
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
wait_file "$PAIR.a" || e2e_abort "the first socket of the pair: $(cat "$PAIR.out")"
read -r pair_ep pair_a <"$PAIR.a"
must "weight 0/100" ts weight tcp-echo v1=0 v2=100
touch "$PAIR.go"
wait_file "$PAIR.b" || e2e_abort "the second socket of the pair: $(cat "$PAIR.out")"
read -r pair_ep_b pair_b <"$PAIR.b"
sleep 0.3	# (B's close: its state callbacks run)
listed=$(local_flow "$pair_ep")
touch "$PAIR.end"
wait_file "$PAIR.c" || e2e_abort "the first socket after the second: $(cat "$PAIR.out")"
pair_c=$(cat "$PAIR.c")
wait "$PAIR_PID"
if [ "$pair_ep" = "$pair_ep_b" ] && [ "$pair_a $pair_b $pair_c" = "v1 v2 v1" ] &&
	[ "$listed" = "v1 established true" ] &&
	[ "$(($(ts_counter local_untracked) - untracked))" -eq 1 ]; then
	pass "two local sockets of port ${pair_ep##*:} to one VIP (v1, then v2): the first" \
		"stays listed, established on v1, through the second's life and close; the second" \
		"counts as untracked"
else
	fail "two local sockets of one port to one VIP" "$pair_ep on $pair_a, $pair_ep_b on" \
		"$pair_b, then $pair_c; the first listed as '$listed'; local_untracked" \
		"+$(($(ts_counter local_untracked) - untracked))"
fi

# `load` again: the held connections, their pins and getpeername stay
e2e_load
many_cmd "send reload"
r1=$(many_field 1 3) r2=$(many_field 2 3)
many_cmd "peer 1"
p1=$(awk '{ print $4 }' <<<"${MANY_LINES[0]:-}")
if [ "$r1" = "${ORIG[1]}" ] && [ "$r2" = "${ORIG[2]}" ] && [ "$p1" = "$VIP4" ] &&
	[ "$(local_flow "${LOCAL[1]}")" = "${ORIG[1]} established true" ]; then
	pass "load again keeps local connections, their pins and getpeername"
else
	fail "load again keeps local pins" "replies '$r1' '$r2', peer '$p1'," \
		"flow '$(local_flow "${LOCAL[1]}")' of ${LOCAL[1]}; local flows:" \
		"$(ts -j flows 2>&1 | jq -c '[.[] | select(.local) | .client]' 2>&1 | head -c 600);" \
		"sockets: $(in_ns "$NS_GW" ss -tnH state all 2>&1 | grep -F -- "${LOCAL[1]} " |
			tr -s ' \n' ' ' | head -c 600)"
fi

# close: the flow goes within a second
many_cmd "close 2" >/dev/null
gone=''
for ((k = 0; k < 10; k++)); do
	[ -z "$(local_flow "${LOCAL[2]}")" ] && { gone=$((k * 100)); break; }
	sleep 0.1
done
if [ -n "$gone" ]; then
	pass "flows drops a local connection within a second of its close (${gone} ms)"
else
	fail "flows drops a closed local connection" "still '$(local_flow "${LOCAL[2]}")'"
fi

# ---- not balanced at the socket ---------------------------------------------------
before=$(ts_counter local_connects)
# outside the cgroup, on the gateway: nothing routes the VIP there
out=$(in_ns "$NS_GW" "$TS_ECHO" count --connect "$VIP4" --n 3 --timeout-ms 500 2>/dev/null)
# in the cgroup, in the client's namespace: balanced by tc, as any client
out_cl=$(nsenter --net="/run/netns/$NS_CL" sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' \
	"$CG" "$TS_ECHO" count --connect "$VIP4" --n 20 2>/dev/null)
if [ "$(count_of "$out" error)" -eq 3 ] && [ "$(count_of "$out_cl" v2)" -eq 20 ] &&
	[ "$(ts_counter local_connects)" -eq "$before" ]; then
	pass "not balanced at the socket: a process outside the cgroup (3 errors), one of" \
		"the cgroup in another namespace (20 through tc)"
else
	fail "outside the cgroup or namespace: not balanced at the socket" \
		"$(tr '\n' ' ' <<<"$out") / $(tr '\n' ' ' <<<"$out_cl"), local_connects" \
		"$before -> $(ts_counter local_connects)"
fi

# ---- drain deadline and removal -----------------------------------------------------
many_cmd "close 1" >/dev/null
must "weight 100/0" ts weight tcp-echo v1=100 v2=0
must "weight 100/0 (v6)" ts weight tcp-echo6 v1=100 v2=0
# 3: v4 on v1, closed by the sweep of the next change; 4: v6 on v1, by the agent's
open_conn 3 "$VIP4" && open_conn 4 "$VIP6" || e2e_abort "holdmany open failed"
[ "${ORIG[3]}" = v1 ] && [ "${ORIG[4]}" = v1 ] ||
	e2e_abort "connections 3 and 4 did not reach v1: ${ORIG[3]} ${ORIG[4]}"
drained=$(ts_counter local_drain_closed)
# without the agent: the first change after the deadline sweeps
must "drain v1" ts drain tcp-echo v1 --timeout 1s
many_cmd "send-to 3 before"
b3=$(many_field 3 3)
sleep 1.5
many_cmd status
s3_before=$(many_field 3 3)
must "a change after the deadline" ts weight tcp-echo6 v2=1
many_cmd status
s3=$(many_field 3 3)
# with the agent, which sweeps every second: closed within 1.5 s of it
"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" agent >>"$E2E_TMP/agent.log" 2>&1 &
e2e_track_pid "$!"
must "drain v1 (v6)" ts drain tcp-echo6 v1 --timeout 1s
many_cmd "send-to 4 before"
b4=$(many_field 4 3)
sleep 2.5
many_cmd status
s4=$(many_field 4 3)
d=$(($(ts_counter local_drain_closed) - drained))
info "connection 3 past its deadline, before the next change: $s3_before"
if [ "$b3 $b4" = "v1 v1" ] && [ "$s3" != open ] && [ "$s4" != open ] && [ "$d" -eq 2 ]; then
	pass "drain deadline closes local connections: answered before it, then closed" \
		"by the next change ($s3) and by the agent ($s4); local_drain_closed +$d"
else
	fail "drain deadline closes local connections" "before '$b3 $b4', after: change" \
		"'$s3', agent '$s4', local_drain_closed +$d"
fi

must "weight 50/50" ts weight tcp-echo v1=50 v2=50
must "weight 50/50 (v6)" ts weight tcp-echo6 v1=50 v2=50
ids=()
for ((k = 5; k <= 12; k++)); do
	ep=$VIP4
	[ $((k % 2)) -eq 0 ] && ep=$VIP6
	open_conn "$k" "$ep" || e2e_abort "holdmany open failed"
	[ "${ORIG[$k]}" = v2 ] && ids+=("$k")
done
removed=$(ts_counter local_removed_backend)
must "backend del v2" ts backend del tcp-echo v2
must "backend del v2 (v6)" ts backend del tcp-echo6 v2
many_cmd status
bad=''
for ((k = 5; k <= 12; k++)); do
	s=$(many_field "$k" 3)
	if [ "${ORIG[$k]}" = v2 ]; then
		[ "$s" = open ] && bad="$bad conn $k (v2) still open;"
	else
		[ "$s" = open ] || bad="$bad conn $k (${ORIG[$k]}) $s;"
	fi
done
d=$(($(ts_counter local_removed_backend) - removed))
if [ -z "$bad" ] && [ "$d" -eq "${#ids[@]}" ] && [ "${#ids[@]}" -gt 0 ]; then
	pass "removal closes its local connections at once (${#ids[@]} of 8 on v2)," \
		"the others stay; local_removed_backend +$d"
else
	fail "removal closes local connections" "$bad; ${#ids[@]} on v2, counted +$d"
fi
# 13: a connection that must outlive what follows (only v1 is left)
open_conn 13 "$VIP4" || e2e_abort "holdmany open failed"
open_now=$(canary tcp-echo v1 open)
flows_now=$(ts -j flows tcp-echo | jq '[.[] | select(.local)] | length')
if [ "$open_now" -eq "$flows_now" ]; then
	pass "open connections of v1 ($open_now) match its local flows"
else
	fail "open connections counted" "canary open $open_now, local flows $flows_now"
fi

# ---- bad input, and another instance's cgroup ------------------------------------------
PIN2=$E2E_PIN-other
must "veth for a second instance" ip -n "$NS_GW" link add tsx0 type veth peer name tsx1
for c in "/nonexistent-$E2E_ID 2" "/tmp 2" "$CG 1" "$CG/child 1"; do
	read -r path want <<<"$c"
	[ "$path" = "$CG/child" ] && mkdir "$CG/child"
	err=$("$TCPSHIFT" --pin-dir "$PIN2" -n "$NS_GW" load --dev tsx0 --cgroup "$path" 2>&1)
	rc=$?
	if [ "$rc" -eq "$want" ] && [ ! -e "$PIN2" ] && [ "$(wc -l <<<"$err")" -eq 1 ] &&
		[ -z "$(tc -n "$NS_GW" filter show dev tsx0 ingress 2>/dev/null)" ]; then
		pass "load --cgroup $path refused (exit $rc), nothing changed: ${err#tcpshift: }"
	else
		fail "load --cgroup $path refused" "exit $rc (want $want): $err"
		[ -e "$PIN2" ] && "$TCPSHIFT" --pin-dir "$PIN2" -n "$NS_GW" unload >/dev/null 2>&1
	fi
done
if [ "$(ts -j status | jq -r '.cgroup.attached')" = true ]; then
	pass "this instance's cgroup programs stay through the refusals"
else
	fail "cgroup programs stay" "$(ts -j status | jq -c .cgroup)"
fi

# a load without --cgroup detaches: not balanced any more, connections stay
E2E_LOAD_ARGS=''
e2e_load
before=$(ts_counter local_connects)
out=$(in_cg "$TS_ECHO" count --connect "$VIP4" --n 2 --timeout-ms 500 2>/dev/null)
many_cmd "send-to 13 after"
if [ "$(ts -j status | jq -r '.cgroup')" = null ] && [ "$(count_of "$out" error)" -eq 2 ] &&
	[ "$(ts_counter local_connects)" -eq "$before" ] && [ "$(many_field 13 3)" = v1 ]; then
	pass "load without --cgroup detaches the cgroup programs; a connection made before stays"
else
	fail "load without --cgroup detaches" "cgroup $(ts -j status | jq -c .cgroup)," \
		"$(tr '\n' ' ' <<<"$out"), conn 13 '$(many_field 13 3)'"
fi
many_cmd quit >/dev/null

# unload: no program left on the cgroup, nothing left in the pin directory
must "load --cgroup again" ts load "${E2E_DEV_ARGS[@]}" --cgroup "$CG"
progs=$(bpftool cgroup show "$CG" 2>&1 | grep -c tcpshift)
must "unload" ts unload
after=$(bpftool cgroup show "$CG" 2>&1 | grep -c tcpshift)
if [ "$progs" -eq 5 ] && [ "$after" -eq 0 ] && [ ! -e "$E2E_PIN" ]; then
	pass "unload detaches the 5 cgroup programs and removes their links' pins"
else
	fail "unload detaches the cgroup programs" "$progs before, $after after;" \
		"$(ls "$E2E_PIN" 2>&1 | tr '\n' ' ')"
fi

e2e_status
