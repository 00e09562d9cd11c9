#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make bench-scale: what the number of services costs, side by side in one run,
# at N = 1, 1,000, 10,000 and 65,536 services of two backends each, for
# tcpshift (tc and xdp), iptables DNAT in kube-proxy's style and nftables
# with a verdict map.
#
# Per size and method, on make bench-pps's namespaces (tools/bench/pps.sh,
# sourced: generator -> gateway -> two backends):
#   load     the time to put the whole configuration in place: tcpshift
#            import of the document, iptables-restore of the nat table, nft -f
#            of the ruleset (tcpshift's load, the programs, is not counted)
#   weight   the time to change one service's weights (the middle one), the
#            median of WEIGHT_RUNS changes: tcpshift weight; iptables-restore
#            --noflush of that service's chain, as kube-proxy's partial sync
#            writes it; nft -f flushing and refilling that service's chain
#   syn, established
#            the gateway's ns per packet with real packets (tools/bench/pps.c
#            --vips N: each flow's VIP picked by a hash over all N), one core,
#            minus the same size's baseline (the gateway's device drops every
#            packet at XDP), as in make bench-pps
#   programs in the gateway
#            in the same rounds, the run time of the BPF programs attached to
#            the gateway's devices (tcpshift's; the other methods have none),
#            from the kernel's BPF run-time statistics (pps --prog-stats), per
#            packet delivered, and their runs per packet: tcpshift's own cost,
#            without the noise of the CPU time. The statistics are on in every
#            round, the baseline's too, so that their clock reads in the
#            generator's and the sinks' programs cancel out; tcpshift's
#            figures keep those of its own programs (two per run)
# and for tcpshift alone, in the kernel with BPF_PROG_TEST_RUN on the real
# object (tools/bench/microbench.c's scale section): the tc and XDP programs'
# ns per SYN and per established ACK with N services configured, one service's
# packets, then packets each to another service (the spread cases).
#
# Services: VIP i is 198.19.0.0 + i, port 80; its backends 198.18.2.{2,3}
# and 198.18.3.{2,3}, port 1024 + i % 32768 (a backend address:port serves one
# service in tcpshift), weights 1:1.
#
# Sizes above this build's limit (TS_MAX_SERVICES of include/tcpshift.h) are
# skipped with a line saying so. Knobs: SIZES="1 1000 10000 65536"
# METHODS="iptables nftables tcpshift tcpshift-xdp" SCALE_SECONDS=1
# SCALE_WARMUP=0.3 SCALE_FLOWS=4096 SCALE_PHASES=established,syn (the order of
# the measured phases: syn,established gives every backend a packet before the
# established phase, as on a gateway that has run a while) WEIGHT_RUNS=5 CPU=0
# REPEAT=200000 RUNS=5 STEP_TIMEOUT=180 (seconds, any one load, import or pps
# round) INSTALL=1 (0: never apt-get) OUT=build/bench SCALE_CHECK=0 (1: check
# nftables' path with real TCP through build/ts-echo servers, check_nft below).
# Output: OUT/scale.md, OUT/scale-raw.tsv, OUT/scale-packets.png,
# OUT/scale-control.png.
# Needs root. Only 198.18.0.0/15; namespaces tspps-<pid>-*, pin directory
# /sys/fs/bpf/tcpshift-pps-<pid>, the check's servers, files in a temporary
# directory: the trap removes them.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
METHODS=${METHODS:-"iptables nftables tcpshift tcpshift-xdp"}	# before pps.sh sets its own
PPS_SOURCE_ONLY=1
# shellcheck source=tools/bench/pps.sh
. "$ROOT/tools/bench/pps.sh"
MICROBENCH=${MICROBENCH:-$ROOT/build/bench/microbench}
SIZES=${SIZES:-"1 1000 10000 65536"}
SECONDS_PER_PHASE=${SCALE_SECONDS:-1}
PHASE_ORDER=${SCALE_PHASES:-established,syn}
WARMUP=${SCALE_WARMUP:-0.3}
FLOWS=${SCALE_FLOWS:-4096}
WEIGHT_RUNS=${WEIGHT_RUNS:-5}
REPEAT=${REPEAT:-200000}
RUNS=${RUNS:-5}
STEP_TIMEOUT=${STEP_TIMEOUT:-180}
VIP_BASE=198.19.0.0
SPREAD_FLOWS=4096	# microbench's spread cases (SPREAD_FLOWS of tools/bench/microbench.c)

