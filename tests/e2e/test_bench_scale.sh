#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make bench-scale's harness (tools/bench/scale.sh) at 1 and 100 services and
# one size past this build's limit, in short phases, so that the benchmark
# cannot rot unseen: every method loads the whole configuration, changes one
# weight, and passes real packets to services spread over all N (pps fails a
# round whose handshakes do not all come through; tcpshift's stats show new
# flows on every one of the N services); nftables' path is checked with
# real TCP (SCALE_CHECK=1): its rules bind no set of their own (what kept nft -f
# from loading 65,536 services), a connection to the first, middle and last
# service reaches that service's backends, and the benchmark's weight change
# moves the split; tcpshift's in-kernel figures are there; the run time of the
# BPF programs in the gateway (pps --prog-stats) is there for tcpshift, at
# about one or a few runs per established packet (the programs on the devices
# the packets cross were found), and none for the methods without programs
# (pps's own were left out); the size past the limit is skipped with a line
# saying so; the table and the plots are written.
# Speed is never asserted. Namespaces tspps-<pid>-*, pin directory
# /sys/fs/bpf/tcpshift-pps-<pid>, the check's servers: scale.sh's trap removes
# them.

cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh

E2E_NAME=bench-scale
[ "$(id -u)" -eq 0 ] || { fail "bench-scale: setup" "needs root"; exit 1; }
for b in build/tcpshift build/ts-echo build/bench/pps build/bench/microbench; do
	[ -x "$b" ] || { fail "bench-scale: setup" "$b missing (make all build/bench/pps build/bench/microbench)"; exit 1; }
done
OUT=$(mktemp -d "${TMPDIR:-/tmp}/tsscale-test-$$.XXXXXX") || exit 1
trap 'rm -rf -- "$OUT"' EXIT
LIMIT=$(printf '#include "tcpshift.h"\nTS_MAX_SERVICES\n' | cc -E -P -Iinclude -x c - | tail -n 1)
LIMIT=$((LIMIT))
OVER=
[ "$LIMIT" -lt 65536 ] && OVER=$((LIMIT + 1))

SIZES="1 100 $OVER" SCALE_CHECK=1 SCALE_SECONDS=0.1 SCALE_WARMUP=0.05 SCALE_FLOWS=128 \
	REPEAT=20000 RUNS=1 WEIGHT_RUNS=1 STEP_TIMEOUT=30 INSTALL=0 OUT="$OUT" timeout 300 tools/bench/scale.sh \
	>"$OUT/log" 2>&1
rc=$?
[ "$rc" -eq 0 ] && pass "bench-scale: the run completes" ||
	fail "bench-scale: run" "exit $rc: $(tail -n 5 "$OUT/log" | tr '\n' ' ')"

