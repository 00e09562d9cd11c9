# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash disable=SC2034
#
# Shared helpers of the end-to-end tests (tests/e2e/test_*.sh) and of the demo
# (tools/demo.sh). Source it, call e2e_init NAME, then e2e_topology.
#
# The topology lives in four fresh network namespaces, tse2e-<pid>-{cl,gw,b1,b2}:
#
#   client              gateway (tcpshift on gwc, br0)         backends
#   eth0 198.18.1.2/24 -- gwc 198.18.1.1/24  br0 198.18.2.1/24 -+- b1 -- v1 eth0 198.18.2.11/24
#        2001:2:1::2/64       2001:2:1::1/64     2001:2:2::1/64  |          2001:2:2::11/64
#                                                                +- b2 -- v2 eth0 198.18.2.12/24
#                                                                           2001:2:2::12/64
#
# Client and backends route everything through the gateway (NAT mode: replies
# come back through it). Each backend runs `ts-echo server` named v1 or v2 on
# port 8008 of both its addresses. The services' VIPs are 198.18.100.1:8008
# and [2001:2:100::1]:8008. tcpshift runs with its own pin directory,
# /sys/fs/bpf/tcpshift-e2e-<pid>, never the default one.
#
# Only the 198.18.0.0/15 and 2001:2::/48 benchmarking ranges are used. A trap
# removes, also on failure or Ctrl-C, exactly what the script made: the
# processes it started, its namespaces, its pin directory, its temporary files.

E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TCPSHIFT=${TCPSHIFT:-$E2E_ROOT/build/tcpshift}
TS_ECHO=${TS_ECHO:-$E2E_ROOT/build/ts-echo}

E2E_ID=$$
NS_CL=tse2e-$E2E_ID-cl
NS_GW=tse2e-$E2E_ID-gw
NS_B1=tse2e-$E2E_ID-b1
NS_B2=tse2e-$E2E_ID-b2
E2E_PIN=/sys/fs/bpf/tcpshift-e2e-$E2E_ID

# E2E_MODE=xdp runs a test with `load --mode xdp`. XDP needs native support on
# every device tcpshift attaches to, which a bridge lacks: the backends then
# hang off the gateway by their own veths (b1, b2), each with the gateway's
# 198.18.2.1 and 2001:2:2::1 and a host route to its backend; the backend side
# stays as it is. veth peers receive XDP-redirected frames only with NAPI on:
# the client's and backends' veths have GRO on (`load` warns about a device
# whose peer has not, and sends what goes there through tc). Their other
# offloads stay as users have them: TX checksum offload on, so their TCP
# frames carry partial checksums, which the XDP program leaves to tc
# (test_xdp.sh turns it off to send XDP complete ones, as from a wire).
# E2E_HANDSHAKES=xdp (with E2E_MODE=xdp) adds --handshakes xdp: whole
# connections at XDP, for the frames with complete checksums.
E2E_MODE=${E2E_MODE:-tc}
E2E_HANDSHAKES=${E2E_HANDSHAKES:-tc}
case $E2E_MODE in
tc)
	E2E_DEVS=(gwc br0)		# the gateway interfaces tcpshift attaches to
	E2E_MODE_ARGS=()
	;;
xdp)
	E2E_DEVS=(gwc b1 b2)
	E2E_MODE_ARGS=(--mode xdp --handshakes "$E2E_HANDSHAKES")
	;;
*)
	echo "E2E_MODE must be tc or xdp, not '$E2E_MODE'" >&2
	exit 2
	;;
esac
E2E_DEV_ARGS=()			# --dev for each of E2E_DEVS, and the mode
for _dev in "${E2E_DEVS[@]}"; do
	E2E_DEV_ARGS+=(--dev "$_dev")
done
E2E_DEV_ARGS+=("${E2E_MODE_ARGS[@]}")
# The same for release 0.2.0's load (e2e_release), which has no --handshakes:
# its XDP program leaves handshakes to tc, as --handshakes tc does.
E2E_OLD_DEV_ARGS=("${E2E_DEV_ARGS[@]}")
if [ "$E2E_MODE" = xdp ] && [ "$E2E_HANDSHAKES" = tc ]; then
	E2E_OLD_DEV_ARGS=("${E2E_DEV_ARGS[@]:0:${#E2E_DEV_ARGS[@]}-2}")
