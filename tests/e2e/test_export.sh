#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# export / import between two gateways, and invariant 6:
#  - gateway B, configured differently, imports A's export: B's export is then
#    byte-identical to A's (seed included), and a second import changes nothing;
#  - both give the same `tcpshift pick` for 10,000 random clients, IPv4 and
#    IPv6 (invariant 6: same configuration and seed, same backend per flow);
#  - a modified document (weights changed, a backend removed, a service added)
#    imported: `service list` is the document;
#  - bad documents of many kinds: exit 2, one stderr line naming the file and
#    the place in it, nothing changed; --dry-run changes nothing.
# No traffic: each gateway is a namespace with a veth pair to attach to.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init export
e2e_need jq cmp awk

for g in ga gb; do
	e2e_netns_add "$(gw_ns $g)"
	must "veth in $g" ip -n "$(gw_ns $g)" link add d0 type veth peer name d1
	must "d0 up in $g" ip -n "$(gw_ns $g)" link set d0 up
	must "d1 up in $g" ip -n "$(gw_ns $g)" link set d1 up
	must "forwarding in $g" in_ns "$(gw_ns $g)" sysctl -qw net.ipv4.ip_forward=1
done
SEED=3141592653
e2e_gw_load ga --dev d0 --seed "$SEED"
e2e_gw_load gb --dev d0

# Gateway A: the configuration to copy.
must "A: service web" tsg ga service add web 198.18.100.1:8008
must "A: web v1" tsg ga backend add web v1 198.18.2.11:8008 --weight 70
must "A: web v2" tsg ga backend add web v2 198.18.2.12:8008 --weight 30
must "A: web v3" tsg ga backend add web v3 198.18.2.13:8008 --weight 0
must "A: service web6" tsg ga service add web6 '[2001:2:100::1]:8008' --table-size 65537
must "A: web6 a" tsg ga backend add web6 a '[2001:2:2::11]:8008' --weight 3
must "A: web6 b" tsg ga backend add web6 b '[2001:2:2::12]:8008' --weight 1
must "A: service empty" tsg ga service add empty 198.18.100.2:80 --table-size 7

# Gateway B: something else, with other backend ids (ids are not in the
# document and need not match), a service to remove, one whose VIP changes,
# one whose table size changes, and another seed.
must "B: service junk" tsg gb service add junk 198.18.100.9:80
must "B: junk x" tsg gb backend add junk x 198.18.2.99:80
must "B: junk y" tsg gb backend add junk y 198.18.2.11:8008
must "B: service web" tsg gb service add web 198.18.100.5:8008
must "B: web v2" tsg gb backend add web v2 198.18.2.12:8008 --weight 5
must "B: service web6" tsg gb service add web6 '[2001:2:100::1]:8008'
must "B: web6 b" tsg gb backend add web6 b '[2001:2:2::22]:8008' --weight 1

T=$E2E_TMP
# ---- export ---------------------------------------------------------------------
if tsg ga export >"$T/a.json" 2>"$T/err" && jq -e . "$T/a.json" >/dev/null 2>&1; then
	pass "export prints a JSON document ($(wc -c <"$T/a.json") bytes)"
else
	e2e_abort "export failed or printed no JSON: $(head -n 1 "$T/err")"
fi
got=$(jq -c '[.tcpshift, .seed, [.services[].name], [.services[1].backends[] | .name, .weight]]' \
	"$T/a.json")
want='[1,3141592653,["empty","web","web6"],["v1",70,"v2",30,"v3",0]]'
if [ "$got" = "$want" ]; then
	pass "export has the version, seed, services and weights, sorted by name"
else
	fail "export content" "got $got, want $want"
fi
tsg ga -j export >"$T/a-j.json" 2>/dev/null
if cmp -s "$T/a.json" "$T/a-j.json"; then
	pass "export: -j changes nothing (JSON is implied)"
else
	fail "export -j" "differs from export"
fi

