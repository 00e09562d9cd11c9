#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The journal of changes on a configuration of many services (2,000 here;
# test_scale measures 65,536), on a gateway without traffic:
#  - a change's entry holds what it changed: a weight grows journal.json by a
#    few KiB, not by the whole configuration twice;
#  - the whole document is kept once, beside the entries (base-N.json), and
#    written again every 64 changes: one base file after 70 changes, and the
#    journal a change's size times the changes;
#  - `undo N` from the base forward (N after it) and back (N before it) gives
#    the export of that moment byte for byte; `restore` after an unload (a
#    reboot) gives back the export byte for byte;
#  - a change killed after its commit but before its entry is in the next
#    change's entry, and restore brings it back;
#  - a journal of 0.3 (whole documents in each entry) is read as it is:
#    `history` shows its change, `undo` goes back to its document; changes after
#    it are journaled the new way, and `undo` of the old change and `restore`
#    work across the two.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

NSVC=2000

e2e_init journal
e2e_need jq
T=$E2E_TMP

e2e_bare_gateway d0
E2E_LOADED=1
must "tcpshift load" ts load --dev d0

jdir() {
	dirname "$(find "$TCPSHIFT_STATE_DIR" -name journal.json | head -n 1)"
}
last_seq() {
	ts -j history | jq '.[-1].seq'
}
# reboot_restore NAME: export, unload (a reboot's stand-in), load, restore,
# export again: true when the two exports are equal byte for byte; else
# RESTORE_WHY says how they differ
reboot_restore() {
	ts export >"$T/$1-before.json"
	must "unload ($1)" ts unload
	must "load ($1)" ts load --dev d0
	ts restore >"$T/$1-restore.out" 2>&1
	ts export >"$T/$1-after.json"
	cmp -s "$T/$1-before.json" "$T/$1-after.json" && return 0
	RESTORE_WHY="$(tail -n 2 "$T/$1-restore.out" | tr '\n' '|') $(diff "$T/$1-before.json" \
		"$T/$1-after.json" | head -n 4 | tr '\n' '|')"
	return 1
}

# gen_doc N: N services s0000.. at 198.18.100.0/22-ish VIPs, two backends each
gen_doc() {
	awk -v n="$1" 'BEGIN {
		printf "{\"tcpshift\":1,\"seed\":7,\"services\":["
		for (i = 0; i < n; i++) {
			printf "%s{\"name\":\"s%04d\",\"vip\":\"198.18.%d.%d:8008\",\"backends\":[", \
				i ? "," : "", i, 100 + int(i / 250), i % 250 + 1
			printf "{\"name\":\"v1\",\"addr\":\"198.19.%d.%d:9000\",\"weight\":30},", \
				int(i / 64), (i % 64) * 2 + 1
			printf "{\"name\":\"v2\",\"addr\":\"198.19.%d.%d:9000\",\"weight\":70}]}", \
				int(i / 64), (i % 64) * 2 + 2
		}
		printf "]}\n"
	}'
}
gen_doc $NSVC >"$T/doc.json"
must "import $NSVC services" ts import "$T/doc.json"
J=$(jdir)/journal.json

# ---- an entry is the change's size ------------------------------------------------------
size0=$(stat -c %s "$J")
must "weight" ts weight s1999 v1=40
size1=$(stat -c %s "$J")
got=$(ts -j history | jq -c '.[-1].changes | map([.service, .backend, .from, .to])')
grown=$((size1 - size0))
if [ "$grown" -lt 4096 ] && [ "$got" = '[["s1999","v1","30","40"]]' ]; then
	pass "journal: a weight's entry holds what it changed ($grown bytes at $NSVC services)"
else
	fail "journal: a weight's entry" "journal.json grew by $grown bytes; changes $got"
fi

# ---- the base, every 64 changes; undo N forward and back --------------------------------
seq0=$(last_seq)
size0=$(stat -c %s "$J")
for ((i = 1; i <= 70; i++)); do
	ts weight s0005 v1=$i >/dev/null || break
	[ "$i" -eq 20 ] && ts export >"$T/e20.json"
	[ "$i" -eq 69 ] && ts export >"$T/e69.json"
done
seq20=$((seq0 + 20))
seq69=$((seq0 + 69))
grown=$(($(stat -c %s "$J") - size0))
bases=$(cd "$(jdir)" && ls base-*.json 2>/dev/null)
base_seq=$(jq .base "$J")
if [ "$(wc -w <<<"$bases")" -eq 1 ] && [ "$bases" = "base-$base_seq.json" ] &&
	[ "$base_seq" -gt "$seq20" ] && [ "$base_seq" -lt "$seq69" ] &&
	[ "$(last_seq)" -eq $((seq0 + 70)) ] && [ "$grown" -lt $((70 * 2048)) ]; then
	pass "journal: one base document, written again after 64 changes (base-$base_seq.json);" \
		"70 weights grew journal.json by $grown bytes"
else
	fail "journal: the base" "files '$bases', base $base_seq, changes $seq20..$seq69," \
		"last $(last_seq), journal.json grew by $grown bytes for 70 weights"
fi
must "undo $((seq69 + 1))" ts undo $((seq69 + 1))
ts export >"$T/u69.json"
if cmp -s "$T/e69.json" "$T/u69.json"; then
	pass "undo N after the base: the export of that moment, byte for byte"
