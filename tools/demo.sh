#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make demo: shift new TCP connections from v1 to v2 of a service while an
# open connection stays on v1, in network namespaces made for the purpose.
#
# Service tcp-echo at 198.18.100.1:8008 with backends v1 and v2 (the e2e
# tests' topology, tests/e2e/lib.sh): each backend answers every line with its
# name in front, like Istio's tcp-echo sample. One long-lived connection is
# opened at 100/0, then the weights go 100/0 -> 80/20 -> 50/50 -> 20/80 ->
# 0/100. At each step a batch of new connections shows the split, and a line
# sent over the long-lived connection shows which version still answers it.
#
#   tools/demo.sh                  unattended, under a minute (what make demo runs)
#   INTERACTIVE=1 tools/demo.sh    waits for Enter before each step (reads /dev/tty)
#
# BATCH (new connections per step, default 200) and PAUSE (seconds between
# unattended steps, default 1) may be set in the environment. Exit status: 0
# when every step ran and the long-lived connection was answered by v1 each
# time, 1 otherwise, 130 on Ctrl-C. Everything the demo made (namespaces,
# processes, its own pin directory, never /sys/fs/bpf/tcpshift) is removed on
# exit, also on Ctrl-C.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/../tests/e2e/lib.sh"

BATCH=${BATCH:-200}
PAUSE=${PAUSE:-1}
INTERACTIVE=${INTERACTIVE:-0}
STEPS=("100 0" "80 20" "50 50" "20 80" "0 100")
VIP_ADDR=${VIP4%:*}
VIP_PORT=${VIP4##*:}

case $INTERACTIVE in
1 | y | yes | true) INTERACTIVE=1 ;;
*) INTERACTIVE=0 ;;
esac
[[ $BATCH =~ ^[1-9][0-9]{0,3}$ ]] || { echo "demo: BATCH must be 1-9999" >&2; exit 2; }
[[ $PAUSE =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "demo: PAUSE must be seconds" >&2; exit 2; }

e2e_init demo
trap 'echo; echo "Interrupted: removing the demo'\''s namespaces and maps."; exit 130' INT
# Clean up whatever else happens meanwhile: a second Ctrl-C, or the terminal
# closing (SIGHUP), must not cut the cleanup short.
trap 'trap "" INT TERM HUP; e2e_cleanup' EXIT

# The terminal is read for the pauses, not stdin: under make, stdin may be
# anything. No terminal: run unattended.
if [ "$INTERACTIVE" -eq 1 ] && ! { exec 3</dev/tty; } 2>/dev/null; then
	echo "INTERACTIVE=1 but there is no terminal to read from: running unattended."
	INTERACTIVE=0
fi

# pause NEXT: wait before NEXT (Enter continues, q stops), or sleep PAUSE.
pause() {
	local answer

	if [ "$INTERACTIVE" -eq 0 ]; then
		sleep "$PAUSE"
		return
	fi
	printf '  ... Enter: %s, q: quit ' "$1"
	if ! read -r -u 3 answer; then
		echo
		INTERACTIVE=0	# the terminal went away: finish unattended
		return
	fi
	case $answer in
	q | Q | quit)
		echo "Stopped; removing the demo's namespaces and maps."
		exit 0
		;;
	esac
}

# client_cmd: the command that opens a session of one's own from the client.
client_cmd() {
	local pre="nsenter --net=/run/netns/$NS_CL"

	if command -v nc >/dev/null; then
		echo "$pre nc $VIP_ADDR $VIP_PORT"
	elif command -v telnet >/dev/null; then
		echo "$pre telnet $VIP_ADDR $VIP_PORT"
	else
		echo "$pre $TS_ECHO hold --connect $VIP4"
	fi
}

cat <<END
tcpshift demo: new TCP connections move from v1 to v2, an open one stays on v1.

  client --> gateway (tcpshift)      --+--> v1  $V1_4
             VIP $VIP4     +--> v2  $V2_4