fi
unset _dev

VIP4='198.18.100.1:8008'
VIP6='[2001:2:100::1]:8008'
V1_4='198.18.2.11:8008'
V2_4='198.18.2.12:8008'
V1_6='[2001:2:2::11]:8008'
V2_6='[2001:2:2::12]:8008'

E2E_NAME=e2e
E2E_TMP=
E2E_PIDS=()		# processes this script started, killed by the trap
declare -A E2E_SERVER_PIDS=()	# echo server name -> its pid (the latest one)
E2E_NETNS=()		# namespaces this script made, deleted by the trap
E2E_LOADED=0		# tcpshift was loaded under E2E_PIN
E2E_PIN_OWNED=0		# E2E_PIN did not exist before: the trap may remove it
E2E_FAILS=0
E2E_PASSES=0
E2E_CLEANED=0
HOLD_REPLY=
E2E_REL_TREE=		# a worktree of an earlier release being built (e2e_release)
E2E_OLD_TS=		# that release's tcpshift (e2e_release)

# ---- results ----------------------------------------------------------------

pass() {
	echo "PASS: $*"
	E2E_PASSES=$((E2E_PASSES + 1))
}

# fail NAME MSG...
fail() {
	local name=$1

	shift
	echo "FAIL: $name — $*"
	E2E_FAILS=$((E2E_FAILS + 1))
}

# Details shown under the results; not counted.
info() {
	echo "  $*"
}

# A setup step failed: nothing after it can be tested.
e2e_abort() {
	fail "$E2E_NAME: setup" "$1"
	exit 1
}

# The exit status of a test script: 1 when anything failed.
e2e_status() {
	[ "$E2E_FAILS" -eq 0 ]
}

# ---- running things -----------------------------------------------------------

# in_ns NS CMD...: run CMD in namespace NS (nsenter keeps /sys/fs/bpf visible,
# `ip netns exec` would remount /sys).
in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

# ts ARGS...: tcpshift on the gateway, with this script's own pin directory.
ts() {
	"$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" "$@"
}

# must DESC CMD...: run CMD; abort the test with its stderr if it fails.
must() {
	local desc=$1 err
	shift
	if ! err=$("$@" 2>&1 >/dev/null); then
		e2e_abort "$desc failed: ${err:-no message} (command: $*)"
	fi
}

# e2e_track_pid PID: kill PID at cleanup.
e2e_track_pid() {
	E2E_PIDS+=("$1")
}

e2e_cleanup() {
	local pid ns i alive

	[ "$E2E_CLEANED" -eq 1 ] && return 0
	E2E_CLEANED=1
	for pid in "${E2E_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${E2E_PIDS[@]}"; do
		alive=1
		for ((i = 0; i < 20; i++)); do
			kill -0 "$pid" 2>/dev/null || { alive=0; break; }
			sleep 0.1
		done
		[ "$alive" -eq 1 ] && kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "$E2E_LOADED" -eq 1 ] && [ -e "$E2E_PIN" ]; then
		timeout 20 "$TCPSHIFT" --pin-dir "$E2E_PIN" -n "$NS_GW" unload >/dev/null 2>&1
	fi
	# our own pin directory only, whatever unload left
	if [ "$E2E_PIN_OWNED" -eq 1 ] && [ -e "$E2E_PIN" ]; then
		rm -rf -- "$E2E_PIN"
	fi
	for ns in "${E2E_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [ -n "$E2E_REL_TREE" ]; then
		git -C "$E2E_ROOT" worktree remove --force "$E2E_REL_TREE" >/dev/null 2>&1
	fi
	[ -n "$E2E_TMP" ] && [ -d "$E2E_TMP" ] && rm -rf -- "$E2E_TMP"
	return 0
}

