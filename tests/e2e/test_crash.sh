#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade in place and crash safety (invariants 3 and 7). 20 held
# connections, spread over v1 and v2, survive `tcpshift load` run again and
# CLI commands killed with SIGKILL mid-way:
#
#  A. 30 commands (weight, backend add/del, drain, service add/del of a scratch
#     service, load), each killed by `kill -9` after a random 0-5 ms;
#  B. when strace is installed, deterministic kill points: each of 9 commands
#     is killed (strace injects SIGKILL) on entering each of its map writes
#     (bpf() update, delete, create, prog load) and netlink sends, one at a time.
#
# After every killed command:
#  1. `tcpshift -j service list` exits 0 and prints JSON;
#  2. the configuration it shows — every service's name, VIP, table size, and
#     its backends' names, addresses and weights — is exactly the one before
#     the command or exactly the one the command makes when it completes:
#     the scratch service is there with all its backends or not at all, and
#     tcp-echo's weights are all old or all new, never a mix;
#  3. `tcpshift -j stats`: every backend's share of its service's live table
#     is within 1/M of its weight share (table and weights are one half);
#  4. all 20 held connections are answered by the backend they started on;
#  5. backend s1 of the scratch service is v1's IPv6 server. When s1 is
#     configured, a new connection to the scratch VIP reaches it, and a
#     connection held through the scratch VIP since s1 was added is still
#     answered by it. When it is not (removed, or never committed), that held
#     connection is no longer answered by s1 (reset, or no answer), and a
#     direct connection to s1's address works: no leftover rewrites its
#     replies (invariant 5);
#  6. the programs are attached to both gateway interfaces.
# At the end, new connections to tcp-echo are answered by v1 or v2. Last, a
# drain deadline must not outlive a `weight` command that gave the backend
# weight again and was killed after its commit (B only).
#
# CRASH_SEED=N replays the same random commands and delays.
#
# In xdp mode (E2E_MODE=xdp) A kills 10 commands and B only `load`'s writes:
# the other commands write the same maps the same way in both modes; what
# the mode changes is load's (the XDP programs, their attachment).
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

HELD=20
KILLS=30
[ "$E2E_MODE" = xdp ] && KILLS=10
SCRATCH_VIP='[2001:2:100::2]:8008'
S1=$V1_6			# the scratch service's backend: v1's server, over IPv6
V3='198.18.2.13:8008'		# an extra backend of tcp-echo: no server there
SEED=${CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}

e2e_init crash
e2e_need jq
e2e_topology
# The direct probes to s1 and the connections through the scratch VIP leave
# from the same client address: a probe may take the port of an ended
# connection to the VIP, whose reverse entry is still in `replies`
# (doc/DESIGN.md, "Replies", 5).
e2e_load
e2e_service tcp-echo "$VIP4" 50 50
info "seed $SEED (CRASH_SEED=$SEED replays it)"
RANDOM=$SEED

many_open "$VIP4" "$HELD"
many_read 120 || e2e_abort "ts-echo holdmany did not open its connections ($(tr '\n' ' ' \
	<"$E2E_TMP/holdmany.err"))"
opened=$(printf '%s\n' "${MANY_LINES[@]}")
n1=$(awk '$3 == "v1"' <<<"$opened" | wc -l)
n2=$(awk '$3 == "v2"' <<<"$opened" | wc -l)
if [ $((n1 + n2)) -ne "$HELD" ] || [ "$n1" -eq 0 ] || [ "$n2" -eq 0 ]; then
	fail "crash: $HELD held connections at 50/50" "want all answered, on both backends:" \
		"$(tr '\n' ' ' <<<"$opened")"
	exit 1
fi
info "$HELD held connections: $n1 on v1, $n2 on v2"
many_cmd "timeout 700" || e2e_abort "ts-echo holdmany: no answer to timeout"

# ---- upgrade in place -----------------------------------------------------------

progs() {
	ts -j status 2>/dev/null | jq -r '[.devices[].prog_id] | map(tostring) | join(",")'
}
prog_before=$(progs)
if ! out=$(ts load "${E2E_DEV_ARGS[@]}" 2>&1); then
	fail "crash: load again (upgrade in place)" "$out"
