#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The live view: the agent's status page in a real headless Chromium
# (Debian's), and `tcpshift top` in a real terminal (tmux), during a shift
# from 90/10 to 10/90 (a rollout) under traffic, IPv4.
#  (a) the page's DOM shows v1 and v2 with the table shares of the weights in
#      force within seconds of each change, the rollout's step, v3 (nothing
#      listens there) down by its health checks; a screenshot is saved.
#  (b) names are text, never markup: the strangest names the CLI accepts, and
#      a backend name with markup written straight into the map.
#  (c) top's screen shows v2's new connections per second moving with the
#      shift, and q gives the terminal back (the alternate screen left).
#  (d) the page and its JSON with 10,000 backends (40 services of 250):
#      figures printed, a generous bound asserted.
# LIVE_SHOTS=DIR keeps the screenshots (the test's own directory is removed).
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init live
e2e_need jq curl chromium tmux python3
e2e_topology
e2e_load
e2e_service tcp-echo "$VIP4" 90 10
# v3: nothing listens there, its checks are refused
must "backend add v3" ts backend add tcp-echo v3 198.18.2.12:8999 --weight 50
must "health checks" ts health tcp-echo --check tcp --interval 300ms --timeout 200ms \
	--rise 2 --fall 2
# the strangest names the CLI accepts: dots, dashes, underscores, 31 characters
ODD_SVC=._-.._--._-.._--._-.._--._-..x
must "service add $ODD_SVC" ts service add -- "$ODD_SVC" 198.18.100.3:80
must "backend add x1" ts backend add -- "$ODD_SVC" x1 198.18.2.21:80
must "backend add -_." ts backend add -- "$ODD_SVC" -_. 198.18.2.22:80
# markup the CLI would refuse, written straight into the backends map (as anything
# with the rights may): struct ts_backend's name[32] is at byte 40
MARKUP='<img src=x onerror=alert(1)>'
entry=$(bpftool -j map dump pinned "$E2E_PIN/backends" |
	jq -c 'first(.[] | select(.value[40:43] == ["0x78","0x31","0x00"]))')
[ -n "$entry" ] || e2e_abort "backend x1 not found in the map"
mapfile -t key < <(jq -r '.key[]' <<<"$entry")
mapfile -t value < <(jq -r '.value[]' <<<"$entry")
for ((i = 0; i < 32; i++)); do
	c=${MARKUP:i:1}
	value[40 + i]=$(printf '0x%02x' "'${c:-}")
	[ -z "$c" ] && value[40 + i]=0x00
done
bpftool map update pinned "$E2E_PIN/backends" key hex "${key[@]#0x}" \
	value hex "${value[@]#0x}" || e2e_abort "cannot write the markup name"

PORT=$((20000 + $$ % 20000))
URL=http://127.0.0.1:$PORT
nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent \
	--metrics "127.0.0.1:$PORT" 2>>"$E2E_TMP/agent.log" &
e2e_track_pid $!
for ((i = 0; i < 50; i++)); do
	in_ns "$NS_GW" curl -sf -o /dev/null "$URL/api/status" && break
	sleep 0.1
done
in_ns "$NS_GW" curl -sf -o /dev/null "$URL/api/status" ||
	e2e_abort "the agent serves no status ($(tail -n 3 "$E2E_TMP/agent.log"))"

# traffic: new connections, five at a time, for at most 100 s
( for ((i = 0; i < 500; i++)); do
	nsenter --net="/run/netns/$NS_CL" "$TS_ECHO" count --connect "$VIP4" --n 5 \
		--timeout-ms 500 >/dev/null 2>&1
	sleep 0.05
done ) &
e2e_track_pid $!

# page_dom OUT: the DOM of the page after it fetched and drew its data (≤ 30 s)
CHROME=(chromium --headless --no-sandbox --disable-gpu --no-first-run
	--user-data-dir="$E2E_TMP/chrome" --window-size=1400,1000)