die() {
	echo "bench-scale: $*" >&2
	exit 1
}

# ---- the configuration of N services, in each method's own language ------------------------

vip_of() { echo "198.19.$(($1 >> 8)).$(($1 & 255))"; }
# backend_of I B: backend B (0, 1) of service I
backend_of() { echo "198.18.$((2 + $2)).$((2 + $1 / 32768)):$((1024 + $1 % 32768))"; }

# The generators are awk: 65,536 services in a second, not a shell loop's minute.
gen_tcpshift() {	# N: the import document
	awk -v n="$1" 'BEGIN {
		printf "{\"tcpshift\": 1, \"seed\": 1, \"services\": ["
		for (i = 0; i < n; i++) {
			a = 2 + int(i / 32768); p = 1024 + i % 32768
			printf "%s{\"name\": \"s%d\", \"vip\": \"198.19.%d.%d:80\", \"backends\": [" \
				"{\"name\": \"a\", \"addr\": \"198.18.2.%d:%d\", \"weight\": 1}, " \
				"{\"name\": \"b\", \"addr\": \"198.18.3.%d:%d\", \"weight\": 1}]}\n",
				i ? ", " : "", i, int(i / 256), i % 256, a, p, a, p
		}
		print "]}"
	}'
}

# kube-proxy's iptables mode: one rule per service in TS-SERVICES, jumping to the
# service's chain, which picks an endpoint chain with -m statistic; the
# endpoint chain DNATs.
ipt_svc_chain() {	# I PROBABILITY: the service chain's lines (restore syntax)
	printf -- ':TS-SVC-%d - [0:0]\n' "$1"
	printf -- '-A TS-SVC-%d -m statistic --mode random --probability %s -j TS-SEP-%d-a\n' \
		"$1" "$2" "$1"
	printf -- '-A TS-SVC-%d -j TS-SEP-%d-b\n' "$1" "$1"
}

gen_iptables() {	# N: the nat table for iptables-restore
	awk -v n="$1" 'BEGIN {
		print "*nat"
		print ":PREROUTING ACCEPT [0:0]"
		print ":TS-SERVICES - [0:0]"
		for (i = 0; i < n; i++)
			printf ":TS-SVC-%d - [0:0]\n:TS-SEP-%d-a - [0:0]\n:TS-SEP-%d-b - [0:0]\n", i, i, i
		print "-A PREROUTING -j TS-SERVICES"
		for (i = 0; i < n; i++) {
			a = 2 + int(i / 32768); p = 1024 + i % 32768
			printf "-A TS-SERVICES -d 198.19.%d.%d/32 -p tcp --dport 80 -j TS-SVC-%d\n",
				int(i / 256), i % 256, i
			printf "-A TS-SVC-%d -m statistic --mode random --probability 0.5 -j TS-SEP-%d-a\n", i, i
			printf "-A TS-SVC-%d -j TS-SEP-%d-b\n", i, i
			printf "-A TS-SEP-%d-a -p tcp -j DNAT --to-destination 198.18.2.%d:%d\n", i, a, p
			printf "-A TS-SEP-%d-b -p tcp -j DNAT --to-destination 198.18.3.%d:%d\n", i, a, p
		}
		print "COMMIT"
	}'
}

# kube-proxy's nftables mode: `ip daddr . tcp dport vmap @services` jumps to the
# service's chain, which picks an endpoint chain by `numgen random mod 100`;
# the endpoint chain DNATs. One departure from kube-proxy: the service chain
# picks with a rule per endpoint (`numgen random mod 100 < SPLIT goto`, then
# `goto`), where kube-proxy writes an anonymous verdict map (`numgen random mod
# 100 vmap { 0-49 : goto A, 50-99 : goto B }`). nf_tables (kernel 6.18) walks
# the whole transaction for every anonymous set a rule binds
# (__nft_set_trans_bind) and scans every set of the table to name each new one
# (__map%d), so one `nft -f` of N anonymous sets costs O(N^2), in whatever
# order the chains are declared: 37 s at 10,000 services on this machine,
# about half an hour at 65,536 by the same square. Without them the load is
# linear (10 s at 65,536 on a quiet machine); the packet keeps the verdict-map
# lookup, the jump to the service's chain and the goto to the endpoint's, with
# one comparison where kube-proxy looks a number up in a two-element map; a
# weight change is still the flush and refill of one service's chain, as
# kube-proxy's. BENCHMARKS.md, "Why `nft -f` took 730 s", has the figures.

