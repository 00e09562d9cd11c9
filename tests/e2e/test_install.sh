#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make install DESTDIR=<tmp> PREFIX=/usr` installs the binary, the man page and
# the bash completion; `man -l` renders the man page without a warning; the man
# page, `tcpshift --help`, every `tcpshift COMMAND --help` and the completion
# name the same commands and options; the completion offers the services and
# backends of the instance that --pin-dir and -n on the line select; and
# `make uninstall` with the same DESTDIR removes every file install made.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init install
e2e_need make man groff systemd-analyze
DEST=$E2E_TMP/dest
BIN=$DEST/usr/sbin/tcpshift
UNIT=$DEST/usr/lib/systemd/system/tcpshift-agent.service
SYNC_UNIT=$DEST/usr/lib/systemd/system/tcpshift-sync.service
MAN=$DEST/usr/share/man/man8/tcpshift.8
COMP=$DEST/usr/share/bash-completion/completions/tcpshift

# ---- install ---------------------------------------------------------------------
if ! timeout 300 make -C "$E2E_ROOT" --no-print-directory install DESTDIR="$DEST" PREFIX=/usr \
	>"$E2E_TMP/install.log" 2>&1; then
	fail "install: make install DESTDIR PREFIX=/usr" "failed: $(tail -n 5 "$E2E_TMP/install.log" |
		tr '\n' '|')"
	e2e_status
	exit
fi
for f in "$BIN" "$MAN" "$COMP" "$UNIT" "$SYNC_UNIT"; do
	if [ -f "$f" ]; then
		pass "install: installs ${f#"$DEST"}"
	else
		fail "install: installs ${f#"$DEST"}" "missing; installed: $(cd "$DEST" &&
			find . -type f | tr '\n' ' ')"
	fi
done
if grep -qx "ExecStart=/usr/sbin/tcpshift agent --metrics \${TCPSHIFT_METRICS} \$TCPSHIFT_AGENT_ARGS" \
	"$UNIT" 2>/dev/null
then
	pass "install: the agent's systemd unit runs the installed binary"
else
	fail "install: the agent's systemd unit runs the installed binary" \
		"$(grep ExecStart "$UNIT" 2>&1)"
fi
if grep -q "^ExecStart=/usr/sbin/tcpshift sync --listen " "$SYNC_UNIT" 2>/dev/null; then
	pass "install: the sync systemd unit runs the installed binary"
else
	fail "install: the sync systemd unit runs the installed binary" \
		"$(grep ExecStart "$SYNC_UNIT" 2>&1)"
fi
if [ -x "$DEST/usr/sbin/tcpshiftd" ] && out=$("$BIN" agent --help 2>&1) &&
	grep -q '^Usage: tcpshift agent' <<<"$out"; then
	pass "install: tcpshiftd installed beside tcpshift runs 'tcpshift agent --help'"
else
	fail "install: tcpshiftd installed beside tcpshift runs 'tcpshift agent --help'" \
		"$(head -n 2 <<<"${out:-}")"
fi
# the units as systemd reads them: Type=notify with a watchdog and a descriptor
# limit, and no complaint from systemd-analyze (the binary's path made this DESTDIR's)
for u in "$UNIT" "$SYNC_UNIT"; do
	name=$(basename "$u")
	sed "s|/usr/sbin/|$DEST/usr/sbin/|g" "$u" >"$E2E_TMP/$name"
	complaints=$(systemd-analyze verify "$E2E_TMP/$name" 2>&1 | grep -v "man tcpshift(8)\|Documentation")
	if [ -z "$complaints" ] && grep -qx 'Type=notify' "$u" && grep -q '^WatchdogSec=' "$u" &&
		grep -q '^LimitNOFILE=' "$u"; then
		pass "install: $name is Type=notify with WatchdogSec= and LimitNOFILE=;" \
			"systemd-analyze verify finds nothing"
	else
		fail "install: $name is Type=notify with a watchdog and a descriptor limit" \
			"$(grep -E '^(Type|WatchdogSec|LimitNOFILE)=' "$u" | tr '\n' ' ') $complaints"
	fi
