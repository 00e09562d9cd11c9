#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs the test layers (default: unit bpf bpf-xdp bpf-xdp-handshakes fuzz e2e
# e2e-xdp e2e-xdp-handshakes) and ends with "N passed, M failed". unit and bpf
# are cmocka programs; e2e scripts print "PASS: name" / "FAIL: name"; fuzz runs
# the parsers' libFuzzer target for FUZZ_TEST_SECONDS (default 12). bpf-xdp and
# e2e-xdp run the BPF tests and the traffic tests again with `load --mode xdp`
# (tests/bpf/ts_test.h, test_xdp_mode; tests/e2e/lib.sh, E2E_MODE), the
# -handshakes layers with --handshakes xdp too (test_xdp_handshakes,
# E2E_HANDSHAKES).
set -u
cd "$(dirname "$0")/.."
layers=("${@:-unit bpf bpf-xdp bpf-xdp-handshakes fuzz e2e e2e-xdp e2e-xdp-handshakes}")
# the e2e tests of traffic through the gateway, which E2E_MODE=xdp changes
XDP_E2E=(agent attack checksum crash drain flood forward ipv6 local pinned removal rollout split unload
	upgrade downgrade)
# with --handshakes xdp: the groups and tests where a handshake's path matters
# (pins, splits, canary signals, off-path attacks); the rest runs the same
# code as e2e-xdp
XDP_HS_BPF=(pinning handsoff split pick icmp security canary forward spoofing offpath)
XDP_HS_E2E=(attack drain flood pinned removal rollout split)
# run alone, after the others of their layer (E2E_JOBS): they judge times or
# rates (pps, bench_scale, sync, sync_bulk, agent_abuse, live, flood), or
# build or install (deb, demo, install)
E2E_ALONE=(agent_abuse bench_scale deb demo flood install live pps sync sync_bulk)
# the longest of the others, started first so that the rest fill in beside them
E2E_LONG=(scale crash etcd_abuse)
read -r -a layers <<<"${layers[*]}"
passed=0 failed=0 skipped=0
log=$(mktemp)

count_cmocka() {
	local p f
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f))
	[ "$p" -gt 0 ] || [ "$f" -gt 0 ] || { echo "no cmocka result from $1"; failed=$((failed + 1)); }
}

# outs: the outputs of the layers and scripts run in the background; on exit,
# what still runs of them is ended
outs=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -f "$log"; rm -rf "$outs"' EXIT
# e2e_start TEST MODE HANDSHAKES: run TEST, its output and then its exit
# status and seconds in files of $outs; e2e_report TEST prints the output and
# counts it
e2e_start() {
	local f=$outs/${1//\//_} t0=$SECONDS

	E2E_MODE=$2 E2E_HANDSHAKES=$3 timeout 600 bash "$1" </dev/null >"$f" 2>&1
	echo "$? $((SECONDS - t0))" >"$f.rc"
}
e2e_report() {
	local f=$outs/${1//\//_} rc secs p fl

	read -r rc secs <"$f.rc"
	echo "---- $1"
	cat "$f"
	p=$(grep -c '^PASS: ' "$f"); fl=$(grep -c '^FAIL: ' "$f")
	skipped=$((skipped + $(grep -c '^SKIP: ' "$f")))
	if [ "$rc" -ne 0 ] && [ "$fl" -eq 0 ]; then
		echo "FAIL: $1 exited $rc"; fl=1
	fi
	passed=$((passed + p)); failed=$((failed + fl))
	echo "---- $1: $secs s"
	rm -f "$f" "$f.rc"
}

# The BPF layers start together, before the first layer: each test_bpf
# process has its own network namespace and pin directories (by its pid); their
# outputs are shown, and counted, in the layers' order.
bpf_cmd() {
	case $1 in
	bpf) build/tests/test_bpf ;;
	bpf-xdp) build/tests/test_bpf --xdp ;;
	bpf-xdp-handshakes) build/tests/test_bpf --xdp-handshakes "${XDP_HS_BPF[@]}" ;;
	esac
}
declare -A bpf_pid=()
for layer in "${layers[@]}"; do
	case $layer in
	bpf|bpf-xdp|bpf-xdp-handshakes)
		bpf_cmd "$layer" >"$outs/$layer.out" 2>&1 &
		bpf_pid[$layer]=$!
		;;
	esac