else
	prog_after=$(progs)
	if many_cmd "send upgrade" && [ "$MANY_END" = "end $HELD 0" ] &&
		[ "$prog_after" != "$prog_before" ] && ! grep -qw 0 <<<"${prog_after//,/ }"; then
		pass "crash: $HELD held connections answered by their own backend after load again" \
			"(programs $prog_before -> $prog_after)"
	else
		fail "crash: load again (upgrade in place)" "programs $prog_before -> $prog_after," \
			"${MANY_END:-no answer}: $(printf '%s\n' "${MANY_LINES[@]}" | awk '$3 != $4' |
				head -n 3 | tr '\n' ' ')"
	fi
fi

# ---- the state, as the CLI shows it ----------------------------------------------

# The canonical form of a `service list -j` configuration (jq is slow to start:
# one run per observation). Without table_size: a size not given follows the
# backends, so the backends say it.
JQ_CANON='def canon: sort_by(.name) | map({name, vip, backends:
	((.backends // []) | map({name, addr, weight}) | sort_by(.name))}) | tojson;'

# observe: service list, stats and status, read in one jq run, into CFG (the
# canonical configuration), SHARES ("ok", or the backends whose share of the
# live table is not within 1/M of their weight share), HAS_V3, W_V3,
# HAS_SCRATCH, HAS_S1, W_V2 and PROGS (the program id on each device).
# Returns 1, with OBS_ERR, when a command fails or prints no JSON.
observe() {
	local list stats status line

	OBS_ERR=
	if ! list=$(ts -j service list 2>&1); then
		OBS_ERR="service list failed: $(head -c 200 <<<"$list")"
		return 1
	fi
	stats=$(ts -j stats 2>&1)
	status=$(ts -j status 2>&1)
	if ! line=$(jq -rn --argjson l "$list" --argjson st "$stats" --argjson ss "$status" \
		"$JQ_CANON"'
		def svc($s): [$l[] | select(.name == $s)][0];
		def be($s; $b): [(svc($s) // {backends: []}).backends[] | select(.name == $b)][0];
		($l | canon) as $cfg
		| [$st.services[] | .table_size as $m | ([.backends[].weight] | add // 0) as $t
		   | .backends[]
		   | select(((if $t > 0 then .weight / $t else 0 end) - .share)
			    | (if . < 0 then -. else . end) > 1 / $m + 1e-9)
		   | "\(.name) weight \(.weight) share \(.share)"]
		| (if length == 0 then "ok" else join(", ") end) as $shares
		| [$cfg, $shares, (be("tcp-echo"; "v3") != null), (be("tcp-echo"; "v3").weight // -1),
		   (svc("scratch") != null), (be("scratch"; "s1") != null),
		   (be("tcp-echo"; "v2").weight // -1),
		   ([$ss.devices[].prog_id | tostring] | join(","))]
		| map(tostring) | join("\t")' 2>&1); then
		OBS_ERR="not JSON: list $(head -c 100 <<<"$list"); stats $(head -c 100 \
			<<<"$stats"); status $(head -c 100 <<<"$status"); jq: $line"
		return 1
	fi
	IFS=$'\t' read -r CFG SHARES HAS_V3 W_V3 HAS_SCRATCH HAS_S1 W_V2 PROGS <<<"$line"
}

# expect_after CONFIG COMMAND...: the configuration COMMAND makes of CONFIG.
expect_after() {
	local cfg=$1

	shift
	case "$1 ${2:-}" in
	"weight "*)
		jq -rn --argjson c "$cfg" --arg s "$2" --args "$JQ_CANON"'
			reduce ($ARGS.positional[] | split("=")) as $a ($c;
				map(if .name == $s then .backends |= map(if .name == $a[0]
				then .weight = ($a[1] | tonumber) else . end) else . end)) | canon' "${@:3}"
		;;
	"drain "*)
		jq -rn --argjson c "$cfg" --arg s "$2" --arg b "$3" "$JQ_CANON"'$c |
			map(if .name == $s then .backends |= map(if .name == $b then .weight = 0
			else . end) else . end) | canon'
		;;
	"backend add")	# backend add SERVICE NAME ADDR --weight W
		jq -rn --argjson c "$cfg" --arg s "$3" --arg b "$4" --arg a "$5" --argjson w "$7" \
			"$JQ_CANON"'$c | map(if .name == $s then .backends += [{name: $b, addr: $a,
			weight: $w}] else . end) | canon'
		;;
	"backend del")
		jq -rn --argjson c "$cfg" --arg s "$3" --arg b "$4" "$JQ_CANON"'$c |
			map(if .name == $s then .backends |= map(select(.name != $b)) else . end)
			| canon'
		;;
	"service add")	# service add NAME VIP --table-size M
		jq -rn --argjson c "$cfg" --arg s "$3" --arg v "$4" --argjson m "$6" "$JQ_CANON"'
			$c + [{name: $s, vip: $v, table_size: $m, backends: []}] | canon'
		;;
	"service del")
		jq -rn --argjson c "$cfg" --arg s "$3" "$JQ_CANON"'$c |
			map(select(.name != $s)) | canon'
		;;
	*) printf '%s\n' "$cfg" ;;	# load
	esac
}

