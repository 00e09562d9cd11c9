/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Layout 7 (release 0.3.0): what differs from today's (include/tcpshift.h), as
 * that layout pinned it. Only `load`'s migration and `downgrade`
 * (user/lib/migrate.c) and `unload` of such an instance use it.
 *
 * What layout 8 changed:
 *   backend_stats   per-CPU hash of TS_MAX_BACKENDS allocated as it fills, an
 *                   entry made by a backend's first packet -> an array of
 *                   maps, each a per-CPU array of TS_STATS_CHUNK ids, made
 *                   by the control plane when it gives an id of the chunk
 *   replies         value: pad became flags; the counts waiting to be added
 *                   to the backend's (packets, bytes, counted_ns) and the
 *                   epoch its backend was found live at added
 *   flows           value: struct ts_flow -> struct ts_flow_entry, which
 *                   adds a copy of the backend's address and port
 *   tables          each table: an mmap-able array of one struct
 *                   ts_table_entry per element -> not mmap-able, of
 *                   struct ts_table_chunk elements (TS_TABLE_CHUNK entries)
 *   settings        same value
 */
#ifndef TCPSHIFT_ABI7_H
#define TCPSHIFT_ABI7_H

#include "tcpshift.h"

#define TS_ABI7_VERSION		7

/* replies: today's struct ts_reply_state up to backend_ack, flags a pad */
struct ts_reply_state_abi7 {
	__be32	vip[4];
	__be16	vport;
	__u8	pad[2];
	__u32	backend_id;
	__u32	ifindex;
	__u32	backend_ack;
};

#endif /* TCPSHIFT_ABI7_H */