done

for layer in "${layers[@]}"; do
	echo "==== $layer"
	l0=$SECONDS
	case $layer in
	unit)
		build/tests/test_unit 2>&1 | tee "$log"
		count_cmocka "$layer"
		;;
	bpf|bpf-xdp|bpf-xdp-handshakes)
		wait "${bpf_pid[$layer]}"
		cp "$outs/$layer.out" "$log"
		cat "$log"
		count_cmocka "$layer"
		;;
	fuzz)
		# A short run from the seed corpus; `make fuzz` runs longer.
		corpus=$(mktemp -d)
		timeout 300 build/tests/fuzz_parse -max_total_time="${FUZZ_TEST_SECONDS:-12}" \
			-timeout=10 -print_final_stats=1 -dict=tests/fuzz/fuzz_parse.dict \
			-artifact_prefix="$corpus/" "$corpus" tests/fuzz/corpus >"$log" 2>&1
		rc=$?
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		if [ "$rc" -eq 0 ]; then
			echo "PASS: fuzz parsers (${runs:-?} runs)"; passed=$((passed + 1))
		else
			# the finding: libFuzzer's report and the input, saved for replay
			tail -n 40 "$log"
			mkdir -p build/fuzz && cp "$corpus"/crash-* "$corpus"/leak-* "$corpus"/timeout-* \
				build/fuzz/ 2>/dev/null
			echo "FAIL: fuzz parsers (exit $rc; inputs in build/fuzz/, replay with" \
				"build/tests/fuzz_parse FILE)"
			failed=$((failed + 1))
		fi
		rm -rf "$corpus"
		;;
	e2e|e2e-xdp|e2e-xdp-handshakes)
		tests=(tests/e2e/test_*.sh)
		mode=tc
		handshakes=tc
		if [ "$layer" = e2e-xdp ]; then
			tests=("${XDP_E2E[@]/#/tests/e2e/test_}")
		elif [ "$layer" = e2e-xdp-handshakes ]; then
			tests=("${XDP_HS_E2E[@]/#/tests/e2e/test_}")
			handshakes=xdp
		fi
		if [ "$layer" != e2e ]; then
			tests=("${tests[@]/%/.sh}")
			mode=xdp
		fi
		# E2E_JOBS (default 2) at a time: most tests wait on timers and
		# peers more than they compute, and each has its own namespaces,
		# pin directory and ports; those that measure time or rates, build
		# or install, or load the machine run after them, alone
		par=() ser=() rest=()
		for t in "${tests[@]}"; do
			n=${t##*/test_}
			n=${n%.sh}
			if [[ " ${E2E_ALONE[*]} " == *" $n "* ]]; then ser+=("$t")
			elif [[ " ${E2E_LONG[*]} " == *" $n "* ]]; then par+=("$t")
			else rest+=("$t"); fi
		done
		par+=("${rest[@]}")
		declare -A running=()
		for t in "${par[@]}"; do
			while [ "${#running[@]}" -ge "${E2E_JOBS:-2}" ]; do
				wait -n -p done_pid
				e2e_report "${running[$done_pid]}"
				unset "running[$done_pid]"
			done
			e2e_start "$t" "$mode" "$handshakes" &
			running[$!]=$t
		done
		while [ "${#running[@]}" -gt 0 ]; do
			wait -n -p done_pid
			e2e_report "${running[$done_pid]}"
			unset "running[$done_pid]"
		done
		for t in "${ser[@]}"; do
			e2e_start "$t" "$mode" "$handshakes"
			e2e_report "$t"
		done
		;;
	*) echo "unknown layer $layer"; exit 2 ;;
	esac
	echo "==== $layer: $((SECONDS - l0)) s"
done
# a SKIP line: a check this kernel cannot run (said why), neither passed nor failed
echo "$passed passed, $failed failed${skipped:+$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
