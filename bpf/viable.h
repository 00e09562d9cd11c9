/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Can a client's SYN lead to a connection? tc ingress runs before the stack
 * decides a packet's fate, so a SYN that the stack (or the backend's) will
 * drop would otherwise be pinned and, sent again a second later, counted as
 * the backend's timeout: anyone could put failures on a backend
 * (doc/DESIGN.md, "Rollout integrity"). Such a SYN is forwarded as the stack
 * would forward it, but pins nothing and counts nothing for a backend:
 *
 *  - a TTL or hop limit of 1 or less: forwarding drops it (and says so with
 *    an ICMP error, which tc egress translates);
 *  - a bad IPv4 header checksum: ip_rcv drops it;
 *  - a bad TCP checksum, where nobody checked it yet: the backend drops it
 *    (the gateway's forwarding never looks at it). A segment too long to
 *    check here (over TS_SYN_CHECK_MAX bytes: a SYN with Fast Open data)
 *    counts as unchecked, so not viable either: it is still forwarded, and
 *    its connection picked up when its ACK comes;
 *  - SYN and FIN together: Linux drops it in LISTEN;
 *  - a source this gateway does not route back through the device the SYN
 *    came in on (a strict reverse-path check, as rp_filter=1): the stack's
 *    rp_filter drops it, or the backend's answer goes another way.
 *
 * tc runs it on every SYN it pins; XDP (load --handshakes xdp) on every SYN it
 * would pin, and passes one that fails it on to tc untouched, which judges it
 * again and forwards it as the stack would.
 */
#ifndef TCPSHIFT_VIABLE_H
#define TCPSHIFT_VIABLE_H

#include <bpf/bpf_core_read.h>
#include "parse.h"
#include "forward.h"

#define CHECKSUM_UNNECESSARY	1	/* linux/skbuff.h, skb->ip_summed */
#define CHECKSUM_PARTIAL	3

/* The longest SYN segment whose TCP checksum is checked: the longest TCP
 * header (60 bytes) and a little more, a power of 2. */
#define TS_SYN_CHECK_MAX	64

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/*
 * What the check works in: a per-CPU map, not the stack. The programs'
 * frames and their subprograms' share 512 bytes, which the flow logic
 * nearly fills. Not pinned: nothing in it outlives a run.
 */
struct ts_syn_scratch {
	__u32	ip[TS_SYN_CHECK_MAX / 4];	/* the IP header, zero-padded */
	__u32	tcp[TS_SYN_CHECK_MAX / 4];	/* the TCP segment, zero-padded */
	struct bpf_fib_lookup fib;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_syn_scratch);
} syn_scratch SEC(".maps");

static const __u32 ts_scratch_key = 0;

static __always_inline __u32 ts_csum_fold16(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u32)((sum & 0xffff) + (sum >> 16));
}

/* A forwarding FIB lookup from src to dst, for a packet arriving on ifindex,
 * in *fib: the helper's verdict; fib->ifindex is then the device it routes
 * out of. */
static __always_inline int ts_fib_route_in(void *ctx, __u32 ifindex, __u8 family,
					   const __be32 *src, const __be32 *dst,
					   struct bpf_fib_lookup *fib)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = IPPROTO_TCP;
	fib->ifindex = ifindex;
	ts_fib_addrs(fib, family, src, dst);
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
}

/* A packet from saddr to daddr that arrived on ifindex: does this gateway
 * route saddr out of that device? A strict reverse-path check, as
 * rp_filter=1. */
static __always_inline bool ts_reverse_path_ok(void *ctx, __u32 ifindex, __u8 family,
					       const __be32 *saddr, const __be32 *daddr,
					       struct bpf_fib_lookup *fib)
{
	return ts_fib_route_in(ctx, ifindex, family, daddr, saddr, fib) ==
		       BPF_FIB_LKUP_RET_SUCCESS &&
	       fib->ifindex == ifindex;
}

/*
 * Everything above for SYN p, at either hook (xdp a constant, as ts_is_xdp).
 * Checksums that the device verified (CHECKSUM_UNNECESSARY, the TCP one) or
 * that a local sender will fill in (CHECKSUM_PARTIAL: a veth peer on this
 * host) are not recomputed. An XDP frame carries no such word: its checksums
 * are checked as CHECKSUM_NONE (a frame with a partial one never gets here:
 * ts_ingress passed it to tc).
 */