page_dom() {
	timeout 30 nsenter --net="/run/netns/$NS_GW" "${CHROME[@]}" --virtual-time-budget=1500 \
		--dump-dom "$URL/" >"$1" 2>>"$E2E_TMP/chrome.log"
}
page_shot() {
	timeout 30 nsenter --net="/run/netns/$NS_GW" "${CHROME[@]}" --virtual-time-budget=3000 \
		--screenshot="$1" "$URL/" >/dev/null 2>>"$E2E_TMP/chrome.log"
}
# dom_rows FILE: per backend row "service|name|health|share|new/s" and, last,
# "img N" (img elements) and "step TEXT" lines, from the DOM as a parser sees it
dom_rows() {
	python3 - "$1" <<'EOF'
import sys
from html.parser import HTMLParser

class P(HTMLParser):
	def __init__(self):
		super().__init__()
		self.svc = None; self.row = None; self.cell = None; self.imgs = 0
		self.steps = []; self.in_step = False; self.rows = []
		self.gates = []; self.in_gate = False
	def handle_starttag(self, tag, attrs):
		a = dict(attrs)
		if tag == 'img':
			self.imgs += 1
		if tag == 'section':
			self.svc = a.get('data-service')
		if tag == 'tr' and a.get('class') == 'backend':
			self.row = {}
		if tag == 'td' and self.row is not None:
			self.cell = a.get('class', '').split()[0]
			self.row[self.cell] = ''
		if tag == 'span' and a.get('class') == 'rollout-step':
			self.in_step = True; self.steps.append('')
		if tag == 'span' and a.get('class') == 'rollout-gate':
			self.in_gate = True; self.gates.append('')
	def handle_endtag(self, tag):
		if tag == 'td':
			self.cell = None
		if tag == 'tr' and self.row is not None:
			r = self.row
			self.rows.append('|'.join([self.svc or '', r.get('name', ''), r.get('health', ''),
						   r.get('share', ''), r.get('new', '')]))
			self.row = None
		if tag == 'span':
			self.in_step = False; self.in_gate = False
	def handle_data(self, d):
		if self.row is not None and self.cell:
			self.row[self.cell] += d
		if self.in_step:
			self.steps[-1] += d
		if self.in_gate:
			self.gates[-1] += d

p = P()
p.feed(open(sys.argv[1], encoding='utf-8').read())
for r in p.rows:
	print(r)
print('img', p.imgs)
for s in p.steps:
	print('step', s)
for g in p.gates:
	print('gate', g.strip(', '))
EOF
}
# row_field ROWS SERVICE NAME FIELD (3 health, 4 share, 5 new/s)
row_field() {
	awk -F'|' -v s="$2" -v n="$3" -v f="$4" '$1 == s && $2 == n { print $f; exit }' <<<"$1"
}

# share_near SHOWN WANT: the page's "P %" is WANT to within 1/M (tcp-echo's
# table size M, which follows its backends) and the shown rounding
share_near() {
	local m

	m=$(ts -j service list | jq -r '.[] | select(.name == "tcp-echo") | .table_size')
	awk -v got="${1% %}" -v want="${2% %}" -v m="${m:-0}" 'BEGIN {
		d = got - want; if (d < 0) d = -d
		exit !(got != "" && m > 0 && d <= 100 / m + 0.05) }'
}
# wait_page V1SHARE V2SHARE STEP SECONDS: until the page shows those shares (to
# within 1/M) and rollout step text (empty: none), ≤ SECONDS; the last rows in
# ROWS
wait_page() {
	local deadline=$((SECONDS + $4))
	while :; do
		page_dom "$E2E_TMP/dom.html"
		ROWS=$(dom_rows "$E2E_TMP/dom.html")
		if share_near "$(row_field "$ROWS" tcp-echo v1 4)" "$1" &&
			share_near "$(row_field "$ROWS" tcp-echo v2 4)" "$2" &&
			{ [ -z "$3" ] && ! grep -q '^step' <<<"$ROWS" ||
				grep -qx "step $3" <<<"$ROWS"; }; then
			return 0
		fi
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.5
	done
}

# ---- top in tmux ---------------------------------------------------------------
TMUX_SOCK=tse2e-$$
tmux_cmd() { tmux -L "$TMUX_SOCK" "$@"; }
# (top's exit status written where the test reads it: tmux may mark the pane
# dead, its terminal closed, before it collects the status)
tmux_cmd -f /dev/null new-session -d -s top -x 160 -y 30 \
	"nsenter --net=/run/netns/$NS_GW $TCPSHIFT --pin-dir $E2E_PIN top tcp-echo;
	echo \$? >$E2E_TMP/top.status" ||
	e2e_abort "tmux cannot start"
TMUX_PID=$(tmux_cmd display -p '#{pid}')
e2e_track_pid "$TMUX_PID"
tmux_cmd set-option -t top remain-on-exit on >/dev/null
# top_new NAME: NAME's NEW/S on top's screen now
top_new() {
	tmux_cmd capture-pane -p -t top >"$E2E_TMP/top.txt"
	awk -v n="$1" '$1 == n && NF >= 7 { print $7; exit }' "$E2E_TMP/top.txt"
}
TOP_BEFORE=