# ---- import: dry run, then for real ------------------------------------------------
tsg gb export >"$T/b0.json" 2>/dev/null || e2e_abort "export on B failed"
tsg gb import --dry-run "$T/a.json" >"$T/plan" 2>"$T/err"
rc=$?
tsg gb export >"$T/b1.json" 2>/dev/null
info "dry run plan: $(tr '\n' '|' <"$T/plan" | head -c 600)"
if [ "$rc" -eq 0 ] && cmp -s "$T/b0.json" "$T/b1.json" && grep -q '^dry run: ' "$T/plan" &&
	grep -q '^service junk: delete' "$T/plan" &&
	grep -q '^service web: delete and add again' "$T/plan" &&
	grep -q '^service web6: delete and add again' "$T/plan" &&
	grep -q '^seed: ' "$T/plan"; then
	pass "import --dry-run prints the plan and changes nothing"
else
	fail "import --dry-run" "exit $rc, B changed: $(cmp -s "$T/b0.json" "$T/b1.json" && echo no ||
		echo yes), stderr: $(head -n 1 "$T/err")"
fi

if tsg gb import "$T/a.json" >"$T/out" 2>"$T/err"; then
	pass "import A's export on B ($(tail -n 1 "$T/out"))"
else
	fail "import A's export on B" "$(head -n 1 "$T/err")"
fi
tsg gb export >"$T/b.json" 2>/dev/null
if cmp -s "$T/a.json" "$T/b.json"; then
	pass "B's export is byte-identical to A's"
else
	fail "B's export is byte-identical to A's" "$(diff "$T/a.json" "$T/b.json" | head -n 8 |
		tr '\n' '|')"
fi
seed_b=$(tsg gb -j status 2>/dev/null | jq -r .seed)
if [ "$seed_b" = "$SEED" ]; then
	pass "import wrote the seed to B's settings ($seed_b)"
else
	fail "import wrote the seed" "B's status says seed $seed_b, want $SEED"
fi
out=$(tsg gb import - <"$T/a.json" 2>&1)
tsg gb export >"$T/b2.json" 2>/dev/null
if [ "$out" = "no changes: the configuration equals stdin" ] && cmp -s "$T/a.json" "$T/b2.json"; then
	pass "import of the same document again (from stdin) changes nothing"
else
	fail "import again" "printed '$out'"
fi

# ---- invariant 6: the same pick on both gateways ------------------------------------
# clients FAMILY N SEED: N random clients, one ADDR:PORT a line.
clients() {
	awk -v fam="$1" -v n="$2" -v s="$3" 'BEGIN {
		srand(s)
		for (i = 0; i < n; i++) {
			p = 1024 + int(rand() * 64000)
			if (fam == 4)
				printf "198.%d.%d.%d:%d\n", 18 + int(rand() * 2), int(rand() * 256),
					1 + int(rand() * 254), p
			else
				printf "[2001:2:%x:%x::%x]:%d\n", int(rand() * 65536),
					int(rand() * 65536), 1 + int(rand() * 65534), p
		}
	}'
}
clients 4 10000 6 >"$T/clients4"
clients 6 10000 7 >"$T/clients6"
for s in "web 4" "web6 6"; do
	read -r svc fam <<<"$s"
	timeout 120 "$TCPSHIFT" --pin-dir "$(gw_pin ga)" -n "$(gw_ns ga)" pick "$svc" - \
		<"$T/clients$fam" >"$T/pick-a-$svc" 2>"$T/pick.err"
	ra=$?
	timeout 120 "$TCPSHIFT" --pin-dir "$(gw_pin gb)" -n "$(gw_ns gb)" pick "$svc" - \
		<"$T/clients$fam" >"$T/pick-b-$svc" 2>>"$T/pick.err"
	rb=$?
	lines=$(wc -l <"$T/pick-a-$svc")
	dist=$(awk '{ c[$2]++ } END { for (b in c) printf "%s=%d ", b, c[b] }' "$T/pick-a-$svc")
	if [ "$ra" -ne 0 ] || [ "$rb" -ne 0 ] || [ "$lines" -ne 10000 ]; then
		fail "same pick on both gateways ($svc)" "exit $ra/$rb, $lines lines: $(
			head -n 1 "$T/pick.err")"
	elif cmp -s "$T/pick-a-$svc" "$T/pick-b-$svc"; then
		pass "same pick on both gateways for 10,000 random IPv$fam clients ($svc: $dist)"
	else
		fail "same pick on both gateways ($svc)" "$(cmp "$T/pick-a-$svc" "$T/pick-b-$svc" |
			head -n 1); differing clients: $(diff "$T/pick-a-$svc" "$T/pick-b-$svc" |
			grep -c '^<')"
	fi
