#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The pin directory's lock: readers (stats, status,
# flows, export, service list, pick) wait for a change in progress, so they
# read one configuration, never a mix; a command waiting says so on stderr;
# and a command queued behind `unload` fails instead of writing to maps that
# are no longer pinned, and re-creates nothing.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init lock
e2e_need flock
e2e_bare_gateway gwc
E2E_LOADED=1
must "load" ts load --dev gwc
must "service add" ts service add web 198.18.100.1:8008
must "backend add" ts backend add web v1 198.18.2.11:8008

# hold_lock: take the pin directory's lock exclusive, as a change does (≤ 5 s to get it)
hold_lock() {
	local i

	# -o: the lock is flock's own, not inherited by sleep
	flock -o -x "$E2E_PIN" sleep 60 &
	HOLDER=$!
	e2e_track_pid "$HOLDER"
	for ((i = 0; i < 50; i++)); do
		flock -n -s "$E2E_PIN" true || return 0
		sleep 0.1
	done
	e2e_abort "could not take the lock on $E2E_PIN"
}

# release_lock: end the holder's sleep; flock exits and the lock goes with it
release_lock() {
	local child

	child=$(ps -o pid= --ppid "$HOLDER")
	[ -n "$child" ] && kill $child
	wait "$HOLDER" 2>/dev/null
}

# wait_for_line FILE PATTERN: until FILE has a line matching PATTERN (≤ 20 s)
wait_for_line() {
	local i

	for ((i = 0; i < 200; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# 1. readers wait for a change in progress, and say so
hold_lock
readers=("stats" "status" "flows" "export" "service list" "pick web 198.18.1.2:1000")
pids=()
for i in "${!readers[@]}"; do
	read -r -a argv <<<"${readers[$i]}"
	timeout 60 "$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "${argv[@]}" \
		>"$E2E_TMP/r$i.out" 2>"$E2E_TMP/r$i.err" &
	pids+=("$!")
	e2e_track_pid "$!"
done
for i in "${!readers[@]}"; do
	if wait_for_line "$E2E_TMP/r$i.err" "^tcpshift: waiting for the lock on $E2E_PIN" &&
		[ ! -s "$E2E_TMP/r$i.out" ]; then
		pass "lock: ${readers[$i]} waits for a change in progress, and says so"
	else
		fail "lock: ${readers[$i]} waits for a change in progress" \
			"stdout: $(head -c 100 "$E2E_TMP/r$i.out"), stderr: $(cat "$E2E_TMP/r$i.err")"
	fi
done
release_lock
for i in "${!readers[@]}"; do
	wait "${pids[$i]}"
	rc=$?
	if [ "$rc" -eq 0 ] && [ -s "$E2E_TMP/r$i.out" ]; then
		pass "lock: ${readers[$i]} runs once the change is done"
	else
		fail "lock: ${readers[$i]} runs once the change is done" \
			"exit $rc: $(cat "$E2E_TMP/r$i.err")"
	fi
done

# 2. commands queued behind an unload fail, and re-create nothing
hold_lock
queued=("weight web v1=5" "backend add web v2 198.18.2.12:8008" "pick web 198.18.1.2:1000"
	"stats")
pids=()
for i in "${!queued[@]}"; do
	read -r -a argv <<<"${queued[$i]}"
	timeout 60 "$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "${argv[@]}" \
		>/dev/null 2>"$E2E_TMP/q$i.err" &
	pids+=("$!")
	e2e_track_pid "$!"
done
for i in "${!queued[@]}"; do
	wait_for_line "$E2E_TMP/q$i.err" "waiting for the lock" ||
		e2e_abort "${queued[$i]} did not wait for the lock: $(cat "$E2E_TMP/q$i.err")"
done
# what unload does while they wait: the pins and the directory go
must "unpin" rm -f -- "$E2E_PIN"/*
must "rmdir" rmdir "$E2E_PIN"
release_lock
for i in "${!queued[@]}"; do
	wait "${pids[$i]}"
	rc=$?
	last=$(tail -n 1 "$E2E_TMP/q$i.err")
	if [ "$rc" -eq 1 ] && grep -q "^tcpshift: tcpshift was unloaded from" <<<"$last"; then
		pass "queued behind unload: ${queued[$i]} fails (exit 1: $last)"
	else
		fail "queued behind unload: ${queued[$i]} fails" "exit $rc: $(cat "$E2E_TMP/q$i.err")"
	fi
done
if [ ! -e "$E2E_PIN" ]; then
	pass "queued behind unload: no pin directory re-created"
else
	fail "queued behind unload: no pin directory re-created" "$(ls "$E2E_PIN")"
fi
e2e_status
