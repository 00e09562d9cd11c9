#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade in place from layout 6 (the last commit before layout 7, 1006370):
# test_upgrade.sh's checks, from that build.
UPGRADE_FROM=1006370 exec bash "$(dirname "$0")/test_upgrade.sh"