# nft_svc_chain I SPLIT: service I's chain in nft -f's block syntax, SPLIT of
# 100 to endpoint a (0 and 100: that endpoint alone, as kube-proxy leaves out
# an endpoint of no weight); the whole ruleset (gen_nft, I = @) and the weight
# change both write it here
nft_svc_chain() {
	local i=$1 split=$2

	printf 'chain svc-%s { ' "$i"
	if [ "$split" -ge 100 ]; then
		printf 'goto sep-%s-a; }\n' "$i"
	elif [ "$split" -le 0 ]; then
		printf 'goto sep-%s-b; }\n' "$i"
	else
		printf 'numgen random mod 100 < %d goto sep-%s-a; goto sep-%s-b; }\n' \
			"$split" "$i" "$i"
	fi
}

nft_split() {	# I SPLIT: the weight change, service I's chain flushed and refilled
	printf 'flush chain ip tsscale svc-%s\ntable ip tsscale {\n\t%s\n}\n' "$1" \
		"$(nft_svc_chain "$1" "$2")"
}

gen_nft() {	# N: the ruleset for nft -f
	awk -v n="$1" -v svc="$(nft_svc_chain @ 50)" 'BEGIN {
		print "table ip tsscale {"
		print "\tmap services { type ipv4_addr . inet_service : verdict; }"
		print "\tchain pre { type nat hook prerouting priority dstnat; policy accept; " \
			"ip daddr . tcp dport vmap @services; }"
		print "\tchain post { type nat hook postrouting priority srcnat; policy accept; }"
		for (i = 0; i < n; i++) {
			a = 2 + int(i / 32768); p = 1024 + i % 32768
			printf "\tchain sep-%d-a { meta l4proto tcp dnat to 198.18.2.%d:%d; }\n", i, a, p
			printf "\tchain sep-%d-b { meta l4proto tcp dnat to 198.18.3.%d:%d; }\n", i, a, p
			c = svc; gsub(/@/, i, c); print "\t" c
		}
		print "}"
		if (n) {
			printf "add element ip tsscale services {"
			for (i = 0; i < n; i++)
				printf "%s 198.19.%d.%d . 80 : goto svc-%d", i ? "," : "", int(i / 256), i % 256, i
			print " }"
		}
	}'
}

# ---- measuring ---------------------------------------------------------------------------------

now_ns() { date +%s%N; }

# timed VAR CMD...: run CMD (stdin kept) within STEP_TIMEOUT; VAR = its wall ms; status of CMD
timed() {
	local __var=$1 t0 rc
	shift
	t0=$(now_ns)
	timeout "$STEP_TIMEOUT" "$@" >/dev/null 2>>"$TMP/step.err"
	rc=$?
	printf -v "$__var" '%s' "$(awk -v a="$t0" -v b="$(now_ns)" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')"
	return $rc
}