static __always_inline bool ts_syn_viable_in(void *ctx, bool xdp, __u32 ifindex,
					     const struct ts_pkt *p)
{
	struct ts_syn_scratch *m = bpf_map_lookup_elem(&syn_scratch, &ts_scratch_key);
	__u32 len, n, summed = 0;
	__u64 sum;

	if (!m || p->tcp_flags & TCP_FLAG_FIN)
		return false;
	__builtin_memset(m->ip, 0, sizeof(m->ip) + sizeof(m->tcp));
	/* (the masks show the verifier the bounds just checked) */
	len = p->l4_off - p->l3_off;
	if (len < 20 || len > TS_SYN_CHECK_MAX)
		return false;
	n = ((len - 1) & (TS_SYN_CHECK_MAX - 1)) + 1;
	if (xdp ? bpf_xdp_load_bytes(ctx, p->l3_off, m->ip, n)
		: bpf_skb_load_bytes(ctx, p->l3_off, m->ip, n))
		return false;
	/* IPv4: the TTL in byte 8, the addresses at 12; IPv6: the hop limit in
	 * byte 7, the addresses at 8 */
	if (p->key.family == TS_AF_INET ? ((__u8 *)m->ip)[8] <= 1 : ((__u8 *)m->ip)[7] <= 1)
		return false;
	if (!ts_reverse_path_ok(ctx, ifindex, p->key.family, p->key.saddr, p->key.daddr, &m->fib))
		return false;
	if (!xdp)
		summed = BPF_CORE_READ_BITFIELD((struct sk_buff *)bpf_cast_to_kern_ctx(ctx),
						ip_summed);
	if (summed == CHECKSUM_PARTIAL)
		return true;
	/* the zeros after a header add nothing to its sum */
	if (p->key.family == TS_AF_INET &&
	    ts_csum_fold16((__u32)bpf_csum_diff(NULL, 0, m->ip, sizeof(m->ip), 0)) != 0xffff)
		return false;
	if (summed == CHECKSUM_UNNECESSARY)
		return true;
	/* the segment: its header and the rest (seq_len counts the SYN) */
	len = p->l4_hlen + p->seq_len - 1;
	if (len < 20 || len > TS_SYN_CHECK_MAX)
		return false;
	n = ((len - 1) & (TS_SYN_CHECK_MAX - 1)) + 1;
	if (xdp ? bpf_xdp_load_bytes(ctx, p->l4_off, m->tcp, n)
		: bpf_skb_load_bytes(ctx, p->l4_off, m->tcp, n))
		return false;
	/* the pseudo-header: the addresses, the protocol, the segment's length */
	sum = (__u32)bpf_csum_diff(NULL, 0, m->tcp, sizeof(m->tcp), 0);
	if (p->key.family == TS_AF_INET)
		sum += (__u32)bpf_csum_diff(NULL, 0, &m->ip[3], 8, 0);
	else
		sum += (__u32)bpf_csum_diff(NULL, 0, &m->ip[2], 32, 0);
	sum += bpf_htonl(len) + bpf_htonl(IPPROTO_TCP);
	return ts_csum_fold16(sum) == 0xffff;
}

/* A subprogram per hook (only SYNs call them), which reads p where its
 * caller keeps it. */
static __noinline bool ts_syn_viable_skb(struct __sk_buff *skb, const struct ts_pkt *p)
{
	return ts_syn_viable_in(skb, false, skb->ingress_ifindex, p);
}

static __noinline bool ts_syn_viable_xdp(struct xdp_md *ctx, const struct ts_pkt *p)
{
	return ts_syn_viable_in(ctx, true, ctx->ingress_ifindex, p);
}

static __always_inline bool ts_syn_viable(const struct ts_ctx *c, const struct ts_pkt *p)
{
	return ts_is_xdp(c) ? ts_syn_viable_xdp(ts_xdp(c), p) : ts_syn_viable_skb(ts_skb(c), p);
}

#endif /* TCPSHIFT_VIABLE_H */
