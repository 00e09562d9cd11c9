/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Address and port rewrite with incremental checksum updates.
 *
 * bpf_l3_csum_replace/bpf_l4_csum_replace do the right thing for every
 * ip_summed: with CHECKSUM_PARTIAL (GSO and locally generated packets on veth)
 * the TCP check field holds only the pseudo-header sum, so only address
 * changes (BPF_F_PSEUDO_HDR) are folded into it; with CHECKSUM_COMPLETE the
 * helpers keep skb->csum in step.
 */
#ifndef TCPSHIFT_NAT_H
#define TCPSHIFT_NAT_H

#include "parse.h"

#define TS_IP_CHECK_OFF		offsetof(struct iphdr, check)
#define TS_TCP_CHECK_OFF	offsetof(struct tcphdr, check)

/* Rewrite the destination (to_dst) or source address and port of a TCP packet. */
static __always_inline int ts_rewrite(struct __sk_buff *skb, const struct ts_pkt *p, bool to_dst,
				      const __be32 *new_addr, __be16 new_port)
{
	__u32 csum_off = p->l4_off + TS_TCP_CHECK_OFF;
	__u32 port_off = p->l4_off + (to_dst ? offsetof(struct tcphdr, dest)
					     : offsetof(struct tcphdr, source));
	const __be32 *old_addr = to_dst ? p->key.daddr : p->key.saddr;
	__be16 old_port = to_dst ? p->key.dport : p->key.sport;
	__u32 addr_off;
	int err;

	if (p->key.family == TS_AF_INET) {
		addr_off = p->l3_off + (to_dst ? offsetof(struct iphdr, daddr)
					       : offsetof(struct iphdr, saddr));
		err = bpf_l4_csum_replace(skb, csum_off, old_addr[0], new_addr[0],
					  BPF_F_PSEUDO_HDR | sizeof(__be32));
		err = err ?: bpf_l3_csum_replace(skb, p->l3_off + TS_IP_CHECK_OFF, old_addr[0],
						 new_addr[0], sizeof(__be32));
		err = err ?: bpf_skb_store_bytes(skb, addr_off, new_addr, sizeof(__be32), 0);
	} else {
		__s64 diff = bpf_csum_diff((__be32 *)old_addr, 16, (__be32 *)new_addr, 16, 0);

		addr_off = p->l3_off + (to_dst ? offsetof(struct ipv6hdr, daddr)
					       : offsetof(struct ipv6hdr, saddr));
		err = diff < 0 ? (int)diff : 0;
		err = err ?: bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR);
		err = err ?: bpf_skb_store_bytes(skb, addr_off, new_addr, 16, 0);
	}
	if (old_port != new_port) {
		err = err ?: bpf_l4_csum_replace(skb, csum_off, old_port, new_port, sizeof(__be16));
		err = err ?: bpf_skb_store_bytes(skb, port_off, &new_port, sizeof(__be16), 0);
	}
	return err;
}

#endif /* TCPSHIFT_NAT_H */
