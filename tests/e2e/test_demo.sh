#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The demo (tools/demo.sh, what `make demo` runs) does what the README says:
# unattended, with no terminal, it exits 0 within a minute; every step's row
# shows the weights, the shares of new connections (within 4 sigma of the
# weights) and the long-lived connection answered by v1 (invariant 2);
# `flows --state established` shows that connection on v1; `stats` is printed;
# and it leaves nothing behind: not on success, not on Ctrl-C. With
# INTERACTIVE=1 and a terminal (script(1) gives it one) it waits for Enter
# before each step, prints the command to open one's own session, and 'q'
# stops it cleanly.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

DEMO=$E2E_ROOT/tools/demo.sh
STEPS=("100 0" "80 20" "50 50" "20 80" "0 100")
BATCH=200

e2e_init demo-test
e2e_need script

# left_behind ID: what demo run ID left: its namespaces, its pin directory.
left_behind() {
	local id=$1 left

	left=$(ip netns list 2>/dev/null | awk -v p="tse2e-$id-" 'index($1, p) == 1 { print $1 }' |
		tr '\n' ' ')
	[ -e "/sys/fs/bpf/tcpshift-e2e-$id" ] && left="$left/sys/fs/bpf/tcpshift-e2e-$id"
	echo "$left"
}

# check_cleanup NAME ID: PASS when demo run ID left nothing behind (waits up
# to 15 s: after a hangup the demo cleans up on its own, after script exits).
check_cleanup() {
	local left i

	for ((i = 0; i < 150; i++)); do
		left=$(left_behind "$2")
		[ -z "$left" ] && break
		sleep 0.1
	done
	if [ -z "$left" ]; then
		pass "$1"
	else
		fail "$1" "left behind: $left"
	fi
}

# ---- unattended, as make demo runs it -------------------------------------------
# Its own process group (set -m), so that the Ctrl-C test below can signal the
# whole group as a terminal would; background jobs of a shell without job
# control would ignore SIGINT.
out=$E2E_TMP/demo.out
set -m
start=$SECONDS
BATCH=$BATCH bash "$DEMO" </dev/null >"$out" 2>&1 &
pid=$!
set +m
e2e_track_pid "$pid"
for ((i = 0; i < 1200; i++)); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
	kill -TERM -- "-$pid" 2>/dev/null
	wait "$pid"
	fail "demo: finishes" "still running after 120 s; killed"
	rc=124
else
	wait "$pid"
	rc=$?
fi
elapsed=$((SECONDS - start))
E2E_PIDS=()	# waited for: its pid may be reused, the trap must not kill it

if [ "$rc" -eq 0 ]; then
	pass "demo: exits 0 with no terminal (stdin /dev/null)"
else
	fail "demo: exits 0 with no terminal (stdin /dev/null)" "exit status $rc; output:"
	sed 's/^/    /' "$out"
fi
if [ "$elapsed" -lt 60 ]; then
	pass "demo: runs in under a minute (${elapsed} s)"
else
	fail "demo: runs in under a minute" "took ${elapsed} s"
fi

