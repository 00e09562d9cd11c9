/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Forwarding a rewritten packet without the stack (load --forward fib): a
 * FIB lookup of its new destination, the IP TTL / hop limit decremented as
 * a router must, MACs from the lookup, and a redirect to the egress device.
 * That skips the stack's routing, netfilter and qdisc-less veth hops, the
 * per-packet cost that makes a kernel proxy slower than routing.
 *
 * Anything the FIB cannot answer at once (no route, neighbour not resolved
 * yet, packet over the MTU, TTL about to expire) returns TC_ACT_OK: the stack
 * forwards it, resolves the neighbour and sends the ICMP errors.
 */
#ifndef TCPSHIFT_FORWARD_H
#define TCPSHIFT_FORWARD_H

#include "parse.h"

#define AF_INET		2	/* linux/socket.h */
#define AF_INET6	10

static __always_inline int ts_fib_forward(struct __sk_buff *skb, const struct ts_pkt *p,
					  const __be32 *saddr, const __be32 *daddr,
					  __be16 sport, __be16 dport)
{
	struct bpf_fib_lookup fib = {
		.l4_protocol = IPPROTO_TCP,
		.sport = sport,
		.dport = dport,
		.ifindex = skb->ingress_ifindex,
	};
	__u32 ttl_off;
	__u8 ttl;
	int rc;

	if (p->key.family == TS_AF_INET) {
		fib.family = AF_INET;
		fib.ipv4_src = saddr[0];
		fib.ipv4_dst = daddr[0];
		ttl_off = p->l3_off + offsetof(struct iphdr, ttl);
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, daddr, 16);
		ttl_off = p->l3_off + offsetof(struct ipv6hdr, hop_limit);
	}
	/* tot_len 0: the helper checks the MTU against the skb (GSO aware) */
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return TC_ACT_OK;
	if (bpf_skb_load_bytes(skb, ttl_off, &ttl, 1) || ttl <= 1)
		return TC_ACT_OK;
	if (p->key.family == TS_AF_INET) {
		/* ttl is the high byte of the header's 16-bit word at offset 8 */
		__be16 old_word, new_word;

		if (bpf_skb_load_bytes(skb, ttl_off, &old_word, 2))
			return TC_ACT_OK;
		new_word = old_word;
		((__u8 *)&new_word)[0] = ttl - 1;
		if (bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check), old_word,
					new_word, 2))
			return TC_ACT_SHOT;
	}
	ttl--;
	if (bpf_skb_store_bytes(skb, ttl_off, &ttl, 1, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_dest), fib.dmac, ETH_ALEN, 0) ||
	    bpf_skb_store_bytes(skb, offsetof(struct ethhdr, h_source), fib.smac, ETH_ALEN, 0))
		return TC_ACT_SHOT;
	return bpf_redirect(fib.ifindex, 0);
}

#endif /* TCPSHIFT_FORWARD_H */