done
# the boot unit: a oneshot before network-pre.target that runs the installed
# binary's load and restore; systemd-analyze verify finds nothing
BOOT_UNIT=$DEST/usr/lib/systemd/system/tcpshift-boot.service
sed "s|/usr/sbin/|$DEST/usr/sbin/|g" "$BOOT_UNIT" >"$E2E_TMP/tcpshift-boot.service" 2>/dev/null
complaints=$(systemd-analyze verify "$E2E_TMP/tcpshift-boot.service" 2>&1 |
	grep -v "man tcpshift(8)\|Documentation")
if [ -f "$BOOT_UNIT" ] && [ -z "$complaints" ] && grep -qx 'Type=oneshot' "$BOOT_UNIT" &&
	grep -qx 'Before=network-pre.target' "$BOOT_UNIT" &&
	[ "$(grep '^ExecStart=' "$BOOT_UNIT" | tr '\n' '|')" = "$(printf '%s|' \
		'ExecStart=/usr/sbin/tcpshift load $TCPSHIFT_LOAD_ARGS' \
		'ExecStart=/usr/sbin/tcpshift restore')" ] &&
	[ -f "$DEST/usr/share/doc/tcpshift/tcpshift.conf.example" ]; then
	pass "install: tcpshift-boot.service loads and restores before network-pre.target;" \
		"systemd-analyze verify finds nothing; the example configuration is installed"
else
	fail "install: tcpshift-boot.service" \
		"$(grep -E '^(Type|Before|ExecStart)=' "$BOOT_UNIT" 2>&1 | tr '\n' ' ') $complaints"
fi
if [ -x "$BIN" ] && "$BIN" --help >/dev/null 2>&1; then
	pass "install: the installed binary runs (--help exits 0)"
else
	fail "install: the installed binary runs (--help exits 0)" "$("$BIN" --help 2>&1 | head -n 2)"
fi

# ---- the man page renders cleanly ----------------------------------------------
# man-db passes --warnings on to groff (-w mac by default: macro misuse);
# groff -ww adds every other warning class. Both at two widths.
warn=
for width in 80 60; do
	if ! LC_ALL=C.UTF-8 MANWIDTH=$width man --warnings -E UTF-8 -l "$MAN" \
		>"$E2E_TMP/man.$width" 2>"$E2E_TMP/man.err"; then
		warn="$warn man -l exited non-zero at width $width;"
	fi
	[ -s "$E2E_TMP/man.err" ] && warn="$warn $(head -n 3 "$E2E_TMP/man.err" | tr '\n' ' ')"
done
w=$(groff -man -ww -z "$MAN" 2>&1)
[ -n "$w" ] && warn="$warn groff -ww: $(head -n 3 <<<"$w" | tr '\n' ' ')"
if [ -z "$warn" ] && grep -q '^SYNOPSIS' "$E2E_TMP/man.80" &&
	grep -q '^EXIT STATUS' "$E2E_TMP/man.80"; then
	pass "install: man -l renders tcpshift(8) without warnings"
else
	fail "install: man -l renders tcpshift(8) without warnings" "${warn:-no SYNOPSIS/EXIT STATUS}"
fi

# ---- man page, --help and completion agree --------------------------------------
# The rendered page at a width where nothing wraps; a command's part runs from
# its subsection heading ("   load --dev IFACE ...") to the next heading.
LC_ALL=C.UTF-8 MANWIDTH=250 man -E UTF-8 -l "$MAN" 2>/dev/null >"$E2E_TMP/man.wide"

# man_part CMD: the text of CMD's subsections (service add/del/list together).
man_part() {
	awk -v c="$1" '
		/^[A-Z]/ { in_cmds = ($0 == "COMMANDS"); keep = 0; next }
		in_cmds && /^   [a-z]/ { split($0, w, " "); keep = (w[1] == c) }
		keep' "$E2E_TMP/man.wide"
}