# ---- (a) 90/10, v3 down ------------------------------------------------------------
sleep 2
if wait_page "90.0 %" "10.0 %" "" 20 && [ "$(row_field "$ROWS" tcp-echo v3 3)" = down ]; then
	pass "page: v1 90.0 %, v2 10.0 % of the table, v3 down by its health checks"
else
	fail "page at 90/10 with v3 down" "$(tr '\n' ';' <<<"$ROWS") $(tail -n 3 "$E2E_TMP/chrome.log")"
fi
TOP_BEFORE=$(top_new v2)
page_shot "$E2E_TMP/page-90-10.png"

# ---- the shift: a rollout v1 -> v2 at 50 %, then 90 % ------------------------------
ts -j rollout tcp-echo v1 v2 --steps 50,90 --interval 20s --min-connections 1 \
	>"$E2E_TMP/rollout.json" 2>"$E2E_TMP/rollout.err" &
ROLLOUT=$!
e2e_track_pid $ROLLOUT
t0=$SECONDS
# the next gate: within the step's 20 s interval (long enough for a few
# page loads of a headless browser on a loaded machine); the rollout's record
# keeps it in whole seconds from its start, rounded up, and the page rounds
# what is left up again: 21 s just after the step began
gate=
if wait_page "50.0 %" "50.0 %" "step 1 of 2" 18 &&
	gate=$(sed -n 's/^gate next gate in \([0-9]*\) s$/\1/p' <<<"$ROWS") &&
	[ -n "$gate" ] && [ "$gate" -le 21 ]; then
	pass "page: the rollout's step 1 of 2, its next gate in $gate s, and the shares 50/50" \
		"within $((SECONDS - t0)) s"
else
	fail "page during step 1 (step, next gate, shares)" "$(tr '\n' ';' <<<"$ROWS")"
fi
page_shot "$E2E_TMP/page-rollout.png"
for ((i = 0; i < 250; i++)); do
	jq -se 'map(select(.event == "step" and .step == 2)) | length > 0' \
		"$E2E_TMP/rollout.json" >/dev/null 2>&1 && break
	sleep 0.1
done
t0=$SECONDS
if wait_page "10.0 %" "90.0 %" "step 2 of 2" 18; then
	pass "page: step 2 of 2 and the shares 10/90 within $((SECONDS - t0)) s of the switch"
else
	fail "page during step 2" "$(tr '\n' ';' <<<"$ROWS")"
fi
sleep 2
TOP_AFTER=$(top_new v2)
cp "$E2E_TMP/top.txt" "$E2E_TMP/top-10-90.txt"
V1_AFTER=$(top_new v1)
if awk -v b="${TOP_BEFORE:-x}" -v a="${TOP_AFTER:-x}" -v v1="${V1_AFTER:-x}" 'BEGIN {
	exit !(b ~ /^[0-9.]+$/ && a ~ /^[0-9.]+$/ && v1 ~ /^[0-9.]+$/ && a > b && a > v1) }'; then
	pass "top: v2's new connections/s went from $TOP_BEFORE to $TOP_AFTER (v1 now $V1_AFTER)"
else
	fail "top: rates moving" "v2 $TOP_BEFORE -> $TOP_AFTER, v1 $V1_AFTER: $(cat "$E2E_TMP/top.txt")"
fi
wait "$ROLLOUT"
if wait_page "10.0 %" "90.0 %" "" 8; then
	pass "page: the rollout done, no step shown, 10/90 stays"
else
	fail "page after the rollout" "$(tr '\n' ';' <<<"$ROWS")"
fi
page_shot "$E2E_TMP/page-10-90.png"

