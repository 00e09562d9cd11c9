#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Releases and day-2 operations on a gateway without traffic (a veth to load on):
#  - versions: tcpshift --version and tcpshiftd --version print tools/version.sh's
#    version (VERSION, with a git describe suffix off a release); tools/version.sh
#    prints VERSION alone at a release's commit (tagged, or listed in RELEASES), a
#    suffix counted from the last release elsewhere, .dirty with changes;
#    `status` shows the version that loaded the running object and the layout; the
#    agent's tcpshift_build_info carries them with the mode;
#  - history and undo: each committed change journaled once (who, uid, the command
#    line, the change lines), none for a command that failed or changed nothing;
#    `undo` after a weight change and after an import gives back the previous
#    export byte for byte; `undo N`; the journal bounded (100 entries), readable by
#    root alone; bad change numbers refused with nothing changed;
#  - surviving a reboot: the pin directory emptied (unload), the commands of
#    contrib/systemd/tcpshift-boot.service, run as systemd would with a
#    configuration file, bring back the export byte for byte; an empty journal
#    restores nothing and exits 0; the seed of a `load --seed` is journaled and
#    comes back with the rest;
#  - a new user's trip: under `ip netns exec` the error names the cause and the
#    command to run instead; `service list` calls a backend at weight 0 one with no
#    new connections (not draining: one added at 0 never had any), health within
#    the same parenthesis.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init release
e2e_need jq curl git
TCPSHIFTD=$(dirname "$TCPSHIFT")/tcpshiftd
T=$E2E_TMP

e2e_bare_gateway d0
E2E_LOADED=1
must "tcpshift load" ts load --dev d0

# ---- versions ----------------------------------------------------------------------
want=$("$E2E_ROOT/tools/version.sh")
got=$("$TCPSHIFT" --version 2>&1)
gotd=$("$TCPSHIFTD" --version 2>&1)
layout=$(awk '$2 == "TS_ABI_VERSION" { print $3 }' "$E2E_ROOT/include/tcpshift.h")
if [ "$got" = "tcpshift $want (map layout $layout)" ] &&
	[ "$gotd" = "tcpshiftd $want (map layout $layout)" ]; then
	pass "versions: tcpshift and tcpshiftd --version print the build's version ($got)"
else
	fail "versions: --version" "got '$got' and '$gotd', want version $want, layout $layout"
fi
got=$("$TCPSHIFT" -j --version | jq -c .)
if [ "$got" = "{\"program\":\"tcpshift\",\"version\":\"$want\",\"layout\":$layout}" ]; then
	pass "versions: -j --version prints {program, version, layout}"
else
	fail "versions: -j --version" "got $got"
fi

# tools/version.sh in a repository of its own: a release's commit, after it, dirty
R=$T/repo
if ! { mkdir -p "$R/tools" && cp "$E2E_ROOT/tools/version.sh" "$R/tools/" &&
	git -C "$R" init -q && git -C "$R" config user.email t@example.invalid &&
	git -C "$R" config user.name t; }; then
	e2e_abort "a scratch repository for tools/version.sh"
fi
vs() {
	"$R/tools/version.sh" "$@"
}
echo 1.0.0 >"$R/VERSION"
echo '# version commit layout date' >"$R/RELEASES"
git -C "$R" add -A && git -C "$R" commit -qm one
c1=$(git -C "$R" rev-parse HEAD)
v_untagged=$(vs)
git -C "$R" tag -a -m r v1.0.0
v_tagged=$(vs)
echo 1.1.0 >"$R/VERSION"
printf '1.0.0\t%s\t6\t2026-12-05\n' "$c1" >>"$R/RELEASES"
git -C "$R" commit -qam two
git -C "$R" tag -d v1.0.0 >/dev/null	# a clone without tags: RELEASES says where 1.0.0 is
c2=$(git -C "$R" rev-parse --short=7 HEAD)
v_after=$(vs)
v_deb=$(vs --deb)
echo x >>"$R/VERSION.extra" && git -C "$R" add VERSION.extra
v_dirty=$(vs)
got="$v_untagged|$v_tagged|$v_after|$v_deb|$v_dirty"
want="1.0.0-dev.1+g${c1:0:7}|1.0.0|1.1.0-dev.1+g$c2|1.1.0~dev.1+g$c2|1.1.0-dev.1+g$c2.dirty"
if [ "$got" = "$want" ]; then
	pass "versions: tools/version.sh: plain at a tagged release, a suffix counted from" \
		"RELEASES' last release after it, ~dev for Debian, .dirty"
