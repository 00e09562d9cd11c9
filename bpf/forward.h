/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Forwarding a rewritten packet without the stack (load --forward fib): a
 * FIB lookup of its new destination, the IP TTL / hop limit decremented as
 * a router must, MACs from the lookup, and a redirect to the egress device.
 * That skips the stack's routing, netfilter and qdisc-less veth hops, the
 * per-packet cost that makes a kernel proxy slower than routing.
 *
 * Anything the FIB cannot answer at once (no route, neighbour not resolved
 * yet, packet over the MTU, TTL about to expire) goes on to the stack, which
 * forwards it, resolves the neighbour and sends the ICMP errors (which the
 * egress program translates: path MTU discovery works through the VIP). At
 * XDP it goes on untouched, to the tc program.
 *
 * The MTU is the route's, checked for the packet's largest segment: a GSO
 * packet is as big as one of the segments it will be cut into. (With
 * tot_len 0 the helper would check the device's MTU only, and let any GSO
 * packet through.)
 */
#ifndef TCPSHIFT_FORWARD_H
#define TCPSHIFT_FORWARD_H

#include "parse.h"
#include "csum.h"
#include "maps.h"

/* The kernel's AF_INET and AF_INET6 (linux/socket.h; vmlinux.h has no
 * macros) of an enum ts_family: the one conversion on the BPF side. */
static __always_inline __u8 ts_kernel_af(__u8 family)
{
	return family == TS_AF_INET ? 2 : 10;
}

/* The addresses of a FIB lookup from src to dst, of the packet's family. */
static __always_inline void ts_fib_addrs(struct bpf_fib_lookup *fib, __u8 family,
					 const __be32 *src, const __be32 *dst)
{
	fib->family = ts_kernel_af(family);
	if (family == TS_AF_INET) {
		fib->ipv4_src = src[0];
		fib->ipv4_dst = dst[0];
	} else {
		__builtin_memcpy(fib->ipv6_src, src, 16);
		__builtin_memcpy(fib->ipv6_dst, dst, 16);
	}
}

/* Where a packet goes: what ts_fib_apply needs of the FIB's answer (a quarter
 * of a struct bpf_fib_lookup, which callers would hold on their stack across
 * the flow logic). */
struct ts_route {
	__u32	ifindex;
	__u8	smac[ETH_ALEN];
	__u8	dmac[ETH_ALEN];
};

static __always_inline bool ts_nexthop_key_eq(const struct ts_nexthop_key *a,
					      const struct ts_nexthop_key *b)
{
	return a->daddr[0] == b->daddr[0] && a->daddr[1] == b->daddr[1] &&
	       a->daddr[2] == b->daddr[2] && a->daddr[3] == b->daddr[3] &&
	       a->ifindex == b->ifindex && a->family == b->family;
}

/* May a packet of len bytes (from its IP header) take the cached answer nh
 * now? Not after its expiry, nor when longer than any the route took (the
 * FIB checks the MTU); XDP takes only what it found itself: an answer found
 * at tc (fib mode) may name a device XDP cannot redirect to. */
static __always_inline bool ts_nexthop_usable(const struct ts_ctx *c, const struct ts_nexthop *nh,
					      __u64 now, __u32 len)
{
	return now < nh->expires_ns && len <= nh->max_len && (!ts_is_xdp(c) || nh->xdp);
}

static __always_inline void ts_route_of(struct ts_route *rt, const struct ts_nexthop *nh)
{
	rt->ifindex = nh->ifindex;
	__builtin_memcpy(rt->smac, nh->smac, ETH_ALEN);
	__builtin_memcpy(rt->dmac, nh->dmac, ETH_ALEN);
}

/*
 * Where a packet rewritten to saddr:sport -> daddr:dport goes: true, with rt
 * filled in, when it can be sent on at once. Asked
 * before anything changes (the rewrite, the flow state): what cannot be
 * finished here goes on untouched, to the stack at tc and from XDP to tc.
 *
 * The answer for daddr from this device is kept in nexthops for
 * TS_NEXTHOP_TTL_NS (now: the coarse clock), for packets no longer than one
 * the route took; a longer one asks the FIB again, which checks the MTU. So a
 * route or neighbour change reaches established flows within that time, and
 * routing by source address (policy routing) is not followed: use tc stack
 * mode there. In front of nexthops, this CPU's route_cache slot for the key
 * holds a copy of the answer it used last (expiry included), found with one
 * array access.
 */
static __always_inline bool ts_fib_lookup(struct ts_ctx *c, const struct ts_pkt *p,
					  const __be32 *saddr, const __be32 *daddr,
					  __be16 sport, __be16 dport, __u64 now,
					  struct ts_route *rt)
{
	void *data = ts_data(c), *data_end = ts_data_end(c);
	struct ts_nexthop_key key = { .ifindex = c->ifindex, .family = p->key.family };
	__u32 len = ts_len(c) - p->l3_off;
	struct ts_route_cache *cached;
	struct ts_nexthop *nh;
	struct bpf_fib_lookup fib;
	__u32 slot;
	__u8 ttl;

