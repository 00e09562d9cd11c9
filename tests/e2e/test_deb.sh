#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# `make deb` builds a Debian package with dpkg-deb alone: both binaries, the man
# page, the completion, the three units, Depends on Debian 12's libraries (the
# packages that hold the libraries the binaries link, by dpkg -S); `apt-get
# install ./build/tcpshift_*.deb` installs it on this machine (every dependency
# is already here: no network); the installed tcpshift --version answers with
# the package's version, systemd-analyze verify accepts the installed units;
# `apt-get purge` leaves none of its files behind.
# The package is installed for real, in /usr: the trap purges it, and the test
# refuses to run where a tcpshift package is installed already.
set -u
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

e2e_init deb
e2e_need dpkg dpkg-deb apt-get systemd-analyze make objdump ldconfig
dpkg -s tcpshift >/dev/null 2>&1 &&
	e2e_abort "a tcpshift package is installed on this machine: not touching it"
DEB_INSTALLED=0
deb_cleanup() {
	if [ "$DEB_INSTALLED" -eq 1 ]; then
		DEBIAN_FRONTEND=noninteractive timeout 120 apt-get purge -y -qq tcpshift \
			>/dev/null 2>&1 || dpkg --purge tcpshift >/dev/null 2>&1
	fi
	e2e_cleanup
}
trap deb_cleanup EXIT

if ! timeout 300 make -C "$E2E_ROOT" --no-print-directory deb >"$E2E_TMP/make.log" 2>&1; then
	e2e_abort "make deb failed: $(tail -n 3 "$E2E_TMP/make.log" | tr '\n' '|')"
fi
debs=("$E2E_ROOT"/build/tcpshift_*.deb)
if [ "${#debs[@]}" -ne 1 ] || [ ! -f "${debs[0]}" ]; then
	e2e_abort "make deb made ${#debs[@]} packages"
fi
DEB=${debs[0]}
version=$(dpkg-deb -f "$DEB" Version)
pass "deb: make deb builds $(basename "$DEB")"

# ---- the package's content and dependencies --------------------------------------
dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' | grep -v '/$' | sort >"$E2E_TMP/files"
want="/usr/lib/systemd/system/tcpshift-agent.service
/usr/lib/systemd/system/tcpshift-boot.service
/usr/lib/systemd/system/tcpshift-sync.service
/usr/sbin/tcpshift
/usr/sbin/tcpshiftd
/usr/share/bash-completion/completions/tcpshift
/usr/share/man/man8/tcpshift.8.gz"
missing=$(comm -13 "$E2E_TMP/files" <(sort <<<"$want"))
if [ -z "$missing" ]; then
	pass "deb: holds both binaries, the man page, the completion and the three units"
else
	fail "deb: content" "missing: $missing"
fi
# every library the binaries link comes from a package the control file names
deps=$(dpkg-deb -f "$DEB" Depends | tr ',' '\n' | awk '{ print $1 }' | sort -u)
needed=$(for b in "$E2E_ROOT/build/tcpshift" "$E2E_ROOT/build/tcpshiftd"; do
	objdump -p "$b" | awk '$1 == "NEEDED" { print $2 }'
done | sort -u | while read -r lib; do
	path=$(ldconfig -p | awk -v l="$lib" '$1 == l { print $NF; exit }')
	# /lib or /usr/lib (merged /usr): whichever dpkg knows
	{ dpkg -S "$path" || dpkg -S "$(readlink -f "$path")" ||
		dpkg -S "*/$(basename "$(readlink -f "$path")")"; } 2>/dev/null |
		head -n 1 | cut -d: -f1
done | sort -u)
undeclared=$(comm -13 <(echo "$deps") <(echo "$needed"))
if [ -n "$needed" ] && [ -z "$undeclared" ]; then
	pass "deb: Depends names every package whose library the binaries link ($(tr '\n' ' ' <<<"$needed"))"
else
	fail "deb: Depends" "not declared: $undeclared (declared: $(tr '\n' ' ' <<<"$deps"))"
fi

# ---- install with apt, use, verify -------------------------------------------------
DEB_INSTALLED=1
if DEBIAN_FRONTEND=noninteractive timeout 180 apt-get install -y -qq "$DEB" \
	>"$E2E_TMP/apt.log" 2>&1; then
	pass "deb: apt-get install ./$(basename "$DEB") installs it (nothing to download)"
else
	fail "deb: apt-get install" "$(grep -v '^W: ' "$E2E_TMP/apt.log" | tail -n 3 | tr '\n' '|')"
fi
got=$(/usr/sbin/tcpshift --version 2>&1)
gotd=$(/usr/sbin/tcpshiftd --version 2>&1)
layout=$(awk '$2 == "TS_ABI_VERSION" { print $3 }' "$E2E_ROOT/include/tcpshift.h")
v=${version/\~dev/-dev}
if [ "$got" = "tcpshift $v (map layout $layout)" ] && [[ $gotd == "tcpshiftd $v "* ]]; then
	pass "deb: the installed tcpshift --version answers with the package's version ($got)"
else
	fail "deb: --version after install" "'$got' / '$gotd', package $version"
fi
complaints=
for u in tcpshift-agent tcpshift-sync tcpshift-boot; do
	complaints+=$(systemd-analyze verify "/usr/lib/systemd/system/$u.service" 2>&1 |
		grep -v "man tcpshift(8)\|Documentation")
done
if [ -z "$complaints" ] && MANWIDTH=80 man 8 tcpshift 2>/dev/null | grep -q '^SYNOPSIS'; then
	pass "deb: systemd-analyze verify accepts the installed units; man tcpshift renders"
else
	fail "deb: installed units" "$complaints"
fi

# ---- purge: nothing left -------------------------------------------------------------
if DEBIAN_FRONTEND=noninteractive timeout 120 apt-get purge -y -qq tcpshift \
	>"$E2E_TMP/purge.log" 2>&1; then
	DEB_INSTALLED=0
fi
left=$(while read -r f; do [ -e "$f" ] && echo "$f"; done <"$E2E_TMP/files")
[ -d /usr/share/doc/tcpshift ] && left+=" /usr/share/doc/tcpshift"
if [ "$DEB_INSTALLED" -eq 0 ] && [ -z "$left" ] && ! dpkg -s tcpshift >/dev/null 2>&1; then
	pass "deb: apt-get purge leaves none of its files behind"
else
	fail "deb: purge" "left: $left $(tail -n 2 "$E2E_TMP/purge.log" | tr '\n' '|')"
fi

e2e_status