# ---- (b) names as text -------------------------------------------------------------
json=$(in_ns "$NS_GW" curl -sf "$URL/api/status")
jname=$(jq -r --arg s "$ODD_SVC" '.services[] | select(.name == $s) | .backends |
	map(.name) | sort | join(" ")' <<<"$json")
if [ "$(row_field "$ROWS" "$ODD_SVC" "$MARKUP" 2)" = "$MARKUP" ] &&
	[ "$(row_field "$ROWS" "$ODD_SVC" -_. 2)" = "-_." ] &&
	grep -qx 'img 0' <<<"$ROWS" && [ "$jname" = "-_. $MARKUP" ]; then
	pass "page: service $ODD_SVC, backends -_. and $MARKUP shown as text, no element made"
else
	fail "page: names as text" "JSON '$jname', rows: $(grep -F "$ODD_SVC" <<<"$ROWS")" \
		"$(grep '^img' <<<"$ROWS")"
fi
hdrs=$(in_ns "$NS_GW" curl -sfI "$URL/")
if grep -qi "^content-security-policy: default-src 'self'; script-src 'sha256-" <<<"$hdrs" &&
	grep -qi '^x-content-type-options: nosniff' <<<"$hdrs" &&
	! grep -qi 'set-cookie' <<<"$hdrs"; then
	pass "page: served with its CSP (script by hash), nosniff, no cookie"
else
	fail "page headers" "$hdrs"
fi

# ---- (c) top gives the terminal back -------------------------------------------------
tmux_cmd send-keys -t top q
for ((i = 0; i < 50; i++)); do
	[ -s "$E2E_TMP/top.status" ] && [ "$(tmux_cmd display -p -t top '#{pane_dead}')" = 1 ] &&
		break
	sleep 0.1
done
screen=$(tmux_cmd capture-pane -p -t top)
status=$(tmux_cmd display -p -t top '#{pane_dead}'):$(cat "$E2E_TMP/top.status" 2>/dev/null):$(
	tmux_cmd display -p -t top '#{alternate_on}')
if [ "$status" = "1:0:0" ] && ! grep -q BACKEND <<<"$screen"; then
	pass "top: q exits 0 and leaves the alternate screen"
else
	fail "top: quit" "dead:status:alternate $status, screen: $screen"
fi

# ---- (d) 10,000 backends -------------------------------------------------------------
python3 - >"$E2E_TMP/big.json" <<'EOF'
import json
services = []
for s in range(40):
	backends = [{"name": "b%03d" % b, "addr": "198.19.%d.%d:8000" % (s, b + 1),
		     "weight": 1 + b % 7} for b in range(250)]
	services.append({"name": "big%02d" % s, "vip": "198.18.101.%d:8008" % (s + 1),
			 "table_size": 1021, "backends": backends})
print(json.dumps({"tcpshift": 1, "seed": 1, "services": services}))
EOF
must "import 10,000 backends" ts import "$E2E_TMP/big.json"
sleep 3	# a few samples of history
timing() { # timing PATH: "seconds bytes" of one GET
	in_ns "$NS_GW" curl -sf -o /dev/null -w '%{time_total} %{size_download}' "$URL$1"
}
read -r t_json n_json < <(timing "/api/status")
read -r t_page n_page < <(timing "/")
nb=$(in_ns "$NS_GW" curl -sf "$URL/api/status" | jq '[.services[].backends[]] | length')
t_browser=$( { /usr/bin/time -f %e timeout 60 nsenter --net="/run/netns/$NS_GW" "${CHROME[@]}" \
	--virtual-time-budget=500 --dump-dom "$URL/" >"$E2E_TMP/big.html"; } 2>&1 | tail -n 1)
rows=$(grep -o 'class="backend"' "$E2E_TMP/big.html" | wc -l)
# the page's own figure: from navigation to its first table drawn
t_first=$(grep -o 'data-first-load-ms="[0-9]*"' "$E2E_TMP/big.html" | grep -o '[0-9]*')
info "10,000 backends: /api/status $n_json bytes in $t_json s, / $n_page bytes in $t_page s;" \
	"chromium drew $rows rows ${t_first:-?} ms after navigation, $t_browser s for its whole run"
# Not a speed test: 10 s bounds only a quadratic
# cost (0.5 s here on a quiet machine, 2.8 s on one with both cores busy).
if [ "$nb" -eq 10000 ] && [ "$rows" -eq 10000 ] &&
	awk -v a="$t_json" -v b="$t_page" 'BEGIN { exit !(a < 10 && b < 10) }'; then
	pass "10,000 backends: all in the JSON ($t_json s) and drawn by the page ($t_page s)"
else
	fail "10,000 backends" "JSON $nb backends in $t_json s, page $t_page s, DOM rows $rows"
fi

if [ -n "${LIVE_SHOTS:-}" ]; then
	mkdir -p "$LIVE_SHOTS" && cp "$E2E_TMP"/page-*.png "$E2E_TMP"/top-10-90.txt "$LIVE_SHOTS"/
fi
tmux_cmd kill-server 2>/dev/null
e2e_status
