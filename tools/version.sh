#!/bin/sh
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# Print the version of this build, from the one place it is kept: VERSION.
# A release's own commit (tagged v<VERSION>, or listed in RELEASES) and a tree
# outside git (a source tarball) print it alone. Any other checkout adds what
# git describe would, counted from the newest release in RELEASES that HEAD
# contains, so that a clone without tags prints the same:
#   0.3.0-dev.45+g8896a77        45 commits after the last release, at 8896a77
#   0.3.0-dev.45+g8896a77.dirty  the same with changes not committed
# Usage: tools/version.sh [--deb]  (--deb: as a Debian version, 0.3.0~dev.45+g8896a77)
set -eu
cd "$(dirname "$0")/.."
version=$(cat VERSION)
deb=${1:-}

out=$version
if git rev-parse --git-dir >/dev/null 2>&1 && head=$(git rev-parse HEAD 2>/dev/null); then
	# the newest release HEAD contains, and whether HEAD is this version's release
	since=''
	exact=''
	while read -r v c _; do
		case $v in '#'* | '') continue ;; esac
		if [ "$c" = "$head" ] && [ "$v" = "$version" ]; then exact=1; fi
		if git merge-base --is-ancestor "$c" HEAD 2>/dev/null; then since=$c; fi
	done <RELEASES
	if git tag --points-at HEAD 2>/dev/null | grep -qx "v$version"; then exact=1; fi
	git update-index -q --refresh >/dev/null 2>&1 || :
	dirty=
	git diff-index --quiet HEAD -- 2>/dev/null || dirty=.dirty
	if [ -z "$exact" ] || [ -n "$dirty" ]; then
		n=$(git rev-list --count ${since:+"$since"..}HEAD)
		out="$version-dev.$n+g$(git rev-parse --short=7 HEAD)$dirty"
	fi
fi
if [ "$deb" = --deb ]; then
	out=$(printf '%s\n' "$out" | sed 's/-dev/~dev/')
fi
printf '%s\n' "$out"
