#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make microbench's per-packet section, small (--quick), so that the benchmark
# cannot rot unseen: every case checks that its runs did what its name says
# (the packets counted for the backend, the flows pinned, nothing for a packet
# to no service), and a case that did not fails the run (exit 1, the case on
# stderr). Its figures are written all the same; speed is never asserted. The
# microbench's pin directories are its own (removed at its exit); its output
# directory is this test's.

cd "$(dirname "$0")/../.." || exit 1
# shellcheck source=tests/e2e/lib.sh
. tests/e2e/lib.sh

E2E_NAME=microbench
[ "$(id -u)" -eq 0 ] || { fail "microbench: setup" "needs root"; exit 1; }
for b in build/tcpshift build/bench/microbench; do
	[ -x "$b" ] || { fail "microbench: setup" "$b missing (make all build/bench/microbench)"; exit 1; }
done
OUT=$(mktemp -d "${TMPDIR:-/tmp}/tsmicro-test-$$.XXXXXX") || exit 1
trap 'rm -rf -- "$OUT"' EXIT

if timeout 300 build/bench/microbench --quick --out "$OUT" packets >"$OUT/log" 2>&1; then
	pass "microbench --quick packets: every case's check passed"
else
	fail "microbench --quick packets" "$(grep -E 'failed its check|microbench:' "$OUT/log" | head -n 5)"
fi
cases=$(grep -c '^| .* | ok |$' "$OUT/microbench.md" 2>/dev/null)
failed=$(grep -c 'FAILED' "$OUT/microbench.md" 2>/dev/null)
if [ "${cases:-0}" -ge 15 ] && [ "${failed:-1}" -eq 0 ]; then
	pass "microbench.md: $cases cases checked ok, none FAILED"
else
	fail "microbench.md" "$cases cases ok, $failed FAILED"
fi
