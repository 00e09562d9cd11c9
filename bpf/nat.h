/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Address and port rewrite with incremental checksum updates.
 *
 * Addresses, ports, the IPv4 header checksum and a complete TCP checksum are
 * written directly into the packet, at either hook. What a direct write cannot
 * know at tc is the skb's ip_summed, and two kinds need more:
 *  - CHECKSUM_PARTIAL (GSO and locally generated packets on veth): the check
 *    field holds only the pseudo-header sum, the rest left to a device. It
 *    shows (ts_tcp_csum_partial), and such a packet's TCP checksum goes
 *    through bpf_l4_csum_replace, which folds only address changes
 *    (BPF_F_PSEUDO_HDR) into a partial one and does the right thing for every
 *    other ip_summed too (for IPv6 it must be told, BPF_F_IPV6: see
 *    ts_l4_csum_pseudo6 in csum.h).
 *  - CHECKSUM_COMPLETE (what most NICs hand up): skb->csum sums the packet from
 *    the IP header on. The TCP checksum's change cancels the address's and
 *    the port's in it; for IPv4 the header checksum's change cancels the
 *    address's once more, which leaves that much to take out of skb->csum:
 *    bpf_csum_update (a no-op for any other kind of skb).
 * The helpers cost: they were 16-21 ns of an established IPv4 packet's tc path
 * and about 50 of an IPv6 one's (with bpf_csum_diff), more when consecutive
 * packets carry other addresses (BENCHMARKS.md, "Checksums updated in place at
 * tc"). At XDP there is no ip_summed: frames whose checksums look partial went
 * on to tc (ts_ingress).
 */
#ifndef TCPSHIFT_NAT_H
#define TCPSHIFT_NAT_H

#include "parse.h"
#include "csum.h"

#define TS_TCP_CHECK_OFF	offsetof(struct tcphdr, check)

/*
 * Is the TCP checksum partial: does the check field hold only the
 * pseudo-header sum, the rest left to a device (one that never comes when an
 * XDP frame is redirected)? An XDP frame has no ip_summed to say so, and a
 * direct write at tc cannot read it, but it shows: a partial check field
 * equals the pseudo-header sum, which a complete checksum does only once in
 * 65535 packets. Such a frame goes on from XDP to tc, and tc's helpers update
 * a partial checksum as one (ts_rewrite); a complete one mistaken for it is
 * only slower, correct all the same. XDP checks only on devices that can hand
 * over partial checksums (TS_XDP_DEV_F_PARTIAL_CSUM): frames from a wire are
 * never partial.
 */
static __always_inline bool ts_tcp_csum_partial(struct ts_ctx *c, const struct ts_pkt *p)
{
	void *data = ts_data(c), *data_end = ts_data_end(c);
	__u32 l4 = p->l4_off, len;
	struct tcphdr *tcp;
	__u16 pseudo;

	/* bounded again for the verifier: Ethernet + the longest IP header */
	if (l4 > sizeof(struct ethhdr) + 60)
		return true;
	tcp = data + l4;
	if ((void *)(tcp + 1) > data_end)
		return true;
	/* the TCP length as ts_parse found it (a BIG TCP packet's IP header
	 * gives none) */
	len = p->seq_len + p->l4_hlen - !!(p->tcp_flags & TCP_FLAG_SYN) -
	      !!(p->tcp_flags & TCP_FLAG_FIN);
	pseudo = ts_csum_pseudo_tcp(p->key.saddr, p->key.daddr, p->key.family == TS_AF_INET6,
				    len);
	/* 0 and 0xffff are the same number in ones' complement (pseudo is
	 * never 0) */
	return tcp->check == pseudo || (!tcp->check && pseudo == 0xffff);
}

/* Rewrite the destination (to_dst) or source address and port of a TCP packet. */
static __always_inline int ts_rewrite(struct ts_ctx *c, const struct ts_pkt *p, bool to_dst,
				      const __be32 *new_addr, __be16 new_port)
{
	void *data = ts_data(c), *data_end = ts_data_end(c);
	const __be32 *old_addr = to_dst ? p->key.daddr : p->key.saddr;
	__be16 old_port = to_dst ? p->key.dport : p->key.sport;
	/* (read before the check field changes) */
	bool partial = !ts_is_xdp(c) && ts_tcp_csum_partial(c, p);
	__u32 l4 = p->l4_off, csum_off;
	struct tcphdr *tcp;
	__u64 diff;
	int err;

	/* bounded again for the verifier: Ethernet + the longest IP header */
	if (l4 > sizeof(struct ethhdr) + 60)
		return -1;
	tcp = data + l4;
	if ((void *)(tcp + 1) > data_end)
		return -1;
	csum_off = l4 + TS_TCP_CHECK_OFF;
	diff = ts_csum_diff32(old_addr[0], new_addr[0]);
	if (p->key.family == TS_AF_INET) {
		struct iphdr *ip = data + sizeof(struct ethhdr);

		if ((void *)(ip + 1) > data_end)
			return -1;
		ip->check = ts_csum_update(ip->check, diff);
		if (to_dst)
			ip->daddr = new_addr[0];
		else
			ip->saddr = new_addr[0];
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		for (int i = 1; i < 4; i++)
			diff += ts_csum_diff32(old_addr[i], new_addr[i]);
		if (to_dst)
			__builtin_memcpy(&ip6->daddr, new_addr, 16);
		else
			__builtin_memcpy(&ip6->saddr, new_addr, 16);
	}
	if (to_dst)
		tcp->dest = new_port;
	else
		tcp->source = new_port;
	if (!partial) {
		if (old_port != new_port)
			diff += ts_csum_diff16(old_port, new_port);
		tcp->check = ts_csum_update(tcp->check, diff);
		if (!ts_is_xdp(c) && p->key.family == TS_AF_INET)
			bpf_csum_update(ts_skb(c),
					ts_csum_fold32(ts_csum_diff32(new_addr[0], old_addr[0])));
		return 0;
	}
	/* helpers last: they may move the packet, invalidating the pointers */
	if (p->key.family == TS_AF_INET)
		err = bpf_l4_csum_replace(ts_skb(c), csum_off, old_addr[0], new_addr[0],
					  BPF_F_PSEUDO_HDR | sizeof(__be32));
	else
		err = ts_l4_csum_pseudo6(ts_skb(c), csum_off, ts_csum_fold32(diff));
	if (!err && old_port != new_port)
		err = bpf_l4_csum_replace(ts_skb(c), csum_off, old_port, new_port, sizeof(__be16));
	return err;
}

#endif /* TCPSHIFT_NAT_H */