# the table: "k/n  v1=W1 v2=W2  v1  xx.x%  v2  yy.y%  answered by VERSION"
nsteps=${#STEPS[@]}
held_ok=0
for ((k = 1; k <= nsteps; k++)); do
	read -r w1 w2 <<<"${STEPS[k - 1]}"
	name="demo: step $k/$nsteps (v1=$w1 v2=$w2) shows the shares of new connections"
	row=$(grep -E "^$k/$nsteps +v1=$w1 v2=$w2 " "$out" | head -n 1)
	if [ -z "$row" ]; then
		fail "$name" "no row '$k/$nsteps v1=$w1 v2=$w2' in the output"
		continue
	fi
	info "$row"
	read -r s1 s2 < <(sed -nE 's/.* v1 +([0-9.]+)% +v2 +([0-9.]+)%.*/\1 \2/p' <<<"$row")
	if [ -z "${s1:-}" ] || [ -z "${s2:-}" ]; then
		fail "$name" "no 'v1 x% v2 y%' shares in the row"
	else
		got=$(awk -v s="$s1" -v n="$BATCH" 'BEGIN { printf "%d", s * n / 100 + 0.5 }')
		p=$(awk -v a="$w1" -v b="$w2" 'BEGIN { print a / (a + b) }')
		if bound=$(within_sigmas "$got" "$BATCH" "$p" 4) &&
			awk -v a="$s1" -v b="$s2" 'BEGIN { exit !(a + b > 99.9 && a + b < 100.1) }'; then
			pass "$name: v1 $s1% v2 $s2%"
		else
			fail "$name" "v1 $s1% v2 $s2% of $BATCH: v1 $got, $bound (or connections failed)"
		fi
	fi
	if grep -qE 'answered by v1$' <<<"$row"; then
		held_ok=$((held_ok + 1))
	fi
done
if [ "$held_ok" -eq "$nsteps" ]; then
	pass "demo: the long-lived connection is answered by v1 at every step"
else
	fail "demo: the long-lived connection is answered by v1 at every step" \
		"only at $held_ok of $nsteps steps"
fi

flows=$(sed -n '/^\$ tcpshift flows tcp-echo --state established/,/^$/p' "$out")
held_row='^198\.18\.1\.2:[0-9]+ +198\.18\.100\.1:8008 +tcp-echo +v1 +198\.18\.2\.11:8008 '
held_row="$held_row.* established$"
if grep -qE "$held_row" <<<"$flows"; then
	pass "demo: flows --state established shows the long-lived connection on v1"
else
	fail "demo: flows --state established shows the long-lived connection on v1" \
		"got: $(tr '\n' '|' <<<"$flows")"
fi
stats=$(sed -n '/^\$ tcpshift stats/,/^$/p' "$out")
if grep -qE '^ +v1 +198\.18\.2\.11:8008 ' <<<"$stats" &&
	grep -qE '^ +v2 +198\.18\.2\.12:8008 +100 ' <<<"$stats" &&
	grep -q 'new_flows' <<<"$stats"; then
	pass "demo: prints tcpshift stats (v2 at weight 100, counters)"
else
	fail "demo: prints tcpshift stats (v2 at weight 100, counters)" \
		"got: $(tr '\n' '|' <<<"$stats")"
fi
check_cleanup "demo: removes its namespaces and pin directory when done" "$pid"

# ---- Ctrl-C ------------------------------------------------------------------------
out=$E2E_TMP/demo-int.out
set -m
PAUSE=2 bash "$DEMO" </dev/null >"$out" 2>&1 &
pid=$!
set +m
e2e_track_pid "$pid"
for ((i = 0; i < 600; i++)); do
	grep -q "^1/$nsteps " "$out" && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
if grep -q "^1/$nsteps " "$out"; then
	kill -INT -- "-$pid" 2>/dev/null	# what Ctrl-C does: the whole process group
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null
	wait "$pid"
	rc=$?
	E2E_PIDS=()
	if [ "$rc" -eq 130 ] && grep -q '^Interrupted' "$out"; then
		pass "demo: Ctrl-C stops it (exit 130)"
	else
		fail "demo: Ctrl-C stops it (exit 130)" "exit status $rc; last lines: $(
			tail -n 3 "$out" | tr '\n' '|')"
	fi
	check_cleanup "demo: removes its namespaces and pin directory on Ctrl-C" "$pid"
else
	kill -TERM -- "-$pid" 2>/dev/null
	wait "$pid"
	E2E_PIDS=()
	fail "demo: Ctrl-C stops it" "the demo never reached step 1: $(tail -n 3 "$out" |
		tr '\n' '|')"
fi

