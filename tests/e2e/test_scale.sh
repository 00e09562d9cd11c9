#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A gateway of a large cluster: 65,536 services of 4 backends each (262,144
# backends, the limits), configured by one `import`. The first service (IPv4)
# and the last (IPv6) have the test's two real backends, with weights: real
# TCP to both is split by weight; a weight change on the last one changes it
# alone (the exported configuration of every other service is the same) and
# its new connections follow at once. The whole configuration exports as it
# was imported (an import with nothing to do is test_export's). The agent's
# /metrics has the totals without per-backend series (bounded), and two
# services' series on request. A document one service
# past the limit is refused and changes nothing. The time of each command and
# the peak memory of import and export are printed (info lines) for the
# the benchmarks.
#
# Memory: what the kernel reports for the instance's pinned maps and its
# tables (bpftool's bytes_memlock) is within 2 % of the README's model, at 1
# service and at 65,536 (and so is the difference, the configured part). The
# weight change's "alone" is checked on the tables themselves too: every other
# service keeps the same table map with the same bytes (build/ts-tables).
#
# The journal of changes is off (TCPSHIFT_STATE_DIR empty) but for its own
# part at the end: a weight journaled costs what it changed (its time and
# memory against a weight without the journal, side by side), the journal's
# size after 1 and 101 changes, and `restore` after an unload brings back the
# export byte for byte. Before the unload, a load over the full instance keeps
# the configuration as it was.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

NSVC=65536
N=200		# connections per split check

TS_TABLES=$E2E_ROOT/build/ts-tables

e2e_init scale
e2e_need jq curl
e2e_need bpftool
[ -x "$TS_TABLES" ] || e2e_abort "$TS_TABLES not built: run make"
export TCPSHIFT_STATE_DIR=
e2e_topology
e2e_load

# gen_doc N: a document of N services: s00000 at VIP4 and the last at VIP6
# with v1, v2 (weights 30, 70) real and v3, v4 unreachable at weight 0; every
# other one at 198.18.100.X:PORT with four backends at 198.19.Y.Z:PORT.
gen_doc() {
	awk -v n="$1" -v vip4="$VIP4" -v vip6="$VIP6" -v v14="$V1_4" -v v24="$V2_4" \
		-v v16="$V1_6" -v v26="$V2_6" -v seed="$E2E_SEED" 'BEGIN {
		printf "{\"tcpshift\":1,\"seed\":%d,\"services\":[", seed
		for (i = 0; i < n; i++) {
			if (i) printf ","
			if (i == 0 || i == n - 1) {
				six = i == n - 1
				printf "{\"name\":\"s%05d\",\"vip\":\"%s\",\"backends\":[", i,
					six ? vip6 : vip4
				printf "{\"name\":\"v1\",\"addr\":\"%s\",\"weight\":30},", six ? v16 : v14
				printf "{\"name\":\"v2\",\"addr\":\"%s\",\"weight\":70},", six ? v26 : v24
				if (six)
					printf "{\"name\":\"v3\",\"addr\":\"[2001:2:3::3]:9\",\"weight\":0},{\"name\":\"v4\",\"addr\":\"[2001:2:3::4]:9\",\"weight\":0}]}"
				else
					printf "{\"name\":\"v3\",\"addr\":\"198.18.3.3:9\",\"weight\":0},{\"name\":\"v4\",\"addr\":\"198.18.3.4:9\",\"weight\":0}]}"
				continue
			}
			printf "{\"name\":\"s%05d\",\"vip\":\"198.18.100.%d:%d\",\"backends\":[", i,
				1 + i % 250, 10000 + int(i / 250)
			for (j = 0; j < 4; j++)
				printf "%s{\"name\":\"b%d\",\"addr\":\"198.19.%d.%d:%d\",\"weight\":%d}",
					j ? "," : "", j, int(i / 256), i % 256, 1000 + j, j + 1
			printf "]}"
		}
		printf "]}\n"
	}'
}

