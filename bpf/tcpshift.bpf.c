// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift tc ingress program: weighted Maglev load balancing of new TCP
 * flows, flow pinning, and NAT in both directions.
 *
 * Forward: a packet to a service VIP:port follows its pinned flow, or (new
 * flow) is given a backend from the service's Maglev table and pinned; its
 * destination becomes the backend's address:port. Reply: a packet from a
 * backend to a client of a pinned flow gets VIP:port as its source.
 * Everything else returns TC_ACT_OK untouched.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tcpshift.h"
#include "tcpshift_hash.h"
#include "parse.h"
#include "nat.h"
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void ts_count(__u32 counter)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &counter);

	if (v)
		*v += 1;
}

static __always_inline void ts_count_backend(__u32 id, __u32 bytes, bool new_flow)
{
	struct ts_backend_stats *s = bpf_map_lookup_elem(&backend_stats, &id);

	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	if (new_flow)
		s->new_flows++;
}

static __always_inline bool ts_is_syn(__u8 flags)
{
	return (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

/* The TCP state a pinned flow moves to on this client packet. */
static __always_inline __u8 ts_next_state(__u8 state, __u8 flags)
{
	if (flags & TCP_FLAG_RST)
		return TS_TCP_CLOSED;
	if (flags & TCP_FLAG_FIN)
		return TS_TCP_CLOSING;
	if (state == TS_TCP_SYN_SEEN && (flags & TCP_FLAG_ACK))
		return TS_TCP_ESTABLISHED;
	return state;
}

/* Weighted Maglev pick: the live half of the service's table, indexed by the
 * seeded flow hash. */
static __always_inline struct ts_backend *ts_pick(const struct ts_service *svc,
						  const struct ts_flow_key *key, __u32 *id)
{
	struct ts_table_entry *entry;
	struct ts_settings *cfg;
	__u32 zero = 0, slot;
	void *table;

	cfg = bpf_map_lookup_elem(&settings, &zero);
	table = bpf_map_lookup_elem(&tables, &svc->id);
	if (!cfg || !table || !svc->table_size)
		return NULL;
	slot = (svc->table_half & 1) * TS_TABLE_HALF(svc->table_size) +
	       ts_flow_hash(key, cfg->seed) % svc->table_size;
	entry = bpf_map_lookup_elem(table, &slot);
	if (!entry || entry->backend_id == TS_NO_BACKEND)
		return NULL;
	*id = entry->backend_id;
	return bpf_map_lookup_elem(&backends, id);
}

static __always_inline int ts_pin(const struct ts_pkt *p, const struct ts_service *svc,
				  __u32 id, const struct ts_backend *be, __u64 now)
{
	struct ts_flow flow = {
		.backend_id = id,
		.generation = be->generation,
		.service_id = svc->id,
		.tcp_state = ts_is_syn(p->tcp_flags)
				     ? TS_TCP_SYN_SEEN
				     : ts_next_state(TS_TCP_MIDSTREAM, p->tcp_flags),
		.created_ns = now,
		.last_seen_ns = now,
	};
	struct ts_flow_key rkey = {
		.sport = be->port,
		.dport = p->key.sport,
		.proto = p->key.proto,
		.family = p->key.family,
	};
	struct ts_reply reply = {
		.vport = p->key.dport,
		.backend_id = id,
	};

	__builtin_memcpy(rkey.saddr, be->addr, sizeof(rkey.saddr));
	__builtin_memcpy(rkey.daddr, p->key.saddr, sizeof(rkey.daddr));
	__builtin_memcpy(reply.vip, p->key.daddr, sizeof(reply.vip));
	/* The reply entry first: a forwarded packet always finds its way back. */
	if (bpf_map_update_elem(&replies, &rkey, &reply, BPF_ANY))
		return -1;
	return bpf_map_update_elem(&flows, &p->key, &flow, BPF_ANY);
}

/* The backend a pinned flow goes to, or NULL when that backend was removed
 * (or its id reused: the generation differs). */
static __always_inline struct ts_backend *ts_pinned_backend(const struct ts_flow *flow)
{
	__u32 id = flow->backend_id;
	struct ts_backend *be = bpf_map_lookup_elem(&backends, &id);

	if (!be || be->state != TS_BACKEND_ACTIVE || be->generation != flow->generation)
		return NULL;
	return be;
}

static __always_inline int ts_forward(struct __sk_buff *skb, const struct ts_pkt *p,
				      const struct ts_service *svc)
{
	bool syn = ts_is_syn(p->tcp_flags);
	struct ts_backend *be = NULL;
	struct ts_flow *flow;
	__u64 now = bpf_ktime_get_ns();
	__u32 id;

	flow = bpf_map_lookup_elem(&flows, &p->key);
	if (flow) {
		be = ts_pinned_backend(flow);
		/* A SYN after the client's FIN or RST, or to a removed backend,
		 * opens a new connection on this 5-tuple: it is picked afresh. */
		if (syn && (!be || flow->tcp_state == TS_TCP_CLOSING ||
			    flow->tcp_state == TS_TCP_CLOSED))
			flow = NULL;
		else if (!be) {
			/* Never move a pinned flow to another backend. */
			ts_count(TS_CNT_REMOVED_BACKEND);
			return TC_ACT_SHOT;
		}
	}
	if (flow) {
		__u8 state = ts_next_state(flow->tcp_state, p->tcp_flags);

		id = flow->backend_id;
		/* Writes only on a state change or once per granularity period. */
		if (state != flow->tcp_state)
			flow->tcp_state = state;
		if (now - flow->last_seen_ns > TS_LAST_SEEN_GRANULARITY_NS)
			flow->last_seen_ns = now;
		ts_count_backend(id, skb->len, false);
	} else {
		if (!syn)
			ts_count(TS_CNT_NON_SYN_MISS);
		be = ts_pick(svc, &p->key, &id);
		if (!be || be->state != TS_BACKEND_ACTIVE) {
			ts_count(TS_CNT_NO_BACKEND);
			return TC_ACT_SHOT;
		}
		/* A RST ends its flow: forwarded, not pinned. */
		if (!(p->tcp_flags & TCP_FLAG_RST) && ts_pin(p, svc, id, be, now))
			return TC_ACT_SHOT;
		if (syn)
			ts_count(TS_CNT_NEW_FLOWS);
		ts_count_backend(id, skb->len, syn);
	}
	if (ts_rewrite(skb, p, true, be->addr, be->port))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

static __always_inline int ts_reply(struct __sk_buff *skb, const struct ts_pkt *p)
{
	struct ts_reply *reply;
	__u32 id;

	reply = bpf_map_lookup_elem(&replies, &p->key);
	if (!reply)
		return TC_ACT_OK;
	id = reply->backend_id;
	if (ts_rewrite(skb, p, false, reply->vip, reply->vport))
		return TC_ACT_SHOT;
	ts_count_backend(id, skb->len, false);
	return TC_ACT_OK;
}

SEC("tc")
int tcpshift_tc(struct __sk_buff *skb)
{
	struct ts_service_key skey = {};
	struct ts_service *svc;
	struct ts_pkt p = {};

	switch (ts_parse(skb, &p)) {
	case TS_PARSE_TCP:
		break;
	case TS_PARSE_MALFORMED:
		ts_count(TS_CNT_MALFORMED);
		return TC_ACT_OK;
	case TS_PARSE_FRAGMENT:
		ts_count(TS_CNT_FRAGMENT);
		return TC_ACT_OK;
	default:
		return TC_ACT_OK;
	}

	__builtin_memcpy(skey.addr, p.key.daddr, sizeof(skey.addr));
	skey.port = p.key.dport;
	skey.proto = p.key.proto;
	skey.family = p.key.family;
	svc = bpf_map_lookup_elem(&services, &skey);
	if (svc)
		return ts_forward(skb, &p, svc);
	return ts_reply(skb, &p);
}