# long_opts: the --options of stdin, sorted, without --help.
long_opts() {
	grep -oE -- '--[a-z][a-z-]*[a-z]' | grep -vx -- --help | sort -u | tr '\n' ' '
}

# the commands of `tcpshift --help` and the man page's subsections
help_cmds=$("$BIN" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }' |
	sort -u | tr '\n' ' ')
man_cmds=$(sed -n '/^COMMANDS/,/^[A-Z]/p' "$E2E_TMP/man.wide" | awk '/^   [a-z]/ { print $1 }' |
	sort -u | tr '\n' ' ')
read -r -a COMMANDS <<<"$help_cmds"
if [ "${#COMMANDS[@]}" -ge 9 ] && [ "$man_cmds" = "$help_cmds" ]; then
	pass "docs: tcpshift --help and the man page list the same commands (${help_cmds% })"
else
	fail "docs: tcpshift --help and the man page list the same commands" \
		"--help: $help_cmds; man: $man_cmds"
fi

# global options: tcpshift --help and the man page's GLOBAL OPTIONS
help_glob=$("$BIN" --help | sed -n '/^Global options:/,/^$/p' | long_opts)
man_glob=$(sed -n '/^GLOBAL OPTIONS/,/^[A-Z]/p' "$E2E_TMP/man.wide" | long_opts)
if [ -n "$help_glob" ] && [ "$help_glob" = "$man_glob" ]; then
	pass "docs: global options agree (${help_glob% })"
else
	fail "docs: global options agree" "--help: $help_glob; man: $man_glob"
fi

bad=
for cmd in "${COMMANDS[@]}"; do
	if ! h=$("$BIN" "$cmd" --help 2>&1); then
		bad="$bad $cmd --help exits non-zero;"
		continue
	fi
	grep -q '^Usage: tcpshift '"$cmd" <<<"$h" || bad="$bad $cmd --help has no 'Usage: tcpshift $cmd';"
	grep -q '^Examples\?:' <<<"$h" || bad="$bad $cmd --help has no example;"
	part=$(man_part "$cmd")
	[ -n "$part" ] || { bad="$bad no '$cmd' subsection in the man page;"; continue; }
	grep -q '^       Examples\?:' <<<"$part" || bad="$bad the man page has no example of $cmd;"
	ho=$(long_opts <<<"$h")
	mo=$(long_opts <<<"$part")
	[ "$ho" = "$mo" ] || bad="$bad $cmd options: --help '${ho% }', man '${mo% }';"
done
if [ -z "$bad" ]; then
	pass "docs: every COMMAND --help and its man page subsection: same options, an example each"
else
	fail "docs: every COMMAND --help and its man page subsection: same options, an example each" \
		"$bad"
fi

# ---- completion -----------------------------------------------------------------
# complete LINE: what the installed completion offers at the end of LINE.
complete_line() {
	bash -c '
		source "$1" || exit 1
		COMP_LINE=$2
		COMP_POINT=${#COMP_LINE}
		COMPREPLY=()
		_tcpshift
		[ "${#COMPREPLY[@]}" -eq 0 ] || printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "
	' complete "$COMP" "$1" 2>&1
}

# expect_completion NAME LINE WANT: PASS when LINE completes to exactly WANT.
expect_completion() {
	local got want

	got=$(complete_line "$2")
	want=$(tr ' ' '\n' <<<"$3" | grep -v '^$' | sort | tr '\n' ' ')
	if [ "$got" = "$want" ]; then
		pass "completion: $1"
	else
		fail "completion: $1" "'$2' completes to '$got', expected '$want'"
	fi
}

if bash -c 'source "$1" && complete -p tcpshift' complete "$COMP" >/dev/null 2>&1; then
	pass "completion: the installed file registers a completion for tcpshift"
else
	fail "completion: the installed file registers a completion for tcpshift" \
		"$(bash -c 'source "$1"' complete "$COMP" 2>&1 | head -n 2)"
fi
expect_completion "the commands of --help" "tcpshift " "$help_cmds"
expect_completion "the global options of --help" "tcpshift --" "$help_glob --help"
expect_completion "service verbs" "tcpshift service " "add del list"
expect_completion "backend verbs" "tcpshift backend " "add del"
expect_completion "flows --state" "tcpshift flows --state " \
	"syn established closing closed midstream"
if [[ " $help_cmds " == *" load "* ]] && "$BIN" load --help | grep -q -- --forward; then
	expect_completion "load --forward" "tcpshift load --forward " "stack fib"
fi
bad=
for cmd in "${COMMANDS[@]}"; do
	ho=$("$BIN" "$cmd" --help | long_opts)
	line="tcpshift $cmd --"
	case $cmd in
	service) line="tcpshift service add web 198.18.100.1:80 --" ;;
	backend) line="tcpshift backend add web v1 198.18.2.11:80 --" ;;
	esac
	co=$(complete_line "$line" | tr ' ' '\n' | grep -vx -- --help | grep -v '^$' | sort -u |
		tr '\n' ' ')
	[ "$co" = "$ho" ] || bad="$bad $cmd: completion '${co% }', --help '${ho% }';"