	if (p->key.family == TS_AF_INET) {
		struct iphdr *ip = data + sizeof(struct ethhdr);

		if ((void *)(ip + 1) > data_end)
			return false;
		ttl = ip->ttl;
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > data_end)
			return false;
		ttl = ip6->hop_limit;
	}
	/* about to expire: the stack sends the ICMP error */
	if (ttl <= 1)
		return false;
	/* the route's MTU, checked against the largest segment */
	if (!ts_is_xdp(c) && ts_skb(c)->gso_size)
		len = p->l4_off - p->l3_off + p->l4_hlen + ts_skb(c)->gso_size;
	__builtin_memcpy(key.daddr, daddr, sizeof(key.daddr));
	slot = ts_nexthop_slot(&key);
	cached = bpf_map_lookup_elem(&route_cache, &slot);
	/* (never: the slot is in range) */
	if (!cached)
		return false;
	if (ts_nexthop_key_eq(&cached->key, &key) && ts_nexthop_usable(c, &cached->nh, now, len)) {
		ts_route_of(rt, &cached->nh);
		return true;
	}
	nh = bpf_map_lookup_elem(&nexthops, &key);
	if (nh && ts_nexthop_usable(c, nh, now, len)) {
		ts_route_of(rt, nh);
		cached->key = key;
		cached->nh = *nh;
		return true;
	}
	__builtin_memset(&fib, 0, sizeof(fib));
	fib.l4_protocol = IPPROTO_TCP;
	fib.sport = sport;
	fib.dport = dport;
	fib.ifindex = c->ifindex;
	fib.tot_len = len;
	ts_fib_addrs(&fib, p->key.family, saddr, daddr);
	if (bpf_fib_lookup(c->ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return false;
	/* XDP redirects only to the instance's own devices (xdp_tx) */
	if (ts_is_xdp(c) && !bpf_map_lookup_elem(&xdp_tx, &fib.ifindex))
		return false;
	/* learnt afresh (the route's MTU may have shrunk since), into this
	 * CPU's slot and nexthops */
	cached->key = key;
	__builtin_memset(&cached->nh, 0, sizeof(cached->nh));
	cached->nh.expires_ns = now + TS_NEXTHOP_TTL_NS;
	cached->nh.ifindex = fib.ifindex;
	cached->nh.max_len = len;
	cached->nh.xdp = ts_is_xdp(c);
	__builtin_memcpy(cached->nh.smac, fib.smac, ETH_ALEN);
	__builtin_memcpy(cached->nh.dmac, fib.dmac, ETH_ALEN);
	ts_route_of(rt, &cached->nh);
	bpf_map_update_elem(&nexthops, &key, &cached->nh, BPF_ANY);
	return true;
}

/* Send the rewritten packet where ts_fib_lookup found its route. */
static __always_inline int ts_fib_apply(struct ts_ctx *c, const struct ts_pkt *p,
					const struct ts_route *rt)
{
	/* direct writes: the pointers again, the rewrite's helpers moved them */
	void *data = ts_data(c), *data_end = ts_data_end(c);
	struct ethhdr *eth = data;
	__u32 csum_diff = 0;

	if (p->key.family == TS_AF_INET) {
		struct iphdr *ip = data + sizeof(*eth);
		__u8 ttl;

		if ((void *)(ip + 1) > data_end)
			return ts_drop(c);
		/* the checksum covers ttl as the high byte of the word ttl:protocol */
		ttl = ip->ttl;
		ip->check = ts_csum_update(ip->check,
					   ts_csum_diff16(bpf_htons(ttl << 8 | ip->protocol),
							  bpf_htons((ttl - 1) << 8 | ip->protocol)));
		ip->ttl = ttl - 1;
	} else {
		struct ipv6hdr *ip6 = data + sizeof(*eth);
		__u8 hop;

		if ((void *)(ip6 + 1) > data_end)
			return ts_drop(c);
		/* No header checksum takes up this change, so a CHECKSUM_COMPLETE
		 * skb->csum (it sums the packet from the IP header on) must: the
		 * hop limit is the low byte of the word nexthdr:hop_limit. */
		hop = ip6->hop_limit;
		csum_diff = ts_csum_fold32(
			ts_csum_diff16(bpf_htons(ip6->nexthdr << 8 | hop),
				       bpf_htons(ip6->nexthdr << 8 | (__u8)(hop - 1))));
		ip6->hop_limit = hop - 1;
	}
	if ((void *)(eth + 1) > data_end)
		return ts_drop(c);
	__builtin_memcpy(eth->h_dest, rt->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, rt->smac, ETH_ALEN);
	/* through the devmap: the kernel sends the redirected frames in batches */
	if (ts_is_xdp(c))
		return bpf_redirect_map(&xdp_tx, rt->ifindex, 0);
	/* A no-op (-ENOTSUPP) unless CHECKSUM_COMPLETE; the kernel's own
	 * ip6_forward drops the sum instead (skb_forward_csum), which a tc
	 * program cannot. IPv6 only: the IPv4 TTL change is cancelled by the
	 * header checksum's. */
	if (p->key.family == TS_AF_INET6)
		bpf_csum_update(ts_skb(c), csum_diff);
	return bpf_redirect(rt->ifindex, 0);
}

#endif /* TCPSHIFT_FORWARD_H */
