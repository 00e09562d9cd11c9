# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
#
# What the benchmarks' bar charts share (tools/bench/bench.sh, pps.sh): source
# it, then feed gnuplot bars_preamble's output followed by the plot command.

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