# e2e_release COMMIT: E2E_OLD_TS, the CLI of the release at COMMIT, built once
# from a worktree of this repository and cached in build/release-COMMIT. Tests
# running at once (tests/run.sh, E2E_JOBS) build it once: under a lock, and the
# binary renamed into place whole.
e2e_release() {
	local lock

	E2E_OLD_TS=$E2E_ROOT/build/release-$1/tcpshift
	[ -x "$E2E_OLD_TS" ] && return 0
	e2e_need git flock
	mkdir -p "$(dirname "$E2E_OLD_TS")"
	exec {lock}>"$E2E_ROOT/build/release-$1.lock"
	flock "$lock"
	if [ ! -x "$E2E_OLD_TS" ]; then
		E2E_REL_TREE=$E2E_TMP/release
		must "git worktree of $1" git -C "$E2E_ROOT" worktree add --detach "$E2E_REL_TREE" "$1"
		info "building release $1 (cached in build/release-$1)"
		must "build of $1" make -C "$E2E_REL_TREE" -j2 build/tcpshift
		must "cache the old build" cp "$E2E_REL_TREE/build/tcpshift" "$E2E_OLD_TS.tmp"
		must "cache the old build" mv "$E2E_OLD_TS.tmp" "$E2E_OLD_TS"
		git -C "$E2E_ROOT" worktree remove --force "$E2E_REL_TREE" >/dev/null 2>&1
		E2E_REL_TREE=
	fi
	exec {lock}>&-
}

# e2e_need TOOL...: abort unless every TOOL is installed.
e2e_need() {
	local tool

	for tool in "$@"; do
		command -v "$tool" >/dev/null || e2e_abort "$tool not found: run make deps"
	done
}

# e2e_init NAME: check the prerequisites, set the traps.
e2e_init() {
	E2E_NAME=$1
	trap e2e_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	[ "$(id -u)" -eq 0 ] || e2e_abort "must run as root (network namespaces, BPF)"
	e2e_need ip nsenter tc timeout awk mountpoint sysctl ss
	[ -x "$TS_ECHO" ] || e2e_abort "$TS_ECHO not built: run make"
	[ -x "$TCPSHIFT" ] || e2e_abort "$TCPSHIFT not built: run make"
	mountpoint -q /sys/fs/bpf || e2e_abort "/sys/fs/bpf is not mounted (bpffs)"
	[ -e "$E2E_PIN" ] && e2e_abort "$E2E_PIN already exists (left by an earlier run?)"
	E2E_PIN_OWNED=1
	E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/tse2e-$E2E_ID.XXXXXX") ||
		e2e_abort "mktemp failed"
	# the journal of changes (history, undo, restore) in the test's own
	# directory, removed with it, never under /var/lib/tcpshift
	export TCPSHIFT_STATE_DIR=$E2E_TMP/state
}

# ---- topology -----------------------------------------------------------------

e2e_netns_add() {
	must "creating namespace $1" ip netns add "$1"
	E2E_NETNS+=("$1")
	must "lo up in $1" ip -n "$1" link set lo up
	# v6 addresses usable at once: no duplicate address detection
	must "sysctl in $1" in_ns "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
		net.ipv6.conf.default.accept_dad=0
}

# e2e_bare_gateway DEV...: the gateway namespace alone, each DEV a veth (peer
# xDEV) that is up: for tests of the command itself rather than of traffic.
e2e_bare_gateway() {
	local dev

	e2e_netns_add "$NS_GW"
	for dev in "$@"; do
		must "veth $dev" ip -n "$NS_GW" link add "$dev" type veth peer name "x$dev"
		must "$dev up" ip -n "$NS_GW" link set "$dev" up
	done
}

# e2e_xdp_peer NS DEV: DEV in NS faces a gateway device with XDP (E2E_MODE):
# GRO on, so that it takes XDP-redirected frames; every other offload as is.
e2e_xdp_peer() {
	must "GRO on $2 in $1" in_ns "$1" ethtool -K "$2" gro on
}

# e2e_senders_tx on|off: TX checksum offload of the client's and the backends'
# veths (E2E_MODE=xdp only). Off, their TCP frames carry complete checksums, as
# from a wire: what release 05c97dc's XDP program needs (it forwarded frames
# with a partial checksum with a wrong one, and those connections hung).
e2e_senders_tx() {
	local ns

	[ "$E2E_MODE" = xdp ] || return 0
	e2e_need ethtool
	for ns in "$NS_CL" "$NS_B1" "$NS_B2"; do
		must "TX checksum offload $1 in $ns" in_ns "$ns" ethtool -K eth0 tx "$1"
	done
}

