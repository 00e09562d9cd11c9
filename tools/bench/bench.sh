#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# make bench: tcpshift side by side with its peers, in one run on this machine.
#
# Topology (network namespaces tsbench-<pid>-{cl,gw,b1,b2}, IPv4 198.18.0.0/15):
#
#   client 198.18.1.2 -- gwc 198.18.1.1 [gateway] b1 198.18.2.1/32 -- 198.18.2.11 (b1)
#                                                  b2 198.18.2.1/32 -- 198.18.2.12 (b2)
#
# Each backend hangs off a gateway veth of its own with a host route (no
# bridge: XDP needs native support on every device tcpshift attaches to). The
# client and the backends send complete checksums (TX offload off: XDP sees
# no offload state) and have GRO on (a veth receives XDP-redirected frames
# only with NAPI on its peer); every method runs in these conditions.
#   VIP 198.18.100.1: :80 nginx (HTTP), :8008 ts-echo, :5201 iperf3 (b1 only)
#
# Each backend runs nginx (one worker, a 3-byte answer), `ts-echo server` and
# an iperf3 server. Methods, each set up on the gateway, measured, torn down,
# in a rotating order every round (ROUNDS, default 2):
#
#   direct     no load balancer: the client talks to b1 and b2 themselves,
#              routed by the gateway (the ceiling)
#   iptables   DNAT with -m statistic --mode random (kube-proxy style),
#              changed with iptables-restore --noflush
#   nftables   dnat to numgen random mod 100 map {...}, changed with nft -f
#   haproxy    HAProxy in TCP mode on the gateway, roundrobin with weights,
#              changed through its runtime API (set weight)
#   nginx      nginx `stream` proxy on the gateway, weighted round robin,
#              changed by rewriting its configuration and reloading
#   tcpshift   tcpshift on gwc, b1 and b2, changed with `tcpshift weight`
#   tcpshift-fib  the same, loaded with --forward fib (FIB lookup + redirect)
#   tcpshift-xdp  the same, loaded with --mode xdp (established flows at XDP)
#
# Measured per method and round: new connections/s (two wrk, one thread each,
# Connection: close), keep-alive requests/s (the same, keep-alive), single-
# stream throughput (iperf3 to :5201, which only b1 serves: iperf3's control
# and data connections must meet one server), split accuracy at 90/10 and
# 50/50 (SPLIT_N ts-echo connections), the time from a weight command
# (100/0 -> 0/100) to all new connections following it (tools/bench/follow.c),
# and whether a connection held open across that change stays on its backend.
#
# Output (OUT, default build/bench): bench.md (medians over rounds, ratios to
# iptables and to direct), bench.json, bench-raw.tsv, and PNG plots.
#
# Knobs: ROUNDS=2 DURATION=5 (s per wrk/iperf3 run) SPLIT_N=2000 WRK_CONNS=16
# METHODS="direct iptables nftables haproxy nginx tcpshift tcpshift-fib tcpshift-xdp" SUMMARIZE_ONLY=0 (1:
# only rebuild the tables, JSON and plots from OUT/bench-raw.tsv) BPF_STATS=0 (1:
# also run one wrk with kernel.bpf_stats_enabled to report tcpshift's in-situ
# ns per packet; it is a global switch, restored at the end) INSTALL=1 (0:
# never apt-get). Every load run is bounded in time; the trap stops what this
# script started and removes its namespaces, pin directory and files.

set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=tools/bench/lib.sh
. "$ROOT/tools/bench/lib.sh"
TCPSHIFT=${TCPSHIFT:-$ROOT/build/tcpshift}
TS_ECHO=${TS_ECHO:-$ROOT/build/ts-echo}
FOLLOW=${FOLLOW:-$ROOT/build/bench/follow}
OUT=${OUT:-$ROOT/build/bench}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-5}
SPLIT_N=${SPLIT_N:-2000}
WRK_CONNS=${WRK_CONNS:-16}
METHODS=${METHODS:-"direct iptables nftables haproxy nginx tcpshift tcpshift-fib tcpshift-xdp"}
BPF_STATS=${BPF_STATS:-0}
INSTALL=${INSTALL:-1}

ID=$$
NS_CL=tsbench-$ID-cl
NS_GW=tsbench-$ID-gw
NS_B1=tsbench-$ID-b1
NS_B2=tsbench-$ID-b2
PIN=/sys/fs/bpf/tcpshift-bench-$ID
VIP=198.18.100.1
B1=198.18.2.11
B2=198.18.2.12
NGINX_STREAM_MODULE=/usr/lib/nginx/modules/ngx_stream_module.so
DEB_PEERS="nginx libnginx-mod-stream haproxy wrk iperf3 gnuplot-nox nftables iptables socat jq"
PEER_SERVICES="nginx haproxy"

TMP=
PIDS=()			# processes this script started
NETNS=()		# namespaces this script made
LOADED=0		# tcpshift loaded under PIN
BPF_STATS_OLD=
CLEANED=0
GW_PIDS=()		# the current method's gateway processes
HOLD_PID=

log() { printf '  %-8s %s\n' "$1" "${*:2}" >&2; }
die() {
	echo "bench: $*" >&2
	exit 1
}