median_of() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END {
	if (!NR) print "NA"; else printf "%.3f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }	# SIZE METHOD METRIC VALUE

# configure METHOD N: the whole configuration, timed; then one weight change
# WEIGHT_RUNS times. Prints pps's extra arguments.
configure() {
	local m=$1 n=$2 ms i mid=$(($2 / 2)) times=() split

	case $m in
	iptables)
		gen_iptables "$n" >"$TMP/conf"
		timed ms nsenter --net="/run/netns/$NS_GW" iptables-legacy-restore <"$TMP/conf" ||
			{ log "$m" "iptables-restore of $n services failed or took over ${STEP_TIMEOUT} s"; return 1; }
		rec "$n" "$m" load_ms "$ms"
		for ((i = 0; i < WEIGHT_RUNS; i++)); do
			split=0.$((30 + i * 10))
			{ echo '*nat'; ipt_svc_chain "$mid" "$split"; echo COMMIT; } >"$TMP/change"
			timed ms nsenter --net="/run/netns/$NS_GW" iptables-legacy-restore --noflush <"$TMP/change" ||
				{ log "$m" "weight change failed"; return 1; }
			times+=("$ms")
		done ;;
	nftables)
		gen_nft "$n" >"$TMP/conf"
		timed ms nsenter --net="/run/netns/$NS_GW" nft -f "$TMP/conf" ||
			{ log "$m" "nft -f of $n services failed or took over ${STEP_TIMEOUT} s"; return 1; }
		rec "$n" "$m" load_ms "$ms"
		for ((i = 0; i < WEIGHT_RUNS; i++)); do
			nft_split "$mid" $((30 + i * 10)) >"$TMP/change"
			timed ms nsenter --net="/run/netns/$NS_GW" nft -f "$TMP/change" ||
				{ log "$m" "weight change failed"; return 1; }
			times+=("$ms")
		done ;;
	tcpshift | tcpshift-xdp)
		local extra=()
		[ "$m" = tcpshift-xdp ] && extra=(--mode xdp)
		must "tcpshift load ${extra[*]}" ts load --dev "$GW_DEV" --dev b1 --dev b2 "${extra[@]}"
		gen_tcpshift "$n" >"$TMP/conf"
		timed ms "$TCPSHIFT" --pin-dir "$PIN" -n "$NS_GW" import "$TMP/conf" ||
			{ log "$m" "import of $n services failed or took over ${STEP_TIMEOUT} s: $(tail -n 1 "$TMP/step.err")"; return 1; }
		rec "$n" "$m" load_ms "$ms"
		for ((i = 0; i < WEIGHT_RUNS; i++)); do
			timed ms "$TCPSHIFT" --pin-dir "$PIN" -n "$NS_GW" weight "s$mid" "a=$((30 + i * 10))" "b=$((70 - i * 10))" ||
				{ log "$m" "weight change failed: $(tail -n 1 "$TMP/step.err")"; return 1; }
			times+=("$ms")
		done ;;
	*) die "unknown method $m" ;;
	esac
	rec "$n" "$m" weight_ms "$(echo "${times[@]}" | median_of)"
}

# ---- checking the nftables path (SCALE_CHECK=1, tests/e2e/test_bench_scale.sh) -----------------

# With SCALE_CHECK=1, nftables' configuration is checked after its load and
# weight changes, before its packet round, and each check recorded as
# N nftables check_<what> pass (or what went wrong):
#   anon_sets  no rule of the table binds a set of its own (an anonymous set
#              makes nft -f quadratic in the services: see gen_nft)
#   path_I     real TCP from the generator to service I (the first, middle and
#              last) reaches that service's two backends and no other: a ts-echo
#              server per backend and service, named after both, on that
#              service's address:port only
#   weight     nft_split of the middle service to 100, then to 0, sends every
#              connection to its endpoint a, then to b; put back to 50 after
CHECK=${SCALE_CHECK:-0}
CHECK_CONNS=16
TS_ECHO=${TS_ECHO:-$ROOT/build/ts-echo}
CHECK_PIDS=()

check_servers_stop() {
	local p

	for p in "${CHECK_PIDS[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	CHECK_PIDS=()
}

# check_server NS NAME ADDR:PORT: a ts-echo server, up within 5 s (if not, the
# path check that needs it fails)
check_server() {
	local i

	nsenter --net="/run/netns/$1" "$TS_ECHO" server --name "$2" --listen "$3" \
		>/dev/null 2>>"$TMP/check.err" &
	CHECK_PIDS+=($!)
	for ((i = 0; i < 50; i++)); do
		[ "$(timeout 5 nsenter --net="/run/netns/$1" "$TS_ECHO" count --connect "$3" --n 1 \
			--timeout-ms 200 2>/dev/null | head -n 1)" = "$2 1" ] && return 0
		sleep 0.1
	done
	return 1
}

# check_count VIP: ts-echo count of CHECK_CONNS connections from the
# generator to VIP:80, its lines joined ("a-0 9 b-0 7", "a-0 10 error 6")
check_count() {
	timeout 60 nsenter --net="/run/netns/$NS_GEN" "$TS_ECHO" count --connect "$1:80" \
		--n "$CHECK_CONNS" --timeout-ms 2000 2>>"$TMP/check.err" | grep -vx 'error 0' |
		paste -sd ' '
}

# check_split I SPLIT: service I's split set with the benchmark's own weight
# change, then the connections counted; prints the count
check_split() {
	nft_split "$1" "$2" >"$TMP/check-change"
	nsenter --net="/run/netns/$NS_GW" nft -f "$TMP/check-change" 2>>"$TMP/check.err" ||
		{ echo "nft -f of the weight change failed"; return; }
	check_count "$(vip_of "$1")"
}