# e2e_backend NS NAME PORT ADDR4 ADDR6: backend NAME in NS, behind bridge port
# PORT (E2E_MODE=xdp: behind the gateway's own device PORT).
e2e_backend() {
	local ns=$1 name=$2 port=$3 a4=$4 a6=$5

	must "veth $port" ip -n "$NS_GW" link add "$port" type veth peer name eth0 netns "$ns"
	if [ "$E2E_MODE" = xdp ]; then
		must "$port up" ip -n "$NS_GW" link set "$port" up
		must "$port v4 address" ip -n "$NS_GW" addr add 198.18.2.1/32 dev "$port"
		must "$port v6 address" ip -n "$NS_GW" addr add 2001:2:2::1/128 dev "$port" nodad
		must "route to $name" ip -n "$NS_GW" route add "$a4/32" dev "$port"
		must "route to $name (v6)" ip -n "$NS_GW" -6 route add "$a6/128" dev "$port"
	else
		must "$port into br0" ip -n "$NS_GW" link set "$port" master br0 up
	fi
	must "$name eth0 up" ip -n "$ns" link set eth0 up
	[ "$E2E_MODE" = xdp ] && e2e_xdp_peer "$ns" eth0
	must "$name v4 address" ip -n "$ns" addr add "$a4/24" dev eth0
	must "$name v6 address" ip -n "$ns" addr add "$a6/64" dev eth0 nodad
	must "$name v4 route" ip -n "$ns" route add default via 198.18.2.1
	must "$name v6 route" ip -n "$ns" -6 route add default via 2001:2:2::1
}

# e2e_server NS NAME EP4 EP6: ts-echo server NAME in NS, listening on EP4 and EP6.
e2e_server() {
	local ns=$1 name=$2 a4=$3 a6=$4

	# nsenter itself, not the in_ns function: $! must be the server's own pid
	nsenter --net="/run/netns/$ns" "$TS_ECHO" server --name "$name" --listen "$a4" \
		--listen "$a6" >>"$E2E_TMP/server-$name.log" 2>&1 &
	e2e_track_pid "$!"
	E2E_SERVER_PIDS[$name]=$!
}

# e2e_wait_echo NS ADDR:PORT NAME: until NAME answers at ADDR:PORT from NS (≤ 5 s).
e2e_wait_echo() {
	local ns=$1 ep=$2 name=$3 out i

	for ((i = 0; i < 25; i++)); do
		out=$(in_ns "$ns" "$TS_ECHO" count --connect "$ep" --n 1 --timeout-ms 200 \
			2>/dev/null)
		[ "$(count_of "$out" "$name")" -eq 1 ] && return 0
		sleep 0.2
	done
	return 1
}