cleanup() {
	local pid ns i

	[ "$CLEANED" -eq 1 ] && return 0
	CLEANED=1
	for pid in "${PIDS[@]}" "${GW_PIDS[@]}" ${HOLD_PID:+"$HOLD_PID"}; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}" "${GW_PIDS[@]}" ${HOLD_PID:+"$HOLD_PID"}; do
		for ((i = 0; i < 20; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "$LOADED" -eq 1 ] && [ -e "$PIN" ]; then
		timeout 20 "$TCPSHIFT" --pin-dir "$PIN" -n "$NS_GW" unload >/dev/null 2>&1
	fi
	[ -e "$PIN" ] && rm -rf -- "$PIN"
	for ns in "${NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	[ -n "$BPF_STATS_OLD" ] && sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_OLD"
	[ "$POLICY_RC_MADE" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
	[ -n "$TMP" ] && [ -d "$TMP" ] && rm -rf -- "$TMP"
	return 0
}

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

in_ns() {
	local ns=$1
	shift
	nsenter --net="/run/netns/$ns" "$@"
}

ts() { "$TCPSHIFT" --pin-dir "$PIN" -n "$NS_GW" "$@"; }

must() {
	local desc=$1 err
	shift
	err=$("$@" 2>&1 >/dev/null) || die "$desc failed: ${err:-no message} (command: $*)"
}

# ---- topology -----------------------------------------------------------------------

netns_add() {
	must "namespace $1" ip netns add "$1"
	NETNS+=("$1")
	must "lo up in $1" ip -n "$1" link set lo up
}

backend_ns() {
	local ns=$1 port=$2 addr=$3

	must "veth $port" ip -n "$NS_GW" link add "$port" type veth peer name eth0 netns "$ns"
	must "$port up" ip -n "$NS_GW" link set "$port" up
	must "$port address" ip -n "$NS_GW" addr add 198.18.2.1/32 dev "$port"
	must "route to $addr" ip -n "$NS_GW" route add "$addr/32" dev "$port"
	must "$ns eth0 up" ip -n "$ns" link set eth0 up
	xdp_peer "$ns"
	must "$ns address" ip -n "$ns" addr add "$addr/24" dev eth0
	must "$ns route" ip -n "$ns" route add default via 198.18.2.1
	must "$ns sysctls" in_ns "$ns" sysctl -qw net.core.somaxconn=8192 \
		net.ipv4.tcp_max_syn_backlog=8192
}

# xdp_peer NS: eth0 in NS faces the gateway: complete checksums, GRO on (set
# while up, off first: only a change tells the gateway's veth it may redirect)
xdp_peer() {
	must "$1 checksums" in_ns "$1" ethtool -K eth0 tx off
	must "$1 GRO" in_ns "$1" ethtool -K eth0 gro off
	must "$1 GRO" in_ns "$1" ethtool -K eth0 gro on
}

# start NAME CMD...: start CMD in the background (in whatever namespace its
# nsenter says), its log in TMP/NAME.log; the pid is tracked.
start() {
	local name=$1
	shift
	"$@" >>"$TMP/$name.log" 2>&1 &
	PIDS+=("$!")
}

nginx_backend_conf() {
	local dir=$1 addr=$2 name=$3

	mkdir -p "$dir"
	cat >"$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 16384; }
http {
	access_log off;
	keepalive_requests 100000000;
	keepalive_timeout 60s;
	server {
		listen $addr:80 reuseport backlog=8192;
		location / { return 200 "$name\n"; }
	}
}
EOF
}

topology() {
	local ns name addr i

	for ns in "$NS_CL" "$NS_GW" "$NS_B1" "$NS_B2"; do
		netns_add "$ns"
	done
	must "gateway sysctls" in_ns "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192 \
		net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
	must "client veth" ip -n "$NS_GW" link add gwc type veth peer name eth0 netns "$NS_CL"
	must "gwc address" ip -n "$NS_GW" addr add 198.18.1.1/24 dev gwc
	must "gwc up" ip -n "$NS_GW" link set gwc up
	must "client up" ip -n "$NS_CL" link set eth0 up
	xdp_peer "$NS_CL"
	must "client address" ip -n "$NS_CL" addr add 198.18.1.2/24 dev eth0
	must "client route" ip -n "$NS_CL" route add default via 198.18.1.1
	must "client sysctls" in_ns "$NS_CL" sysctl -qw \
		net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1
	backend_ns "$NS_B1" b1 "$B1"
	backend_ns "$NS_B2" b2 "$B2"
	for name in gwc b1 b2; do
		must "rp_filter $name" in_ns "$NS_GW" sysctl -qw "net.ipv4.conf.$name.rp_filter=0"
	done

	for i in 1 2; do
		ns=$NS_B1 addr=$B1
		[ "$i" = 2 ] && ns=$NS_B2 addr=$B2
		nginx_backend_conf "$TMP/nginx-b$i" "$addr" "b$i"
		start "nginx-b$i" nsenter --net="/run/netns/$ns" nginx -e "$TMP/nginx-b$i/error.log" \
			-p "$TMP/nginx-b$i" -c "$TMP/nginx-b$i/nginx.conf" -g 'daemon off;'
		start "echo-b$i" nsenter --net="/run/netns/$ns" "$TS_ECHO" server --name "b$i" \
			--listen "$addr:8008"
		start "iperf3-b$i" nsenter --net="/run/netns/$ns" iperf3 -s -B "$addr" -p 5201
	done
	for ((i = 0; i < 50; i++)); do
		probe_ok "$B1:80" && probe_ok "$B2:80" && echo_name "$B1:8008" >/dev/null &&
			echo_name "$B2:8008" >/dev/null && return 0
		sleep 0.1
	done
	die "backends do not answer the client (see $TMP/*.log: $(tail -n 2 "$TMP"/*.log | tr '\n' ' '))"
}

# client_src K: the client's source address becomes 198.18.1.(10 + K % 240).
# Every method and round gets its own: the backends keep a TIME_WAIT socket
# for every client port for 60 s, and a new SYN on the same 4-tuple whose
# timestamp and sequence number come from another method's path (direct: the
# client's clock offset for the backend's address; DNAT: for the VIP's) is
# refused half of the time, costing a 1 s SYN retransmission. Without this,
# a method's new-connection rate depended on the one measured before it.
client_src() {
	local a=198.18.1.$((10 + $1 % 240))

	ip -n "$NS_CL" addr add "$a/24" dev eth0 2>/dev/null
	must "client source $a" ip -n "$NS_CL" route replace default via 198.18.1.1 src "$a"
}

probe_ok() {
	in_ns "$NS_CL" timeout 2 bash -c "exec 3<>/dev/tcp/${1%:*}/${1#*:}" 2>/dev/null
}

# echo_name ADDR:PORT: the backend answering one ts-echo connection.
echo_name() {
	local out
	out=$(in_ns "$NS_CL" "$TS_ECHO" count --connect "$1" --n 1 --timeout-ms 500 2>/dev/null)
	awk '$1 != "error" && $2 > 0 { print $1; f = 1 } END { exit !f }' <<<"$out"
}

# ---- methods: set up, change weights (W1 W2 for service :8008), tear down -------------

# Weights of :80 are 50/50 throughout; :5201 goes to b1 only.

ipt_rules() {		# CHAIN PORT W1 W2
	local chain=$1 port=$2 w1=$3 w2=$4

	echo ":$chain - [0:0]"
	if [ "$w1" -gt 0 ] && [ "$w2" -gt 0 ]; then
		awk -v c="$chain" -v p="$port" -v w1="$w1" -v w2="$w2" -v b="$B1" 'BEGIN {
			printf "-A %s -p tcp -m statistic --mode random --probability %.10f -j DNAT --to-destination %s:%s\n",
				c, w1 / (w1 + w2), b, p }'
		echo "-A $chain -p tcp -j DNAT --to-destination $B2:$port"
	elif [ "$w1" -gt 0 ]; then
		echo "-A $chain -p tcp -j DNAT --to-destination $B1:$port"
	else
		echo "-A $chain -p tcp -j DNAT --to-destination $B2:$port"
	fi
}