else
	fail "versions: tools/version.sh" "got $got, want $want"
fi

# the running object's version, read back from the loaded programs
got=$(ts -j status | jq -c '[.version, .object_version, .layout]')
want="[\"$("$E2E_ROOT/tools/version.sh")\",\"$("$E2E_ROOT/tools/version.sh")\",$layout]"
if [ "$got" = "$want" ] && ts status | grep -q "^object    .* (loaded it)$"; then
	pass "versions: status shows this tcpshift's version, the running object's and the layout"
else
	fail "versions: status" "got $got, want $want"
fi

# the agent's build information
port=$((20000 + $$ % 20000))
nsenter --net="/run/netns/$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" agent \
	--metrics "127.0.0.1:$port" 2>"$T/agent.log" &
AGENT=$!
e2e_track_pid "$AGENT"
metrics=
for ((i = 0; i < 50; i++)); do
	metrics=$(in_ns "$NS_GW" curl -sf --max-time 2 "http://127.0.0.1:$port/metrics") && break
	sleep 0.1
done
v=$("$E2E_ROOT/tools/version.sh")
want="tcpshift_build_info{version=\"$v\",layout=\"$layout\",mode=\"tc\",object_version=\"$v\"} 1"
if grep -qxF "$want" <<<"$metrics"; then
	pass "versions: the agent's metrics carry tcpshift_build_info" \
		"(version, layout, mode, object)"
else
	fail "versions: tcpshift_build_info" \
		"$(grep build_info <<<"$metrics" || tail -n 2 "$T/agent.log")"
fi
kill "$AGENT" 2>/dev/null
wait "$AGENT" 2>/dev/null

# ---- history and undo --------------------------------------------------------------
hist_count() {
	ts -j history | jq length
}
must "service web" ts service add web 198.18.100.1:8008 --table-size 251
must "web v1" ts backend add web v1 198.18.2.11:8008 --weight 90
must "web v2" ts backend add web v2 198.18.2.12:8008 --weight 10
must "health web" ts health web --check tcp --interval 3s
ts export >"$T/e0.json" || e2e_abort "export"
n0=$(hist_count)
must "weight" ts weight web v1=50 v2=50
got=$(ts -j history | jq -c '.[-1] | [.user, .uid, (.command | sub("^.* -n [^ ]+ "; "")),
	[.changes[] | [.action, .backend, .from, .to]]]')
want='["root",0,"weight web v1=50 v2=50",[["weight","v1","90","50"],["weight","v2","10","50"]]]'
if [ "$n0" -eq 4 ] && [ "$(hist_count)" -eq 5 ] && [ "$got" = "$want" ]; then
	pass "history: each change journaled once: who, uid, the command line, what it changed"
else
	fail "history: the weight change's entry" "$n0 then $(hist_count) entries; last $got"
fi
if ts history | grep -q "^      service web: backend v1: weight 90 -> 50$"; then
	pass "history: the change lines as import prints them"
else
	fail "history: text" "$(ts history | tail -n 3 | tr '\n' '|')"
fi
# a command that fails, one that changes nothing, and a reader: no entry
ts weight web nosuch=5 2>/dev/null
ts weight web v1=50 >/dev/null 2>&1
ts export >/dev/null
if [ "$(hist_count)" -eq 5 ]; then
	pass "history: a failed command, one that changed nothing and a reader leave no entry"
else
	fail "history: entries of no change" "$(hist_count) entries, want 5"
fi
ts undo >"$T/undo.out" 2>&1
ts export >"$T/e1.json"
if cmp -s "$T/e0.json" "$T/e1.json" && grep -q "^2 changes made$" "$T/undo.out"; then
	pass "undo after a weight change: the export is the one before, byte for byte"