done
if [ -z "$bad" ]; then
	pass "completion: every command's options are those of its --help"
else
	fail "completion: every command's options are those of its --help" "$bad"
fi

# Names come from the instance the line selects: a gateway namespace of this
# test with a veth pair, tcpshift loaded under this test's own pin directory.
e2e_netns_add "$NS_GW"
must "veth pair" ip -n "$NS_GW" link add tsin0 type veth peer name tsin1
must "tsin0 up" ip -n "$NS_GW" link set tsin0 up
E2E_LOADED=1
must "tcpshift load" ts load --dev tsin0
must "service add" ts service add tcp-echo "$VIP4"
must "backend add v1" ts backend add tcp-echo v1 "$V1_4" --weight 80
must "backend add v2" ts backend add tcp-echo v2 "$V2_4" --weight 20
must "service add web6" ts service add web6 "$VIP6"
must "backend add w6" ts backend add web6 w6 "$V1_6"

on="$BIN --pin-dir $E2E_PIN -n $NS_GW"
expect_completion "service names (backend add)" "$on backend add " "tcp-echo web6"
expect_completion "service names (service del)" "$on service del " "tcp-echo web6"
expect_completion "service names (stats), with --pin-dir=DIR" \
	"$BIN --pin-dir=$E2E_PIN --netns $NS_GW stats t" "tcp-echo"
expect_completion "a service's backend names (backend del)" "$on backend del tcp-echo " "v1 v2"
expect_completion "a service's backend names (drain)" "$on drain web6 " "w6"
expect_completion "NAME= of the backends not named yet (weight)" \
	"$on weight tcp-echo v1=50 " "v2="
if [[ " $help_cmds " == *" pick "* ]]; then
	expect_completion "service names (pick)" "$on pick " "tcp-echo web6"
fi
expect_completion "flows --backend of the service given" "$on flows tcp-echo --backend " "v1 v2"
expect_completion "--dev: the interfaces of the -n namespace" "$on load --dev tsin" "tsin0 tsin1"
expect_completion "no names from another pin directory" \
	"$BIN --pin-dir $E2E_PIN-none -n $NS_GW stats " ""

# ---- uninstall -------------------------------------------------------------------
if ! timeout 60 make -C "$E2E_ROOT" --no-print-directory uninstall DESTDIR="$DEST" PREFIX=/usr \
	>"$E2E_TMP/uninstall.log" 2>&1; then
	fail "uninstall: make uninstall DESTDIR PREFIX=/usr" "failed: $(tail -n 5 \
		"$E2E_TMP/uninstall.log" | tr '\n' '|')"
else
	left=$(cd "$DEST" && find . ! -type d | tr '\n' ' ')
	if [ -z "$left" ]; then
		pass "uninstall: removes every file install made"
	else
		fail "uninstall: removes every file install made" "left: $left"
	fi
fi

e2e_status