conntrack_sysctls() {
	# many short connections: do not let TIME_WAIT entries fill the table
	in_ns "$NS_GW" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=1 \
		net.netfilter.nf_conntrack_tcp_timeout_close_wait=5 \
		net.netfilter.nf_conntrack_tcp_timeout_fin_wait=5 2>/dev/null
}

setup_iptables() {
	{
		echo "*nat"
		echo ":PREROUTING ACCEPT [0:0]"
		ipt_rules TSB-80 80 50 50 | head -1
		ipt_rules TSB-8008 8008 50 50 | head -1
		ipt_rules TSB-5201 5201 1 0 | head -1
		echo "-A PREROUTING -d $VIP/32 -p tcp --dport 80 -j TSB-80"
		echo "-A PREROUTING -d $VIP/32 -p tcp --dport 8008 -j TSB-8008"
		echo "-A PREROUTING -d $VIP/32 -p tcp --dport 5201 -j TSB-5201"
		ipt_rules TSB-80 80 50 50 | tail -n +2
		ipt_rules TSB-8008 8008 50 50 | tail -n +2
		ipt_rules TSB-5201 5201 1 0 | tail -n +2
		echo "COMMIT"
	} >"$TMP/ipt.rules"
	must "iptables-restore" in_ns "$NS_GW" iptables-restore "$TMP/ipt.rules"
	conntrack_sysctls
}

weight_cmd_iptables() {	# W1 W2: prints the command that changes :8008
	{
		echo "*nat"
		ipt_rules TSB-8008 8008 "$1" "$2"
		echo "COMMIT"
	} >"$TMP/ipt-w-$1-$2.rules"
	echo nsenter --net="/run/netns/$NS_GW" iptables-restore --noflush "$TMP/ipt-w-$1-$2.rules"
}

teardown_netfilter() {
	in_ns "$NS_GW" iptables -t nat -F 2>/dev/null
	in_ns "$NS_GW" iptables -t nat -X 2>/dev/null
	in_ns "$NS_GW" nft flush ruleset 2>/dev/null
}

nft_map() {		# PORT W1 W2 -> the dnat statement
	local w1=$2 w2=$3 cut

	if [ "$w1" -gt 0 ] && [ "$w2" -gt 0 ]; then
		cut=$(((100 * w1 + (w1 + w2) / 2) / (w1 + w2)))
		[ "$cut" -ge 100 ] && cut=99
		[ "$cut" -le 0 ] && cut=1
		echo "dnat to numgen random mod 100 map { 0-$((cut - 1)) : $B1, $cut-99 : $B2 }"
	elif [ "$w1" -gt 0 ]; then
		echo "dnat to $B1"
	else
		echo "dnat to $B2"
	fi
}

nft_ruleset() {		# W1 W2 of :8008
	cat <<EOF
table ip tsbench {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr $VIP tcp dport 80 $(nft_map 80 50 50)
		ip daddr $VIP tcp dport 8008 $(nft_map 8008 "$1" "$2")
		ip daddr $VIP tcp dport 5201 $(nft_map 5201 1 0)
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
	}
}
EOF
}

setup_nftables() {
	nft_ruleset 50 50 >"$TMP/nft.rules"
	must "nft -f" in_ns "$NS_GW" nft -f "$TMP/nft.rules"
	conntrack_sysctls
}