check_nft() {	# N
	local n=$1 mid=$(($1 / 2)) i got anon services

	anon=$(nsenter --net="/run/netns/$NS_GW" nft -j list table ip tsscale |
		jq '[.. | objects | select(has("set")) | .set | select(type == "array")] | length')
	[ "$anon" = 0 ] && rec "$n" nftables check_anon_sets pass ||
		rec "$n" nftables check_anon_sets "${anon:-no table}: rules with a set of their own"
	services=$(printf '%s\n' 0 "$mid" $((n - 1)) | sort -nu)
	must "generator's route to the VIPs" ip -n "$NS_GEN" route add "$VIP_BASE/16" via 198.18.0.1
	for i in $services; do
		check_server "$NS_B1" "a-$i" "$(backend_of "$i" 0)"
		check_server "$NS_B2" "b-$i" "$(backend_of "$i" 1)"
	done
	# the timed weight changes left the middle service at 70:30
	check_split "$mid" 50 >/dev/null
	for i in $services; do
		got=$(check_count "$(vip_of "$i")")
		awk -v got="$got" -v i="$i" -v want="$CHECK_CONNS" 'BEGIN {
			k = split(got, f, " ")
			for (j = 1; j < k; j += 2)
				c[f[j]] = f[j + 1]
			exit !(k == 4 && c["a-" i] > 0 && c["b-" i] > 0 && c["a-" i] + c["b-" i] == want)
		}' && rec "$n" nftables "check_path_$i" pass ||
			rec "$n" nftables "check_path_$i" \
				"got '$got', want a-$i and b-$i only, $CHECK_CONNS in all"
	done
	got="$(check_split "$mid" 100) / $(check_split "$mid" 0)"
	[ "$got" = "a-$mid $CHECK_CONNS / b-$mid $CHECK_CONNS" ] &&
		rec "$n" nftables check_weight pass ||
		rec "$n" nftables check_weight "splits 100 and 0 gave '$got'"
	check_split "$mid" 50 >/dev/null
	check_servers_stop
	ip -n "$NS_GEN" route del "$VIP_BASE/16" via 198.18.0.1 2>/dev/null
}

# the second address of each backend's namespace (services past 32,768)
second_addresses() {
	must "backend 1 second address" ip -n "$NS_B1" addr add 198.18.2.3/24 dev "$BE1_DEV"
	must "backend 2 second address" ip -n "$NS_B2" addr add 198.18.3.3/24 dev "$BE2_DEV"
	must "neighbour b1 .3" ip -n "$NS_GW" neigh replace 198.18.2.3 \
		lladdr "$(mac_of "$NS_B1" "$BE1_DEV")" nud permanent dev b1
	must "neighbour b2 .3" ip -n "$NS_GW" neigh replace 198.18.3.3 \
		lladdr "$(mac_of "$NS_B2" "$BE2_DEV")" nud permanent dev b2
}