# ---- the checks after each command ------------------------------------------------

# (3 s: room for one SYN retransmission, 1 s after a SYN lost on a loaded
# machine, e.g. in a veth's XDP ring in xdp mode)
one_conn() { # one_conn ADDR:PORT: who answers one new connection
	in_ns "$NS_CL" "$TS_ECHO" count --connect "$1" --n 1 --timeout-ms 3000 \
		2>"$E2E_TMP/one_conn.err" |
		awk '$1 != "error" && $2 == 1 { print $1 }'
}

# direct_diag: what the report of an unanswered direct connection to s1 needs
direct_diag() {
	local err again links

	err=$(tr '\n' ' ' <"$E2E_TMP/one_conn.err")
	again=$(one_conn "$S1")
	links=$(in_ns "$NS_GW" ip -s -j link 2>/dev/null | jq -r '.[] | "\(.ifname) rx \(
		.stats64.rx.packets) dropped \(.stats64.rx.dropped)/\(.stats64.tx.dropped) xdp \(
		.xdp.prog.id // "-")"' 2>/dev/null | tr '\n' ' ')
	printf '[%s; a second connection: %s; v1 sockets to the client: %s; v1 PAWS %s/%s;' \
		"$err" "${again:-nobody}" \
		"$(in_ns "$NS_B1" ss -Htan dst "[2001:2:1::2]" 2>/dev/null |
			awk '{ print $1, $5 }' | tr '\n' ' ')" \
		"$(ns_snmp "$NS_B1" TcpExt PAWSActive)" "$(ns_snmp "$NS_B1" TcpExt PAWSEstab)"
	printf ' gateway devices: %s; flows to s1: %s]' "$links" \
		"$(ts flows 2>/dev/null | grep -c '2001:2:2::11')"
}

NCHECK=0
SCRATCH_CONN=	# holdmany's number of the held connection to the scratch VIP
STATE=		# pre, post, same (the command changes nothing) or bad
problems=()
problem() { problems+=("$*"); }

drop_scratch_conn() {
	[ -n "$SCRATCH_CONN" ] && many_cmd "close $SCRATCH_CONN" >/dev/null
	SCRATCH_CONN=
}