weight_cmd_nftables() {
	# one transaction: flush the table's rules and add the new ones
	{
		echo "flush table ip tsbench"
		nft_ruleset "$1" "$2" | sed -e '/^table/,$!d'
	} >"$TMP/nft-w-$1-$2.rules"
	echo nsenter --net="/run/netns/$NS_GW" nft -f "$TMP/nft-w-$1-$2.rules"
}

vip_on_gateway() {
	must "VIP on the gateway" ip -n "$NS_GW" addr add "$VIP/32" dev lo
}

vip_off_gateway() {
	ip -n "$NS_GW" addr del "$VIP/32" dev lo 2>/dev/null
}

# wait_listen PORT...: until the gateway listens on VIP:PORT for each (≤ 5 s)
wait_listen() {
	local p i ok

	for ((i = 0; i < 50; i++)); do
		ok=1
		for p in "$@"; do
			in_ns "$NS_GW" ss -Hltn "src $VIP:$p" | grep -q . || ok=0
		done
		[ "$ok" = 1 ] && return 0
		sleep 0.1
	done
	return 1
}

setup_haproxy() {
	vip_on_gateway
	cat >"$TMP/haproxy.cfg" <<EOF
global
	maxconn 8000
	stats socket $TMP/haproxy.sock mode 600 level admin
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
frontend f80
	bind $VIP:80
	default_backend k80
frontend f8008
	bind $VIP:8008
	default_backend k8008
frontend f5201
	bind $VIP:5201
	default_backend k5201
backend k80
	balance roundrobin
	server b1 $B1:80 weight 50
	server b2 $B2:80 weight 50
backend k8008
	balance roundrobin
	server b1 $B1:8008 weight 50
	server b2 $B2:8008 weight 50
backend k5201
	server b1 $B1:5201
EOF
	nsenter --net="/run/netns/$NS_GW" haproxy -db -f "$TMP/haproxy.cfg" >>"$TMP/haproxy.log" 2>&1 &
	GW_PIDS+=("$!")
	wait_listen 80 8008 5201 || die "haproxy does not listen (see $TMP/haproxy.log)"
}

weight_cmd_haproxy() {
	echo "sh -c 'echo \"set weight k8008/b1 $1; set weight k8008/b2 $2\" | socat - UNIX-CONNECT:$TMP/haproxy.sock >/dev/null'"
}

nginx_stream_conf() {	# W1 W2 FILE: the gateway's nginx.conf, :8008 at weights W1 W2
	local s1="weight=$1" s2="weight=$2"

	[ "$1" -eq 0 ] && s1=down
	[ "$2" -eq 0 ] && s2=down
	cat >"$3" <<EOF
load_module $NGINX_STREAM_MODULE;
worker_processes 2;
worker_rlimit_nofile 19000;
pid $TMP/nginx-gw/nginx.pid;
error_log $TMP/nginx-gw/error.log warn;
events { worker_connections 9000; }
stream {
	upstream u80 { server $B1:80 weight=50; server $B2:80 weight=50; }
	upstream u8008 { server $B1:8008 $s1; server $B2:8008 $s2; }
	upstream u5201 { server $B1:5201; }
	server { listen $VIP:80 reuseport backlog=8192; proxy_pass u80; }
	server { listen $VIP:8008 reuseport; proxy_pass u8008; }
	server { listen $VIP:5201; proxy_pass u5201; }
}
EOF
}

setup_nginx() {
	vip_on_gateway
	mkdir -p "$TMP/nginx-gw"
	nginx_stream_conf 50 50 "$TMP/nginx-gw/nginx.conf"
	nsenter --net="/run/netns/$NS_GW" nginx -e "$TMP/nginx-gw/error.log" -p "$TMP/nginx-gw" \
		-c "$TMP/nginx-gw/nginx.conf" -g 'daemon off;' >>"$TMP/nginx-gw.log" 2>&1 &
	GW_PIDS+=("$!")
	wait_listen 80 8008 5201 || die "nginx does not listen (see $TMP/nginx-gw/error.log)"
}

weight_cmd_nginx() {
	# what an operator does: a new configuration, then a reload (SIGHUP)
	local new=$TMP/nginx-gw/w-$1-$2.conf

	nginx_stream_conf "$1" "$2" "$new"
	echo "cp $new $TMP/nginx-gw/nginx.conf && kill -HUP \$(cat $TMP/nginx-gw/nginx.pid)"
}

# setup_tcpshift [LOAD OPTIONS]
setup_tcpshift() {
	LOADED=1
	must "tcpshift load" ts load --dev gwc --dev b1 --dev b2 "$@"
	must "service s80" ts service add s80 "$VIP:80"
	must "backend b1" ts backend add s80 b1 "$B1:80" --weight 50
	must "backend b2" ts backend add s80 b2 "$B2:80" --weight 50
	must "service s8008" ts service add s8008 "$VIP:8008"
	must "backend b1" ts backend add s8008 b1 "$B1:8008" --weight 50
	must "backend b2" ts backend add s8008 b2 "$B2:8008" --weight 50
	must "service s5201" ts service add s5201 "$VIP:5201"
	must "backend b1" ts backend add s5201 b1 "$B1:5201" --weight 1
}

weight_cmd_tcpshift() {
	echo "$TCPSHIFT --pin-dir $PIN -n $NS_GW weight s8008 b1=$1 b2=$2"
}

weight_cmd_tcpshift-fib() {
	weight_cmd_tcpshift "$@"
}

weight_cmd_tcpshift-xdp() {
	weight_cmd_tcpshift "$@"
}