Building it in network namespaces $NS_CL, $NS_GW, $NS_B1, $NS_B2 ...
END
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0

cat <<END

On the gateway:
  tcpshift load --dev gwc --dev br0
  tcpshift service add tcp-echo $VIP4
  tcpshift backend add tcp-echo v1 $V1_4 --weight 100
  tcpshift backend add tcp-echo v2 $V2_4 --weight 0
(each tcpshift command of the demo runs as
  $TCPSHIFT --pin-dir $E2E_PIN -n $NS_GW ...)

END

hold_open "$VIP4"
hold_send "hello" || e2e_abort "the long-lived connection got no reply ($(
	tail -n 2 "$E2E_TMP/hold.err" 2>/dev/null | tr '\n' ' '))"
hold_client=$(in_ns "$NS_CL" ss -Htn state established "( dport = :$VIP_PORT )" 2>/dev/null |
	awk 'NR == 1 { print $3 }')
echo "Long-lived connection ${hold_client:+$hold_client }-> $VIP4 opened at 100/0;" \
	"it answered: '$HOLD_REPLY'"

if [ "$INTERACTIVE" -eq 1 ]; then
	cat <<END

Open a connection of your own from the client (type lines; every reply starts
with the version that answered it; it stays on that version whatever the weights):
  $(client_cmd)
Look at the gateway yourself:
  $TCPSHIFT --pin-dir $E2E_PIN -n $NS_GW flows tcp-echo
Both stop working when the demo ends: it removes the namespaces.
END
fi

cat <<END

Each step: tcpshift weight tcp-echo v1=W1 v2=W2, then $BATCH new connections
from the client, then one line over the long-lived connection.

END
printf '%-5s %-13s %-26s %s\n' step weights "new connections ($BATCH)" "long-lived connection"
printf '%-5s %-13s %-26s %s\n' ---- ------- ------------------------ ---------------------

nsteps=${#STEPS[@]}
problems=0
for ((k = 1; k <= nsteps; k++)); do
	read -r w1 w2 <<<"${STEPS[k - 1]}"
	# unattended: a pause between steps; interactive: before each, so a
	# session of one's own can be opened at 100/0
	[ "$k" -gt 1 ] || [ "$INTERACTIVE" -eq 1 ] && pause "step $k/$nsteps, weights v1=$w1 v2=$w2"
	err=$(ts weight tcp-echo "v1=$w1" "v2=$w2" 2>&1) || e2e_abort "tcpshift weight: $err"
	out=$(client_count "$VIP4" "$BATCH")
	v1=$(count_of "$out" v1)
	v2=$(count_of "$out" v2)
	failed=$((BATCH - v1 - v2))
	shares=$(awk -v a="$v1" -v b="$v2" -v n="$BATCH" \
		'BEGIN { printf "v1 %5.1f%%  v2 %5.1f%%", 100 * a / n, 100 * b / n }')
	if [ "$failed" -gt 0 ]; then
		shares="$shares ($failed failed)"
		problems=$((problems + 1))
	fi
	if hold_send "step $k"; then
		held="answered by ${HOLD_REPLY%% *}"
		[ "${HOLD_REPLY%% *}" = v1 ] || problems=$((problems + 1))
	else
		held="no answer"
		problems=$((problems + 1))
	fi
	printf '%-5s %-13s %-26s %s\n' "$k/$nsteps" "v1=$w1 v2=$w2" "$shares" "$held"
done

echo
echo "\$ tcpshift flows tcp-echo --state established   (the batches' connections are closed)"
ts flows tcp-echo --state established
echo
echo "\$ tcpshift stats"
ts stats
echo
if [ "$problems" -gt 0 ]; then
	echo "Something went wrong: see the rows above ($problems problem(s))."
	exit 1
fi
echo "Done: new connections moved from v1 to v2 step by step; the long-lived"
echo "connection was answered by v1 at every step. Cleaning up."