RAW=$OUT/scale-raw.tsv
val() { awk -F'\t' -v n="$1" -v m="$2" -v k="$3" '$1 == n && $2 == m && $3 == k { print $4 }' "$RAW" 2>/dev/null; }
# nft_check N WHAT TEXT: scale.sh's check_WHAT of nftables at N services passed
nft_check() {
	local v

	v=$(val "$1" nftables "check_$2")
	[ "$v" = pass ] && pass "bench-scale: nftables at $1 services: $3" ||
		fail "bench-scale: nftables check_$2 at $1" "${v:-not checked}"
}
for n in 1 100; do
	for m in iptables nftables tcpshift tcpshift-xdp; do
		miss=
		for k in load_ms weight_ms syn_core_ns established_core_ns; do
			[ -n "$(val "$n" "$m" "$k")" ] || miss="$miss $k"
		done
		[ -z "$(val "$n" "$m" status)" ] && [ -z "$miss" ] &&
			pass "bench-scale: $m at $n services: load, weight change, SYN and established figures" ||
			fail "bench-scale: $m at $n" "missing:${miss:- none} status: $(val "$n" "$m" status)"
	done
	nft_check "$n" anon_sets "no rule binds a set of its own (nft -f stays linear in the services)"
	for i in $(printf '%s\n' 0 $((n / 2)) $((n - 1)) | sort -nu); do
		nft_check "$n" "path_$i" "connections to service $i reach its two backends, no other"
	done
	nft_check "$n" weight \
		"the weight change moves service $((n / 2))'s split (100: all to a, 0: all to b)"
	for m in tcpshift tcpshift-xdp; do
		h=$(val "$n" "$m" services_hit)
		[ "$h" = "$n" ] && pass "bench-scale: $m at $n services: new flows reached every service" ||
			fail "bench-scale: $m spread at $n" "${h:-no} services of $n took new flows"
	done
	for m in tcpshift tcpshift-xdp; do
		e=$(val "$n" "$m" established_prog_ns) s=$(val "$n" "$m" syn_prog_ns)
		r=$(val "$n" "$m" established_prog_runs)
		awk -v e="$e" -v s="$s" -v r="$r" \
			'BEGIN { exit !(e > 0 && s > 0 && r >= 0.9 && r <= 3) }' &&
			pass "bench-scale: $m at $n services: its programs' run time in the gateway," \
				"0.9 to 3 runs per established packet" ||
			fail "bench-scale: $m programs at $n" "established ${e:-none} ns," \
				"${r:-no} runs per packet; SYN ${s:-none} ns"
	done
	for m in baseline iptables nftables; do
		r="$(val "$n" "$m" established_prog_runs) $(val "$n" "$m" syn_prog_runs)"
		[ "$r" = "0.000 0.000" ] &&
			pass "bench-scale: $m at $n services: no program runs in the gateway" ||
			fail "bench-scale: $m programs at $n" \
				"runs per packet (established, SYN): '$r', want 0"
	done
	miss=
	for k in tc_syn tc_established xdp_syn xdp_established tc_syn_spread tc_established_spread \
		xdp_established_spread tc_reply_spread xdp_reply_spread; do
		v=$(val "$n" kernel "$k")
		[ -n "$v" ] && [ "$v" != NA ] || miss="$miss $k"
	done
	[ -z "$miss" ] && pass "bench-scale: tcpshift's in-kernel figures at $n services" ||
		fail "bench-scale: in-kernel at $n" "missing or invalid:$miss"
done
if [ -n "$OVER" ]; then
	grep -q "N = $OVER: skipped, over this build's limit of $LIMIT services" "$OUT/scale.md" &&
		[ -z "$(awk -F'\t' -v n="$OVER" '$1 == n' "$RAW")" ] &&
		pass "bench-scale: $OVER services, past the limit, skipped with a line saying so" ||
		fail "bench-scale: over the limit" "no skip line for $OVER, or figures for it"
fi
rows=$(grep -cE '^\| (1|100) \| (iptables|nftables|tcpshift|tcpshift-xdp) \| [0-9-]+ \| [0-9-]+ \|' "$OUT/scale.md")
[ "$rows" = 8 ] && pass "bench-scale: the table has a row of figures per size and method" ||
	fail "bench-scale: table" "$rows rows of 8"
# the programs' columns: ns (runs) for tcpshift, — for the others
prog=$(grep -cE '^\| (1|100) \| tcpshift(-xdp)? (\| [^|]* ){4}(\| [0-9]+ \([0-9.]+ runs\) ){2}\|$' \
	"$OUT/scale.md")
none=$(grep -cE '^\| (1|100) \| (iptables|nftables) (\| [^|]* ){4}\| — \| — \|$' "$OUT/scale.md")
[ "$prog" = 4 ] && [ "$none" = 4 ] &&
	pass "bench-scale: the table's programs columns: ns and runs for tcpshift, — for the others" ||
	fail "bench-scale: programs columns" \
		"$prog of 4 tcpshift rows with figures, $none of 4 others with —"
if command -v gnuplot >/dev/null; then
	[ -s "$OUT/scale-packets.png" ] && [ -s "$OUT/scale-control.png" ] &&
		pass "bench-scale: both plots written" || fail "bench-scale: plots" "missing"
fi
grep -E '^\| (1|100) \|' "$OUT/scale.md" | while read -r line; do info "$line"; done
e2e_status
