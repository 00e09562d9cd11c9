// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift tc ingress program: weighted Maglev load balancing of new TCP
 * flows, flow pinning, and NAT in both directions.
 *
 * Forward: a packet to a service VIP:port follows its pinned flow, or (new
 * flow) is given a backend from the service's Maglev table and pinned; its
 * destination becomes the backend's address:port. Reply: a packet from a
 * backend address:port gets its service's VIP:port as source. Everything
 * else returns TC_ACT_OK untouched (invariant 5).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tcpshift.h"
#include "tcpshift_hash.h"
#include "parse.h"
#include "nat.h"
#include "reset.h"
#include "icmp.h"
#include "forward.h"
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by `tcpshift pick`, which runs this program on a crafted SYN to learn
 * the pick of the current table: no pin is read, no map is written. */
const volatile bool dry_run = false;

/* load --forward fib: rewritten packets go straight to their egress device
 * (forward.h); else the stack routes them. */
const volatile bool forward_fib = false;

static __always_inline void ts_count(__u32 counter)
{
	__u64 *v;

	if (dry_run)
		return;
	v = bpf_map_lookup_elem(&counters, &counter);
	if (v)
		*v += 1;
}

static __always_inline void ts_count_backend(__u32 id, __u32 bytes, bool new_flow)
{
	struct ts_backend_stats *s;

	if (dry_run)
		return;
	s = bpf_map_lookup_elem(&backend_stats, &id);
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

static __always_inline bool ts_drain_expired(const struct ts_backend *be, __u64 now)
{
	return be->drain_deadline_ns && now > be->drain_deadline_ns;
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

/* Is be a backend of svc now: active and a member of its live table half?
 * (A change is committed by the switch of halves: see tcpshift.h.) */
static __always_inline bool ts_backend_live(const struct ts_backend *be,
					    const struct ts_service *svc)
{
	return be->state == TS_BACKEND_ACTIVE &&
	       (be->table_halves & (1U << (svc->table_half & 1)));
}

/* The backend a pinned flow goes to, or NULL when that backend was removed
 * (or its id reused: the generation differs). */
static __always_inline struct ts_backend *ts_pinned_backend(const struct ts_service *svc,
							    const struct ts_flow *flow)
{
	__u32 id = flow->backend_id;
	struct ts_backend *be = bpf_map_lookup_elem(&backends, &id);

	if (!be || be->generation != flow->generation || !ts_backend_live(be, svc))
		return NULL;
	return be;
}

/* The backend_addrs entry of a backend endpoint, when it names a live
 * backend (an entry left by a killed command does not). */
static __always_inline struct ts_reply *ts_backend_index(const struct ts_endpoint_key *key,
							 struct ts_backend **be)
{
	struct ts_endpoint_key vip = { .proto = key->proto, .family = key->family };
	struct ts_service *svc;
	struct ts_reply *reply;
	__u32 id;

	reply = bpf_map_lookup_elem(&backend_addrs, key);
	if (!reply)
		return NULL;
	id = reply->backend_id;
	*be = bpf_map_lookup_elem(&backends, &id);
	__builtin_memcpy(vip.addr, reply->vip, sizeof(vip.addr));
	vip.port = reply->vport;
	svc = bpf_map_lookup_elem(&services, &vip);
	if (!*be || !svc || !ts_backend_live(*be, svc))
		return NULL;
	return reply;
}

/* Pin a new flow: a SYN in half_open, anything else in flows. */
static __always_inline int ts_pin(const struct ts_pkt *p, const struct ts_service *svc,
				  __u32 id, const struct ts_backend *be, __u64 now)
{
	bool syn = ts_is_syn(p->tcp_flags);
	struct ts_flow flow = {
		.backend_id = id,
		.generation = be->generation,
		.service_id = svc->id,
		.tcp_state = syn ? TS_TCP_SYN_SEEN
				 : ts_next_state(TS_TCP_MIDSTREAM, p->tcp_flags),
		.created_ns = now,
		.last_seen_ns = now,
	};

	if (dry_run)
		return 0;
	return bpf_map_update_elem(syn ? (void *)&half_open : (void *)&flows, &p->key, &flow,
				   BPF_ANY);
}

/*
 * A packet of a flow whose backend was removed, or is past its drain
 * deadline: the flow is closed, never moved to another backend. A RST goes
 * on to a backend that still exists (so it closes too); anything else with
 * an ACK is answered with a RST to the client, which reconnects at once.
 */
static __always_inline int ts_close_flow(struct __sk_buff *skb, const struct ts_pkt *p,
					 const struct ts_backend *be)
{
	ts_count(be ? TS_CNT_DRAIN_CLOSED : TS_CNT_REMOVED_BACKEND);
	if (p->tcp_flags & TCP_FLAG_RST) {
		if (be && !ts_rewrite(skb, p, true, be->addr, be->port))
			return TC_ACT_OK;
		return TC_ACT_SHOT;
	}
	if (!(p->tcp_flags & TCP_FLAG_ACK) || dry_run)
		return TC_ACT_SHOT;
	return ts_reset_client(skb, p);
}

static __always_inline int ts_forward(struct __sk_buff *skb, const struct ts_pkt *p,
				      const struct ts_service *svc)
{
	bool syn = ts_is_syn(p->tcp_flags), half_opened = false;
	struct ts_backend *be = NULL;
	/* the coarse clock (tick-precise) is plenty for 1 s stamps and drain
	 * deadlines, at half the cost */
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ts_flow *flow;
	__u32 id;

	/* pick (dry_run) asks what a new flow gets: the table, not a pin */
	flow = dry_run ? NULL : bpf_map_lookup_elem(&flows, &p->key);
	if (!flow && !dry_run) {
		flow = bpf_map_lookup_elem(&half_open, &p->key);
		half_opened = flow != NULL;
	}
	if (flow) {
		bool expired;

		be = ts_pinned_backend(svc, flow);
		expired = be && ts_drain_expired(be, now);
		/* A SYN after the client's FIN or RST, or to a backend that is
		 * gone or past its drain deadline, opens a new connection on
		 * this 5-tuple: it is picked afresh. */
		if (syn && (!be || expired || flow->tcp_state == TS_TCP_CLOSING ||
			    flow->tcp_state == TS_TCP_CLOSED)) {
			/* the new pin goes to half_open: flows must not shadow it */
			if (!half_opened && !dry_run)
				bpf_map_delete_elem(&flows, &p->key);
			flow = NULL;
		} else if (!be || expired)
			return ts_close_flow(skb, p, be);
	}
	if (flow) {
		__u8 state = ts_next_state(flow->tcp_state, p->tcp_flags);

		id = flow->backend_id;
		if (dry_run) {
			/* no writes */
		} else if (half_opened && state != TS_TCP_SYN_SEEN) {
			/* The client answered the handshake: promote. */
			struct ts_flow est = *flow;

			est.tcp_state = state;
			est.last_seen_ns = now;
			if (!bpf_map_update_elem(&flows, &p->key, &est, BPF_ANY)) {
				bpf_map_delete_elem(&half_open, &p->key);
				ts_count(TS_CNT_PROMOTED);
			}
		} else {
			/* Writes only on a state change or once per granularity period. */
			if (state != flow->tcp_state)
				flow->tcp_state = state;
			if (now - flow->last_seen_ns > TS_LAST_SEEN_GRANULARITY_NS)
				flow->last_seen_ns = now;
		}
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
	if (forward_fib && !dry_run)
		return ts_fib_forward(skb, p, p->key.saddr, be->addr, p->key.sport, be->port);
	return TC_ACT_OK;
}

/* A packet from a backend address:port: source becomes the VIP:port. Past
 * the backend's drain deadline it also becomes a RST (its sequence number is
 * the backend's own, so the client accepts it). */
static __always_inline int ts_reply(struct __sk_buff *skb, const struct ts_pkt *p)
{
	struct ts_endpoint_key key = {
		.port = p->key.sport,
		.proto = p->key.proto,
		.family = p->key.family,
	};
	struct ts_backend *be;
	struct ts_reply *reply;
	__u32 id;

	__builtin_memcpy(key.addr, p->key.saddr, sizeof(key.addr));
	reply = ts_backend_index(&key, &be);
	if (!reply)
		return TC_ACT_OK;
	id = reply->backend_id;
	if (be->drain_deadline_ns && ts_drain_expired(be, bpf_ktime_get_coarse_ns()) &&
	    !(p->tcp_flags & TCP_FLAG_RST) && !dry_run) {
		ts_count(TS_CNT_DRAIN_CLOSED);
		if (ts_tcp_set(skb, p, TCP_FLAG_RST, false, 0))
			return TC_ACT_SHOT;
	}
	if (ts_rewrite(skb, p, false, reply->vip, reply->vport))
		return TC_ACT_SHOT;
	ts_count_backend(id, skb->len, false);
	if (forward_fib)
		return ts_fib_forward(skb, p, reply->vip, p->key.daddr, reply->vport,
				      p->key.dport);
	return TC_ACT_OK;
}

static __always_inline bool ts_addr_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

/* An ICMP error about a NATed flow: see icmp.h. */
static __always_inline int ts_icmp(struct __sk_buff *skb, __u8 family)
{
	struct ts_endpoint_key key = { .proto = IPPROTO_TCP, .family = family };
	struct ts_flow_key fkey = { .proto = IPPROTO_TCP, .family = family };
	struct ts_backend *be = NULL;
	struct ts_service *svc;
	struct ts_reply *reply;
	struct ts_flow *flow;
	struct ts_icmp m = {};
	__u32 id;

	/* an error goes to the source of the packet it quotes: else not ours */
	if (!ts_icmp_parse(skb, family, &m) || !ts_addr_eq(m.outer_daddr, m.in_saddr))
		return TC_ACT_OK;

	/* about a packet to a backend: toward the client */
	__builtin_memcpy(key.addr, m.in_daddr, sizeof(key.addr));
	key.port = m.in_dport;
	reply = ts_backend_index(&key, &be);
	if (reply) {
		bool from_backend = ts_addr_eq(m.outer_saddr, m.in_daddr);

		if (ts_icmp_rewrite(skb, &m, false, reply->vip, reply->vport, true,
				    from_backend ? reply->vip : NULL))
			return TC_ACT_SHOT;
		ts_count(TS_CNT_ICMP);
		return TC_ACT_OK;
	}

	/* about a reply from a VIP: toward the flow's backend */
	__builtin_memcpy(key.addr, m.in_saddr, sizeof(key.addr));
	key.port = m.in_sport;
	svc = bpf_map_lookup_elem(&services, &key);
	if (!svc)
		return TC_ACT_OK;
	__builtin_memcpy(fkey.saddr, m.in_daddr, sizeof(fkey.saddr));
	__builtin_memcpy(fkey.daddr, m.in_saddr, sizeof(fkey.daddr));
	fkey.sport = m.in_dport;
	fkey.dport = m.in_sport;
	flow = bpf_map_lookup_elem(&flows, &fkey);
	if (!flow)
		flow = bpf_map_lookup_elem(&half_open, &fkey);
	if (flow)
		be = ts_pinned_backend(svc, flow);
	else
		be = ts_pick(svc, &fkey, &id);
	if (!be)
		return TC_ACT_OK;
	if (ts_icmp_rewrite(skb, &m, true, be->addr, be->port, false, be->addr))
		return TC_ACT_SHOT;
	ts_count(TS_CNT_ICMP);
	return TC_ACT_OK;
}

SEC("tc")
int tcpshift_tc(struct __sk_buff *skb)
{
	struct ts_endpoint_key key = {};
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
	case TS_PARSE_ICMP:
		return ts_icmp(skb, p.key.family);
	case TS_PARSE_V6_EXT:
		__builtin_memcpy(key.addr, p.key.daddr, sizeof(key.addr));
		key.port = p.key.dport;
		key.proto = IPPROTO_TCP;
		key.family = TS_AF_INET6;
		if (bpf_map_lookup_elem(&services, &key))
			ts_count(TS_CNT_V6_EXT);
		return TC_ACT_OK;
	default:
		return TC_ACT_OK;
	}

	__builtin_memcpy(key.addr, p.key.daddr, sizeof(key.addr));
	key.port = p.key.dport;
	key.proto = p.key.proto;
	key.family = p.key.family;
	svc = bpf_map_lookup_elem(&services, &key);
	if (svc)
		return ts_forward(skb, &p, svc);
	return ts_reply(skb, &p);
}