# e2e_topology: the namespaces, links, addresses, routes, sysctls, and the two
# echo servers, checked to answer the client directly (no tcpshift yet).
e2e_topology() {
	local ns s dev name ep

	for ns in "$NS_CL" "$NS_GW" "$NS_B1" "$NS_B2"; do
		e2e_netns_add "$ns"
	done

	must "gateway sysctls" in_ns "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0

	must "client veth" ip -n "$NS_GW" link add gwc type veth peer name eth0 netns "$NS_CL"
	must "gwc v4 address" ip -n "$NS_GW" addr add 198.18.1.1/24 dev gwc
	must "gwc v6 address" ip -n "$NS_GW" addr add 2001:2:1::1/64 dev gwc nodad
	must "gwc up" ip -n "$NS_GW" link set gwc up
	must "client eth0 up" ip -n "$NS_CL" link set eth0 up
	must "client v4 address" ip -n "$NS_CL" addr add 198.18.1.2/24 dev eth0
	must "client v6 address" ip -n "$NS_CL" addr add 2001:2:1::2/64 dev eth0 nodad
	[ "$E2E_MODE" = xdp ] && e2e_xdp_peer "$NS_CL" eth0
	must "client v4 route" ip -n "$NS_CL" route add default via 198.18.1.1
	must "client v6 route" ip -n "$NS_CL" -6 route add default via 2001:2:1::1

	if [ "$E2E_MODE" = tc ]; then
		must "bridge" ip -n "$NS_GW" link add br0 type bridge stp_state 0 mcast_snooping 0
		must "br0 v4 address" ip -n "$NS_GW" addr add 198.18.2.1/24 dev br0
		must "br0 v6 address" ip -n "$NS_GW" addr add 2001:2:2::1/64 dev br0 nodad
		must "br0 up" ip -n "$NS_GW" link set br0 up
	fi
	e2e_backend "$NS_B1" v1 b1 198.18.2.11 2001:2:2::11
	e2e_backend "$NS_B2" v2 b2 198.18.2.12 2001:2:2::12

	# a reply rewritten to the VIP's source must not be dropped as spoofed
	for dev in gwc "${E2E_DEVS[@]}" b1 b2; do
		must "rp_filter on $dev" in_ns "$NS_GW" sysctl -qw \
			"net.ipv4.conf.$dev.rp_filter=0"
	done

	e2e_server "$NS_B1" v1 "$V1_4" "$V1_6"
	e2e_server "$NS_B2" v2 "$V2_4" "$V2_6"
	for s in "v1 $V1_4" "v1 $V1_6" "v2 $V2_4" "v2 $V2_6"; do
		read -r name ep <<<"$s"
		e2e_wait_echo "$NS_CL" "$ep" "$name" ||
			e2e_abort "backend $name does not answer the client at $ep directly ($(
				tail -n 3 "$E2E_TMP/server-$name.log" 2>/dev/null | tr '\n' ' '))"
	done
}

# The flow hash seed of this run: random unless E2E_SEED is given (printed, to
# replay a run). Consecutive connections use consecutive source ports, so with
# one fixed seed a test would sample the same stretch of one fixed hash
# function run after run; a random seed makes each run's split an independent
# draw, which is what the binomial bounds assume.
E2E_SEED=${E2E_SEED:-$(( (RANDOM << 16 | RANDOM) & 0x7fffffff ))}

# e2e_load: tcpshift load on the gateway's interfaces (E2E_DEVS), in E2E_MODE.
e2e_load() {
	E2E_LOADED=1
	info "flow hash seed $E2E_SEED (E2E_SEED=$E2E_SEED to replay); mode $E2E_MODE"
	# shellcheck disable=SC2086 # E2E_LOAD_ARGS: extra load options, word-split
	must "tcpshift load" ts load "${E2E_DEV_ARGS[@]}" --seed "$E2E_SEED" ${E2E_LOAD_ARGS:-}
}

# e2e_service NAME VIP W1 W2: service NAME at VIP with backends v1 and v2 of
# VIP's family, of weights W1 and W2.
e2e_service() {
	local name=$1 vip=$2 w1=$3 w2=$4 b1=$V1_4 b2=$V2_4

	if [ "${vip:0:1}" = "[" ]; then
		b1=$V1_6
		b2=$V2_6
	fi
	must "service add $name" ts service add "$name" "$vip"
	must "backend add $name v1" ts backend add "$name" v1 "$b1" --weight "$w1"
	must "backend add $name v2" ts backend add "$name" v2 "$b2" --weight "$w2"
}

# ---- traffic ------------------------------------------------------------------

# client_count ADDR:PORT N: `ts-echo count` from the client (≤ 90 s).
client_count() {
	timeout 90 nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" count --connect "$1" --n "$2" \
		2>>"$E2E_TMP/count.err"
}

# count_of OUTPUT NAME: NAME's count in `ts-echo count` output, 0 if absent.
count_of() {
	awk -v n="$2" '$1 == n { c = $2 } END { print c + 0 }' <<<"$1"
}

# count_total OUTPUT: every connection, answered or not.
count_total() {
	awk '{ s += $2 } END { print s + 0 }' <<<"$1"
}