# ---- INTERACTIVE=1, on a terminal ------------------------------------------------
# script(1) runs the demo on a pseudo-terminal and types what its stdin gets.
# run_interactive OUT KEYS...: each KEYS (printf %b: "\n", "q\n", "\003" for
# Ctrl-C) typed 1.5 s after the previous one, the first once the demo prompts;
# the demo's exit status.
# shellcheck disable=SC2094 # the reader waits for what script writes to OUT
run_interactive() {
	local out=$1

	shift
	{
		for ((i = 0; i < 300; i++)); do
			grep -q 'Enter: step' "$out" 2>/dev/null && break
			sleep 0.1
		done
		for keys in "$@"; do
			printf '%b' "$keys"
			sleep 1.5
		done
	} | timeout 120 script -qec "INTERACTIVE=1 BATCH=50 bash '$DEMO'" /dev/null >"$out" 2>&1
}

out=$E2E_TMP/demo-tty.out
run_interactive "$out" '\n' '\n' '\n' '\n' '\n'
rc=$?
tr -d '\r' <"$out" >"$out.txt"
id=$(sed -nE 's/.*namespaces tse2e-([0-9]+)-cl.*/\1/p' "$out.txt" | head -n 1)
prompts=$(grep -c 'Enter: step' "$out.txt")
rows=$(grep -cE "^[1-5]/$nsteps +v1=" "$out.txt")
if [ "$rc" -eq 0 ] && [ "$prompts" -eq "$nsteps" ] && [ "$rows" -eq "$nsteps" ]; then
	pass "demo: INTERACTIVE=1 waits for Enter before each of the $nsteps steps"
else
	fail "demo: INTERACTIVE=1 waits for Enter before each of the $nsteps steps" \
		"exit status $rc, $prompts prompts, $rows rows; last lines: $(tail -n 4 "$out.txt" |
			tr '\n' '|')"
fi
own="^ +nsenter --net=/run/netns/tse2e-$id-cl "
own="$own((nc|telnet) 198\.18\.100\.1 8008|.*ts-echo hold --connect 198\.18\.100\.1:8008)$"
if grep -qE "$own" "$out.txt"; then
	pass "demo: INTERACTIVE=1 prints the command to open one's own session from the client"
else
	fail "demo: INTERACTIVE=1 prints the command to open one's own session from the client" \
		"no 'nsenter --net=/run/netns/tse2e-$id-cl nc 198.18.100.1 8008' line"
fi
[ -n "$id" ] && check_cleanup "demo: INTERACTIVE=1 leaves nothing behind" "$id"

out=$E2E_TMP/demo-quit.out
run_interactive "$out" 'q\n'
rc=$?
tr -d '\r' <"$out" >"$out.txt"
id=$(sed -nE 's/.*namespaces tse2e-([0-9]+)-cl.*/\1/p' "$out.txt" | head -n 1)
if [ "$rc" -eq 0 ] && grep -q '^Stopped' "$out.txt" && ! grep -qE "^1/$nsteps " "$out.txt"; then
	pass "demo: INTERACTIVE=1, q at the first prompt stops it (exit 0)"
else
	fail "demo: INTERACTIVE=1, q at the first prompt stops it (exit 0)" \
		"exit status $rc; last lines: $(tail -n 3 "$out.txt" | tr '\n' '|')"
fi
[ -n "$id" ] && check_cleanup "demo: q leaves nothing behind" "$id"

# Ctrl-C typed on the terminal while the demo waits at a prompt; then script
# exits and the terminal hangs up while the demo is cleaning up.
out=$E2E_TMP/demo-tty-int.out
run_interactive "$out" '\003'
rc=$?
tr -d '\r' <"$out" >"$out.txt"
id=$(sed -nE 's/.*namespaces tse2e-([0-9]+)-cl.*/\1/p' "$out.txt" | head -n 1)
if [ "$rc" -eq 130 ] && grep -q '^Interrupted' "$out.txt"; then
	pass "demo: INTERACTIVE=1, Ctrl-C at a prompt stops it (exit 130)"
else
	fail "demo: INTERACTIVE=1, Ctrl-C at a prompt stops it (exit 130)" \
		"exit status $rc; last lines: $(tail -n 3 "$out.txt" | tr '\n' '|')"
fi
[ -n "$id" ] && check_cleanup "demo: Ctrl-C at a prompt, then a hangup, leaves nothing behind" "$id"

e2e_status