# packets METHOD N [PPS ARGS]: one pps round (pps fails it unless every flow's
# handshake passes the gateway); records per phase core_ns (per delivered
# packet, the baseline not yet subtracted), lost (taken in, not delivered),
# prog_ns and prog_runs (the gateway's programs, per delivered packet: 0 when
# it has none), and ns_PROGRAM and runs_PROGRAM (each program's own)
packets() {
	local m=$1 n=$2 out line ph= d=0 c a v t k
	shift 2

	out=$(timeout "$STEP_TIMEOUT" "$PPS" --gen "$NS_GEN:g0" --gw "$NS_GW:$GW_DEV" \
		--backend "$NS_B1:$BE1_DEV:198.18.2.2" --backend "$NS_B2:$BE2_DEV:198.18.3.2" \
		--vip "$VIP_BASE:80" --vips "$n" --flows "$FLOWS" --seconds "$SECONDS_PER_PHASE" \
		--warmup "$WARMUP" --cpu "$CPU" --phases "$PHASE_ORDER" --sender auto --relay gs:gr \
		--prog-stats "$@" 2>"$TMP/pps.err") ||
		{ log "$m" "packets FAILED: $(tail -n 2 "$TMP/pps.err" | tr '\n' ' ')"; return 1; }
	while read -r line; do
		# gateway_prog phase=PH id=ID name=NAME runs=R run_ns=T, after PH's line
		if [[ $line == "gateway_prog phase=$ph "* ]] && [ "${d:-0}" -gt 0 ]; then
			k=$(sed -n 's/.* name=\([A-Za-z0-9_]*\) .*/\1/p' <<<"$line")
			v=$(sed -n 's/.* runs=\([0-9]*\) .*/\1/p' <<<"$line")
			t=$(sed -n 's/.* run_ns=\([0-9]*\)$/\1/p' <<<"$line")
			rec "$n" "$m" "${ph}_ns_$k" \
				"$(awk -v t="$t" -v d="$d" 'BEGIN { printf "%.1f", t / d }')"
			rec "$n" "$m" "${ph}_runs_$k" \
				"$(awk -v r="$v" -v d="$d" 'BEGIN { printf "%.3f", r / d }')"
		fi
		[[ $line == phase=* ]] || continue
		ph=${line%% *} ph=${ph#phase=}
		d=$(sed -n 's/.* delivered=\([0-9]*\).*/\1/p' <<<"$line")
		c=$(sed -n 's/.* cpu_ns=\([0-9]*\).*/\1/p' <<<"$line")
		a=$(sed -n 's/.* accepted=\([0-9]*\).*/\1/p' <<<"$line")
		rec "$n" "$m" "${ph}_sender" "$(sed -n 's/.* sender=\([a-z_]*\).*/\1/p' <<<"$line")"
		rec "$n" "$m" "${ph}_lost" "$((a - d))"
		[ "${d:-0}" -gt 0 ] && rec "$n" "$m" "${ph}_core_ns" "$(awk -v c="$c" -v d="$d" 'BEGIN { printf "%.1f", c / d }')"
		for k in prog_ns prog_runs; do
			v=$(sed -n "s/.* $k=\([0-9.]*\).*/\1/p" <<<"$line")
			[ -n "$v" ] && rec "$n" "$m" "${ph}_$k" "$v"
		done
	done <<<"$out"
}

run_method() {	# METHOD N
	local m=$1 n=$2 args=()

	topology
	second_addresses
	if [ "$m" = baseline ]; then
		args=(--direct --baseline)
	else
		configure "$m" "$n" || { teardown; rec "$n" "$m" status failed; return 0; }
		[ "$CHECK" = 1 ] && [ "$m" = nftables ] && check_nft "$n"
	fi
	packets "$m" "$n" "${args[@]}" || rec "$n" "$m" status failed
	# the services that took new flows: the packets were spread over all N
	[[ $m == tcpshift* ]] && rec "$n" "$m" services_hit "$(ts -j stats 2>/dev/null |
		jq '[.services[] | select(([.backends[].new_flows] | add) > 0)] | length')"
	teardown
}

# in-kernel figures of tcpshift with N services (microbench scale)
inkernel() {	# N
	local out line k v

	out=$(timeout "$STEP_TIMEOUT" "$MICROBENCH" --repeat "$REPEAT" --runs "$RUNS" --services "$1" \
		scale 2>"$TMP/mb.err") ||
		{ log kernel "microbench at $1 services FAILED: $(tail -n 1 "$TMP/mb.err")"; return 0; }
	while read -r line; do
		k=$(sed -n 's/.* case=\([a-z_]*\) .*/\1/p' <<<"$line")
		v=$(sed -n 's/.* ns=\([-0-9.]*\) valid=1$/\1/p' <<<"$line")
		[ -n "$k" ] && rec "$1" kernel "$k" "${v:-NA}"
	done <<<"$out"
}

# ---- summary --------------------------------------------------------------------------------------

# val SIZE METHOD METRIC
val() {
	awk -F'\t' -v n="$1" -v m="$2" -v k="$3" '$1 == n && $2 == m && $3 == k { v = $4 } END { print v }' "$RAW"; }

# gateway ns: core ns minus the baseline of the same size
gw_ns() {	# SIZE METHOD PHASE
	local t b
	t=$(val "$1" "$2" "$3_core_ns") b=$(val "$1" baseline "$3_core_ns")
	awk -v t="$t" -v b="$b" 'BEGIN { if (t == "" || b == "") print ""; else printf "%.0f", t - b }'
}

cell() { [ -n "$1" ] && [ "$1" != NA ] && echo "$1" || echo "—"; }

# prog_cell SIZE METHOD PHASE: the gateway's programs' ns per packet and runs,
# or — where no program ran (the methods without any)
prog_cell() {
	awk -v t="$(val "$1" "$2" "$3_prog_ns")" -v r="$(val "$1" "$2" "$3_prog_runs")" \
		'BEGIN { if (r > 0) printf "%.0f (%.2f runs)\n", t, r; else print "—" }'
}