# hold_open ADDR:PORT: one long-lived connection from the client, as a coprocess.
hold_open() {
	coproc E2E_HOLD { exec nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" hold --connect "$1" \
		2>>"$E2E_TMP/hold.err"; }
	e2e_track_pid "$E2E_HOLD_PID"
}

# hold_send LINE: send LINE over the long-lived connection; its reply in HOLD_REPLY
# (empty when none came within 3 s). Returns 1 when no reply came.
hold_send() {
	local hin=${E2E_HOLD[1]:-} hout=${E2E_HOLD[0]:-}

	HOLD_REPLY=
	[ -n "$hin" ] && [ -n "$hout" ] || return 1
	{ echo "$1" >&"$hin"; } 2>/dev/null || return 1
	read -r -t 3 -u "$hout" HOLD_REPLY 2>/dev/null || return 1
	return 0
}

# within_sigmas OBSERVED N P K: is OBSERVED within K binomial standard deviations of N*P?
# Prints "expected E ± B" on stdout.
within_sigmas() {
	awk -v o="$1" -v n="$2" -v p="$3" -v k="$4" 'BEGIN {
		e = n * p; b = k * sqrt(n * p * (1 - p))
		printf "expected %.1f ± %.1f (%d sigma)", e, b, k
		d = o - e; if (d < 0) d = -d
		exit !(d <= b)
	}'
}

# ---- many long-lived connections (ts-echo holdmany) ----------------------------

MANY_LINES=()		# the "conn I ORIG RESULT" lines of the last holdmany answer
MANY_END=		# its "end ..." line

# many_read [SECONDS]: the lines of one holdmany answer, up to its "end" line,
# into MANY_LINES and MANY_END (≤ SECONDS, default 30). Returns 1 when none came.
many_read() {
	local line out=${E2E_MANY[0]:-} deadline=$((SECONDS + ${1:-30}))

	MANY_LINES=()
	MANY_END=
	[ -n "$out" ] || return 1
	while [ "$SECONDS" -le "$deadline" ]; do
		read -r -t 10 -u "$out" line 2>/dev/null || return 1
		case $line in
		end*) MANY_END=$line; return 0 ;;
		*) MANY_LINES+=("$line") ;;
		esac
	done
	return 1
}

# many_open ADDR:PORT [N]: a `ts-echo holdmany` coprocess in the client, which
# opens N connections (default none) to ADDR:PORT at once; read their lines
# with many_read. Only one many_open per script (one bash coprocess).
many_open() {
	local nopt=()

	[ "${2:-0}" -gt 0 ] && nopt=(--n "$2")
	coproc E2E_MANY { exec nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" holdmany \
		--connect "$1" "${nopt[@]}" 2>>"$E2E_TMP/holdmany.err"; }
	e2e_track_pid "$E2E_MANY_PID"
}

# many_cmd COMMAND [SECONDS]: send a holdmany command (open [EP], send TAG,
# send-to I TAG, status, close I, timeout MS), its answer in MANY_LINES and MANY_END.
many_cmd() {
	local in=${E2E_MANY[1]:-}

	MANY_LINES=()
	MANY_END=
	[ -n "$in" ] || return 1
	{ echo "$1" >&"$in"; } 2>/dev/null || return 1
	many_read "${2:-30}"
}

# many_field I FIELD: field FIELD (2 orig, 3 result) of connection I in MANY_LINES.
many_field() {
	printf '%s\n' "${MANY_LINES[@]}" | awk -v i="$1" -v f="$2" '$1 == "conn" && $2 == i {
		print $(f + 1); exit }'
}

# many_check PHASE TAG: every held connection sends TAG-I; ≥ 99 % of NCONN (the
# test's count of held connections) must be answered by the backend that
# answered its greeting: PASS or FAIL named PHASE.
many_check() {
	local phase=$1 tag=$2 ok results

	if ! many_cmd "send $tag" 60; then
		fail "$phase" "holdmany did not answer"
		return
	fi
	read -r _ ok _ <<<"$MANY_END"
	results=$(printf '%s\n' "${MANY_LINES[@]}" | awk '$1 == "conn" {
		r = ($3 == $4) ? "own-backend" : $4; c[r]++ }
		END { for (k in c) printf "%s=%d ", k, c[k] }')
	if [ $((${ok:-0} * 100)) -ge $((99 * NCONN)) ]; then
		pass "$phase: ${ok} of $NCONN connections answered by their own backend ($results)"
	else
		fail "$phase" "${ok:-0} of $NCONN answered by their own backend, want ≥ 99 % ($results)"
	fi
}

