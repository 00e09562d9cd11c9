// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift's data plane: weighted Maglev load balancing of new TCP flows,
 * flow pinning, and NAT in both directions, at tc ingress (tcpshift_tc) and,
 * with load --mode xdp, in front of it at XDP (tcpshift_xdp): one flow logic,
 * ts_ingress, for both (ctx.h). tc egress translates the gateway's own ICMP
 * errors; local.h holds the socket hooks for clients on the node itself.
 *
 * Forward: a packet to a service VIP:port follows its pinned flow, or (new
 * flow) is given a backend from the service's Maglev table and pinned; its
 * destination becomes the backend's address:port. Reply: a packet from a
 * backend address:port gets its service's VIP:port as source. Everything
 * else goes on untouched (invariant 5).
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
#include "maps.h"
#include "forward.h"
#include "sync.h"
#include "viable.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by `tcpshift pick`, which runs this program on a crafted SYN to learn
 * the pick of the current table: no pin is read, no map is written. */
const volatile bool dry_run = false;

/* load --forward fib: rewritten packets go straight to their egress device
 * (forward.h); else the stack routes them. (The XDP program always does:
 * it passes the rest to tc.) */
const volatile bool forward_fib = false;

/* load --mode xdp --handshakes xdp: the XDP program also takes the packets of
 * handshakes (the client's SYN and ACK, the backend's SYN-ACK or RST to it),
 * so whole connections skip the stack and its netfilter rules; else it
 * passes them to tc (doc/DESIGN.md, "XDP"). Never read at tc. */
const volatile bool xdp_handshakes = false;

/* The version of the build that loaded this object, written by the loader and
 * never read here: `tcpshift status` and the agent's build information read it
 * back from the loaded programs' .rodata map (user/lib/version.c). */
const volatile char tcpshift_version[48] = "";

static __always_inline void ts_count(__u32 counter)
{
	__u64 *v;

	if (dry_run)
		return;
	v = bpf_map_lookup_elem(&counters, &counter);
	if (v)
		*v += 1;
}

/* The backend's canary counters (tcpshift.h), or NULL (pick writes nothing,
 * or an id whose chunk the control plane has not made: none given yet). Two
 * array lookups, no hashing: the chunk's map, then the id's slot in it. */
static __always_inline struct ts_backend_stats *ts_stats(__u32 id)
{
	__u32 chunk = id >> TS_STATS_CHUNK_SHIFT, slot = id & (TS_STATS_CHUNK - 1);
	void *counters;

	if (dry_run)
		return NULL;
	counters = bpf_map_lookup_elem(&backend_stats, &chunk);
	if (!counters)
		return NULL;
	return bpf_map_lookup_elem(counters, &slot);
}

/* A packet to (to_backend) or from backend id. */
static __always_inline void ts_count_backend(__u32 id, __u32 bytes, bool to_backend,
					     bool new_flow)
{
	struct ts_backend_stats *s = ts_stats(id);

	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	if (to_backend)
		s->bytes_to_backend += bytes;
	else
		s->bytes_from_backend += bytes;
	if (new_flow)
		s->new_flows++;
}

/*
 * Counting per flow (tcpshift.h, TS_PENDING_MAX): a packet of an established
 * flow is added to the pending counts in its flow's (or reply's) entry, and
 * those to the backend's counters at most once a second and when the flow
 * ends. Atomic adds keep them exact when two CPUs take a flow's packets at
 * once: a packet is added with one, and moving counts subtracts, with another,
 * what was read; so every count is moved once, even by two CPUs moving them at
 * the same time (one of them then finds less than nothing left, and moves
 * nothing until the packets that follow make up for it).
 */
static __always_inline void ts_unpend(__u32 id, __u32 *packets, __u32 *bytes, bool to_backend)
{
	__s32 n = *(volatile __u32 *)packets, b = *(volatile __u32 *)bytes;
	struct ts_backend_stats *s;

	if (n <= 0 && b <= 0)
		return;
	s = ts_stats(id);
	if (!s)
		return;
	if (n > 0) {
		__sync_fetch_and_add(packets, -n);
		s->packets += n;
	}
	if (b > 0) {
		__sync_fetch_and_add(bytes, -b);
		s->bytes += b;
		if (to_backend)
			s->bytes_to_backend += b;
		else
			s->bytes_from_backend += b;
	}
}

/* Add a packet of len bytes to pending counts; true when they are to be moved
 * to the backend's counters now (they reached TS_PENDING_MAX). */
static __always_inline bool ts_pend(__u32 *packets, __u32 *bytes, __u32 len)
{
	__sync_fetch_and_add(packets, 1);
	__sync_fetch_and_add(bytes, len);
	return *(volatile __u32 *)bytes >= TS_PENDING_MAX;
}

static __always_inline bool ts_addr_eq(const __be32 *a, const __be32 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3];
}