# check WHAT PRE POST: the checks 1-6 after a command; observe's variables
# describe the state after it.
check() {
	local what=$1 pre=$2 post=$3 who answers bad

	NCHECK=$((NCHECK + 1))
	STATE=bad
	if ! observe; then
		problem "$what: $OBS_ERR"
		CFG=$pre
		return 1
	fi
	if [ "$pre" = "$post" ] && [ "$CFG" = "$pre" ]; then
		STATE=same
	elif [ "$CFG" = "$pre" ]; then
		STATE=pre
	elif [ "$CFG" = "$post" ]; then
		STATE=post
	else
		problem "$what: the configuration is neither the old nor the new one: old $pre;" \
			"new $post; shown $CFG"
	fi
	[ "$SHARES" = ok ] || problem "$what: table shares do not match the weights: $SHARES"
	many_cmd "send c$NCHECK" 20
	answers=$(printf '%s\n' "${MANY_LINES[@]}")
	bad=$(awk -v h="$HELD" '$2 <= h && $3 != $4' <<<"$answers")
	if [ -z "$MANY_END" ] || [ "$(awk -v h="$HELD" '$2 <= h' <<<"$answers" | wc -l)" -ne "$HELD" ] ||
		[ -n "$bad" ]; then
		problem "$what: held connections: ${MANY_END:-no answer}:" \
			"$(head -n 3 <<<"$bad" | tr '\n' ' ')"
	fi
	# the held connection through the scratch VIP, pinned to s1
	if [ -n "$SCRATCH_CONN" ]; then
		who=$(awk -v i="$SCRATCH_CONN" '$2 == i { print $4 }' <<<"$answers")
		if [ "$HAS_S1" = true ] && [ "$who" != v1 ]; then
			problem "$what: s1 is configured, but the connection pinned to it was" \
				"answered '${who:-nothing}', want v1"
		elif [ "$HAS_S1" != true ] && [ "$who" = v1 ]; then
			problem "$what: s1 is not configured, yet the connection pinned to it is" \
				"still answered by it (want a reset, or no answer)"
		fi
		if [ "$HAS_S1" != true ] || [ "$who" != v1 ]; then
			drop_scratch_conn
		fi
	fi
	if [ "$HAS_S1" = true ] && [ -z "$SCRATCH_CONN" ] && many_cmd "open $SCRATCH_VIP" &&
		[ "$(awk '{ print $3 }' <<<"${MANY_LINES[0]:-}")" = v1 ]; then
		SCRATCH_CONN=$(awk '{ print $2 }' <<<"${MANY_LINES[0]}")
	fi
	if [ "$HAS_S1" = true ]; then
		who=$(one_conn "$SCRATCH_VIP")
		[ "$who" = v1 ] || problem "$what: s1 is configured, but a connection to" \
			"$SCRATCH_VIP was answered by '${who:-nobody}', want v1"
	else
		who=$(one_conn "$S1")
		[ "$who" = v1 ] || problem "$what: s1 is not configured, but a direct" \
			"connection to its address $S1 was answered by '${who:-nobody}', want v1" \
			"(are its replies still rewritten to the scratch VIP?) $(direct_diag)"
	fi
	if [ -z "$PROGS" ] || grep -qw 0 <<<"${PROGS//,/ }"; then
		problem "$what: programs attached: '$PROGS'"
	fi
	[ "$STATE" != bad ]
}

# show_problems: the first few, one a line, under the result
show_problems() {
	local p

	for p in "${problems[@]:0:6}"; do
		info "- ${p:0:1500}"
	done
	[ "${#problems[@]}" -gt 6 ] && info "- ... $((${#problems[@]} - 6)) more"
}

# ---- A: SIGKILL after a random delay --------------------------------------------

mkfifo "$E2E_TMP/never" || e2e_abort "mkfifo failed"
exec {NEVER}<>"$E2E_TMP/never"	# read -t on it: a sleep without a fork

# pick_command: a random command, valid in the state observe saw, in CMD
pick_command() {
	case $((RANDOM % 6)) in
	0 | 1) CMD=(weight tcp-echo "v1=$((RANDOM % 100 + 1))" "v2=$((RANDOM % 100 + 1))") ;;
	2)
		if [ "$HAS_V3" != true ]; then
			CMD=(backend add tcp-echo v3 "$V3" --weight "$((RANDOM % 5))")
		elif [ $((RANDOM % 2)) -eq 0 ] && [ "$W_V3" != 0 ]; then
			CMD=(drain tcp-echo v3 --timeout 1s)
		else
			CMD=(backend del tcp-echo v3)
		fi
		;;
	3 | 4)
		if [ "$HAS_SCRATCH" != true ]; then
			CMD=(service add scratch "$SCRATCH_VIP" --table-size 1021)
		elif [ "$HAS_S1" != true ]; then
			CMD=(backend add scratch s1 "$S1" --weight 1)
		elif [ $((RANDOM % 2)) -eq 0 ]; then
			CMD=(backend del scratch s1)
		else
			CMD=(service del scratch)
		fi
		;;
	5) CMD=(load "${E2E_DEV_ARGS[@]}") ;;
	esac
}

