#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Releases and day-2 operations on a gateway without traffic (a veth to load on):
#  - versions: tcpshift --version and tcpshiftd --version print tools/version.sh's
#    version (VERSION, with a git describe suffix off a release); tools/version.sh
#    prints VERSION alone at a release's commit (tagged, or listed in RELEASES), a
#    suffix counted from the last release elsewhere, .dirty with changes;
#    `status` shows the version that loaded the running object and the layout; the
#    agent's tcpshift_build_info carries them with the mode;
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
mkdir -p "$R/tools" && cp "$E2E_ROOT/tools/version.sh" "$R/tools/" &&
	git -C "$R" init -q && git -C "$R" config user.email t@example.invalid &&
	git -C "$R" config user.name t || e2e_abort "a scratch repository for tools/version.sh"
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
	pass "versions: tools/version.sh: plain at a tagged release, a suffix counted from RELEASES' last release after it, ~dev for Debian, .dirty"
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
	pass "versions: the agent's metrics carry tcpshift_build_info (version, layout, mode, object)"
else
	fail "versions: tcpshift_build_info" "$(grep build_info <<<"$metrics" || tail -n 2 "$T/agent.log")"
fi
kill "$AGENT" 2>/dev/null
wait "$AGENT" 2>/dev/null

e2e_status