teardown_gw_pids() {
	local pid i

	for pid in "${GW_PIDS[@]}"; do
		kill "$pid" 2>/dev/null
	done
	for pid in "${GW_PIDS[@]}"; do
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	GW_PIDS=()
}

setup() {
	case $1 in
	direct) ;;
	iptables) setup_iptables ;;
	nftables) setup_nftables ;;
	haproxy) setup_haproxy ;;
	nginx) setup_nginx ;;
	tcpshift) setup_tcpshift ;;
	tcpshift-fib) setup_tcpshift --forward fib ;;
	tcpshift-xdp) setup_tcpshift --mode xdp ;;
	*) die "unknown method $1" ;;
	esac
}

teardown() {
	case $1 in
	iptables | nftables) teardown_netfilter ;;
	haproxy | nginx)
		teardown_gw_pids
		vip_off_gateway
		;;
	tcpshift | tcpshift-fib | tcpshift-xdp)
		ts unload >/dev/null 2>&1
		LOADED=0
		;;
	esac
}

# weight_change METHOD W1 W2: apply now (for the split measurements)
weight_change() {
	local cmd
	cmd=$(weight_cmd_"$1" "$2" "$3")
	eval "$cmd" >/dev/null 2>>"$TMP/weight.err"
}

# ---- measurements -----------------------------------------------------------------

RAW=

record() {	# ROUND METHOD METRIC VALUE
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RAW"
}

# wrk_pair METHOD SECONDS close|keepalive: requests/s of two wrk at once
wrk_pair() {
	local m=$1 secs=$2 mode=$3 u1 u2 hdr=() f1=$TMP/wrk1.out f2=$TMP/wrk2.out p1 p2

	if [ "$m" = direct ]; then
		u1=http://$B1/ u2=http://$B2/
	else
		u1=http://$VIP/ u2=http://$VIP/
	fi
	[ "$mode" = close ] && hdr=(-H 'Connection: close')
	in_ns "$NS_CL" timeout $((secs + 15)) wrk -t1 -c"$WRK_CONNS" -d"${secs}s" "${hdr[@]}" \
		"$u1" >"$f1" 2>&1 &
	p1=$!
	in_ns "$NS_CL" timeout $((secs + 15)) wrk -t1 -c"$WRK_CONNS" -d"${secs}s" "${hdr[@]}" \
		"$u2" >"$f2" 2>&1 &
	p2=$!
	wait "$p1" "$p2"
	cat "$f1" "$f2" >>"$TMP/wrk-$m.log"
	awk '/^Requests\/sec:/ { s += $2; n++ }
	     /Socket errors:/ { gsub(/,/, ""); e += $4 + $6 + $8 + $10 }
	     /Non-2xx/ { e += $NF }
	     END { if (n != 2) print "NA", 0; else printf "%.1f %d\n", s, e }' "$f1" "$f2"
}

iperf_once() {
	local m=$1 dst=$VIP out

	[ "$m" = direct ] && dst=$B1
	out=$(in_ns "$NS_CL" timeout $((DURATION + 20)) iperf3 -c "$dst" -p 5201 -t "$DURATION" \
		-O 1 -J 2>>"$TMP/iperf3.err")
	jq -r '(.end.sum_received.bits_per_second // empty) / 1e9 | . * 1000 | round / 1000' \
		<<<"$out" 2>/dev/null || echo NA
}

# split_of METHOD W1 W2: % of SPLIT_N connections answered by b1
split_of() {
	local out
	weight_change "$1" "$2" "$3"
	sleep 0.2	# nginx reload: its new workers take over
	out=$(in_ns "$NS_CL" timeout 120 "$TS_ECHO" count --connect "$VIP:8008" --n "$SPLIT_N" \
		--timeout-ms 1000 2>>"$TMP/count.err")
	awk -v n="$SPLIT_N" '$1 == "b1" { b1 = $2 } { t += $2 }
		END { if (t < n * 0.99) print "NA"; else printf "%.2f\n", 100 * b1 / t }' <<<"$out"
}

