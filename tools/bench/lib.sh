# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
#
# What the benchmarks share (tools/bench/bench.sh, pps.sh). The caller defines
# log and die, DEB_PEERS (the Debian packages it needs), INSTALL (0: never
# apt-get) and PEER_SERVICES (system services its packages would start), and
# removes /usr/sbin/policy-rc.d in its exit trap when POLICY_RC_MADE is 1.

POLICY_RC_MADE=0	# we created /usr/sbin/policy-rc.d

# install_peers: the packages of DEB_PEERS that are missing, installed from
# Debian without starting their services
install_peers() {
	local p missing=()

	for p in $DEB_PEERS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$INSTALL" = 1 ] || die "missing packages: ${missing[*]} (INSTALL=0)"
	log DEPS "installing ${missing[*]}"
	# Packages must not start their system services (nginx, haproxy) on the
	# host: a policy-rc.d that refuses every start, unless one is there.
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		POLICY_RC_MADE=1
	fi
	apt-get update -qq >/dev/null 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
	if [ -d /run/systemd/system ] && [ -n "$PEER_SERVICES" ]; then
		# shellcheck disable=SC2086
		systemctl disable --now $PEER_SERVICES >/dev/null 2>&1
	fi
	if [ "$POLICY_RC_MADE" -eq 1 ]; then
		rm -f /usr/sbin/policy-rc.d
		POLICY_RC_MADE=0
	fi
}

# The bar charts: feed gnuplot bars_preamble's output, then the plot command.

# bars_preamble PNG TITLE YLABEL: a clustered bar chart, its legend above the
# plot (never on the bars) and wide enough for the whole titles
bars_preamble() {
	cat <<EOF
set terminal pngcairo size 960,540 noenhanced font ",11"
set output "$1"
set title "$2"
set ylabel "$3"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.7 border -1
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set grid ytics
set xtics nomirror
set key outside top center horizontal samplen 2 width 2
EOF
}