else
	fail "undo after weight" \
		"$(cat "$T/undo.out"); $(diff "$T/e0.json" "$T/e1.json" | head -n 4)"
fi
# an import that changes weights, removes v2, adds a backend and a service
jq '.services[0].backends[0].weight = 7 | del(.services[0].backends[1])
	| .services[0].backends += [{"name":"v3","addr":"198.18.2.13:8008","weight":3}]
	| .services += [{"name":"api","vip":"198.18.100.2:80","table_size":7,"backends":[]}]' \
	"$T/e0.json" >"$T/new.json"
must "import" ts import "$T/new.json"
ts export >"$T/e2.json"
ts undo >/dev/null 2>&1
ts export >"$T/e3.json"
if ! cmp -s "$T/e0.json" "$T/e2.json" && cmp -s "$T/e0.json" "$T/e3.json"; then
	pass "undo after an import: the export is the one before, byte for byte"
else
	fail "undo after import" "$(diff "$T/e0.json" "$T/e3.json" | head -n 6 | tr '\n' '|')"
fi
# undo N: before change N, over several later ones
seq_n=$(ts -j history | jq '.[-1].seq + 1')
must "weight 1" ts weight web v1=1
must "weight 2" ts weight web v2=2
must "service del" ts service del web
ts undo "$seq_n" >/dev/null 2>&1
ts export >"$T/e4.json"
if cmp -s "$T/e0.json" "$T/e4.json"; then
	pass "undo N: the configuration before change N, three changes back"
else
	fail "undo N" "$(diff "$T/e0.json" "$T/e4.json" | head -n 4 | tr '\n' '|')"
fi
# bad change numbers: exit 2, one line, nothing changed
n1=$(hist_count)
for bad in 0 999999 abc "1 2"; do
	# shellcheck disable=SC2086 # "1 2": two arguments
	err=$(ts undo $bad 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -eq 2 ] && [ "$(wc -l <<<"$err")" -eq 1 ] && grep -q "^tcpshift: " <<<"$err" &&
		[ "$(hist_count)" -eq "$n1" ] && ts export | cmp -s - "$T/e0.json"; then
		pass "undo '$bad': exit 2, one line, nothing changed ($err)"
	else
		fail "undo '$bad'" "exit $rc: $err"
	fi
done
# bounded, and root's alone
for ((i = 0; i < 105; i++)); do
	ts weight web v1=$((i + 1)) >/dev/null || break
done
got=$(ts -j history | jq -c '[length, .[-1].seq - .[0].seq]')
jdir=$(dirname "$(find "$TCPSHIFT_STATE_DIR" -name journal.json)")
if [ "$got" = "[100,99]" ] && [ "$(stat -c %a "$jdir")" = 700 ] &&
	[ "$(stat -c %a "$jdir/journal.json")" = 600 ]; then
	pass "history: the journal keeps the last 100 changes, in a directory root's alone"
else
	fail "history: bounds" \
		"$got; modes $(stat -c %a "$jdir" "$jdir/journal.json" | tr '\n' ' ')"
fi

# ---- load --seed: a change like any other ---------------------------------------------
last_seq() {
	ts -j history | jq '.[-1].seq'
}
n1=$(last_seq)
must "load again, same seed" ts load --dev d0
n2=$(last_seq)
must "load --seed" ts load --dev d0 --seed 12345
got=$(ts -j history | jq -c '.[-1] | [(.command | sub("^.* -n [^ ]+ "; "")),
	[.changes[] | [.action, .to]]]')
if [ "$n2" -eq "$n1" ] && [ "$(last_seq)" -eq $((n1 + 1)) ] &&
	[ "$got" = '["load --dev d0 --seed 12345",[["seed","12345"]]]' ]; then
	pass "history: load --seed journaled as a seed change; a load that changes nothing is not"
else
	fail "history: load --seed" "last change $n1 -> $n2 -> $(last_seq); last $got"
fi