summarize() {
	local n m
	{
		echo "# Scale: the cost of the number of services (make bench-scale)"
		echo
		echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r). This build's limit: $LIMIT services."
		echo "Services of two backends (1:1); real packets: $FLOWS flows confirmed by handshakes first, then ${SECONDS_PER_PHASE} s per phase after ${WARMUP} s of warm-up, one core; each packet's VIP picked by a hash over all N."
		echo "Generator: $(awk -F'\t' '$3 ~ /_sender$/ && $4 != "" { s[$4] = 1 }
			END { for (k in s) printf "%s%s", n++ ? ", " : "", k }' "$RAW") (live: BPF_PROG_RUN live frames; af_packet_relay: AF_PACKET, relayed to the generator's device at XDP, where the kernel refuses live frames)."
		for n in $SIZES; do
			[ "$n" -gt "$LIMIT" ] && echo && echo "N = $n: skipped, over this build's limit of $LIMIT services."
		done
		echo
		echo "## Through the gateway (real packets, gateway ns per packet: core ns minus the baseline)"
		echo
		echo "| services | method | SYN ns | established ns | load whole config ms | one weight change ms | programs in the gateway ns: SYN | programs in the gateway ns: established |"
		echo "|---:|---|---:|---:|---:|---:|---:|---:|"
		for n in $SIZES; do
			[ "$n" -gt "$LIMIT" ] && continue
			for m in $METHODS; do
				printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$n" "$m" \
					"$(cell "$(gw_ns "$n" "$m" syn)")" "$(cell "$(gw_ns "$n" "$m" established)")" \
					"$(cell "$(val "$n" "$m" load_ms)")" "$(cell "$(val "$n" "$m" weight_ms)")" \
					"$(prog_cell "$n" "$m" syn)" "$(prog_cell "$n" "$m" established)"
			done
		done
		echo
		echo "Programs in the gateway: the run time of the BPF programs attached to the gateway's devices (tcpshift's tc or XDP programs; — where a method has none), from the kernel's BPF run-time statistics over the same packets, per packet delivered, with their runs per packet: tcpshift's own work, without the rest of the gateway's path and the noise that the ns columns carry."
		echo
		echo "## tcpshift in the kernel (BPF_PROG_TEST_RUN on the real object, ns per packet over an empty program)"
		echo
		echo "| services | tc SYN | tc established | xdp SYN (XDP part + tc SYN) | xdp established |"
		echo "|---:|---:|---:|---:|---:|"
		for n in $SIZES; do
			[ "$n" -gt "$LIMIT" ] && continue
			printf '| %s | %s | %s | %s | %s |\n' "$n" "$(cell "$(val "$n" kernel tc_syn)")" \
				"$(cell "$(val "$n" kernel tc_established)")" \
				"$(cell "$(awk -v a="$(val "$n" kernel xdp_syn)" -v b="$(val "$n" kernel tc_syn)" \
					'BEGIN { if (a != "" && b != "" && a != "NA" && b != "NA") printf "%.0f", a + b }')")" \
				"$(cell "$(val "$n" kernel xdp_established)")"
		done
		echo
		echo "The same, over $SPREAD_FLOWS flows (SYNs: new flows), each packet to another service than the last (in the kernel, cache misses the single service above never takes):"
		echo
		echo "| services | tc SYN | tc established | xdp established | tc reply | xdp reply |"
		echo "|---:|---:|---:|---:|---:|---:|"
		for n in $SIZES; do
			[ "$n" -gt "$LIMIT" ] && continue
			printf '| %s | %s | %s | %s | %s | %s |\n' "$n" \
				"$(cell "$(val "$n" kernel tc_syn_spread)")" \
				"$(cell "$(val "$n" kernel tc_established_spread)")" \
				"$(cell "$(val "$n" kernel xdp_established_spread)")" \
				"$(cell "$(val "$n" kernel tc_reply_spread)")" \
				"$(cell "$(val "$n" kernel xdp_reply_spread)")"
		done
		echo
		echo "Plots: scale-packets.png, scale-control.png (this directory). Raw: scale-raw.tsv."
	} >"$OUT/scale.md"
	plot
}