done
# the picks follow the weights (70/30/0 and 3/1), or the comparison proved little
v1=$(awk '$2 == "v1"' "$T/pick-a-web" | wc -l)
v3=$(awk '$2 == "v3"' "$T/pick-a-web" | wc -l)
a6=$(awk '$2 == "a"' "$T/pick-a-web6" | wc -l)
if bound=$(within_sigmas "$v1" 10000 0.7 4) && [ "$v3" -eq 0 ] &&
	within_sigmas "$a6" 10000 0.75 4 >/dev/null; then
	pass "picks follow the weights: v1 $v1 of 10000 ($bound), v3 (weight 0) $v3, a $a6"
else
	fail "picks follow the weights" "v1 $v1 ($bound), v3 $v3, a $a6 (expected ≈7500)"
fi

# ---- a modified document ----------------------------------------------------------------
jq '(.services[] | select(.name == "web") | .backends) |=
	(map(select(.name != "v2")) | map(if .name == "v1" then .weight = 40 else . end)
	 | map(if .name == "v3" then .weight = 60 else . end))
    | (.services[] | select(.name == "web6") | .backends[] | select(.name == "b") | .weight) = 9
    | .services += [{"name": "api", "vip": "198.18.100.3:443", "table_size": 251,
		     "backends": [{"name": "p1", "addr": "198.18.2.31:443", "weight": 2},
				  {"name": "p2", "addr": "198.18.2.32:443"}]}]' \
	"$T/a.json" >"$T/mod.json" || e2e_abort "jq could not build the modified document"
tsg gb import --dry-run "$T/mod.json" >"$T/plan" 2>"$T/err"
rc=$?
tsg gb export >"$T/b3.json" 2>/dev/null
info "plan: $(tr '\n' '|' <"$T/plan")"
if [ "$rc" -eq 0 ] && cmp -s "$T/a.json" "$T/b3.json" &&
	[ "$(grep -c . "$T/plan")" -eq 8 ] &&
	grep -qx 'service web: backend v2: remove, was 198.18.2.12:8008 weight 30 (its pinned connections are reset)' "$T/plan" &&
	grep -qx 'service web: backend v1: weight 70 -> 40' "$T/plan" &&
	grep -qx 'service api: add 198.18.100.3:443 table_size 251' "$T/plan"; then
	pass "import --dry-run of the modified document: 7 changes listed, none made"
else
	fail "import --dry-run of the modified document" "exit $rc: $(head -n 1 "$T/err")"