# ---- surviving a reboot ---------------------------------------------------------------
# (the boot's load has no --seed: restore brings back load --seed's seed)
ts export >"$T/before-reboot.json" || e2e_abort "export before the reboot"
must "unload (the reboot's stand-in)" ts unload
cat >"$T/tcpshift.conf" <<CONF
# as /etc/tcpshift/tcpshift.conf
TCPSHIFT_LOAD_ARGS="--dev d0"
TCPSHIFT_PIN_DIR=$E2E_PIN
CONF
# boot_unit: the unit's ExecStart= lines in order, as systemd runs them: the
# environment file's variables, $VAR unbraced split into words, in the gateway's
# namespace (the unit's is the host's)
boot_unit() {
	local line word rc=0
	local -a argv

	while read -r line; do
		line=${line#ExecStart=}
		line=${line//@SBINDIR@/$(dirname "$TCPSHIFT")}
		argv=()
		set -f
		for word in $line; do
			# shellcheck disable=SC2206 # systemd splits $VAR into words
			case $word in \$*) eval "argv+=(\$${word#\$})" ;; *) argv+=("$word") ;; esac
		done
		set +f
		nsenter --net="/run/netns/$NS_GW" "${argv[@]}" || rc=$?
		[ "$rc" -eq 0 ] || return "$rc"
	done < <(grep '^ExecStart=' "$E2E_ROOT/contrib/systemd/tcpshift-boot.service")
}
(
	set -a
	# shellcheck disable=SC1091
	source "$T/tcpshift.conf"
	set +a
	boot_unit
) >"$T/boot.out" 2>&1
rc=$?
ts export >"$T/after-reboot.json" 2>&1
if [ "$rc" -eq 0 ] && cmp -s "$T/before-reboot.json" "$T/after-reboot.json" &&
	[ "$(jq .seed "$T/after-reboot.json")" = 12345 ]; then
	pass "reboot: tcpshift-boot.service's commands bring back the configuration, byte for" \
		"byte, load --seed's seed included"
else
	fail "reboot: tcpshift-boot.service's commands" "exit $rc: $(tail -n 3 "$T/boot.out" |
		tr '\n' '|') $(diff "$T/before-reboot.json" "$T/after-reboot.json" | head -n 4)"
fi
got=$(TCPSHIFT_STATE_DIR=$T/empty-state ts restore 2>&1)
rc=$?
if [ "$rc" -eq 0 ] && grep -q "^nothing to restore" <<<"$got" &&
	ts export | cmp -s - "$T/before-reboot.json"; then
	pass "reboot: restore with an empty journal restores nothing and exits 0"
else
	fail "reboot: restore with an empty journal" "exit $rc: $got"
fi

# ---- a new user's trip ----------------------------------------------------------------
err=$(ip netns exec "$NS_GW" "$TCPSHIFT" --pin-dir "$E2E_PIN" status 2>&1 >/dev/null)
rc=$?
if [ "$rc" -eq 1 ] && [ "$(wc -l <<<"$err")" -eq 1 ] &&
	grep -q "in network namespace $NS_GW: 'ip netns exec' .* run 'tcpshift -n $NS_GW \.\.\.'" \
		<<<"$err"; then
	pass "new user: under ip netns exec, the error names the cause and 'tcpshift -n NAME'"
else
	fail "new user: under ip netns exec" "exit $rc: $err"
fi

must "backend at weight 0" ts backend add web z 198.18.2.99:8008 --weight 0
must "service without checks" ts service add plain 198.18.100.3:80 --table-size 7
must "its backend at weight 0" ts backend add plain p 198.18.2.98:80 --weight 0
list=$(ts service list)
if grep -qE " z +198\.18\.2\.99:8008 +0 \(no new connections; up\)$" <<<"$list" &&
	grep -qE " p +198\.18\.2\.98:80 +0 \(no new connections\)$" <<<"$list" &&
	! grep -q draining <<<"$list"; then
	pass "new user: service list says weight 0 takes no new connections," \
		"health in one parenthesis"
else
	fail "new user: service list at weight 0" "$(grep -E ' (z|p) ' <<<"$list" | tr '\n' '|')"
fi

e2e_status