# timed WHAT ARGS...: run tcpshift ARGS on the gateway, its output in
# $E2E_TMP/out, and say how long it took and the most memory it held.
timed() {
	local what=$1 t0 t1 rss
	shift
	t0=$(date +%s%N)
	/usr/bin/time -f %M -o "$E2E_TMP/rss" "$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "$@" \
		>"$E2E_TMP/out" 2>"$E2E_TMP/err"
	TIMED_RC=$?
	t1=$(date +%s%N)
	rss=$(tail -n 1 "$E2E_TMP/rss")
	TIMED_MS=$(((t1 - t0) / 1000000))
	info "$what: $TIMED_MS ms, peak RSS $((rss / 1024)) MiB (exit $TIMED_RC)"
}

tsp() {
	"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "$@"
}

# ---- the memory model (README, "Memory") ----------------------------------------
# model_bytes SERVICES BACKENDS FLOWS TABLE_BYTES: fixed, per service (its
# hash entries; its table given in TABLE_BYTES), per backend (its
# backend_addrs entry, and its counters on every possible CPU, made in chunks
# of 1,024 ids: this test's ids are dense), per flow of --max-flows
NCPU=$(awk -F, '{ n = 0; for (i = 1; i <= NF; i++) { split($i, r, "-");
	n += (r[2] == "" ? 1 : r[2] - r[1] + 1) } print n }' /sys/devices/system/cpu/possible)
model_bytes() {
	local chunks=$((($2 + 1023) / 1024))
	echo $((42000000 + $1 * 256 + $4 + $2 * 104 + chunks * (1024 * (8 + 232 * NCPU) + 312) +
		$3 * 432))
}
# The kernel's header of an array map (struct bpf_array: 312 bytes on Linux
# 6.18), as it reports it: a map of one 8-byte entry less that entry.
ARRAY_HEADER=$(bpftool map create "$E2E_PIN-probe" type array key 4 value 8 entries 1 \
	name ts_probe >/dev/null 2>&1 && bpftool map show pinned "$E2E_PIN-probe" -j |
	jq '.bytes_memlock - 8')
rm -f "$E2E_PIN-probe"
[ -n "$ARRAY_HEADER" ] && [ "$ARRAY_HEADER" -gt 0 ] ||
	e2e_abort "cannot measure an array map's header (bpftool map create)"
