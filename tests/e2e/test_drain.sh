#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Drain with a deadline, IPv4 and IPv6. A held connection on v1 and
# one on v2 of each family; `tcpshift drain SERVICE v1 --timeout 3s`; each
# connection sends a line every 0.3 s. The v1 connections are answered by v1
# until the deadline and see a reset or close within 2 s after it; the v2
# connections are answered by v2 throughout and after; new connections during
# and after the drain go to v2 only; `tcpshift stats` counts drain_closed.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

TIMEOUT_S=3		# the drain's --timeout
GRACE_S=2		# the connection must be closed within this after the deadline
TICK=0.3
NEW=10

e2e_init drain
e2e_need jq
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 100 0
e2e_service tcp-echo6 "$VIP6" 100 0

# connections 1 and 2 on v1 (v4, v6), then 3 and 4 on v2; weights 50/50 after
many_open_four
WANT=(x v1 v1 v2 v2)	# connection i's backend
NAME=(x "v1 (IPv4)" "v1 (IPv6)" "v2 (IPv4)" "v2 (IPv6)")

now_us() { echo "${EPOCHREALTIME/./}"; }
drained_before=$(ts_counter drain_closed)
t_start=$(now_us)
must "drain tcp-echo v1" ts drain tcp-echo v1 --timeout "${TIMEOUT_S}s"
t_mid=$(now_us)
must "drain tcp-echo6 v1" ts drain tcp-echo6 v1 --timeout "${TIMEOUT_S}s"
t_end=$(now_us)
# each deadline lies between the start and the end of its command, + TIMEOUT_S
dl_lo=(x $((t_start + TIMEOUT_S * 1000000)) $((t_mid + TIMEOUT_S * 1000000)))
dl_hi=(x $((t_mid + TIMEOUT_S * 1000000)) $((t_end + TIMEOUT_S * 1000000)))

mkfifo "$E2E_TMP/never" || e2e_abort "mkfifo failed"
exec {NEVER}<>"$E2E_TMP/never"	# read -t on it: a sleep without a fork

# ticks until GRACE_S + 0.5 s past the deadline (at most 40)
declare -a t_closed=() how=() early=() wrong=()
new_during=''
ticks=0
end_us=$((t_end + (TIMEOUT_S + GRACE_S) * 1000000 + 500000))
while [ "$(now_us)" -lt "$end_us" ] && [ "$ticks" -lt 40 ]; do
	ticks=$((ticks + 1))
	t=$(now_us)
	many_cmd "send tick$ticks" 10
	for i in 1 2 3 4; do
		r=$(many_field "$i" 3)
		if [ "$r" = "${WANT[i]}" ]; then
			[ -n "${t_closed[i]:-}" ] && wrong[i]="answered by $r after it was closed"
			continue
		fi
		if [ "$i" -ge 3 ]; then
			wrong[i]=${wrong[i]:-"tick $ticks ($(((t - t_start) / 1000)) ms): '$r'"}
		elif [ -z "${t_closed[i]:-}" ]; then
			t_closed[i]=$t
			how[i]=$r
			# closed before its deadline had passed? (t is taken just before
			# the line is sent: 50 ms of slack for it to reach the gateway)
			[ $((t + 50000)) -lt "${dl_lo[i]}" ] &&
				early[i]="closed at tick $ticks, $(((dl_lo[i] - t) / 1000)) ms early"
			case $r in reset | closed) ;; *) wrong[i]="'$r' instead of a reset or close" ;; esac
		fi
	done
	# new connections during the drain, about a second into it: v2 only
	if [ -z "$new_during" ] && [ $((t - t_end)) -gt 1000000 ]; then
		new_during="$(client_count "$VIP4" "$NEW" | tr '\n' ' ')/ $(client_count "$VIP6" \
			"$NEW" | tr '\n' ' ')"
	fi
	read -r -t "$TICK" -u "$NEVER"
done
info "$ticks ticks every ${TICK} s over $(((t - t_start) / 1000)) ms; deadlines" \
	"$(((dl_lo[1] - t_start) / 1000))-$(((dl_hi[1] - t_start) / 1000)) ms (IPv4)," \
	"$(((dl_lo[2] - t_start) / 1000))-$(((dl_hi[2] - t_start) / 1000)) ms (IPv6) after the start"

for i in 1 2; do
	if [ -z "${t_closed[i]:-}" ]; then
		fail "drain: held connection on ${NAME[i]} closed within ${GRACE_S} s of the deadline" \
			"still answered by $(many_field "$i" 3) $(((t - dl_hi[i]) / 1000)) ms after" \
			"the deadline"
		continue
	fi
	late=$((t_closed[i] - dl_hi[i]))
	info "${NAME[i]}: ${how[i]} at $(((t_closed[i] - t_start) / 1000)) ms, $((late / 1000)) ms" \
		"after the deadline"
	if [ -n "${early[i]:-}" ] || [ -n "${wrong[i]:-}" ] || [ "$late" -gt $((GRACE_S * 1000000)) ]
	then
		fail "drain: held connection on ${NAME[i]} closed within ${GRACE_S} s of the deadline" \
			"${early[i]:-}${wrong[i]:-} ($((late / 1000)) ms after the deadline)"
	else
		pass "drain: held connection on ${NAME[i]} answered until the deadline, then ${how[i]}" \
			"$((late / 1000)) ms after it"
	fi
done

many_cmd "send last" 10
for i in 3 4; do
	r=$(many_field "$i" 3)
	if [ -z "${wrong[i]:-}" ] && [ "$r" = "${WANT[i]}" ]; then
		pass "drain: held connection on ${NAME[i]} answered by it at all $ticks ticks and after"
	else
		[ -n "${wrong[i]:-}" ] || wrong[i]="last answer '$r'"
		fail "drain: held connection on ${NAME[i]} untouched" "${wrong[i]}"
	fi
done

v2_of() { # v2_of "COUNT OUTPUTS": the connections v2 answered
	grep -o 'v2 [0-9]*' <<<"$1" | awk '{ s += $2 } END { print s + 0 }'
}
if [ "$(v2_of "$new_during")" -eq $((2 * NEW)) ]; then
	pass "drain: new connections during the drain go to v2 only ($new_during)"
else
	fail "drain: new connections during the drain go to v2 only" "got: ${new_during:-none}"
fi
new_after="$(client_count "$VIP4" "$NEW" | tr '\n' ' ')/ $(client_count "$VIP6" "$NEW" |
	tr '\n' ' ')"
if [ "$(v2_of "$new_after")" -eq $((2 * NEW)) ]; then
	pass "drain: new connections after the deadline go to v2 only ($new_after)"
else
	fail "drain: new connections after the deadline go to v2 only" "got: $new_after"
fi

drained=$(ts -j stats | jq '.counters.drain_closed // 0' 2>/dev/null)
info "stats counters: $(ts -j stats | jq -c .counters 2>/dev/null)"
if [ "${drained:-0}" -ge 2 ] && [ "$((drained - ${drained_before:-0}))" -ge 2 ]; then
	pass "drain: stats counts drain_closed = $drained (both families)"
else
	fail "drain: stats counts drain_closed" "drain_closed = ${drained:-none}, want >= 2"
fi
e2e_status
