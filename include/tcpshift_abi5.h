/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Layout 5 (release 05c97dc): the map values whose layout differs from
 * today's (include/tcpshift.h), as that release pinned them. Only `load`'s
 * migration (user/lib/migrate.c) reads them; every other map of layout 5 has
 * today's layout and is reused as it is.
 *
 * What layout 6 changed:
 *   settings        value grew: struct ts_settings gained `generation` (u64)
 *   counters        one more entry: TS_CNT_SYN_NOT_VIABLE
 *   direct_pending  new (unconfirmed direct connections; none in layout 5)
 *   syn_scratch     new, not pinned (a SYN's work space)
 *   xdp_devs        ts_xdp_dev's pad became flags; not pinned (each load fills its own)
 */
#ifndef TCPSHIFT_ABI5_H
#define TCPSHIFT_ABI5_H

#include "tcpshift.h"

#define TS_ABI5_VERSION		5

/* counters: enum ts_counter up to TS_CNT_SYNC_LOST; the indexes are today's */
#define TS_ABI5_CNT_MAX		TS_CNT_SYN_NOT_VIABLE

/* settings: today's struct ts_settings without its last field */
struct ts_settings_abi5 {
	__u32	abi_version;
	__u32	seed;
	__u32	ndevices;
	__u32	flags;		/* enum ts_settings_flags: the same bits */
	__u64	netns_dev;
	__u64	netns_ino;
	__u64	netns_cookie;
	__u32	ifindex[TS_MAX_DEVICES];
	__u32	dev_flags[TS_MAX_DEVICES];
};

#endif /* TCPSHIFT_ABI5_H */