# ---- counters -----------------------------------------------------------------

# ts_counter NAME: a global counter of `tcpshift -j status` (empty on error).
ts_counter() {
	ts -j status 2>/dev/null | jq -r --arg n "$1" '.counters[$n] // empty' 2>/dev/null
}

# tx_dropped NS: frames NS's eth0 dropped on transmit. With XDP on a veth
# (E2E_MODE=xdp) a burst overflows the peer's 256-frame XDP ring, which has no
# backpressure, and the sender's eth0 counts what never reached any program.
tx_dropped() {
	in_ns "$1" ip -j -s link show eth0 2>/dev/null | jq '.[0].stats64.tx.dropped // 0'
}

# ns_snmp NS GROUP FIELD: a kernel counter of NS from /proc/net/snmp or
# /proc/net/netstat (GROUP Tcp, TcpExt, Ip…), e.g. ns_snmp NS Tcp OutRsts.
ns_snmp() {
	in_ns "$1" cat /proc/net/snmp /proc/net/netstat 2>/dev/null | awk -v g="$2:" -v f="$3" '
		$1 == g && !h { for (i = 2; i <= NF; i++) k[i] = $i; h = 1; next }
		$1 == g && h { for (i = 2; i <= NF; i++) if (k[i] == f) v = $i; exit }
		END { print v + 0 }'
}

# ---- more gateways (test_export.sh, test_ecmp.sh) ------------------------------
#
# Gateway NAME lives in namespace tse2e-<pid>-NAME (made with e2e_netns_add) and
# runs tcpshift with its own pin directory, /sys/fs/bpf/tcpshift-e2e-<pid>-NAME.

E2E_GWS=()		# gateways e2e_gw_load loaded, unloaded by e2e_gw_cleanup

gw_ns() {
	echo "tse2e-$E2E_ID-$1"
}

gw_pin() {
	echo "/sys/fs/bpf/tcpshift-e2e-$E2E_ID-$1"
}

# tsg NAME ARGS...: tcpshift on gateway NAME.
tsg() {
	local n=$1

	shift
	"$TCPSHIFT" --pin-dir "$(gw_pin "$n")" -n "$(gw_ns "$n")" "$@"
}

# e2e_gw_load NAME LOAD-ARGS...: tcpshift load on gateway NAME; the EXIT trap
# becomes e2e_gw_cleanup, which unloads it.
e2e_gw_load() {
	local n=$1

	shift
	[ -e "$(gw_pin "$n")" ] && e2e_abort "$(gw_pin "$n") already exists (left by an earlier run?)"
	E2E_GWS+=("$n")
	trap e2e_gw_cleanup EXIT
	must "tcpshift load on gateway $n" tsg "$n" load "$@"
}

# e2e_gw_cleanup: unload every gateway of e2e_gw_load and remove its pin
# directory (made by this script), then e2e_cleanup.
e2e_gw_cleanup() {
	local n pin

	[ "$E2E_CLEANED" -eq 1 ] && return 0
	for n in "${E2E_GWS[@]}"; do
		pin=$(gw_pin "$n")
		[ -e "$pin" ] || continue
		timeout 20 "$TCPSHIFT" --pin-dir "$pin" -n "$(gw_ns "$n")" unload >/dev/null 2>&1
		[ -e "$pin" ] && rm -rf -- "$pin"
	done
	e2e_cleanup
}

# ---- ECMP topologies (test_ecmp.sh, test_sync.sh) -----------------------------
#
# A client (namespace NS_CL, address CLIENT on lo) with one link per gateway,
# gateways and backends on a switch (namespace NS_SW, bridge br0). The test sets
# NS_SW and CLIENT.