plot() {
	local d=$TMP/plot.dat n m

	command -v gnuplot >/dev/null || { log PLOT "no gnuplot: no plots"; return 0; }
	: >"$d"
	# one block per method: N syn established load weight
	for m in $METHODS; do
		echo "\"$m\"" >>"$d"
		for n in $SIZES; do
			[ "$n" -gt "$LIMIT" ] && continue
			echo "$n $(cell "$(gw_ns "$n" "$m" syn)") $(cell "$(gw_ns "$n" "$m" established)") $(cell "$(val "$n" "$m" load_ms)") $(cell "$(val "$n" "$m" weight_ms)")" |
				sed 's/—/NaN/g' >>"$d"
		done
		printf '\n\n' >>"$d"
	done
	gnuplot 2>>"$TMP/gnuplot.err" <<EOF
set terminal pngcairo size 1100,460 noenhanced font ",11"
set datafile missing "NaN"
set logscale x
set xlabel "services"
set grid
set key outside top center horizontal
set output "$OUT/scale-packets.png"
set multiplot layout 1,2 title "Gateway ns per packet against the number of services (real packets, one core)"
set title "SYN of a new flow"
set ylabel "ns per packet (log)"
set logscale y
plot for [i=0:$(($(wc -w <<<"$METHODS") - 1))] "$d" index i using 1:2 with linespoints lw 2 title columnheader(1)
set title "established flow"
plot for [i=0:$(($(wc -w <<<"$METHODS") - 1))] "$d" index i using 1:3 with linespoints lw 2 title columnheader(1)
unset multiplot
set output "$OUT/scale-control.png"
set multiplot layout 1,2 title "Control plane against the number of services"
set logscale y
set yrange [*:*]
set title "load the whole configuration"
set ylabel "ms"
plot for [i=0:$(($(wc -w <<<"$METHODS") - 1))] "$d" index i using 1:4 with linespoints lw 2 title columnheader(1)
set title "change one service's weights"
plot for [i=0:$(($(wc -w <<<"$METHODS") - 1))] "$d" index i using 1:5 with linespoints lw 2 title columnheader(1)
unset multiplot
EOF
}

# ---- main ----------------------------------------------------------------------------------------

# this build's limit, as the compiler sees it (an expression is fine)
build_limit() {
	printf '#include "tcpshift.h"\nTS_MAX_SERVICES\n' |
		${CC:-cc} -E -P -I"$ROOT/include" -x c - 2>/dev/null | tail -n 1 |
		{ read -r e; echo $((e)); }
}

scale_main() {
	local n m start_s

	[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, BPF, iptables)"
	for n in $SIZES; do
		[[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le 65536 ] ||
			{ echo "bench-scale: SIZES: '$n' is not a number of services from 1 to 65536" >&2; exit 2; }
	done
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/tsscale-$ID.XXXXXX") || die "mktemp failed"
	mkdir -p "$OUT"
	RAW=$OUT/scale-raw.tsv
	LIMIT=$(build_limit) && [ "$LIMIT" -gt 0 ] 2>/dev/null || die "cannot read TS_MAX_SERVICES from include/tcpshift.h"
	if [ "${SUMMARIZE_ONLY:-0}" = 1 ]; then
		[ -s "$RAW" ] || die "$RAW: nothing to summarize"
		summarize
		cat "$OUT/scale.md"
		return 0
	fi
	[ -x "$TCPSHIFT" ] && [ -x "$PPS" ] && [ -x "$MICROBENCH" ] ||
		die "build first: make all build/bench/pps build/bench/microbench (or make bench-scale)"
	mountpoint -q /sys/fs/bpf || die "/sys/fs/bpf is not mounted (bpffs)"
	[ -e "$PIN" ] && die "$PIN already exists"
	install_peers
	for m in ethtool jq nsenter iptables-legacy-restore nft awk; do
		command -v "$m" >/dev/null || die "$m not found"
	done
	: >"$RAW"
	start_s=$SECONDS
	for n in $SIZES; do
		if [ "$n" -gt "$LIMIT" ]; then
			log SKIP "$n services: over this build's limit of $LIMIT (TS_MAX_SERVICES)"
			continue
		fi
		for m in baseline $METHODS; do
			log "$n" "$m"
			run_method "$m" "$n"
		done
		log "$n" "tcpshift in the kernel (microbench)"
		inkernel "$n"
	done
	summarize
	log DONE "$OUT/scale.md, scale-raw.tsv, scale-*.png ($((SECONDS - start_s)) s)"
	cat "$OUT/scale.md"
}

trap 'check_servers_stop; cleanup' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

scale_main "$@"