static __always_inline bool ts_is_syn(__u8 flags)
{
	return (flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
}

static __always_inline bool ts_drain_expired(const struct ts_backend *be, __u64 now)
{
	return be->drain_deadline_ns && now > be->drain_deadline_ns;
}

/*
 * A backend connecting to its own VIP must get another backend (its own would
 * answer itself, not through the gateway): a weighted draw among the others,
 * from the configuration the live half was built from (tcpshift.h, tables).
 * Deterministic, so every gateway and `pick` agree. Rare; bpf_loop keeps the
 * verifier from walking 256 iterations of branches.
 */
struct ts_other {
	__be32	client[4];
	__u32	svc_id;
	__u32	cfg;		/* slot of the configuration's header: n */
	__u32	total;		/* weight of the others */
	__u32	target;		/* hash % total */
	__u32	id;		/* the pick, or TS_NO_BACKEND */
};

/* Entry i of a service's table (include/tcpshift.h, tables), or NULL. */
static __always_inline struct ts_table_entry *ts_table_entry(void *table, __u32 i)
{
	__u32 chunk = i / TS_TABLE_CHUNK;
	struct ts_table_chunk *c = bpf_map_lookup_elem(table, &chunk);

	return c ? &c->e[i & (TS_TABLE_CHUNK - 1)] : NULL;
}

/* The weight of configuration entry i, 0 if it is the client itself. */
static __always_inline __u32 ts_other_weight(__u32 i, const struct ts_other *o, __u32 *id)
{
	struct ts_table_entry *entry;
	struct ts_backend *be;
	__u32 slot = o->cfg + 1 + i;
	void *table;

	table = bpf_map_lookup_elem(&tables, &o->svc_id);
	if (!table)
		return 0;
	entry = ts_table_entry(table, slot);
	if (!entry)
		return 0;
	*id = entry->backend_id;
	be = bpf_map_lookup_elem(&backends, id);
	if (!be || ts_addr_eq(be->addr, o->client))
		return 0;
	return entry->weight;
}

static long ts_other_sum(__u32 i, struct ts_other *o)
{
	__u32 id;

	o->total += ts_other_weight(i, o, &id);
	return 0;
}

static long ts_other_find(__u32 i, struct ts_other *o)
{
	__u32 id, w = ts_other_weight(i, o, &id);

	if (o->target < w) {
		o->id = id;
		return 1;
	}
	o->target -= w;
	return 0;
}

static __always_inline struct ts_backend *ts_pick_other(void *table, const struct ts_service *svc,
							const __be32 *client, __u32 hash, __u32 *id)
{
	struct ts_other o = { .svc_id = svc->id, .id = TS_NO_BACKEND };
	struct ts_table_entry *entry;
	__u32 n;

	o.cfg = (svc->table_half & 1) * svc->half_len + svc->table_size;
	__builtin_memcpy(o.client, client, sizeof(o.client));
	entry = ts_table_entry(table, o.cfg);
	if (!entry)
		return NULL;
	n = entry->backend_id;
	if (n > TS_MAX_SERVICE_BACKENDS)
		return NULL;
	bpf_loop(n, ts_other_sum, &o, 0);
	if (!o.total)
		return NULL;
	o.target = hash % o.total;
	bpf_loop(n, ts_other_find, &o, 0);
	*id = o.id;
	return o.id == TS_NO_BACKEND ? NULL : bpf_map_lookup_elem(&backends, id);
}

/* Weighted Maglev pick: the live half of the service's table, indexed by
 * hash; never the client's own address (ts_pick_other), when client is given
 * (a local client's peer is never itself). */
static __always_inline struct ts_backend *ts_pick_hash(const struct ts_service *svc, __u32 hash,
						       const __be32 *client, __u32 *id)
{
	struct ts_table_entry *entry;
	struct ts_backend *be;
	__u32 slot;
	void *table;

	table = bpf_map_lookup_elem(&tables, &svc->id);
	if (!table || !svc->table_size)
		return NULL;
	slot = (svc->table_half & 1) * svc->half_len;
	slot += hash % svc->table_size;
	entry = ts_table_entry(table, slot);
	if (!entry || entry->backend_id == TS_NO_BACKEND)
		return NULL;
	*id = entry->backend_id;
	be = bpf_map_lookup_elem(&backends, id);
	if (!be || !client || !ts_addr_eq(be->addr, client))
		return be;
	ts_count(TS_CNT_HAIRPIN);
	return ts_pick_other(table, svc, client, hash, id);
}

/* The pick of a new flow: by its seeded flow hash (invariant 6). */
static __always_inline struct ts_backend *ts_pick(const struct ts_service *svc,
						  const struct ts_flow_key *key, __u32 *id)
{
	__u32 zero = 0;
	struct ts_settings *cfg = bpf_map_lookup_elem(&settings, &zero);

	if (!cfg)
		return NULL;
	return ts_pick_hash(svc, ts_flow_hash(key, cfg->seed), key->saddr, id);
}

/* Is be a backend of svc now: active and a member of its live table half?
 * (A change is committed by the switch of halves: see tcpshift.h.) */
static __always_inline bool ts_backend_live(const struct ts_backend *be,
					    const struct ts_service *svc)
{
	return be->state == TS_BACKEND_ACTIVE &&
	       (be->table_halves & (1U << (svc->table_half & 1)));
}

/* ... and takes new flows: a weight > 0 in the live half. */
static __always_inline bool ts_backend_weighted(const struct ts_backend *be,
						const struct ts_service *svc)
{
	return ts_backend_live(be, svc) && (be->weighted_halves & (1U << (svc->table_half & 1)));
}

/* ... whatever half is live: a member of both. A backend is, but for the one
 * change that adds or removes it: the change's commit (the switch of halves)
 * decides that one's liveness, and only the service's entry can tell it. */
static __always_inline bool ts_backend_settled(const struct ts_backend *be)
{
	return be->state == TS_BACKEND_ACTIVE && (be->table_halves & 3) == 3;
}

/* The backend a pinned flow goes to, or NULL when that backend was removed
 * (or its id reused: the generation differs). svc NULL: only a settled
 * backend is found. */
static __always_inline struct ts_backend *ts_pinned_backend(const struct ts_service *svc,
							    const struct ts_flow *flow)
{
	__u32 id = flow->backend_id;
	struct ts_backend *be = bpf_map_lookup_elem(&backends, &id);

	if (!be || be->generation != flow->generation ||
	    !(svc ? ts_backend_live(be, svc) : ts_backend_settled(be)))
		return NULL;
	return be;
}

/* The configuration's epoch (tcpshift.h, ts_flow_entry): the low 32 bits of
 * settings' generation, which every committed change moves; 0 while a change
 * holds the lock or was killed holding it (TS_SETTINGS_F_CHANGING): then no
 * copy of a backend's entry is made or trusted. The control plane moves the
 * generation before it clears the flag (user/lib/maps.c, ts_maps_unlock), so
 * no read finds the flag cleared with the generation of before the change. */
static __always_inline __u32 ts_epoch(void)
{
	__u32 zero = 0;
	struct ts_settings *s = bpf_map_lookup_elem(&settings, &zero);

	if (!s || (s->flags & TS_SETTINGS_F_CHANGING))
		return 0;
	return (__u32)s->generation;
}

/* The backend of a backend_addrs entry, when it is live (an entry left by a
 * killed command is not). */
static __always_inline struct ts_backend *ts_reply_backend(const struct ts_reply *reply,
							    __u8 family)
{
	struct ts_endpoint_key vip = { .port = reply->vport, .proto = IPPROTO_TCP,
				       .family = family };
	struct ts_service *svc;
	struct ts_backend *be;
	__u32 id = reply->backend_id;

	be = bpf_map_lookup_elem(&backends, &id);
	__builtin_memcpy(vip.addr, reply->vip, sizeof(vip.addr));
	svc = bpf_map_lookup_elem(&services, &vip);
	if (!be || !svc || !ts_backend_live(be, svc))
		return NULL;
	return be;
}

/* The backend_addrs entry of a backend endpoint, when it names a live
 * backend. */
static __always_inline struct ts_reply *ts_lookup_backend_addr(const struct ts_endpoint_key *key,
							       struct ts_backend **be)
{
	struct ts_reply *reply = bpf_map_lookup_elem(&backend_addrs, key);

	if (!reply)
		return NULL;
	*be = ts_reply_backend(reply, key->family);
	return *be ? reply : NULL;
}

/* ---- flow lifecycle (doc/DESIGN.md, "Flow lifecycle") ---------------------- */

/* a after b in sequence space (RFC 1982 serial arithmetic) */
static __always_inline bool ts_seq_after(__u32 a, __u32 b)
{
	return (__s32)(a - b) > 0;
}

/* Within TS_SEQ_WINDOW of the client's highest sequence number so far: what
 * an off-path sender, who does not know it, cannot aim at. */
static __always_inline bool ts_seq_plausible(const struct ts_flow *f, __u32 seq)
{
	return seq - f->client_end + TS_SEQ_WINDOW <= 2 * TS_SEQ_WINDOW;
}

/* The 5-tuple of the backend's (at addr:port) replies to flow key (as they
 * arrive). */
static __always_inline void ts_reply_key(struct ts_flow_key *r, const struct ts_flow_key *key,
					 const __be32 *addr, __be16 port)
{
	__builtin_memcpy(r->saddr, addr, sizeof(r->saddr));
	__builtin_memcpy(r->daddr, key->saddr, sizeof(r->daddr));
	r->sport = port;
	r->dport = key->sport;
	r->proto = key->proto;
	r->family = key->family;
}

enum ts_end {
	TS_END_OTHER,		/* the client's RST, a removed or expired backend */
	TS_END_FINS,		/* FINs both ways */
	TS_END_BACKEND_RST,
};

/* The client packets f counted (TS_FLOW_F_COUNTED) go to its backend's
 * counters: f is no longer established (its state was written before), so its
 * later packets are counted at once. */
static __always_inline void ts_flow_unpend(struct ts_flow *f)
{
	if (f->flags & TS_FLOW_F_COUNTED)
		ts_unpend(f->backend_id, &f->packets, &f->bytes, true);
}

/* ... and, as it ended (key: client -> VIP), so do its replies' counts. */
static __always_inline void ts_flow_unpend_ended(const struct ts_flow_key *key, struct ts_flow *f)
{
	struct ts_flow_key rkey = {};
	struct ts_reply_state *r;
	struct ts_backend *be;
	__u32 id = f->backend_id;

	if (!(f->flags & TS_FLOW_F_COUNTED))
		return;
	ts_unpend(id, &f->packets, &f->bytes, true);
	be = bpf_map_lookup_elem(&backends, &id);
	if (!be || be->generation != f->generation)
		return;
	ts_reply_key(&rkey, key, be->addr, be->port);
	r = bpf_map_lookup_elem(&replies, &rkey);
	if (!r || r->backend_id != id)
		return;
	r->flags |= TS_REPLY_F_ENDED;
	ts_unpend(id, &r->packets, &r->bytes, false);
}

/* The connection of f (key client -> VIP) ended: CLOSED, counted once and
 * told to sync for a confirmed flow (key NULL: a local socket's, not sync's). */
static __always_inline void ts_flow_end(const struct ts_flow_key *key, struct ts_flow *f,
					bool confirmed, enum ts_end why)
{
	struct ts_backend_stats *s;

	if (f->tcp_state == TS_TCP_CLOSED)
		return;
	f->tcp_state = TS_TCP_CLOSED;
	if (!confirmed)
		return;
	if (key) {
		ts_sync_emit(TS_SYNC_END, key, f);
		ts_flow_unpend_ended(key, f);
	}
	s = ts_stats(f->backend_id);
	if (!s)
		return;
	s->ended++;
	if (why == TS_END_FINS)
		s->closed++;
	else if (why == TS_END_BACKEND_RST)
		s->reset++;
}

/* A FIN from one side; both sides' FINs end the connection. */
static __always_inline void ts_flow_fin(const struct ts_flow_key *key, struct ts_flow *f,
					bool confirmed, __u8 side)
{
	if (f->flags & side)
		return;
	f->flags |= side;
	if ((f->flags & (TS_FLOW_F_CLIENT_FIN | TS_FLOW_F_BACKEND_FIN)) ==
	    (TS_FLOW_F_CLIENT_FIN | TS_FLOW_F_BACKEND_FIN))
		ts_flow_end(key, f, confirmed, TS_END_FINS);
	else {
		f->tcp_state = TS_TCP_CLOSING;
		if (confirmed)
			ts_flow_unpend(f);
	}
}

/*
 * Follow the client's side of a pinned flow (confirmed: in flows). Its RST
 * and FIN, and the advance of its sequence numbers, count only within the
 * window of the sequence numbers it sent so far. Writes only what changes: a
 * pure ACK writes nothing.
 */
static __always_inline void ts_track_client(struct ts_flow *f, bool confirmed,
					    const struct ts_pkt *p)
{
	__u32 end = p->seq + p->seq_len;

	if (!ts_seq_plausible(f, p->seq)) {
		if (p->tcp_flags & (TCP_FLAG_RST | TCP_FLAG_FIN))
			ts_count(TS_CNT_SPOOF_REJECTED);
		return;
	}
	if (p->tcp_flags & TCP_FLAG_RST) {
		ts_flow_end(&p->key, f, confirmed, TS_END_OTHER);
		return;
	}
	if (ts_seq_after(end, f->client_end))
		f->client_end = end;
	if (p->tcp_flags & TCP_FLAG_FIN)
		ts_flow_fin(&p->key, f, confirmed, TS_FLOW_F_CLIENT_FIN);
}

/* The backend's side of flow key: it is trusted as far as it is the backend
 * (the packet matched the flow's reply 5-tuple and arrived on the backend's
 * device). */
static __always_inline void ts_track_backend(const struct ts_flow_key *key, struct ts_flow *f,
					     bool confirmed, const struct ts_pkt *p)
{
	if (p->tcp_flags & TCP_FLAG_RST)
		ts_flow_end(key, f, confirmed, TS_END_BACKEND_RST);
	else if (p->tcp_flags & TCP_FLAG_FIN)
		ts_flow_fin(key, f, confirmed, TS_FLOW_F_BACKEND_FIN);
}

/* The client -> VIP key of the flow a reply (its 5-tuple r) belongs to. */
static __always_inline void ts_flow_key_of_reply(struct ts_flow_key *k, const struct ts_flow_key *r,
						 const __be32 *vip, __be16 vport)
{
	__builtin_memcpy(k->saddr, r->daddr, sizeof(k->saddr));
	__builtin_memcpy(k->daddr, vip, sizeof(k->daddr));
	k->sport = r->dport;
	k->dport = vport;
	k->proto = r->proto;
	k->family = r->family;
}

/* The reverse entry of confirmed flow f (client -> VIP key, backend at
 * addr:port): its replies are rewritten when they arrive on f->ifindex. */
static __always_inline void ts_reply_entry(const struct ts_flow_key *key, const struct ts_flow *f,
					   const __be32 *addr, __be16 port)
{
	struct ts_reply_state r = {
		.vport = key->dport,
		.backend_id = f->backend_id,
		.ifindex = f->ifindex,
		.backend_ack = f->client_end,
		.counted_ns = bpf_ktime_get_coarse_ns(),
	};
	struct ts_flow_key rkey = {};

	__builtin_memcpy(r.vip, key->daddr, sizeof(r.vip));
	ts_reply_key(&rkey, key, addr, port);
	bpf_map_update_elem(&replies, &rkey, &r, BPF_ANY);
}

/* A client RST or FIN outside its own window may still be in the window the
 * backend sees (the acknowledgment number of its last reply, in the reverse
 * entry): the client's segments took another path for a while. Then that is
 * the window. */
static __always_inline void ts_client_resync(struct ts_flow *f, const struct ts_pkt *p,
					     const __be32 *addr, __be16 port)
{
	struct ts_flow_key rkey = {};
	struct ts_reply_state *r;

	ts_reply_key(&rkey, &p->key, addr, port);
	r = bpf_map_lookup_elem(&replies, &rkey);
	if (r && r->backend_id == f->backend_id &&
	    p->seq - r->backend_ack + TS_SEQ_WINDOW <= 2 * TS_SEQ_WINDOW)
		f->client_end = r->backend_ack;
}

/*
 * Confirm a half-open flow (its backend at addr:port): both sides answered.
 * It moves to flows, where no flood of spoofed packets reaches it, with the
 * backend's address and port (written with the entry, never in place:
 * ts_flow_entry), and its replies get their reverse entry.
 */
static __always_inline void ts_promote(const struct ts_flow_key *key, const struct ts_flow *f,
				       const __be32 *addr, __be16 port)
{
	struct ts_flow_entry *e;
	struct ts_backend_stats *s;
	struct ts_flow *est;
	__u32 zero = 0;

	e = bpf_map_lookup_elem(&flow_scratch, &zero);
	if (!e)
		return;
	e->flow = *f;
	__builtin_memcpy(e->backend_addr, addr, sizeof(e->backend_addr));
	e->backend_port = port;
	e->pad[0] = e->pad[1] = 0;
	e->epoch = 0;
	est = &e->flow;
	if (est->tcp_state == TS_TCP_SYN_SEEN || est->tcp_state == TS_TCP_MIDSTREAM)
		est->tcp_state = TS_TCP_ESTABLISHED;
	/* confirmed here: ours now, whoever pinned it; its packets are
	 * counted in its entry from now on (the handshake's fields are done
	 * with) */
	est->flags = (est->flags & ~TS_FLOW_F_SYNCED) | TS_FLOW_F_COUNTED;
	est->packets = 0;
	est->bytes = 0;
	if (bpf_map_update_elem(&flows, key, e, BPF_ANY))
		return;
	ts_reply_entry(key, est, addr, port);
	bpf_map_delete_elem(&half_open, key);
	ts_count(TS_CNT_PROMOTED);
	/* a connection that ended in the packet that confirmed it is no pin
	 * the other gateways need */
	if (est->tcp_state != TS_TCP_CLOSED)
		ts_sync_emit(TS_SYNC_PIN, key, est);
	s = ts_stats(est->backend_id);
	if (!s)
		return;
	s->opened++;
	/* a handshake (from a SYN), not a pickup; the connection may
	 * already have ended in the packet that confirmed it */
	s->handshakes += f->tcp_state != TS_TCP_MIDSTREAM;
	s->ended += est->tcp_state == TS_TCP_CLOSED;
}

/* The handshake time of a flow pinned from a SYN at created_ns (the precise
 * clock): SYN forwarded -> its SYN-ACK seen now. */
static __always_inline void ts_count_handshake(const struct ts_flow *f)
{
	struct ts_backend_stats *s = ts_stats(f->backend_id);
	__u64 dt = bpf_ktime_get_ns() - f->created_ns;
	__u32 b = TS_HANDSHAKE_BUCKETS - 1;

	if (!s)
		return;
	for (__u32 i = 0; i < TS_HANDSHAKE_BUCKETS - 1; i++)
		if (dt <= TS_HANDSHAKE_BUCKET0_NS << i) {
			b = i;
			break;
		}
	s->handshake_ns_sum += dt;
	s->handshake_hist[b & (TS_HANDSHAKE_BUCKETS - 1)]++;
}

/* A client packet of a half-open flow: the handshake's ACK confirms the flow
 * when it acknowledges the backend's SYN-ACK as this gateway saw it; an
 * off-path sender does not know the backend's initial sequence number. */
static __always_inline void ts_half_open_client(const struct ts_pkt *p, struct ts_flow *f,
						const __be32 *addr, __be16 port)
{
	__u32 acked;

	ts_track_client(f, false, p);
	if ((p->tcp_flags & (TCP_FLAG_ACK | TCP_FLAG_SYN | TCP_FLAG_RST)) != TCP_FLAG_ACK ||
	    f->tcp_state == TS_TCP_MIDSTREAM || f->tcp_state == TS_TCP_CLOSED)
		return;
	if (!(f->flags & TS_FLOW_F_SYNACK)) {
		/* The SYN-ACK took another path, or is late: the flow stays
		 * half-open until a packet of the backend confirms it (the
		 * other gateways hold it half-open too). */
		if (f->tcp_state == TS_TCP_SYN_SEEN) {
			f->tcp_state = TS_TCP_ESTABLISHED;
			ts_sync_emit(TS_SYNC_PIN_HALF_OPEN, &p->key, f);
		}
		return;
	}
	acked = p->ack - (f->backend_isn + 1);
	if (acked > f->backend_end - (f->backend_isn + 1)) {
		ts_count(TS_CNT_SPOOF_REJECTED);
		return;
	}
	/* The sender saw the SYN-ACK: the client itself, on the path. Its
	 * sequence numbers are the window from now on, whatever a spoofed SYN
	 * on the 4-tuple set before. */
	f->client_end = p->seq + p->seq_len;
	ts_promote(&p->key, f, addr, port);
}

/* A backend packet of a half-open flow. Its SYN-ACK is recorded for the
 * client's ACK to be checked against; its RST ends the flow (the pin goes:
 * a later SYN is picked afresh); any other answer to a flow picked up
 * mid-stream (or whose SYN-ACK this gateway missed) confirms it. */
static __always_inline void ts_half_open_backend(struct ts_ctx *c, const struct ts_pkt *p,
						 const struct ts_flow_key *key, struct ts_flow *f,
						 const struct ts_backend *be)
{
	__u32 end = p->seq + p->seq_len;

	if (p->tcp_flags & TCP_FLAG_RST) {
		struct ts_backend_stats *s = ts_stats(f->backend_id);

		/* a refused connection: its SYN answered with a RST, before any
		 * SYN-ACK (after one, the RST answers a bad ACK, maybe spoofed) */
		if (s && f->tcp_state != TS_TCP_MIDSTREAM && !(f->flags & TS_FLOW_F_SYNACK))
			s->refused++;
		bpf_map_delete_elem(&half_open, key);
		ts_count(TS_CNT_BACKEND_REFUSED);
		return;
	}
	f->ifindex = c->ifindex;
	if ((p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == (TCP_FLAG_SYN | TCP_FLAG_ACK)) {
		if (!(f->flags & TS_FLOW_F_SYNACK) && f->tcp_state != TS_TCP_MIDSTREAM)
			ts_count_handshake(f);
		f->flags |= TS_FLOW_F_SYNACK;
		f->backend_isn = p->seq;
		f->backend_end = end;
		return;
	}
	if (f->flags & TS_FLOW_F_SYNACK) {
		if (ts_seq_after(end, f->backend_end))
			f->backend_end = end;
		return;
	}
	/* A pickup (or a handshake whose SYN-ACK went another way) is
	 * confirmed by the backend's answer when it acknowledges the client's
	 * own window: a blind segment's answer (a duplicate ACK of a live
	 * connection, a TIME-WAIT socket's ACK) acknowledges something else. */
	if ((f->tcp_state == TS_TCP_MIDSTREAM || f->tcp_state == TS_TCP_ESTABLISHED) &&
	    (p->tcp_flags & TCP_FLAG_ACK) && ts_seq_plausible(f, p->ack)) {
		f->client_end = p->ack;
		ts_track_backend(key, f, false, p);
		ts_promote(key, f, be->addr, be->port);
	}
}

/* Pin a new flow in half_open, picked from a SYN or (mid-stream) from any
 * other packet; it moves to flows when both sides confirm it. */
static __always_inline int ts_pin(const struct ts_pkt *p, const struct ts_service *svc,
				  __u32 id, const struct ts_backend *be, __u64 now)
{
	struct ts_flow flow = {
		.backend_id = id,
		.generation = be->generation,
		.service_id = svc->id,
		.tcp_state = ts_is_syn(p->tcp_flags) ? TS_TCP_SYN_SEEN : TS_TCP_MIDSTREAM,
		/* a SYN's time is the start of its handshake time: the precise
		 * clock, on new SYNs only */
		.created_ns = ts_is_syn(p->tcp_flags) && !dry_run ? bpf_ktime_get_ns() : now,
		.last_seen_ns = now,
		.client_end = p->seq + p->seq_len,
	};

	if (dry_run)
		return 0;
	return bpf_map_update_elem(&half_open, &p->key, &flow, BPF_ANY);
}

/*
 * A packet of a flow whose backend was removed, or is past its drain
 * deadline: the flow is closed, never moved to another backend. A RST goes
 * on to a backend that still exists (so it closes too); anything else with
 * an ACK is answered with a RST to the client, which reconnects at once.
 */
static __always_inline int ts_close_flow(struct ts_ctx *c, const struct ts_pkt *p,
					 const struct ts_backend *be, struct ts_flow *flow,
					 bool confirmed)
{
	ts_count(be ? TS_CNT_DRAIN_CLOSED : TS_CNT_REMOVED_BACKEND);
	ts_flow_end(&p->key, flow, confirmed, TS_END_OTHER);
	if (p->tcp_flags & TCP_FLAG_RST) {
		if (be && !ts_rewrite(c, p, true, be->addr, be->port))
			return ts_ok(c);
		return ts_drop(c);
	}
	if (!(p->tcp_flags & TCP_FLAG_ACK) || dry_run)
		return ts_drop(c);
	return ts_reset_client(ts_skb(c), p);
}

/*
 * A SYN on a pinned 4-tuple is a new connection, picked afresh, only when no
 * live connection can be hurt by it: the old one ended (an accepted RST, FINs
 * both ways, the backend's RST), its backend is gone or past its deadline, or
 * the pin was never confirmed and is no handshake the backend just answered:
 * a pickup (the SYN starts a connection), or a SYN whose backend takes no new
 * flows (weight 0) any more. Otherwise it goes to the pinned backend, whose
 * TCP judges it (a challenge ACK when the connection is live): no blind SYN
 * moves a flow.
 */
#define TS_HANDSHAKE_LIVE_NS	3000000000ULL	/* a SYN-ACK older than this: dead */
#define TS_SYN_RTO_NS		1000000000ULL	/* RFC 6298's initial retransmission timeout */

static __always_inline bool ts_syn_repicks(const struct ts_flow *f, bool half_opened,
					   const struct ts_backend *be, const struct ts_service *svc,
					   bool expired, __u64 now)
{
	if (!be || expired || f->tcp_state == TS_TCP_CLOSED)
		return true;
	if (!half_opened)
		return false;
	if (f->tcp_state == TS_TCP_MIDSTREAM)
		return true;
	if (ts_backend_weighted(be, svc))
		return false;
	/* the client's ACK to a SYN-ACK is one round trip away */
	return !(f->flags & TS_FLOW_F_SYNACK) || (__s64)(now - f->created_ns) > (__s64)TS_HANDSHAKE_LIVE_NS;
}

/* A client packet of pinned flow f (confirmed: in flows): an established
 * flow's is added to its entry's pending counts, which go to the backend's
 * counters when its stamp was refreshed for it (stamped); any other at once. */
static __always_inline void ts_count_client(struct ts_flow *f, bool confirmed, __u32 len,
					    bool stamped)
{
	if (confirmed && (f->flags & TS_FLOW_F_COUNTED) && f->tcp_state == TS_TCP_ESTABLISHED) {
		/* read again after adding: an end on another CPU took the
		 * counts with this packet's, or this packet moves them (a
		 * locked add orders the two on x86; where an atomic without
		 * fetch does not, such a packet may wait in the entry) */
		if (ts_pend(&f->packets, &f->bytes, len) || stamped ||
		    *(volatile __u8 *)&f->tcp_state != TS_TCP_ESTABLISHED)
			ts_unpend(f->backend_id, &f->packets, &f->bytes, true);
		return;
	}
	ts_count_backend(f->backend_id, len, true, false);
}

/* Where a pinned flow's packet goes: its backend's address and port, from
 * its entry be or, without it, from the copy that stands for it. */
static __always_inline const __be32 *ts_to_addr(const struct ts_backend *be,
						 const struct ts_flow_entry *copy)
{
	return be ? be->addr : copy->backend_addr;
}

static __always_inline __be16 ts_to_port(const struct ts_backend *be,
					 const struct ts_flow_entry *copy)
{
	return be ? be->port : copy->backend_port;
}

/* p to a VIP: svc is its service's entry, flow its entry in flows (or NULL).
 * For a non-SYN of a flow whose backend is settled, ts_ingress found that
 * backend, be, or a copy of its address that stands for its entry (copy, the
 * flow's entry, be NULL), and svc is NULL: nothing here reads the service
 * then. */
static __always_inline int ts_forward(struct ts_ctx *c, const struct ts_pkt *p,
				      const struct ts_service *svc, struct ts_flow *flow,
				      struct ts_backend *be, const struct ts_flow_entry *copy)
{
	bool syn = ts_is_syn(p->tcp_flags), half_opened = false, routed = false, stamped = false;
	struct ts_route rt;
	/* the coarse clock (tick-precise) is plenty for 1 s stamps and drain
	 * deadlines, at half the cost */
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ts_flow *ended = NULL;
	__u32 id;

	/* a handshake is tc's, unless loaded with --handshakes xdp
	 * (doc/DESIGN.md, "XDP") */
	if (ts_is_xdp(c) && syn && !xdp_handshakes)
		return XDP_PASS;
	/* (ts_ingress leaves a SYN's flow to here) */
	if (syn && !dry_run)
		flow = bpf_map_lookup_elem(&flows, &p->key);
	if (!flow && !dry_run) {
		flow = bpf_map_lookup_elem(&half_open, &p->key);
		half_opened = flow != NULL;
	}
	if (flow) {
		bool expired;

		if (svc)
			be = ts_pinned_backend(svc, flow);
		expired = be && ts_drain_expired(be, now);
		/* (svc NULL comes with no SYN: the test is the verifier's) */
		if (syn && svc && ts_syn_repicks(flow, half_opened, be, svc, expired, now)) {
			/* the new pin goes to half_open: flows must not shadow
			 * it; the old connection is over (below, once the new
			 * one's route is known) */
			if (!half_opened)
				ended = flow;
			flow = NULL;
		} else if ((!be && !copy) || expired) {
			if (ts_is_xdp(c))
				return XDP_PASS;
			return ts_close_flow(c, p, be, flow, !half_opened);
		}
	}
	/* XDP finishes packets of confirmed flows; with --handshakes xdp also
	 * those of half-open ones and the SYNs it pins. The rest (a pickup, a
	 * SYN that cannot lead to a connection or finds no backend) goes on
	 * untouched to tc, which counts and judges it. */
	if (ts_is_xdp(c) && (flow ? half_opened && !xdp_handshakes : !syn))
		return XDP_PASS;
	if (!flow) {
		/* (nor without a flow) */
		if (!svc)
			return ts_drop(c);
		if (ts_is_xdp(c) && !ts_syn_viable(c, p))
			return XDP_PASS;
		be = ts_pick(svc, &p->key, &id);
		if (ts_is_xdp(c) && (!be || be->state != TS_BACKEND_ACTIVE))
			return XDP_PASS;
	}
	/* Without --handshakes xdp only confirmed flows skip the stack: a
	 * flow's handshake goes through its netfilter rules, so fib mode and
	 * XDP forward nothing they would drop. The route is found before
	 * anything changes: XDP passes what it cannot finish to tc untouched,
	 * which then does it all. */
	if ((ts_is_xdp(c) || (forward_fib && flow && !half_opened)) && !dry_run)
		routed = ts_fib_lookup(c, p, p->key.saddr, ts_to_addr(be, copy), p->key.sport,
				       ts_to_port(be, copy), now, &rt);
	if (ts_is_xdp(c) && !routed)
		return XDP_PASS;
	if (ended) {
		ts_flow_end(&p->key, ended, true, TS_END_OTHER);
		bpf_map_delete_elem(&flows, &p->key);
	}
	if (flow) {
		id = flow->backend_id;
		/* before the client's packet is followed: a promotion frees the
		 * half_open entry */
		if (now - flow->last_seen_ns > TS_LAST_SEEN_GRANULARITY_NS) {
			flow->last_seen_ns = now;
			stamped = true;
		}
		if (half_opened) {
			/* The client timed out waiting for the SYN-ACK: its SYN
			 * again, a second (the initial RTO) or more after the
			 * first, counted once. A spoofed SYN sent twice is no
			 * timeout: the backend answers it at once; one that
			 * cannot reach the backend (viable.h) counts nothing. */
			if (syn && flow->tcp_state == TS_TCP_SYN_SEEN &&
			    !(flow->flags & (TS_FLOW_F_SYNACK | TS_FLOW_F_TIMED_OUT)) &&
			    (__s64)(now - flow->created_ns) >= (__s64)TS_SYN_RTO_NS &&
			    ts_syn_viable(c, p)) {
				struct ts_backend_stats *s = ts_stats(id);

				flow->flags |= TS_FLOW_F_TIMED_OUT;
				if (s)
					s->syn_retransmits++;
			}
			ts_half_open_client(p, flow, ts_to_addr(be, copy), ts_to_port(be, copy));
		} else {
			if (p->tcp_flags & (TCP_FLAG_RST | TCP_FLAG_FIN) &&
			    !ts_seq_plausible(flow, p->seq))
				ts_client_resync(flow, p, ts_to_addr(be, copy), ts_to_port(be, copy));
			ts_track_client(flow, true, p);
		}
		ts_count_client(flow, !half_opened, ts_len(c), stamped);
	} else {
		if (!syn)
			ts_count(TS_CNT_NON_SYN_MISS);
		if (!be || be->state != TS_BACKEND_ACTIVE) {
			ts_count(TS_CNT_NO_BACKEND);
			return ts_drop(c);
		}
		/* (XDP checked it above) */
		if (syn && !ts_is_xdp(c) && !dry_run && !ts_syn_viable(c, p)) {
			/* forwarded as the stack would (viable.h): pinned and
			 * counted for no backend */
			ts_count(TS_CNT_SYN_NOT_VIABLE);
		} else {
			/* A RST ends its flow: forwarded, not pinned. */
			if (!(p->tcp_flags & TCP_FLAG_RST) && ts_pin(p, svc, id, be, now))
				return ts_drop(c);
			if (syn)
				ts_count(TS_CNT_NEW_FLOWS);
			ts_count_backend(id, ts_len(c), true, syn);
		}
	}
	if (ts_rewrite(c, p, true, ts_to_addr(be, copy), ts_to_port(be, copy)))
		return ts_drop(c);
	return routed ? ts_fib_apply(c, p, &rt) : ts_ok(c);
}

/* A reply of backend id: counted in its reverse entry r as ts_count_client
 * counts a client's packet, until its flow ended; at once without r. */
static __always_inline void ts_count_reply(struct ts_reply_state *r, __u32 id, __u32 len)
{
	__u64 now;

	if (!r || (r->flags & TS_REPLY_F_ENDED)) {
		ts_count_backend(id, len, false, false);
		return;
	}
	now = bpf_ktime_get_coarse_ns();
	if (ts_pend(&r->packets, &r->bytes, len) ||
	    now - r->counted_ns > TS_LAST_SEEN_GRANULARITY_NS ||
	    (*(volatile __u8 *)&r->flags & TS_REPLY_F_ENDED)) {
		r->counted_ns = now;
		ts_unpend(id, &r->packets, &r->bytes, false);
	}
}

/* A backend's reply: past the backend's drain deadline it becomes a RST (its
 * sequence number is the backend's own, so the client accepts it); its
 * source becomes the VIP:port. r: its reverse entry, NULL for a reply judged
 * without one; be NULL: the entry's epoch stands for a backend with no
 * deadline. */
static __always_inline int ts_reply_rewrite(struct ts_ctx *c, const struct ts_pkt *p,
					    const struct ts_backend *be, __u32 id,
					    const __be32 *vip, __be16 vport,
					    struct ts_reply_state *r, const struct ts_route *rt)
{
	/* (XDP passed such replies to tc: ts_reply_confirmed) */
	if (!ts_is_xdp(c) && be && be->drain_deadline_ns &&
	    ts_drain_expired(be, bpf_ktime_get_coarse_ns()) && !(p->tcp_flags & TCP_FLAG_RST) &&
	    !dry_run) {
		ts_count(TS_CNT_DRAIN_CLOSED);
		if (ts_tcp_set(ts_skb(c), p, TCP_FLAG_RST, false, 0))
			return ts_drop(c);
	}
	if (ts_rewrite(c, p, false, vip, vport))
		return ts_drop(c);
	ts_count_reply(r, id, ts_len(c));
	return rt ? ts_fib_apply(c, p, rt) : ts_ok(c);
}

/* A reply of a confirmed flow (its reverse entry r matched, on its device);
 * -1 when the entry outlived its flow's backend, or a RST or FIN finds that
 * flow gone (a new connection on the 4-tuple is being refused or closed),
 * for the caller to judge it as a packet without a reverse entry. */
static __always_inline int ts_reply_confirmed(struct ts_ctx *c, const struct ts_pkt *p,
					      struct ts_reply_state *r)
{
	__u32 id = r->backend_id, epoch = ts_epoch();
	struct ts_backend *be = NULL;
	struct ts_route rt;
	bool routed = false;
	__u64 now;

	/* the entry outlived its backend (removed, or its id taken by another
	 * endpoint): not ours, judged as if it were gone. An epoch that stands
	 * says it did not, and that no drain deadline is set (ts_flow_entry). */
	if (!epoch || r->epoch != epoch) {
		be = bpf_map_lookup_elem(&backends, &id);
		if (!be || be->state != TS_BACKEND_ACTIVE || be->port != p->key.sport ||
		    !ts_addr_eq(be->addr, p->key.saddr))
			return -1;
		if (epoch && !be->drain_deadline_ns)
			r->epoch = epoch;
	}
	/* as in ts_forward: routed before anything changes; XDP leaves a
	 * reply that becomes a RST (past the drain deadline) to tc */
	if (forward_fib || ts_is_xdp(c)) {
		now = bpf_ktime_get_coarse_ns();
		routed = ts_fib_lookup(c, p, r->vip, p->key.daddr, r->vport, p->key.dport, now,
				       &rt);
		if (ts_is_xdp(c) && (!routed || (be && ts_drain_expired(be, now))))
			return XDP_PASS;
	}
	if (p->tcp_flags & TCP_FLAG_ACK && r->backend_ack != p->ack)
		r->backend_ack = p->ack;
	if (p->tcp_flags & (TCP_FLAG_RST | TCP_FLAG_FIN)) {
		struct ts_flow_key key = {};
		struct ts_flow *f;

		ts_flow_key_of_reply(&key, &p->key, r->vip, r->vport);
		f = bpf_map_lookup_elem(&flows, &key);
		if (!f)
			return -1;
		ts_track_backend(&key, f, true, p);
	}
	return ts_reply_rewrite(c, p, be, id, r->vip, r->vport, r, routed ? &rt : NULL);
}

/* A forwarding FIB lookup from src to dst (of family), as for a packet
 * arriving on c's device: the helper's verdict, and in *oif the device it
 * routes out of. */
static __always_inline int ts_fib_route(struct ts_ctx *c, __u8 family, const __be32 *src,
					const __be32 *dst, __u32 *oif)
{
	struct bpf_fib_lookup fib = {
		.l4_protocol = IPPROTO_TCP,
		.ifindex = c->ifindex,
	};
	int rc;

	ts_fib_addrs(&fib, family, src, dst);
	rc = bpf_fib_lookup(c->ctx, &fib, sizeof(fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	*oif = fib.ifindex;
	return rc;
}

/* Did p arrive on the device this gateway routes its source to? A strict
 * reverse-path check (viable.h), for the replies that have no flow state
 * here: a "reply" forged on the client side fails it. */
static __always_inline bool ts_from_its_side(struct ts_ctx *c, const struct ts_pkt *p)
{
	struct bpf_fib_lookup fib;

	return ts_reverse_path_ok(c->ctx, c->ifindex, p->key.family, p->key.saddr, p->key.daddr,
				  &fib);
}

/* Is p for the gateway itself (not forwarded)? The gateway's own
 * connections to a backend (health checks, monitoring) leave through egress,
 * where nothing marks them; their answers are delivered here, and a reply
 * of another gateway's flow never is. */
static __always_inline bool ts_to_this_host(struct ts_ctx *c, const struct ts_pkt *p)
{
	__u32 oif;

	return ts_fib_route(c, p->key.family, p->key.saddr, p->key.daddr, &oif) ==
	       BPF_FIB_LKUP_RET_NOT_FWDED;
}

/* load --handshakes xdp: XDP finishes the backend's answer to a handshake
 * (flow f, half-open) when it can route it, as ts_forward does; a reply that
 * becomes a RST (past the drain deadline) is tc's. */
static __always_inline int ts_reply_handshake_xdp(struct ts_ctx *c, const struct ts_pkt *p,
						  const struct ts_flow_key *key, struct ts_flow *f,
						  const struct ts_backend *be,
						  const struct ts_reply *idx)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ts_route rt;

	if (!ts_fib_lookup(c, p, idx->vip, p->key.daddr, idx->vport, p->key.dport, now, &rt) ||
	    ts_drain_expired(be, now))
		return XDP_PASS;
	ts_half_open_backend(c, p, key, f, be);
	return ts_reply_rewrite(c, p, be, idx->backend_id, idx->vip, idx->vport, NULL, &rt);
}

/*
 * A packet from a backend address:port with no confirmed flow here. It is
 * ours only when it arrives from the backend's side: then it answers a
 * half-open flow of this gateway, or belongs to a flow this gateway lost the
 * reverse entry of, or (ECMP, doc/DESIGN.md "Replies") to a flow another
 * gateway pinned — rewritten statelessly, and left to the stack's forwarding.
 */
static __always_inline int ts_reply_unconfirmed(struct ts_ctx *c, const struct ts_pkt *p,
						const struct ts_reply *idx)
{
	struct ts_flow_key key = {};
	struct ts_backend *be;
	struct ts_flow *f;
	__u32 id;

	ts_flow_key_of_reply(&key, &p->key, idx->vip, idx->vport);
	/* An answer to a local client's socket (bpf/local.h), addressed to
	 * the gateway itself: never rewritten. tc knows it by local_flows,
	 * without a FIB lookup. XDP does not look there (a cold lookup in a
	 * big table on every SYN-ACK: BENCHMARKS.md, "Whole connections
	 * through the gateway"): the route it must find before it changes
	 * anything (ts_reply_handshake_xdp) never leads to the gateway's own
	 * address, so such a packet goes on to tc untouched all the same. */
	if (!ts_is_xdp(c) && bpf_map_lookup_elem(&local_flows, &key))
		return ts_ok(c);
	be = ts_reply_backend(idx, p->key.family);
	if (!be)
		return ts_ok(c);
	if (!ts_from_its_side(c, p)) {
		/* (at XDP: tc counts it) */
		if (!ts_is_xdp(c))
			ts_count(TS_CNT_SPOOF_REJECTED);
		return ts_ok(c);
	}
	id = idx->backend_id;
	if (dry_run)
		return ts_reply_rewrite(c, p, be, id, idx->vip, idx->vport, NULL, NULL);
	f = bpf_map_lookup_elem(&half_open, &key);
	if (f && f->backend_id == id) {
		if (ts_is_xdp(c))
			return ts_reply_handshake_xdp(c, p, &key, f, be, idx);
		ts_half_open_backend(c, p, &key, f, be);
	} else if (ts_is_xdp(c)) {
		/* a restored reverse entry, another gateway's flow: rare, tc's */
		return XDP_PASS;
	} else {
		/* confirmed here, its reverse entry evicted or its backend's
		 * device changed: restored */
		f = bpf_map_lookup_elem(&flows, &key);
		if (f && f->backend_id == id && f->generation == be->generation) {
			f->ifindex = c->ifindex;
			ts_track_backend(&key, f, true, p);
			ts_reply_entry(&key, f, be->addr, be->port);
		} else if (ts_to_this_host(c, p)) {
			/* no flow of ours, and for the gateway itself */
			return ts_ok(c);
		}
	}
	return ts_reply_rewrite(c, p, be, id, idx->vip, idx->vport, NULL, NULL);
}

/* Is confirmed flow f still forwarded to backend id: not ended, and that
 * backend the one it was pinned to (not removed, its id not reused), before
 * its drain deadline? */
static __always_inline bool ts_flow_forwarded(const struct ts_flow *f, __u32 id)
{
	struct ts_backend *be;

	if (!f || f->backend_id != id || f->tcp_state == TS_TCP_CLOSED)
		return false;
	be = bpf_map_lookup_elem(&backends, &id);
	return be && be->state == TS_BACKEND_ACTIVE && be->generation == f->generation &&
	       !ts_drain_expired(be, bpf_ktime_get_coarse_ns());
}

/* Does reply 5-tuple rkey belong to a live flow through a VIP: a reverse
 * entry, and its flow confirmed and still forwarded? Then no
 * direct-connection mark may claim it (doc/DESIGN.md, "Replies"). */
static __always_inline bool ts_vip_flow_live(const struct ts_flow_key *rkey)
{
	struct ts_reply_state *r = bpf_map_lookup_elem(&replies, rkey);
	struct ts_flow_key key = {};

	if (!r)
		return false;
	ts_flow_key_of_reply(&key, rkey, r->vip, r->vport);
	return ts_flow_forwarded(bpf_map_lookup_elem(&flows, &key), r->backend_id);
}

/* Direct connection rkey is confirmed: its mark moves to direct, which no
 * flood of spoofed packets reaches. */
static __always_inline void ts_direct_confirm(const struct ts_flow_key *rkey)
{
	__u32 mark = 0;

	if (!bpf_map_update_elem(&direct, rkey, &mark, BPF_ANY))
		bpf_map_delete_elem(&direct_pending, rkey);
}

/* A client's packet to a backend's own address:port: a direct connection,
 * not through a VIP. Its replies are marked as not ours: direct_pending
 * until the client's ACK acknowledges the backend's SYN-ACK as this gateway
 * saw it (an off-path sender does not know its sequence number), then
 * direct. A client address:port whose connection through the VIP to this
 * backend lives gets no mark: a forged one would hide that connection's
 * replies and ICMP errors. */
static __always_inline int ts_direct(struct ts_ctx *c, const struct ts_pkt *p, const struct ts_endpoint_key *dst)
{
	struct ts_flow_key rkey = {};
	struct ts_direct_pending *d;

	if (dry_run || p->tcp_flags & TCP_FLAG_RST || !bpf_map_lookup_elem(&backend_addrs, dst))
		return ts_ok(c);
	__builtin_memcpy(rkey.saddr, p->key.daddr, sizeof(rkey.saddr));
	__builtin_memcpy(rkey.daddr, p->key.saddr, sizeof(rkey.daddr));
	rkey.sport = p->key.dport;
	rkey.dport = p->key.sport;
	rkey.proto = p->key.proto;
	rkey.family = p->key.family;
	if (bpf_map_lookup_elem(&direct, &rkey))
		return ts_ok(c);
	d = bpf_map_lookup_elem(&direct_pending, &rkey);
	if (!d) {
		struct ts_direct_pending n = {
			.client_end = p->seq + p->seq_len,
			.flags = ts_is_syn(p->tcp_flags) ? TS_DIRECT_F_SYN : 0,
		};

		if (ts_vip_flow_live(&rkey))
			return ts_ok(c);
		/* A reverse entry left here is of a flow that ended or lost
		 * its backend: it would relabel this connection's answers,
		 * among them the challenge ACK of a backend that still holds
		 * the old connection (the client's RST to it ends that one). */
		bpf_map_delete_elem(&replies, &rkey);
		bpf_map_update_elem(&direct_pending, &rkey, &n, BPF_NOEXIST);
		return ts_ok(c);
	}
	if (d->flags & TS_DIRECT_F_SYNACK &&
	    (p->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_ACK &&
	    p->ack - d->backend_next <= TS_SEQ_WINDOW)
		ts_direct_confirm(&rkey);
	return ts_ok(c);
}

/* The backend's packet p of direct connection d, not confirmed yet: a
 * SYN-ACK from the backend's side gives the sequence number the client's ACK
 * must acknowledge; a connection picked up mid-stream is confirmed by the
 * backend's acknowledgment of the client's segments. */
static __always_inline void ts_direct_backend(struct ts_ctx *c, const struct ts_pkt *p,
					      struct ts_direct_pending *d)
{
	if (dry_run || p->tcp_flags & TCP_FLAG_RST || !(p->tcp_flags & TCP_FLAG_ACK))
		return;
	if (p->tcp_flags & TCP_FLAG_SYN) {
		if (d->flags & TS_DIRECT_F_SYN && ts_from_its_side(c, p)) {
			d->backend_next = p->seq + 1;
			d->flags |= TS_DIRECT_F_SYNACK;
		}
		return;
	}
	if (!(d->flags & TS_DIRECT_F_SYN) &&
	    p->ack - d->client_end + TS_SEQ_WINDOW <= 2 * TS_SEQ_WINDOW &&
	    ts_from_its_side(c, p))
		ts_direct_confirm(&p->key);
}

/*
 * Is reply p, from backend endpoint idx, of a flow this gateway pinned
 * through a VIP, although a direct connection's mark names its 5-tuple? A
 * mark can be forged (spoofed packets to a backend's address with a client's
 * address:port), to hide the replies of the client's connection through the
 * VIP. A SYN-ACK is the VIP flow's when it acknowledges the SYN pinned; other
 * packets when they answer a flow picked up mid-stream, or a confirmed one.
 */
static __always_inline bool ts_vip_flow(const struct ts_pkt *p, const struct ts_reply *idx)
{
	struct ts_flow_key key = {};
	struct ts_flow *f;

	ts_flow_key_of_reply(&key, &p->key, idx->vip, idx->vport);
	f = bpf_map_lookup_elem(&half_open, &key);
	if (f && f->backend_id == idx->backend_id) {
		if (p->tcp_flags & TCP_FLAG_SYN)
			return f->tcp_state == TS_TCP_SYN_SEEN && p->ack == f->client_end;
		return f->tcp_state == TS_TCP_MIDSTREAM;
	}
	return !(p->tcp_flags & TCP_FLAG_SYN) &&
	       ts_flow_forwarded(bpf_map_lookup_elem(&flows, &key), idx->backend_id);
}

/* A TCP packet not to a VIP: a reply of ours, a direct connection to a
 * backend, or nothing of ours (invariant 5). */
static __always_inline int ts_not_to_vip(struct ts_ctx *c, const struct ts_pkt *p,
					 struct ts_endpoint_key *ep)
{
	struct ts_reply_state *r;
	struct ts_reply *idx;

	r = bpf_map_lookup_elem(&replies, &p->key);
	if (r && r->ifindex == c->ifindex && !(p->tcp_flags & TCP_FLAG_SYN)) {
		int rc = ts_reply_confirmed(c, p, r);

		if (rc >= 0)
			return rc;
	}
	/* The rest is rare, and judged at tc; with --handshakes xdp, XDP also
	 * takes the backend's answer to a handshake it pinned
	 * (ts_reply_unconfirmed), unless it must forget a reverse entry first
	 * (below) or a direct connection's mark names the 5-tuple. */
	if (ts_is_xdp(c) && (!xdp_handshakes || r))
		return XDP_PASS;
	/* A SYN-ACK answers a new connection on the 4-tuple, judged with the
	 * half-open flows: the reverse entry an earlier connection left here
	 * (kept after its end for the last ACKs) goes, or the answers of a
	 * direct connection on that 4-tuple would be relabelled as the VIP.
	 * A VIP flow's entry is written again when it is confirmed; a live
	 * one's is restored by its next reply (ts_reply_unconfirmed). */
	if (r && r->ifindex == c->ifindex && p->tcp_flags & TCP_FLAG_SYN && !dry_run)
		bpf_map_delete_elem(&replies, &p->key);
	__builtin_memcpy(ep->addr, p->key.saddr, sizeof(ep->addr));
	ep->port = p->key.sport;
	idx = bpf_map_lookup_elem(&backend_addrs, ep);
	if (idx) {
		struct ts_direct_pending *d;

		/* a direct connection's reply is not ours (unless the mark is
		 * stale or forged: then it goes) */
		if (ts_is_xdp(c) && (bpf_map_lookup_elem(&direct, &p->key) ||
				     bpf_map_lookup_elem(&direct_pending, &p->key)))
			return XDP_PASS;
		if (bpf_map_lookup_elem(&direct, &p->key)) {
			if (dry_run || !ts_vip_flow(p, idx))
				return ts_ok(c);
			bpf_map_delete_elem(&direct, &p->key);
		} else if ((d = bpf_map_lookup_elem(&direct_pending, &p->key))) {
			if (dry_run || !ts_vip_flow(p, idx)) {
				ts_direct_backend(c, p, d);
				return ts_ok(c);
			}
			bpf_map_delete_elem(&direct_pending, &p->key);
		}
		return ts_reply_unconfirmed(c, p, idx);
	}
	if (ts_is_xdp(c))
		return XDP_PASS;
	__builtin_memcpy(ep->addr, p->key.daddr, sizeof(ep->addr));
	ep->port = p->key.dport;
	return ts_direct(c, p, ep);
}

/* An ICMP error about a NATed flow: see icmp.h. */
static __always_inline int ts_icmp(struct ts_ctx *c, __u8 family)
{
	struct __sk_buff *skb = ts_skb(c);
	struct ts_endpoint_key key = { .proto = IPPROTO_TCP, .family = family };
	struct ts_flow_key fkey = { .proto = IPPROTO_TCP, .family = family };
	struct ts_backend *be = NULL;
	struct ts_service *svc;
	struct ts_reply *reply;
	struct ts_flow *flow;
	struct ts_icmp *m = bpf_map_lookup_elem(&icmp_scratch, &ts_scratch_key);
	__u32 id;

	/* an error goes to the source of the packet it quotes: else not ours */
	if (!m)
		return ts_ok(c);
	__builtin_memset(m, 0, sizeof(*m));
	if (!ts_icmp_parse(skb, family, m) || !ts_addr_eq(m->outer_daddr, m->in_saddr))
		return ts_ok(c);

	/* The quoted 5-tuple reversed: the key of the replies of a packet to
	 * a backend, or the flow of a reply from a VIP. */
	__builtin_memcpy(fkey.saddr, m->in_daddr, sizeof(fkey.saddr));
	__builtin_memcpy(fkey.daddr, m->in_saddr, sizeof(fkey.daddr));
	fkey.sport = m->in_dport;
	fkey.dport = m->in_sport;

	/* about a packet to a backend: toward the client, unless it is of a
	 * direct connection to that backend; a mark never hides a live flow
	 * through a VIP (ts_direct) */
	if ((bpf_map_lookup_elem(&direct, &fkey) || bpf_map_lookup_elem(&direct_pending, &fkey)) &&
	    !ts_vip_flow_live(&fkey))
		return ts_ok(c);
	__builtin_memcpy(key.addr, m->in_daddr, sizeof(key.addr));
	key.port = m->in_dport;
	reply = ts_lookup_backend_addr(&key, &be);
	if (reply) {
		bool from_backend = ts_addr_eq(m->outer_saddr, m->in_daddr);
		__u32 oif;

		/* to the gateway itself: about its own connection to the
		 * backend (a local client's, a health check), connected to the
		 * backend's address as the error quotes it */
		if (ts_fib_route(c, family, m->outer_saddr, m->outer_daddr, &oif) ==
		    BPF_FIB_LKUP_RET_NOT_FWDED)
			return ts_ok(c);

		/* an error "from" the backend must come from its side, as its
		 * replies must: else it is forged, and not relabelled */
		if (from_backend &&
		    (ts_fib_route(c, family, m->outer_daddr, m->outer_saddr, &oif) !=
			     BPF_FIB_LKUP_RET_SUCCESS ||
		     oif != c->ifindex))
			return ts_ok(c);

		if (ts_icmp_rewrite(skb, m, false, reply->vip, reply->vport, true,
				    from_backend ? reply->vip : NULL))
			return ts_drop(c);
		ts_count(TS_CNT_ICMP);
		return ts_ok(c);
	}

	/* about a reply from a VIP: toward the flow's backend */
	__builtin_memcpy(key.addr, m->in_saddr, sizeof(key.addr));
	key.port = m->in_sport;
	svc = bpf_map_lookup_elem(&services, &key);
	if (!svc)
		return ts_ok(c);
	flow = bpf_map_lookup_elem(&flows, &fkey);
	if (!flow)
		flow = bpf_map_lookup_elem(&half_open, &fkey);
	if (flow)
		be = ts_pinned_backend(svc, flow);
	else
		be = ts_pick(svc, &fkey, &id);
	if (!be)
		return ts_ok(c);
	if (ts_icmp_rewrite(skb, m, true, be->addr, be->port, false, be->addr))
		return ts_drop(c);
	ts_count(TS_CNT_ICMP);
	return ts_ok(c);
}

/* A packet arriving on one of the instance's devices, at either hook. */
/* Does some service's VIP use port (tcpshift.h, vip_ports)? A reply, to a
 * client's port, rarely finds a VIP there, and skips the services lookup. */
static __always_inline bool ts_vip_port(__be16 port)
{
	__u32 p = bpf_ntohs(port), w = p >> 6;
	__u64 *bits = bpf_map_lookup_elem(&vip_ports, &w);

	return !bits || (*bits >> (p & 63)) & 1;
}

/* The backend of flow entry e (in flows), for a packet that did not look up
 * its service: a copy in e that stands (*copy), or its entry when it is
 * settled (the copy is made anew from it when it has no drain deadline), or
 * NULL. */
static __always_inline struct ts_backend *ts_flow_backend(struct ts_flow_entry *e,
							  const struct ts_flow_entry **copy)
{
	__u32 epoch = ts_epoch();
	struct ts_backend *be;

	if (epoch && e->epoch == epoch) {
		*copy = e;
		return NULL;
	}
	be = ts_pinned_backend(NULL, &e->flow);
	/* the address and port were written with the entry (ts_promote, or
	 * the control plane): only the epoch is written here, once they are
	 * found to be the backend's */
	if (be && epoch && !be->drain_deadline_ns && e->backend_port == be->port &&
	    ts_addr_eq(e->backend_addr, be->addr))
		e->epoch = epoch;
	return be;
}

static __always_inline int ts_ingress(struct ts_ctx *c)
{
	const struct ts_flow_entry *copy = NULL;
	struct ts_service *svc;
	struct ts_backend *be;
	struct ts_flow *flow;
	bool syn, flow_first;
	struct ts_pkt p = {};
	int r = ts_parse(c, &p);

	/* XDP finishes TCP packets of confirmed flows (and with
	 * --handshakes xdp their handshakes); tc counts and judges the rest
	 * (doc/DESIGN.md, "XDP") */
	if (ts_is_xdp(c) && r != TS_PARSE_TCP)
		return XDP_PASS;
	/* a partial checksum cannot be finished here (nat.h) */
	if (ts_is_xdp(c) && c->partial_csum && ts_tcp_csum_partial(c, &p))
		return XDP_PASS;
	switch (r) {
	case TS_PARSE_TCP:
		break;
	case TS_PARSE_MALFORMED:
		ts_count(TS_CNT_MALFORMED);
		return ts_ok(c);
	case TS_PARSE_FRAGMENT:
		ts_count(TS_CNT_FRAGMENT);
		return ts_ok(c);
	case TS_PARSE_ICMP:
		return ts_icmp(c, p.key.family);
	case TS_PARSE_V6_EXT: {
		struct ts_endpoint_key key = { .port = p.key.dport, .proto = IPPROTO_TCP,
					       .family = TS_AF_INET6 };

		__builtin_memcpy(key.addr, p.key.daddr, sizeof(key.addr));
		if (bpf_map_lookup_elem(&services, &key))
			ts_count(TS_CNT_V6_EXT);
		return ts_ok(c);
	}
	default:
		return ts_ok(c);
	}

	/* A client's packet to a VIP goes from a higher port (ephemeral) to a
	 * lower one (the service's); a reply goes the other way. For the
	 * former the flow comes first: an established flow's packet whose
	 * backend is settled needs nothing more, where the service's entry is
	 * one more cache miss per packet among tens of thousands of services.
	 * For the rest the service comes first, as a miss in the flow table
	 * (large) costs more than one in the services', unless no VIP uses
	 * the destination port (a reply's, to its client's port): then the
	 * packet is to no VIP. A wrong guess costs that miss, never a
	 * different answer (doc/DESIGN.md, "Established flows"). A SYN's flow
	 * is ts_forward's to look up; pick (dry_run) asks what a new flow
	 * gets: the table, not a pin. */
	syn = ts_is_syn(p.tcp_flags);
	flow_first = !dry_run && !syn && bpf_ntohs(p.key.sport) > bpf_ntohs(p.key.dport);
	flow = flow_first ? bpf_map_lookup_elem(&flows, &p.key) : NULL;
	be = flow ? ts_flow_backend((struct ts_flow_entry *)flow, &copy) : NULL;
	svc = NULL;
	if (!be && !copy) {
		struct ts_endpoint_key key = { .port = p.key.dport, .proto = p.key.proto,
					       .family = p.key.family };

		__builtin_memcpy(key.addr, p.key.daddr, sizeof(key.addr));
		svc = ts_vip_port(p.key.dport) ? bpf_map_lookup_elem(&services, &key) : NULL;
		if (!svc)
			return ts_not_to_vip(c, &p, &key);
		if (!flow_first && !syn && !dry_run)
			flow = bpf_map_lookup_elem(&flows, &p.key);
	}
	return ts_forward(c, &p, svc, flow, be, copy);
}

SEC("tc")
int tcpshift_tc(struct __sk_buff *skb)
{
	struct ts_ctx c = { .ctx = skb, .ifindex = skb->ingress_ifindex, .xdp = false };

	return ts_ingress(&c);
}

/*
 * load --mode xdp: the same flow logic, before the stack has built an skb.
 * A frame counts as this host's when it is addressed to the device's own MAC
 * (xdp_dev_slots, xdp_devs): what tc knows as pkt_type PACKET_HOST. Everything else, and
 * everything this program cannot finish, goes on untouched to tc.
 */
SEC("xdp")
int tcpshift_xdp(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	struct ts_ctx c = { .ctx = ctx, .ifindex = ifindex, .xdp = true };
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 slot = ifindex % TS_XDP_DEV_SLOTS;
	struct ts_xdp_dev *dev;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	/* the device in its slot, else (the slot is another's) in xdp_devs */
	dev = bpf_map_lookup_elem(&xdp_dev_slots, &slot);
	if (!dev || dev->ifindex != ifindex)
		dev = bpf_map_lookup_elem(&xdp_devs, &ifindex);
	if (!dev || *(__u32 *)eth->h_dest != *(__u32 *)dev->mac ||
	    *(__u16 *)(eth->h_dest + 4) != *(__u16 *)(dev->mac + 4))
		return XDP_PASS;
	c.partial_csum = dev->flags & TS_XDP_DEV_F_PARTIAL_CSUM;
	return ts_ingress(&c);
}

/*
 * tc egress: the gateway's own ICMP errors about packets it rewrote at
 * ingress ("fragmentation needed" for a client's packet to a backend, whose
 * egress MTU is smaller) leave here, and are translated like those that come
 * from elsewhere, so that they quote the VIP the client knows. Everything
 * else leaves untouched.
 */
SEC("tc")
int tcpshift_tc_egress(struct __sk_buff *skb)
{
	struct ts_ctx c = { .ctx = skb, .ifindex = skb->ingress_ifindex, .xdp = false };
	struct ts_pkt p = {};

	if (ts_parse(&c, &p) != TS_PARSE_ICMP)
		return TC_ACT_OK;
	return ts_icmp(&c, p.key.family);
}

#include "local.h"
