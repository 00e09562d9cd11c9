#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Upgrade in place from layout 7 (release 0.3.0, 1e80312): test_upgrade.sh's
# checks from that build, then the way back: `downgrade --to-layout 7` and
# 0.3.0's `load` take the instance over, connections and counters kept.
# (Layout 6 was never released: tests/bpf/test_migrate.c starts from it.)
UPGRADE_FROM=1e80312 exec bash "$(dirname "$0")/test_upgrade.sh"
