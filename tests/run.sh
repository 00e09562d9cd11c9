#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Runs the test layers (default: unit bpf e2e) and ends with "N passed, M failed".
# unit and bpf are cmocka programs; e2e scripts print "PASS: name" / "FAIL: name".
set -u
cd "$(dirname "$0")/.."
layers=("${@:-unit bpf e2e}")
read -r -a layers <<<"${layers[*]}"
passed=0 failed=0
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
	case $layer in
	unit|bpf)
		build/tests/test_$layer 2>&1 | tee "$log"
		count_cmocka "$layer"
		;;
	e2e)
		for t in tests/e2e/test_*.sh; do
			echo "---- $t"
			timeout 600 bash "$t" 2>&1 | tee "$log"
			rc=${PIPESTATUS[0]}
			p=$(grep -c '^PASS: ' "$log"); f=$(grep -c '^FAIL: ' "$log")
			if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
				echo "FAIL: $t exited $rc"; f=1
			fi
			passed=$((passed + p)); failed=$((failed + f))
		done
		;;
	*) echo "unknown layer $layer"; exit 2 ;;
	esac
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