# follow_change METHOD ROUND: 100/0, a held connection on b1, then the command
# to 0/100 under tools/bench/follow; records follow_ms, cmd_ms, held.
follow_change() {
	local m=$1 r=$2 cmd out reply held=no

	weight_change "$m" 100 0
	sleep 0.3
	coproc HOLD { exec nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" hold \
		--connect "$VIP:8008" 2>>"$TMP/hold.err"; }
	HOLD_PID=$HOLD_PID
	exec {hin}>&"${HOLD[1]}" {hout}<&"${HOLD[0]}"
	reply=
	echo before >&"$hin" && read -r -t 3 -u "$hout" reply
	if [ "${reply%% *}" != b1 ]; then
		log WARN "$m: held connection answered '${reply:-nothing}' before the change, not b1"
	fi
	cmd=$(weight_cmd_"$m" 0 100)
	# shellcheck disable=SC2086
	out=$(in_ns "$NS_CL" "$FOLLOW" --connect "$VIP:8008" --want b2 --streak 50 \
		--timeout-ms 10000 -- sh -c "$cmd" 2>>"$TMP/follow.err")
	reply=
	{ echo after >&"$hin"; } 2>/dev/null && read -r -t 3 -u "$hout" reply
	[ "${reply%% *}" = b1 ] && [ "${reply#* }" = after ] && held=yes
	exec {hin}>&- {hout}<&-
	kill "$HOLD_PID" 2>/dev/null
	wait "$HOLD_PID" 2>/dev/null
	HOLD_PID=
	record "$r" "$m" follow_ms "$(awk '{ print ($6 < 0 ? "NA" : $6) }' <<<"$out")"
	record "$r" "$m" weight_cmd_ms "$(awk '{ print $2 }' <<<"$out")"
	record "$r" "$m" held_survives "$held"
	log "$m" "weight 100/0 -> 0/100: follow $(awk '{ print $6 }' <<<"$out") ms" \
		"(command $(awk '{ print $2 }' <<<"$out") ms), held connection stays on b1: $held"
}

measure() {	# METHOD ROUND
	local m=$1 r=$2 res v e retr syn rst opens

	wrk_pair "$m" 1 close >/dev/null	# warm-up
	in_ns "$NS_CL" env NSTAT_HISTORY="$TMP/nstat-cl" nstat -n
	res=$(wrk_pair "$m" "$DURATION" close)
	read -r v e <<<"$res"
	record "$r" "$m" new_conn_per_s "$v"
	record "$r" "$m" new_conn_errors "$e"
	# the client's view: SYNs sent again (a lost or refused SYN costs 1 s)
	retr=$(in_ns "$NS_CL" env NSTAT_HISTORY="$TMP/nstat-cl" nstat -z |
		awk '$1 == "TcpExtTCPSynRetrans" { s = $2 } $1 == "TcpOutRsts" { r = $2 }
		     $1 == "TcpActiveOpens" { o = $2 } END { printf "%d %d %d", s, r, o }')
	read -r syn rst opens <<<"$retr"
	record "$r" "$m" new_conn_syn_retrans "$syn"
	record "$r" "$m" new_conn_client_rsts "$rst"
	log "$m" "new connections/s $v (errors $e; client: $opens opens, $syn SYN retransmits, $rst RSTs sent)"
	res=$(wrk_pair "$m" "$DURATION" keepalive)
	read -r v e <<<"$res"
	record "$r" "$m" keepalive_req_per_s "$v"
	record "$r" "$m" keepalive_errors "$e"
	log "$m" "keep-alive requests/s $v (errors $e)"
	v=$(iperf_once "$m")
	record "$r" "$m" stream_gbit_s "${v:-NA}"
	log "$m" "single stream ${v:-NA} Gbit/s"
	[ "$m" = direct ] && return 0
	v=$(split_of "$m" 90 10)
	record "$r" "$m" split_90_10_pct_b1 "$v"
	e=$(split_of "$m" 50 50)
	record "$r" "$m" split_50_50_pct_b1 "$e"
	log "$m" "split: 90/10 -> $v % on b1, 50/50 -> $e % on b1"
	follow_change "$m" "$r"
}

bpf_stats_run() {
	local id before after

	BPF_STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled)
	setup tcpshift
	id=$(in_ns "$NS_GW" bpftool -j net show dev gwc |
		jq -r '[.[].tc[]? | select(.kind == "clsact/ingress") | .id][0] // empty')
	[ -n "$id" ] || {
		log WARN "no tcpshift program on gwc: no in-situ figures"
		teardown tcpshift
		return
	}
	sysctl -qw kernel.bpf_stats_enabled=1
	before=$(bpftool -j prog show id "$id" | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"')
	wrk_pair tcpshift "$DURATION" close >/dev/null
	after=$(bpftool -j prog show id "$id" | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"')
	sysctl -qw kernel.bpf_stats_enabled="$BPF_STATS_OLD"
	BPF_STATS_OLD=
	read -r t0 c0 <<<"$before"
	read -r t1 c1 <<<"$after"
	INSITU=$(awk -v t="$((t1 - t0))" -v c="$((c1 - c0))" 'BEGIN {
		if (c > 0) printf "%.1f %d", t / c, c; else print "NA 0" }')
	record 0 tcpshift insitu_ns_per_run "${INSITU% *}"
	record 0 tcpshift insitu_runs "${INSITU#* }"
	log tcpshift "in situ (kernel.bpf_stats_enabled, new connections): ${INSITU% *} ns per run, ${INSITU#* } runs"
	teardown tcpshift
}

# ---- summary: markdown, JSON, plots --------------------------------------------------

# medians METRIC: "method median min max" per method, in METHODS order
medians() {
	local m
	for m in $METHODS; do
		awk -F'\t' -v m="$m" -v k="$1" '$2 == m && $3 == k && $4 != "NA" { print $4 }' "$RAW" |
			sort -g | awk -v m="$m" '{ v[NR] = $1 } END {
				if (!NR) { print m, "NA", "NA", "NA"; exit }
				med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
				print m, med, v[1], v[NR] }'
	done
}

value_of() {	# FILE METHOD [DECIMALS] -> median
	awk -v m="$2" -v d="${3:-}" '$1 == m {
		if (d == "" || $2 == "NA") print $2; else printf "%.*f\n", d, $2 }' "$1"
}

ratio() {	# A B -> A/B with 2 decimals, or —
	awk -v a="$1" -v b="$2" 'BEGIN { if (a == "NA" || b == "NA" || b == "" || a == "" || b == 0) print "—"; else printf "%.2f", a / b }'
}

summarize() {
	local k m f nc ka st base_i base_d s9 s5 fo wc held

	if [ -z "${INSITU:-}" ]; then
		INSITU=$(awk -F'\t' '$3 == "insitu_ns_per_run" { t = $4 } $3 == "insitu_runs" { c = $4 }
			END { if (t != "") print t, c }' "$RAW")
	fi
	for k in new_conn_per_s keepalive_req_per_s stream_gbit_s split_90_10_pct_b1 \
		split_50_50_pct_b1 follow_ms weight_cmd_ms new_conn_errors keepalive_errors \
		new_conn_syn_retrans new_conn_client_rsts; do
		medians "$k" >"$TMP/med-$k"
	done
	{
		echo "# tcpshift against its peers (make bench)"
		echo
		echo "Machine: $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r)."
		echo "$ROUNDS rounds, methods in rotating order each round; medians over rounds (min-max in bench.json)."
		echo "wrk: two instances of 1 thread and $WRK_CONNS connections each, ${DURATION} s; iperf3: one stream, ${DURATION} s (first second omitted)."
		echo
		echo "| method | new conn/s | × iptables | × direct | keep-alive req/s | × iptables | × direct | 1 stream Gbit/s | × iptables | × direct |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
		for m in $METHODS; do
			nc=$(value_of "$TMP/med-new_conn_per_s" "$m")
			ka=$(value_of "$TMP/med-keepalive_req_per_s" "$m")
			st=$(value_of "$TMP/med-stream_gbit_s" "$m")
			printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$m" \
				"$(awk -v v="$nc" 'BEGIN { if (v == "NA" || v == "") print "NA"; else printf "%.0f", v }')" \
				"$(ratio "$nc" "$(value_of "$TMP/med-new_conn_per_s" iptables)")" \
				"$(ratio "$nc" "$(value_of "$TMP/med-new_conn_per_s" direct)")" \
				"$(awk -v v="$ka" 'BEGIN { if (v == "NA" || v == "") print "NA"; else printf "%.0f", v }')" \
				"$(ratio "$ka" "$(value_of "$TMP/med-keepalive_req_per_s" iptables)")" \
				"$(ratio "$ka" "$(value_of "$TMP/med-keepalive_req_per_s" direct)")" \
				"$(value_of "$TMP/med-stream_gbit_s" "$m" 2)" \
				"$(ratio "$st" "$(value_of "$TMP/med-stream_gbit_s" iptables)")" \
				"$(ratio "$st" "$(value_of "$TMP/med-stream_gbit_s" direct)")"
		done
		echo
		echo "Weights and their changes (service :8008, $SPLIT_N ts-echo connections per split; the change is 100/0 → 0/100, 'follow' = from the command's start until every new connection goes to the new backend, 50 in a row):"
		echo
		echo "| method | 90/10: % to b1 | 50/50: % to b1 | weight command ms | follow ms | held connection stays |"
		echo "|---|---:|---:|---:|---:|---|"
		for m in $METHODS; do
			[ "$m" = direct ] && continue
			held=$(awk -F'\t' -v m="$m" '$2 == m && $3 == "held_survives" { n++; y += ($4 == "yes") }
				END { if (!n) print "—"; else printf "%s (%d/%d rounds)", (y == n ? "yes" : "no"), y, n }' "$RAW")
			printf '| %s | %s | %s | %s | %s | %s |\n' "$m" \
				"$(value_of "$TMP/med-split_90_10_pct_b1" "$m" 1)" \
				"$(value_of "$TMP/med-split_50_50_pct_b1" "$m" 1)" \
				"$(value_of "$TMP/med-weight_cmd_ms" "$m" 1)" \
				"$(value_of "$TMP/med-follow_ms" "$m" 1)" "$held"
		done
		echo
		echo "Diagnostics of the new-connection runs (medians): wrk socket errors, and the client's SYN retransmissions and RSTs sent (each retransmitted SYN stalls one connection for 1 s):"
		echo
		echo "| method | wrk errors (close / keep-alive) | client SYN retransmits | client RSTs |"
		echo "|---|---:|---:|---:|"
		for m in $METHODS; do
			printf '| %s | %s / %s | %s | %s |\n' "$m" \
				"$(value_of "$TMP/med-new_conn_errors" "$m" 0)" \
				"$(value_of "$TMP/med-keepalive_errors" "$m" 0)" \
				"$(value_of "$TMP/med-new_conn_syn_retrans" "$m" 0)" \
				"$(value_of "$TMP/med-new_conn_client_rsts" "$m" 0)"
		done
		if [ -n "${INSITU:-}" ]; then
			echo
			echo "tcpshift in situ (kernel.bpf_stats_enabled during one new-connection wrk run): ${INSITU% *} ns per program run over ${INSITU#* } runs (both directions, both interfaces)."
		fi
		echo
		echo "Plots: rates-new-conn.png, rates-keepalive.png, throughput.png, ratios.png (this directory)."
	} >"$OUT/bench.md"

	# JSON: every raw value, and the medians
	jq -R -s --arg kernel "$(uname -r)" --arg cpu "$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)" \
		--argjson nproc "$(nproc)" --argjson rounds "$ROUNDS" --argjson duration "$DURATION" \
		--argjson split_n "$SPLIT_N" --argjson wrk_conns "$WRK_CONNS" --arg methods "$METHODS" \
		--arg insitu "${INSITU:-}" '
		def num: if . == "NA" then null elif test("^-?[0-9.]+$") then tonumber else . end;
		def med: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
			else (.[length / 2 - 1] + .[length / 2]) / 2 end;
		[split("\n")[] | select(length > 0) | split("\t") |
			{round: (.[0] | tonumber), method: .[1], metric: .[2], value: (.[3] | num)}] as $raw |
		{machine: {nproc: $nproc, kernel: $kernel, cpu: $cpu},
		 config: {rounds: $rounds, duration_s: $duration, split_n: $split_n,
			  wrk_connections_per_instance: $wrk_conns, methods: ($methods | split(" "))},
		 in_situ: (if $insitu == "" then null else ($insitu | split(" ") |
			{ns_per_run: (.[0] | num), runs: (.[1] | num)}) end),
		 medians: ($raw | map(select(.value | type == "number")) | group_by(.method) |
			map({key: .[0].method, value: (group_by(.metric) |
				map({key: .[0].metric, value: (map(.value) | med)}) | from_entries)}) |
			from_entries),
		 raw: $raw}' "$RAW" >"$OUT/bench.json"
	plots
}

plot_one() {	# METRIC FILE TITLE YLABEL LABEL-FORMAT
	local data=$TMP/plot-$1.dat
	awk '$2 != "NA" { print $1, $2, $3, $4 }' "$TMP/med-$1" >"$data"
	[ -s "$data" ] || return 0
	gnuplot <<EOF 2>>"$TMP/gnuplot.err"
set terminal pngcairo size 800,480 noenhanced font ",11"
set output "$OUT/$2"
set title "$3 (median of $ROUNDS rounds, bars: min-max)"
set ylabel "$4"
set style fill solid 0.6 border -1
set boxwidth 0.6
set yrange [0:*]
set grid ytics
set xtics nomirror
unset key
set xrange [-0.5:*]
plot "$data" using 0:2:3:4:(0.6):xtic(1) with boxerrorbars lc rgb "#4878a8", \
     "" using 0:2:(sprintf("$5", \$2)) with labels offset 0,1.2
EOF
}

plots() {
	local m d nc ka st
	command -v gnuplot >/dev/null || return 0
	plot_one new_conn_per_s rates-new-conn.png "New connections/s (wrk, Connection: close)" \
		"connections/s" "%.0f"
	plot_one keepalive_req_per_s rates-keepalive.png "Keep-alive requests/s (wrk)" \
		"requests/s" "%.0f"
	plot_one stream_gbit_s throughput.png "Single-stream throughput (iperf3)" "Gbit/s" "%.2f"
	d=$TMP/plot-ratios.dat
	: >"$d"
	for m in $METHODS; do
		nc=$(ratio "$(value_of "$TMP/med-new_conn_per_s" "$m")" "$(value_of "$TMP/med-new_conn_per_s" direct)")
		ka=$(ratio "$(value_of "$TMP/med-keepalive_req_per_s" "$m")" "$(value_of "$TMP/med-keepalive_req_per_s" direct)")
		st=$(ratio "$(value_of "$TMP/med-stream_gbit_s" "$m")" "$(value_of "$TMP/med-stream_gbit_s" direct)")
		echo "$m ${nc/—/NaN} ${ka/—/NaN} ${st/—/NaN}" >>"$d"
	done
	{
		bars_preamble "$OUT/ratios.png" \
			"Rates relative to direct routing (median of $ROUNDS rounds)" "× direct"
		cat <<EOF
plot "$d" using 2:xtic(1) title "new conn/s", "" using 3 title "keep-alive req/s", \
     "" using 4 title "1-stream throughput"
EOF
	} | gnuplot 2>>"$TMP/gnuplot.err"
}

# ---- main ---------------------------------------------------------------------------

main() {
	local r i m order start_s

	[ "$(id -u)" -eq 0 ] || die "must run as root (namespaces, BPF, apt-get)"
	[ -x "$TCPSHIFT" ] && [ -x "$TS_ECHO" ] && [ -x "$FOLLOW" ] ||
		die "build first: make all build/bench/follow (or make bench)"
	mountpoint -q /sys/fs/bpf || die "/sys/fs/bpf is not mounted (bpffs)"
	[ -e "$PIN" ] && die "$PIN already exists"
	if [ "${SUMMARIZE_ONLY:-0}" = 1 ]; then
		# only the tables, JSON and plots again, from OUT/bench-raw.tsv
		TMP=$(mktemp -d "${TMPDIR:-/tmp}/tsbench-$ID.XXXXXX") || die "mktemp failed"
		RAW=$OUT/bench-raw.tsv
		[ -s "$RAW" ] || die "$RAW: nothing to summarize"
		summarize
		cat "$OUT/bench.md"
		return 0
	fi
	install_peers
	for m in nginx haproxy wrk iperf3 nft iptables-restore socat jq gnuplot nsenter; do
		command -v "$m" >/dev/null || die "$m not found"
	done
	[ -e "$NGINX_STREAM_MODULE" ] || die "$NGINX_STREAM_MODULE missing (libnginx-mod-stream)"
	ulimit -n 262144 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
	TMP=$(mktemp -d "${TMPDIR:-/tmp}/tsbench-$ID.XXXXXX") || die "mktemp failed"
	mkdir -p "$OUT"
	RAW=$OUT/bench-raw.tsv
	: >"$RAW"
	start_s=$SECONDS
	log TOPO "namespaces $NS_CL, $NS_GW, $NS_B1, $NS_B2"
	topology
	read -r -a order <<<"$METHODS"
	for ((r = 1; r <= ROUNDS; r++)); do
		for ((i = 0; i < ${#order[@]}; i++)); do
			m=${order[$(((i + r - 1) % ${#order[@]}))]}
			log ROUND "$r/$ROUNDS: $m"
			client_src $(((r - 1) * ${#order[@]} + i))
			setup "$m"
			measure "$m" "$r"
			teardown "$m"
		done
	done
	INSITU=
	if [ "$BPF_STATS" = 1 ] && [[ " $METHODS " == *" tcpshift "* ]]; then
		bpf_stats_run
	fi
	summarize
	log DONE "$OUT/bench.md, bench.json, bench-raw.tsv, *.png ($((SECONDS - start_s)) s)"
	cat "$OUT/bench.md"
}

[ "${BENCH_SOURCE_ONLY:-0}" = 1 ] || main "$@"
