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
read -r -a layers <<<"${layers[*]}"
passed=0 failed=0 skipped=0
log=$(mktemp); trap 'rm -f "$log"' EXIT

count_cmocka() {
	local p f
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	passed=$((passed + p)); failed=$((failed + f))
	[ "$p" -gt 0 ] || [ "$f" -gt 0 ] || { echo "no cmocka result from $1"; failed=$((failed + 1)); }
}

for layer in "${layers[@]}"; do
	echo "==== $layer"
	l0=$SECONDS
	case $layer in
	unit|bpf)
		build/tests/test_$layer 2>&1 | tee "$log"
		count_cmocka "$layer"
		;;
	bpf-xdp)
		build/tests/test_bpf --xdp 2>&1 | tee "$log"
		count_cmocka "$layer"
		;;
	bpf-xdp-handshakes)
		build/tests/test_bpf --xdp-handshakes "${XDP_HS_BPF[@]}" 2>&1 | tee "$log"
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
		for t in "${tests[@]}"; do
			echo "---- $t"
			t0=$SECONDS
			E2E_MODE=$mode E2E_HANDSHAKES=$handshakes timeout 600 bash "$t" 2>&1 |
				tee "$log"
			rc=${PIPESTATUS[0]}
			p=$(grep -c '^PASS: ' "$log"); f=$(grep -c '^FAIL: ' "$log")
			skipped=$((skipped + $(grep -c '^SKIP: ' "$log")))
			if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
				echo "FAIL: $t exited $rc"; f=1
			fi
			passed=$((passed + p)); failed=$((failed + f))
			echo "---- $t: $((SECONDS - t0)) s"
		done
		;;
	*) echo "unknown layer $layer"; exit 2 ;;
	esac
	echo "==== $layer: $((SECONDS - l0)) s"
done
# a SKIP line: a check this kernel cannot run (said why), neither passed nor failed
echo "$passed passed, $failed failed${skipped:+$([ "$skipped" -gt 0 ] && echo ", $skipped skipped")}"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