declare -A outcome=()
observe || e2e_abort "$OBS_ERR"
for ((k = 1; k <= KILLS; k++)); do
	pre=$CFG
	pick_command
	post=$(expect_after "$pre" "${CMD[@]}")
	delay=$((RANDOM % 5001))	# µs
	{
		"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "${CMD[@]}" >/dev/null \
			2>>"$E2E_TMP/killed.err" &
		pid=$!
		[ "$delay" -gt 0 ] && read -r -t "$(printf '0.%06d' "$delay")" -u "$NEVER"
		kill -9 "$pid"
		wait "$pid"
		rc=$?
	} 2>/dev/null
	check "A$k: ${CMD[*]} (killed after $delay µs, exit $rc)" "$pre" "$post"
	case "$rc/$STATE" in
	137/pre) outcome[before]=$((${outcome[before]:-0} + 1)) ;;
	137/post | 137/same) outcome[after]=$((${outcome[after]:-0} + 1)) ;;
	0/post | 0/same) outcome[completed]=$((${outcome[completed]:-0} + 1)) ;;
	*/bad) ;;
	*) problem "A$k: ${CMD[*]}: exit $rc with the configuration $STATE:" \
		"$(tail -n 1 "$E2E_TMP/killed.err")" ;;
	esac
done
info "A: $KILLS commands killed after 0-5 ms: ${outcome[before]:-0} before their commit," \
	"${outcome[after]:-0} after it (or during load), ${outcome[completed]:-0} completed" \
	"before the kill"
if [ "${#problems[@]}" -eq 0 ]; then
	pass "crash: $KILLS commands killed with SIGKILL at random: the configuration is the" \
		"old or the new one, the data plane agrees, $HELD held connections answered"
else
	fail "crash: $KILLS commands killed with SIGKILL at random" "${#problems[@]} problems"
	show_problems
fi
problems=()

# ---- B: SIGKILL at each write (strace) -----------------------------------------------