fi
if tsg gb import "$T/mod.json" >"$T/out" 2>"$T/err"; then
	# a size not given follows the backends: the first of the list with 100
	# slots per backend
	want=$(jq -S -c 'def follows($n): [127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749,
		65521, 131071] | map(select(. >= 100 * $n)) | first // 131071;
		.services | map(.backends |= map(.weight //= 1)
		| (.backends | length) as $n | .table_size //= follows($n))
		| sort_by(.name) | map(.backends |= sort_by(.name))' "$T/mod.json")
	got=$(tsg gb -j service list 2>/dev/null | jq -S -c .)
	if [ -n "$got" ] && [ "$got" = "$want" ]; then
		pass "modified document imported: service list matches it"
	else
		fail "modified document imported" "service list $got, want $want"
	fi
else
	fail "modified document imported" "$(head -n 1 "$T/err")"
fi
# the same on A; the two stay identical
tsg ga import "$T/mod.json" >/dev/null 2>&1
if cmp -s <(tsg ga export 2>/dev/null) <(tsg gb export 2>/dev/null); then
	pass "A after the same import: exports still byte-identical"
else
	fail "A after the same import" "exports differ"
fi

# ---- bad documents: exit 2, one line, nothing changed ----------------------------------------
tsg gb export >"$T/before.json" 2>/dev/null
# bad NAME WHERE JQ-FILTER: the modified document through JQ-FILTER must be
# refused with a message naming WHERE.
bad() {
	local name=$1 where=$2 f=$T/bad-$1.json rc lines first
	shift 2

	if [ "$1" = "-raw" ]; then
		printf '%s' "$2" >"$f"
	else
		jq "$1" "$T/mod.json" >"$f" || { fail "bad document $name" "jq failed"; return; }
	fi
	tsg gb import "$f" >"$T/out" 2>"$T/err"
	rc=$?
	lines=$(wc -l <"$T/err")
	first=$(head -n 1 "$T/err")
	if ! tsg gb export 2>/dev/null | cmp -s - "$T/before.json"; then
		fail "bad document $name" "the configuration changed (exit $rc: $first)"
	elif [ "$rc" -ne 2 ] || [ "$lines" -ne 1 ] || [ -s "$T/out" ]; then
		fail "bad document $name" "exit $rc (want 2), $lines stderr lines: $first"
	elif [[ $first != "tcpshift: $f: $where"* ]]; then
		fail "bad document $name" "got '$first', want 'tcpshift: $f: $where...'"
	else
		pass "bad document $name refused: ${first#"tcpshift: $f: "}"
	fi
}
bad weight 'services[1].backends[0].weight: 70000 is out of range' \
	'.services[1].backends[0].weight = 70000'
bad weight-type 'services[1].backends[0].weight: is a string' \
	'.services[1].backends[0].weight = "5"'
bad unknown-key 'services[2]: unknown key "port"' '.services[2].port = 80'
bad unknown-root-key 'document: unknown key "comment"' '.comment = "x"'
bad family 'services[2].backends[1].addr: is an IPv4 address but the service' \
	'.services[2].backends[1].addr = "198.18.2.40:8008"'
bad table-size 'services[0].table_size: 250 is not prime' '.services[0].table_size = 250'
bad vip 'services[1].vip: '"'"'198.18.100.1'"'"' is not ADDRESS:PORT' \
	'.services[1].vip = "198.18.100.1"'
bad name 'services[3].backends[1].name: backend name' '.services[3].backends[1].name = "p 2"'
bad duplicate-service 'services[3].name: service '"'"'empty'"'"' is also services[0]' \
	'.services[3].name = "empty"'
bad duplicate-backend 'services[2].backends[1].name: backend '"'"'a'"'"' is also services[2].backends[0]' \
	'.services[2].backends[1].name = "a"'
bad backend-addr-twice 'services[3].backends[1].addr: 198.18.2.31:443 is also services[3].backends[0]' \
	'.services[3].backends[1].addr = "198.18.2.31:443"'
bad backend-addr-two-services 'services[3].backends[0].addr: 198.18.2.11:8008 is also services[1].backends[0]' \
	'.services[3].backends[0].addr = "198.18.2.11:8008"'
bad missing-seed 'document: "seed" is missing' 'del(.seed)'
bad version 'document version ("tcpshift") 2 is not supported' '.tcpshift = 2'
bad syntax 'line 3, column 2: not valid JSON' -raw $'{"tcpshift": 1,\n "seed": 1,\n ,}'
bad truncated 'line 1, column 30: the document ends early' -raw '{"tcpshift": 1, "services": ['
bad empty 'the document is empty' -raw ''
bad not-an-object 'the document is an array' -raw '[]'
f=$T/no-such-file.json
tsg gb import "$f" >/dev/null 2>"$T/err"
rc=$?
if [ "$rc" -eq 2 ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
	grep -q "^tcpshift: $f: cannot open: No such file" "$T/err"; then
	pass "missing file refused: exit 2, $(cat "$T/err")"
else
	fail "missing file" "exit $rc: $(head -n 2 "$T/err" | tr '\n' '|')"
fi

# ---- an empty document removes everything (declarative) ----------------------------------------
printf '{"tcpshift": 1, "seed": %s, "services": []}\n' "$SEED" >"$T/none.json"
tsg gb import "$T/none.json" >/dev/null 2>"$T/err"
rc=$?
got=$(tsg gb -j service list 2>/dev/null)
if [ "$rc" -eq 0 ] && [ "$got" = "[]" ]; then
	pass "import of a document without services removes every service"
else
	fail "import of a document without services" "exit $rc, service list $got"
fi

e2e_status
