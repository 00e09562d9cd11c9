/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Address and port rewrite with incremental checksum updates.
 *
 * Addresses, ports and the IPv4 header checksum are written directly into
 * the packet: those changes cancel out in a CHECKSUM_COMPLETE sum. The TCP
 * checksum goes through bpf_l4_csum_replace, which does the right thing for
 * every ip_summed: with CHECKSUM_PARTIAL (GSO and locally generated packets on
 * veth) the check field holds only the pseudo-header sum, so only address
 * changes (BPF_F_PSEUDO_HDR) are folded into it; with CHECKSUM_COMPLETE the
 * helper keeps skb->csum in step with the pseudo-header change (for IPv6 it
 * must be told, BPF_F_IPV6: see ts_l4_csum_pseudo6 in csum.h).
 * (Direct writes cost 3 ns where bpf_skb_store_bytes costs 35: BENCHMARKS.md.)
 * At XDP there is no ip_summed: the TCP checksum is updated in place as a
 * complete one (frames with partial checksums went on to tc:
 * ts_tcp_csum_partial).
 */
#ifndef TCPSHIFT_NAT_H
#define TCPSHIFT_NAT_H

#include "parse.h"
#include "csum.h"

#define TS_TCP_CHECK_OFF	offsetof(struct tcphdr, check)

/*
 * An XDP frame has no ip_summed, so it cannot say that its TCP checksum is
 * partial: that the check field holds only the pseudo-header sum, the rest
 * left to a device that never comes when the frame is redirected. It shows,
 * though: a partial check field equals the pseudo-header sum, which a
 * complete checksum does only once in 65535 frames. Such a frame goes on to
 * tc, whose helpers update a partial checksum as one (ts_rewrite); a complete
 * one mistaken for it is only slower, correct all the same. Checked only on
 * devices that can hand over partial checksums (TS_XDP_DEV_F_PARTIAL_CSUM):
 * frames from a wire are never partial.
 */
static __always_inline bool ts_tcp_csum_partial(struct ts_ctx *c, const struct ts_pkt *p)
{
	void *data = ts_data(c), *data_end = ts_data_end(c);
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 l4 = p->l4_off, len;
	struct tcphdr *tcp;
	__u16 pseudo;

	/* bounded again for the verifier: Ethernet + the longest IP header */
	if (l4 > sizeof(struct ethhdr) + 60)
		return true;
	tcp = data + l4;
	if ((void *)(tcp + 1) > data_end || (void *)(ip6 + 1) > data_end)
		return true;
	/* the TCP length, from the IP header as ts_parse read it */
	if (p->key.family == TS_AF_INET)
		len = bpf_ntohs(ip->tot_len) - (l4 - p->l3_off);
	else
		len = bpf_ntohs(ip6->payload_len);
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
	__u32 l4 = p->l4_off, csum_off;
	struct tcphdr *tcp;
	__s64 diff = 0;
	__u64 l4_diff;
	int err;

	/* bounded again for the verifier: Ethernet + the longest IP header */
	if (l4 > sizeof(struct ethhdr) + 60)
		return -1;
	tcp = data + l4;
	if ((void *)(tcp + 1) > data_end)
		return -1;
	csum_off = l4 + TS_TCP_CHECK_OFF;
	if (p->key.family == TS_AF_INET) {
		struct iphdr *ip = data + sizeof(struct ethhdr);

		if ((void *)(ip + 1) > data_end)
			return -1;
		diff = ts_csum_diff32(old_addr[0], new_addr[0]);
		ip->check = ts_csum_update(ip->check, diff);
		if (to_dst)
			ip->daddr = new_addr[0];
		else
			ip->saddr = new_addr[0];
	} else {
		struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		diff = bpf_csum_diff((__be32 *)old_addr, 16, (__be32 *)new_addr, 16, 0);
		if (diff < 0)
			return (int)diff;
		if (to_dst)
			__builtin_memcpy(&ip6->daddr, new_addr, 16);
		else
			__builtin_memcpy(&ip6->saddr, new_addr, 16);
	}
	if (to_dst)
		tcp->dest = new_port;
	else
		tcp->source = new_port;
	/* XDP: a frame with its checksums complete (doc/DESIGN.md, "XDP") */
	if (ts_is_xdp(c)) {
		l4_diff = (__u32)diff;
		if (old_port != new_port)
			l4_diff += ts_csum_diff16(old_port, new_port);
		tcp->check = ts_csum_update(tcp->check, l4_diff);
		return 0;
	}
	/* helpers last: they may move the packet, invalidating the pointers */
	if (p->key.family == TS_AF_INET)
		err = bpf_l4_csum_replace(ts_skb(c), csum_off, old_addr[0], new_addr[0],
					  BPF_F_PSEUDO_HDR | sizeof(__be32));
	else
		err = ts_l4_csum_pseudo6(ts_skb(c), csum_off, (__u32)diff);
	if (!err && old_port != new_port)
		err = bpf_l4_csum_replace(ts_skb(c), csum_off, old_port, new_port, sizeof(__be16));
	return err;
}

#endif /* TCPSHIFT_NAT_H */
