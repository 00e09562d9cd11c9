#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# make bench-startup: how long the one-shot commands take, start to exit, for
# this build and for an earlier one side by side in one run (BASE, a commit:
# default the last commit before the daemons left tcpshift). Each command
# runs RUNS times (default 20) alternating between the two builds on one
# loaded instance of each; the medians, their ratio and the shared libraries
# each binary maps are printed as a Markdown table (BENCHMARKS.md); then each
# command's instructions under callgrind, which a busy machine does not change.
set -eu
cd "$(dirname "$0")/../.."
BASE=${BASE:-05c97dc}
RUNS=${RUNS:-20}
WT=$(mktemp -d /tmp/tcpshift-startup-XXXXXX)
NS=tsstart-$$
PINS=(/sys/fs/bpf/tcpshift-startup-$$-new /sys/fs/bpf/tcpshift-startup-$$-old)
cleanup() {
	for i in 0 1; do
		[ -e "${PINS[i]}" ] && "${BINS[i]:-build/tcpshift}" --pin-dir "${PINS[i]}" -n "$NS" \
			unload >/dev/null 2>&1
		rm -rf "${PINS[i]}"
	done
	ip netns del "$NS" 2>/dev/null
	git worktree remove --force "$WT" >/dev/null 2>&1 || rm -rf "$WT"
}
trap cleanup EXIT
git worktree add -q --detach "$WT" "$BASE"
make -C "$WT" -j2 build/tcpshift >/dev/null
make -j2 build/tcpshift >/dev/null
BINS=(build/tcpshift "$WT/build/tcpshift")
ip netns add "$NS"
ip -n "$NS" link add gw0 type veth peer name gw1
ip -n "$NS" link set gw0 up
ip -n "$NS" link set gw1 up
for i in 0 1; do
	t() { "${BINS[i]}" --pin-dir "${PINS[i]}" -n "$NS" "$@"; }
	t load --dev "gw$i" >/dev/null 2>&1
	t service add web 198.18.100.1:8008
	t backend add web v1 198.18.2.11:8008 --weight 50
	t backend add web v2 198.18.2.12:8008 --weight 50
done
python3 - "$RUNS" "$NS" "${BINS[@]}" "${PINS[@]}" "$BASE" <<'PY'
import statistics, subprocess, sys, time
runs, ns, new, old, pin_new, pin_old, base = int(sys.argv[1]), *sys.argv[2:]
cmds = [["--help"], ["weight", "web", "v1=60", "v2=40"], ["status"], ["stats"], ["flows"],
        ["service", "list"]]
# weight alternates between two settings: each run builds and switches a table
def swap(c, i):
    return ["weight", "web", "v1=40", "v2=60"] if c[0] == "weight" and i % 2 else c
def libs(b):
    out = subprocess.run(["ldd", b], capture_output=True, text=True).stdout
    return sum("=>" in l for l in out.splitlines())
print("| command | this build ms | %s ms | ratio |" % base)
print("|---|---|---|---|")
for c in cmds:
    t = {new: [], old: []}
    for i in range(runs):
        for b, pin in ((new, pin_new), (old, pin_old)):
            args = [b] + (c if c == ["--help"] else ["--pin-dir", pin, "-n", ns] + swap(c, i))
            a = time.perf_counter()
            subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t[b].append((time.perf_counter() - a) * 1000)
    mn, mo = statistics.median(t[new]), statistics.median(t[old])
    print("| `%s` | %.1f | %.1f | %.2f |" % (" ".join(c), mn, mo, mn / mo))
floor = []
for _ in range(runs):
    a = time.perf_counter()
    subprocess.run(["/bin/true"])
    floor.append((time.perf_counter() - a) * 1000)
print("| `/bin/true` (the cost of starting any process here) | %.1f | | |" %
      statistics.median(floor))
print()
print("shared libraries mapped: this build %d, %s %d" % (libs(new), base, libs(old)))
# instructions, which a busy machine does not change (valgrind --tool=callgrind)
def instructions(args):
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"] + args,
                       capture_output=True, text=True)
    for line in r.stderr.splitlines():
        if "refs:" in line:
            return int(line.split()[-1].replace(",", ""))
    return 0
print()
print("| command | this build, instructions | %s, instructions | ratio |" % base)
print("|---|---|---|---|")
for c in cmds:
    n = []
    for b, pin in ((new, pin_new), (old, pin_old)):
        n.append(instructions([b] + (c if c == ["--help"] else ["--pin-dir", pin, "-n", ns] +
                                                             swap(c, runs))))
    print("| `%s` | %.1f M | %.1f M | %.2f |" % (" ".join(c), n[0] / 1e6, n[1] / 1e6,
                                                n[0] / n[1] if n[1] else 0))
PY