else
	fail "undo N after the base" "$(diff "$T/e69.json" "$T/u69.json" | head -n 4 | tr '\n' '|')"
fi
must "undo $((seq20 + 1))" ts undo $((seq20 + 1))
ts export >"$T/u20.json"
if cmp -s "$T/e20.json" "$T/u20.json"; then
	pass "undo N before the base: the export of that moment, byte for byte"
else
	fail "undo N before the base" "$(diff "$T/e20.json" "$T/u20.json" | head -n 4 | tr '\n' '|')"
fi

# ---- restore after a reboot ---------------------------------------------------------------
must "weight" ts weight s0000 v2=1
if reboot_restore reboot; then
	pass "restore after an unload: the export before it, byte for byte"
else
	fail "restore" "$RESTORE_WHY"
fi

# ---- a change killed between its commit and its entry --------------------------------------
# A weight killed (strace injects SIGKILL) on the first bpf() call after its
# switch to the new table: the change is made, no entry says so, the lock's
# "change in progress" flag stays. The next change's entry is then taken
# against the journal's last document, not only what it touched itself: it
# holds both, and restore brings back both.
e2e_need strace
strace -qq -o "$T/trace" -e trace=bpf "$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" \
	weight s0300 v1=31 >/dev/null 2>&1 || e2e_abort "weight under strace"
# the call after the last map write but two (the last two: the unlock's, which
# moves the generation and then clears the flag)
n=$(awk '/^bpf\(/ { b++; if ($0 ~ /BPF_MAP_(UPDATE|DELETE)_(ELEM|BATCH)/) { third = prev;
	prev = last; last = b } } END { print third + 1 }' "$T/trace")
seq_before=$(last_seq)
strace -qq -o /dev/null -e trace=bpf -e inject=bpf:signal=KILL:when="$n" "$TCPSHIFT" \
	--pin-dir "$E2E_PIN" -n "$NS_GW" weight s0300 v1=32 >/dev/null 2>&1
killed_v1=$(ts -j export | jq -r '.services[] | select(.name == "s0300") | .backends[] |
	select(.name == "v1") | .weight')
must "weight after the killed one" ts weight s0301 v1=5
seq_after=$(last_seq)
got=$(ts -j history | jq -c '.[-1].changes | map([.service, .backend, .from, .to])')
RESTORE_WHY=
if reboot_restore killed && [ "$killed_v1" = 32 ] && [ "$seq_after" -eq $((seq_before + 1)) ] &&
	[ "$got" = '[["s0300","v1","31","32"],["s0301","v1","30","5"]]' ]; then
	pass "journal: a change killed before its entry is in the next change's entry; restore" \
		"brings both back"
else
	fail "journal after a killed change" "killed at bpf() call $n: s0300 v1 $killed_v1;" \
		"last entry $got; restore: $RESTORE_WHY"
fi

# ---- a journal of 0.3 ---------------------------------------------------------------------
# its format: whole documents before and after in every entry, no base
instance=$(basename "$(jdir)")
export TCPSHIFT_STATE_DIR=$T/state-0.3
ts export >"$T/old0.json"
TCPSHIFT_STATE_DIR='' ts weight s0100 v1=5 v2=6 || e2e_abort "weight without a journal"
ts export >"$T/old1.json"
mkdir -p "$TCPSHIFT_STATE_DIR/$instance" || e2e_abort "mkdir"
OLDJ=$TCPSHIFT_STATE_DIR/$instance/journal.json
jq -n --arg pin "$E2E_PIN" --rawfile before "$T/old0.json" --rawfile after "$T/old1.json" \
	'{tcpshift_journal: 1, pin_dir: $pin, entries: [{seq: 7, time: 1700000000, uid: 0,
	user: "root", command: "tcpshift weight s0100 v1=5 v2=6", before: $before,
	after: $after}]}' >"$OLDJ" || e2e_abort "a journal of 0.3"
chmod 600 "$OLDJ"
got=$(ts -j history | jq -c 'map([.seq, (.changes | map([.service, .backend, .to]))])')
if [ "$got" = '[[7,[["s0100","v1","5"],["s0100","v2","6"]]]]' ]; then
	pass "journal of 0.3: history shows its change"
else
	fail "journal of 0.3: history" "$got"
fi
must "undo (0.3)" ts undo
ts export >"$T/old2.json"
must "weight after the undo" ts weight s0200 v1=9
ts export >"$T/old3.json"
got=$(ts -j history | jq -c 'map(.seq)')
must "undo 7 (0.3's entry, after new ones)" ts undo 7
ts export >"$T/old4.json"
must "undo 9 (the new way, before it the undo of 0.3's)" ts undo 9
ts export >"$T/old5.json"
if cmp -s "$T/old0.json" "$T/old2.json" && cmp -s "$T/old0.json" "$T/old4.json" &&
	cmp -s "$T/old2.json" "$T/old5.json" && [ "$got" = '[7,8,9]' ]; then
	pass "journal of 0.3: undo of its change, before and after changes journaled the new way"
else
	fail "journal of 0.3: undo" "history $got;" \
		"$(for f in old2 old4 old5; do cmp -s "$T/old0.json" "$T/$f.json" || echo -n "$f "; done)"
fi
if reboot_restore old; then
	pass "journal of 0.3: restore after changes journaled the new way"
else
	fail "journal of 0.3: restore" "$RESTORE_WHY"
fi

e2e_status