# write_points COMMAND...: run COMMAND to completion under strace; print its
# state-changing calls as "SYSCALL N" (the Nth call of SYSCALL).
write_points() {
	strace -qq -o "$E2E_TMP/trace" -e trace=bpf,sendto,sendmsg "$TCPSHIFT" \
		--pin-dir "$E2E_PIN" -n "$NS_GW" "$@" >/dev/null 2>>"$E2E_TMP/killed.err" ||
		return 1
	awk '/^bpf\(/ { b++; if ($0 ~ /BPF_MAP_(UPDATE|DELETE)_(ELEM|BATCH)|BPF_MAP_CREATE|BPF_OBJ_PIN|BPF_PROG_LOAD, \{prog_type=BPF_PROG_TYPE_SCHED_CLS|BPF_LINK_|BPF_PROG_ATTACH|BPF_MAP_FREEZE/) { match($0, /BPF_[A-Z_]+/); print "bpf", b, "write " ++w " (" substr($0, RSTART, RLENGTH) ")" } }
	     /^sendto\(/ { s++; print "sendto", s, "write " ++w " (netlink)" }
	     /^sendmsg\(/ { m++; print "sendmsg", m, "write " ++w " (netlink)" }' "$E2E_TMP/trace"
}

# kill_at SYSCALL N COMMAND...: run COMMAND, killed on entering its Nth SYSCALL
kill_at() {
	local sys=$1 n=$2

	shift 2
	{
		strace -qq -o /dev/null -e trace="$sys" -e inject="$sys:signal=KILL:when=$n" \
			"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "$@" >/dev/null \
			2>>"$E2E_TMP/killed.err"
	} 2>/dev/null
}

# ts_quiet ARGS...: a step between the kill points
ts_quiet() {
	[[ " $* " == *" scratch "* ]] && drop_scratch_conn	# s1 may be another backend now
	ts "$@" >/dev/null 2>>"$E2E_TMP/killed.err" || problem "setup: $* failed:" \
		"$(tail -n 1 "$E2E_TMP/killed.err")"
}

# run_undo: bring the configuration back to the one before the step's command.
run_undo() {
	local u

	[[ " ${UNDO[*]} " == *" scratch "* ]] && drop_scratch_conn

	for u in "${UNDO[@]}"; do
		# shellcheck disable=SC2086
		ts $u >/dev/null 2>>"$E2E_TMP/killed.err" || return 1
	done
}

NPOINTS=0
declare -A bout=()
# kill_points UNDO -- COMMAND...: COMMAND killed at each of its write points;
# UNDO, commands separated by ';', restores the configuration before it.
kill_points() {
	local undo=$1 pre post points sys n

	shift 2
	IFS=';' read -r -a UNDO <<<"$undo"
	observe || { problem "B: $*: $OBS_ERR"; return; }
	pre=$CFG
	post=$(expect_after "$pre" "$@")
	[[ " $* " == *" scratch "* ]] && drop_scratch_conn
	if ! points=$(write_points "$@") || [ -z "$points" ]; then
		problem "B: $*: did not run under strace: $(tail -n 1 "$E2E_TMP/killed.err")"
		return
	fi
	observe
	[ "$CFG" = "$post" ] || problem "B: $*: completed, but the configuration" \
		"is $CFG, not the expected $post"
	if [ "$pre" != "$post" ] && { ! run_undo || ! observe || [ "$CFG" != "$pre" ]; }; then
		problem "B: $*: undo ($undo) did not restore $pre"
		return
	fi
	while read -r sys n where; do
		NPOINTS=$((NPOINTS + 1))
		kill_at "$sys" "$n" "$@"
		check "B: $* (killed entering its $where, $sys call $n)" "$pre" "$post"
		bout[$STATE]=$((${bout[$STATE]:-0} + 1))
		if [ "$STATE" = post ] && ! run_undo; then
			problem "B: $*: undo failed: $(tail -n 1 "$E2E_TMP/killed.err")"
			return
		fi
		[ "$STATE" = bad ] && return
	done <<<"$points"
}

have_strace=0
command -v strace >/dev/null && have_strace=1
if [ "$have_strace" -eq 1 ]; then
	# a known start: v1=50 v2=50, no v3, scratch with s1
	observe
	[ "$HAS_V3" = true ] && ts_quiet backend del tcp-echo v3
	[ "$HAS_SCRATCH" = true ] || ts_quiet service add scratch "$SCRATCH_VIP" --table-size 1021
	[ "$HAS_S1" = true ] || ts_quiet backend add scratch s1 "$S1" --weight 1
	ts_quiet weight tcp-echo v1=50 v2=50

	if [ "$E2E_MODE" != xdp ]; then
		kill_points "weight tcp-echo v1=50 v2=50" -- weight tcp-echo v1=30 v2=70
		kill_points "backend del tcp-echo v3" -- backend add tcp-echo v3 "$V3" --weight 5
		ts_quiet backend add tcp-echo v3 "$V3" --weight 5
		kill_points "weight tcp-echo v3=5" -- drain tcp-echo v3 --timeout 1s
		kill_points "backend add tcp-echo v3 $V3 --weight 5" -- backend del tcp-echo v3
		ts_quiet backend del tcp-echo v3
		kill_points "backend add scratch s1 $S1 --weight 1" -- backend del scratch s1
		ts_quiet backend del scratch s1
		kill_points "backend del scratch s1" -- backend add scratch s1 "$S1" --weight 1
		ts_quiet backend add scratch s1 "$S1" --weight 1
		kill_points "service add scratch $SCRATCH_VIP --table-size 1021;backend add scratch s1 $S1 --weight 1" \
			-- service del scratch
		ts_quiet service del scratch
		kill_points "service del scratch" -- service add scratch "$SCRATCH_VIP" --table-size 1021
	fi
	kill_points "" -- load "${E2E_DEV_ARGS[@]}"
	NCMDS="9 commands"
	[ "$E2E_MODE" = xdp ] && NCMDS=load
	info "B: $NPOINTS kill points: ${bout[pre]:-0} left the old configuration," \
		"${bout[post]:-0} the new one, ${bout[same]:-0} (load) the same"
	if [ "${#problems[@]}" -eq 0 ] && [ "$NPOINTS" -gt 0 ]; then
		pass "crash: SIGKILL at each of $NPOINTS map writes and netlink sends of $NCMDS:" \
			"old or new configuration, data plane consistent, held connections answered"
	else
		fail "crash: SIGKILL at each map write and netlink send of $NCMDS" \
			"${#problems[@]} problems"
		show_problems
	fi
	problems=()
else
	info "strace is not installed: the deterministic kill points (B) are skipped"
fi

# ---- the end -------------------------------------------------------------------------

many_cmd "send final" 20
answers=$(printf '%s\n' "${MANY_LINES[@]}" | awk -v h="$HELD" '$2 <= h')
own=$(awk '$3 == $4' <<<"$answers" | wc -l)
if [ "$own" -eq "$HELD" ]; then
	pass "crash: all $HELD held connections answered by their original backend at the end" \
		"($n1 on v1, $n2 on v2; $NCHECK killed commands)"
else
	fail "crash: all $HELD held connections answered by their original backend at the end" \
		"$own of $HELD; e.g. $(awk '$3 != $4' <<<"$answers" | head -n 3 | tr '\n' ' ')"
fi

observe
[ "$HAS_V3" = true ] && ts_quiet backend del tcp-echo v3
ts_quiet weight tcp-echo v1=50 v2=50
new=$(client_count "$VIP4" 20)
if [ $(($(count_of "$new" v1) + $(count_of "$new" v2))) -eq 20 ]; then
	pass "crash: new connections after the kills answered (v1 $(count_of "$new" v1)," \
		"v2 $(count_of "$new" v2) of 20 at 50/50)"
else
	fail "crash: new connections after the kills" "got $(echo "$new" | tr '\n' ' ')"
fi

# A drain deadline ends with the drain: `weight` giving v2 weight again,
# killed at any point, leaves either the drain (weight 0, deadline: then it is
# redone completely before the deadline) or v2 at weight 50 and no deadline,
# so v2's held connections are still answered after the deadline has passed.
if [ "$have_strace" -eq 1 ]; then
	problems=()
	ts_quiet drain tcp-echo v2 --timeout 2s
	points=$(write_points weight tcp-echo v1=50 v2=50)
	while read -r sys n where; do
		ts_quiet drain tcp-echo v2 --timeout 2s
		t_drain=${EPOCHREALTIME/./}
		kill_at "$sys" "$n" weight tcp-echo v1=50 v2=50
		observe
		[ "$W_V2" = 0 ] && ts_quiet weight tcp-echo v1=50 v2=50 # killed before its commit
		while [ $((${EPOCHREALTIME/./} - t_drain)) -lt 2600000 ]; do
			read -r -t 0.1 -u "$NEVER"
		done
		many_cmd "send deadline-$sys-$n" 20
		if [ "$(printf '%s\n' "${MANY_LINES[@]}" | awk -v h="$HELD" '$2 <= h && $3 == $4' |
			wc -l)" -ne "$HELD" ]; then
			problem "weight tcp-echo v1=50 v2=50 killed entering its $where, after a" \
				"drain of v2 with --timeout 2s: v2 weight shown $W_V2; 2.6 s later" \
				"${MANY_END:-no answer}: $(printf '%s\n' "${MANY_LINES[@]}" |
					awk -v h="$HELD" '$2 <= h && $3 != $4' | head -n 3 |
					tr '\n' ' ')"
			break
		fi
	done <<<"$points"
	if [ "${#problems[@]}" -eq 0 ]; then
		pass "crash: weight killed at each write after a drain --timeout: no deadline" \
			"outlives it ($HELD held connections answered past the deadline)"
	else
		fail "crash: weight killed after its commit leaves v2's drain deadline in force" \
			"(v2 has weight 50, yet its connections are reset at the deadline)"
		show_problems
	fi
fi
e2e_status
