/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Pin events for `tcpshift sync` (doc/DESIGN.md, "Flow sync"): the data plane
 * tells a ring buffer when it confirms a flow and when a confirmed flow ends,
 * so that the sync daemon streams them to the other gateways without walking
 * the flow table. Never a wait: a full ring is a counter.
 */
#ifndef TCPSHIFT_SYNC_H
#define TCPSHIFT_SYNC_H

#include "maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TS_SYNC_RING_BYTES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sync_events SEC(".maps");

/* Event type (enum ts_sync_event_type) about flow f, key client -> VIP. Only
 * while a sync daemon has said it runs (one array lookup otherwise). A
 * subprogram, not inlined: it is called from every place a flow ends, and
 * inlined there it grew the tc program by 700 instructions (10 %) for code
 * that runs once per connection. */
static __noinline void ts_sync_emit(__u8 type, const struct ts_flow_key *key,
				 const struct ts_flow *f)
{
	struct ts_sync_event *e;
	struct ts_settings *cfg;
	__u32 zero = 0, lost = TS_CNT_SYNC_LOST;
	__u64 *n;

	cfg = bpf_map_lookup_elem(&settings, &zero);
	if (!cfg || !(cfg->flags & TS_SETTINGS_F_SYNC))
		return;
	e = bpf_ringbuf_reserve(&sync_events, sizeof(*e), 0);
	if (!e) {
		n = bpf_map_lookup_elem(&counters, &lost);
		if (n)
			*n += 1;
		return;
	}
	__builtin_memcpy(&e->key, key, sizeof(e->key));
	e->backend_id = f->backend_id;
	e->generation = f->generation;
	e->client_end = f->client_end;
	e->type = type;
	e->pad[0] = e->pad[1] = e->pad[2] = 0;
	e->time_ns = bpf_ktime_get_ns();	/* the lag metric: precise */
	bpf_ringbuf_submit(e, 0);
}

#endif /* TCPSHIFT_SYNC_H */