# sysctls NS KEY=VALUE...
sysctls() {
	local ns=$1

	shift
	must "sysctl in $ns" in_ns "$ns" sysctl -qw "$@"
}

# ecmp_gateway NAME CLIENT-SIDE-NET SERVER-ADDR: gateway NAME's links, addresses
# and routes: c0 198.18.NET.1/24 to the client's eth((NET - 1) / 2), s0 at
# SERVER-ADDR/24 on the switch (namespace NS_SW, bridge br0), a route to the
# client's address CLIENT.
ecmp_gateway() {
	local g=$1 net=$2 saddr=$3 ns
	local cdev=eth$(((net - 1) / 2))

	ns=$(gw_ns "$g")
	must "$g client link" ip -n "$ns" link add c0 type veth peer name "$cdev" netns "$NS_CL"
	must "$g c0 address" ip -n "$ns" addr add "198.18.$net.1/24" dev c0
	must "$g c0 up" ip -n "$ns" link set c0 up
	must "client $cdev address" ip -n "$NS_CL" addr add "198.18.$net.2/24" dev "$cdev"
	must "client $cdev up" ip -n "$NS_CL" link set "$cdev" up
	must "$g switch link" ip -n "$NS_SW" link add "p$g" type veth peer name s0 netns "$ns"
	must "p$g into br0" ip -n "$NS_SW" link set "p$g" master br0 up
	must "$g s0 address" ip -n "$ns" addr add "$saddr/24" dev s0
	must "$g s0 up" ip -n "$ns" link set s0 up
	must "$g route to the client" ip -n "$ns" route add "$CLIENT/32" via "198.18.$net.2"
	sysctls "$ns" net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
		net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.c0.rp_filter=0 \
		net.ipv4.conf.s0.rp_filter=0
}

# ecmp_backend NS NAME ADDR: a backend on the switch, ts-echo server NAME at
# ADDR:8008 (its log in E2E_TMP).
ecmp_backend() {
	local ns=$1 name=$2 addr=$3

	must "$name switch link" ip -n "$NS_SW" link add "p$name" type veth peer name eth0 \
		netns "$ns"
	must "p$name into br0" ip -n "$NS_SW" link set "p$name" master br0 up
	must "$name address" ip -n "$ns" addr add "$addr/24" dev eth0
	must "$name up" ip -n "$ns" link set eth0 up
	sysctls "$ns" net.ipv4.fib_multipath_hash_policy=1 net.ipv4.conf.all.rp_filter=0
	nsenter --net="/run/netns/$ns" "$TS_ECHO" server --name "$name" --listen "$addr:8008" \
		>>"$E2E_TMP/server-$name.log" 2>&1 &
	e2e_track_pid "$!"
}

# many_open_four: a holdmany coprocess with four connections, 1 and 2 on v1
# (IPv4, IPv6), 3 and 4 on v2, for services tcp-echo and tcp-echo6 whose
# weights end at 50/50 (v1 keeps weight: a removal moves the table too).
many_open_four() {
	local ep want

	many_open "$VIP4"
	many_read 10 ||
		e2e_abort "ts-echo holdmany did not start ($(tr '\n' ' ' <"$E2E_TMP/holdmany.err"))"
	for ep in "$VIP4 v1" "$VIP6 v1" weights "$VIP4 v2" "$VIP6 v2"; do
		if [ "$ep" = weights ]; then
			must "weight 0/100" ts weight tcp-echo v1=0 v2=100
			must "weight 0/100 (v6)" ts weight tcp-echo6 v1=0 v2=100
			continue
		fi
		read -r ep want <<<"$ep"
		if ! many_cmd "open $ep" ||
			[ "$(awk '{ print $3 }' <<<"${MANY_LINES[0]:-}")" != "$want" ]; then
			e2e_abort "a connection to $ep did not reach $want:" \
				"${MANY_LINES[*]:-no answer} ($(tr '\n' ' ' <"$E2E_TMP/holdmany.err"))"
		fi
	done
	must "weight 50/50" ts weight tcp-echo v1=50 v2=50
	must "weight 50/50 (v6)" ts weight tcp-echo6 v1=50 v2=50
	many_cmd "timeout 1000" >/dev/null
}