# table_bytes M ROOM: a table of two halves of M + 1 + ROOM entries of 8 bytes,
# 64 entries to a 512-byte element (TS_TABLE_CHUNK), and the map's header (not
# mmap-able: no page rounding in what is reported)
table_bytes() {
	echo $((ARRAY_HEADER + (2 * ($1 + 1 + $2) + 63) / 64 * 512))
}
# kernel_bytes: what the kernel reports (bytes_memlock) for every pinned map,
# the chunks of counters, and the tables: all of this test's have 4 backends
# (M 509, room 5), so they are counted, and 16 spread over the services are
# read: they must all be of one size (KERNEL_TABLE)
kernel_bytes() {
	local pinned chunks ids n tb=0 id b
	pinned=$(for f in "$E2E_PIN"/*; do bpftool map show pinned "$f" -j 2>/dev/null; echo; done |
		jq -s 'map(.bytes_memlock) | add')
	# the values are the chunks' map ids, as little-endian bytes
	chunks=$(bpftool map dump pinned "$E2E_PIN/backend_stats" -j |
		jq -r '.[].value | map(ltrimstr("0x")) | reverse | join("")' |
		while read -r id; do bpftool map show id $((16#$id)) -j; echo; done |
		jq -s 'map(.bytes_memlock) | add // 0')
	"$TS_TABLES" "$E2E_PIN" >"$E2E_TMP/tables" || return 1
	n=$(wc -l <"$E2E_TMP/tables")
	ids=$(awk -v n="$n" 'n <= 16 || NR % int(n / 16) == 1 || NR == n { print $5 }' \
		"$E2E_TMP/tables")
	for id in $ids; do
		b=$(bpftool map show id "$id" -j | jq .bytes_memlock)
		if [ "$tb" -ne 0 ] && [ "$b" -ne "$tb" ]; then
			echo "tables of $tb and $b bytes" >&2
			return 1
		fi
		tb=$b
	done
	echo "$tb" >"$E2E_TMP/table_bytes"
	echo $((pinned + chunks + n * tb))
}
FLOWS=$(bpftool map show pinned "$E2E_PIN/flows" -j | jq .max_entries)
TABLE=$(table_bytes 509 5)
# mem_check WHAT SERVICES BACKENDS: kernel against model, within 2 %
mem_check() {
	local k m tb
	k=$(kernel_bytes) || { fail "memory at $1" "cannot read the maps"; return; }
	tb=$(cat "$E2E_TMP/table_bytes")
	m=$(model_bytes "$2" "$3" "$FLOWS" $(($2 * TABLE)))
	info "memory at $1: kernel $k bytes, model $m ($2 services, $3 backends, $FLOWS flows," \
		"$NCPU CPUs; a table $tb bytes, model $TABLE)"
	if [ "$tb" -eq "$TABLE" ] && [ $((k * 100)) -ge $((m * 98)) ] &&
		[ $((k * 100)) -le $((m * 102)) ]; then
		pass "memory at $1 within 2 % of the model ($((k / 1048576)) MiB, model" \
			"$((m / 1048576)) MiB)"
	else
		fail "memory at $1" "kernel $k bytes (a table $tb), model $m (a table $TABLE)"
	fi
	MEM_K=$k MEM_M=$m
}

# one service, the first of the document
must "service s00000" tsp service add s00000 "$VIP4"
must "backend v1" tsp backend add s00000 v1 "$V1_4" --weight 30
must "backend v2" tsp backend add s00000 v2 "$V2_4" --weight 70
must "backend v3" tsp backend add s00000 v3 198.18.3.3:9 --weight 0
must "backend v4" tsp backend add s00000 v4 198.18.3.4:9 --weight 0
mem_check "1 service" 1 4
mem1_k=$MEM_K mem1_m=$MEM_M

gen_doc "$NSVC" >"$E2E_TMP/doc.json"
info "document of $NSVC services: $(($(stat -c %s "$E2E_TMP/doc.json") / 1024)) KiB"

timed "import of $NSVC services" import "$E2E_TMP/doc.json"
if [ "$TIMED_RC" -eq 0 ]; then
	pass "import of $NSVC services x 4 backends ($TIMED_MS ms)"
else
	e2e_abort "import of $NSVC services: $(head -n 2 "$E2E_TMP/err")"
fi

mem_check "$NSVC services" "$NSVC" $((NSVC * 4))
# the configured part: 65,535 services and 262,140 backends more
if [ $(((MEM_K - mem1_k) * 100)) -ge $(((MEM_M - mem1_m) * 98)) ] &&
	[ $(((MEM_K - mem1_k) * 100)) -le $(((MEM_M - mem1_m) * 102)) ]; then
	pass "memory of the other $((NSVC - 1)) services within 2 % of the model" \
		"($(((MEM_K - mem1_k) / 1048576)) MiB, model $(((MEM_M - mem1_m) / 1048576)) MiB)"
else
	fail "memory of $((NSVC - 1)) services" "kernel $((MEM_K - mem1_k)), model" \
		"$((MEM_M - mem1_m))"
fi

timed "export" export
cp "$E2E_TMP/out" "$E2E_TMP/export1.json"
if [ "$TIMED_RC" -eq 0 ] &&
	[ "$(jq -S -c . "$E2E_TMP/doc.json")" = "$(jq -S -c . "$E2E_TMP/export1.json")" ]; then
	pass "export gives the imported document back ($TIMED_MS ms)"
else
	fail "export round trip" "exit $TIMED_RC, $(head -c 200 "$E2E_TMP/export1.json")"
fi

for cmd in status stats flows "service list"; do
	# shellcheck disable=SC2086 # cmd: a command and its verb
	timed "$cmd" -j $cmd
	if [ "$TIMED_RC" -eq 0 ] && jq -e . "$E2E_TMP/out" >/dev/null 2>&1; then
		pass "$cmd at $NSVC services ($TIMED_MS ms)"
	else
		fail "$cmd at $NSVC services" "exit $TIMED_RC: $(head -n 2 "$E2E_TMP/err")"
	fi
done

# The agent's metrics at this size: the totals unasked, one service's series on
# request; the size and time of each scrape and the agent's peak memory printed.
METRICS=127.0.0.1:$((20000 + $$ % 20000))
nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent --metrics "$METRICS" \
	2>"$E2E_TMP/agent.log" &
AGENT_PID=$!
e2e_track_pid "$AGENT_PID"
# A change beside the agent: its reads of the whole configuration (at its
# start, and again after each change) take no lock, so that a weight does not
# wait for them (it waited for the whole read, seconds at this size).
sleep 0.5
timed "weight beside the agent reading the configuration at its start" weight s65535 v1=31
start_ms=$TIMED_MS start_rc=$TIMED_RC
sleep 0.5
timed "weight beside the agent reading the configuration after a change" weight s65535 v1=30
if [ "$start_rc" -eq 0 ] && [ "$TIMED_RC" -eq 0 ] && [ "$start_ms" -lt 1000 ] &&
	[ "$TIMED_MS" -lt 1000 ]; then
	pass "weight beside the agent reading $NSVC services: not held up ($start_ms ms at its" \
		"start, $TIMED_MS ms after a change)"
else
	fail "weight beside the agent" "$start_ms ms (exit $start_rc), $TIMED_MS ms (exit" \
		"$TIMED_RC): $(head -n 1 "$E2E_TMP/err")"
fi
# scrape QUERY: the body in $E2E_TMP/scrape; SCRAPE: "HTTP-status seconds bytes"
scrape() {
	SCRAPE=$(in_ns "$NS_GW" curl -s --max-time 60 -o "$E2E_TMP/scrape" \
		-w '%{http_code} %{time_total} %{size_download}' "http://$METRICS/metrics$1")
}
for ((i = 0; i < 100; i++)); do
	scrape "" && [ "${SCRAPE%% *}" = 200 ] && break
	sleep 0.1
done
# the totals are counted in batches, where one bpf() call a key (262,144
# backends and 65,536 services: more than 327,680) took seconds; the count
# also has the agent's own loop's calls, reading the configuration again after
# the weights above (some 13,000)
strace -f -qq -c -e trace=bpf -o "$E2E_TMP/scrape.strace" -p "$AGENT_PID" 2>/dev/null &
STRACE_PID=$!
e2e_track_pid "$STRACE_PID"
sleep 1
scrape ""
kill -INT "$STRACE_PID" 2>/dev/null
wait "$STRACE_PID" 2>/dev/null
read -r code secs bytes <<<"$SCRAPE"
calls=$(awk '$NF == "bpf" { print $4 }' "$E2E_TMP/scrape.strace")
info "agent scrape of /metrics: $secs s, $bytes bytes, HTTP $code, ${calls:-?} bpf() calls"
if [ -n "$calls" ] && [ "$calls" -lt 100000 ]; then
	pass "agent scrape of the totals at $NSVC services: $calls bpf() calls"
else
	fail "agent scrape's bpf() calls" "${calls:-none counted}: $(head -n 5 "$E2E_TMP/scrape.strace")"
fi
scrape ""
read -r code secs bytes <<<"$SCRAPE"
info "agent scrape of /metrics (no strace): $secs s, $bytes bytes, HTTP $code"
if [ "$code" = 200 ] && [ "$bytes" -lt 65536 ] &&
	grep -qx "tcpshift_services $NSVC" "$E2E_TMP/scrape" &&
	grep -qx "tcpshift_backends $((NSVC * 4))" "$E2E_TMP/scrape" &&
	grep -qx "tcpshift_metrics_backends_omitted $((NSVC * 4))" "$E2E_TMP/scrape"; then
	pass "agent metrics at $NSVC services: the totals, $bytes bytes in $secs s"
else
	fail "agent metrics at $NSVC services are bounded" "HTTP $code, $bytes bytes:" \
		"$(grep -E '^tcpshift_(services|backends|metrics_backends_omitted) ' "$E2E_TMP/scrape")"
fi
scrape "?service=s65535&service=s00000"
read -r code secs bytes <<<"$SCRAPE"
info "agent scrape of /metrics?service=s65535&service=s00000: $secs s, $bytes bytes, HTTP $code"
if [ "$code" = 200 ] && [ "$(grep -c '^tcpshift_backend_weight{' "$E2E_TMP/scrape")" -eq 8 ] &&
	grep -q '^tcpshift_backend_weight{service="s65535",backend="v2",.*} 70$' "$E2E_TMP/scrape"
then
	pass "agent metrics at $NSVC services: two services' 8 backends on request ($secs s)"
else
	fail "agent metrics of two services on request" "HTTP $code," \
		"$(grep '^tcpshift_backend_weight' "$E2E_TMP/scrape" | head -n 3)"
fi
info "agent peak RSS after the scrapes: $(awk '/^VmHWM/ { print int($2 / 1024) }' \
	"/proc/$AGENT_PID/status") MiB"
kill "$AGENT_PID"
wait "$AGENT_PID" 2>/dev/null

# split VIP WANT_V1_SHARE WHAT
split() {
	local out v1
	out=$(client_count "$1" "$N")
	v1=$(count_of "$out" v1)
	if [ "$(count_of "$out" error)" -eq 0 ] && [ "$(count_total "$out")" -eq "$N" ] &&
		bound=$(within_sigmas "$v1" "$N" "$2" 4); then
		pass "$3: $v1 of $N on v1 ($bound)"
	else
		fail "$3" "$(echo $out); $bound"
	fi
}
split "$VIP4" 0.3 "first service (IPv4): new connections split 30/70"
split "$VIP6" 0.3 "last service (IPv6): new connections split 30/70"

"$TS_TABLES" "$E2E_PIN" >"$E2E_TMP/tables1" || fail "the tables before the weight change" ""
timed "weight on the last service" weight s65535 v1=0 v2=100
if [ "$TIMED_RC" -eq 0 ]; then
	pass "weight s65535 v1=0 v2=100 at $NSVC services ($TIMED_MS ms, process start included)"
else
	fail "weight at $NSVC services" "$(head -n 2 "$E2E_TMP/err")"
fi
out=$(client_count "$VIP6" 50)
if [ "$(count_of "$out" v2)" -eq 50 ]; then
	pass "last service: every new connection follows the new weights"
else
	fail "last service after the weight change" "$(echo $out)"
fi
tsp export >"$E2E_TMP/export2.json"
others() {
	jq -S -c '.services |= map(select(.name != "s65535"))' "$1"
}
if [ "$(others "$E2E_TMP/export1.json")" = "$(others "$E2E_TMP/export2.json")" ] &&
	[ "$(jq -c '.services[-1].backends | map(.weight)' "$E2E_TMP/export2.json")" = "[0,100,0,0]" ]; then
	pass "the weight change changed the last service alone"
else
	fail "weight change" "other services differ, or s65535 is $(jq -c '.services[-1]' \
		"$E2E_TMP/export2.json")"
fi
"$TS_TABLES" "$E2E_PIN" >"$E2E_TMP/tables2" || fail "the tables after the weight change" ""
if [ "$(grep -v '^s65535 ' "$E2E_TMP/tables1" | sha1sum)" = \
	"$(grep -v '^s65535 ' "$E2E_TMP/tables2" | sha1sum)" ] &&
	[ "$(wc -l <"$E2E_TMP/tables2")" -eq "$NSVC" ] &&
	[ "$(grep '^s65535 ' "$E2E_TMP/tables1")" != "$(grep '^s65535 ' "$E2E_TMP/tables2")" ]
then
	pass "the weight change rewrote the last service's table alone: the other $((NSVC - 1))" \
		"are the same maps, byte for byte"
else
	fail "tables after the weight change" "$(diff "$E2E_TMP/tables1" "$E2E_TMP/tables2" |
		head -n 4)"
fi
split "$VIP4" 0.3 "first service after the change: still 30/70"

# at the limit: one service goes, another comes in its place
timed "service del (one of $NSVC)" service del s00001
del_ms=$TIMED_MS
timed "service add (at the limit again)" service add s00001 198.18.100.2:10000
others2() {
	jq -S -c '.services |= map(select(.name != "s00001"))' "$1"
}
if [ "$TIMED_RC" -eq 0 ] &&
	[ "$(tsp export | others2 /dev/stdin)" = "$(others2 "$E2E_TMP/export2.json")" ]; then
	pass "service del and add at $NSVC services, the others untouched (${del_ms} ms, $TIMED_MS ms)"
else
	fail "service del/add" "$(head -n 2 "$E2E_TMP/err")"
fi
tsp export >"$E2E_TMP/export2.json"

# one service past the limit: refused, nothing changed
gen_doc $((NSVC + 1)) >"$E2E_TMP/over.json"
tsp import "$E2E_TMP/over.json" >/dev/null 2>"$E2E_TMP/err"
rc=$?
if [ "$rc" -eq 2 ] && grep -q "at most $NSVC" "$E2E_TMP/err" &&
	[ "$(tsp export)" = "$(cat "$E2E_TMP/export2.json")" ]; then
	pass "a document of $((NSVC + 1)) services is refused, nothing changed"
else
	fail "$((NSVC + 1)) services" "exit $rc: $(head -n 1 "$E2E_TMP/err")"
fi

# ---- the journal of changes at this size ----------------------------------------
JS=$E2E_TMP/state
export TCPSHIFT_STATE_DIR=$JS
timed "the first change journaled (its base read from the configuration)" weight s65535 v1=1
J=$(find "$JS" -name journal.json)
info "journal after 1 change: journal.json $(stat -c %s "$J") bytes, base" \
	"$(stat -c %s "$(dirname "$J")"/base-*.json) bytes"
# side by side: journal off, on, three times each
off=() on=() rss_on=0
for ((i = 0; i < 3; i++)); do
	TCPSHIFT_STATE_DIR='' timed "weight, journal off" weight s65535 v1=$((i + 10))
	off+=("$TIMED_MS")
	timed "weight, journal on" weight s65535 v1=$((i + 20))
	on+=("$TIMED_MS")
	rss=$(($(tail -n 1 "$E2E_TMP/rss") / 1024))
	[ "$rss" -gt "$rss_on" ] && rss_on=$rss
done
median() {
	printf '%s\n' "$@" | sort -n | sed -n 2p
}
info "weight at $NSVC services: journal off $(median "${off[@]}") ms, on $(median "${on[@]}") ms" \
	"(medians of 3), peak RSS on $rss_on MiB"
max_ms=0
for ((i = 0; i < 97; i++)); do
	t0=$(date +%s%N)
	tsp weight s65535 v1=$((i + 100)) >/dev/null 2>&1
	t1=$((($(date +%s%N) - t0) / 1000000))
	[ "$t1" -gt "$max_ms" ] && max_ms=$t1
done
nbase=$(find "$JS" -name 'base-*.json' | wc -l)
info "journal after 101 changes: journal.json $(stat -c %s "$J") bytes, $nbase base of" \
	"$(stat -c %s "$(dirname "$J")"/base-*.json | head -n 1) bytes; the slowest weight" \
	"$max_ms ms (a base written again)"
if [ "$(median "${on[@]}")" -lt 1000 ] && [ "$rss_on" -le 50 ] && [ "$nbase" -eq 1 ] &&
	[ "$(stat -c %s "$J")" -lt 1048576 ] && [ "$(tsp -j history | jq length)" -eq 100 ]; then
	pass "journal at $NSVC services: a weight in $(median "${on[@]}") ms and $rss_on MiB" \
		"(off: $(median "${off[@]}") ms); 100 entries in $(stat -c %s "$J") bytes"
else
	fail "journal at $NSVC services" "weight $(median "${on[@]}") ms, $rss_on MiB; $nbase" \
		"bases, journal.json $(stat -c %s "$J") bytes, $(tsp -j history | jq length) entries"
fi
# a load over the full instance (an upgrade's, a device added): every index
# of tables holds a table, and the configuration stays as it was
tsp export >"$E2E_TMP/before-load.json"
timed "load again over $NSVC services" load "${E2E_DEV_ARGS[@]}" --seed "$E2E_SEED"
tsp export >"$E2E_TMP/before-reboot.json"
if [ "$TIMED_RC" -eq 0 ] && cmp -s "$E2E_TMP/before-load.json" "$E2E_TMP/before-reboot.json"
then
	pass "load again at $NSVC services: the configuration as it was ($TIMED_MS ms)"
else
	fail "load again at $NSVC services" "exit $TIMED_RC: $(head -n 2 "$E2E_TMP/err")"
fi
must "unload (a reboot's stand-in)" tsp unload
e2e_load
timed "restore of $NSVC services after an unload" restore
tsp export >"$E2E_TMP/after-reboot.json"
if [ "$TIMED_RC" -eq 0 ] && cmp -s "$E2E_TMP/before-reboot.json" "$E2E_TMP/after-reboot.json"
then
	pass "restore at $NSVC services after an unload: the export before it ($TIMED_MS ms)"
else
	fail "restore at $NSVC services" "exit $TIMED_RC: $(head -n 2 "$E2E_TMP/err")"
fi
e2e_status
