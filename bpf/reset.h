/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Closing a flow with a TCP RST, built in place from a packet of that flow.
 *
 * Only checksum-neutral swaps (MAC, address and port pairs: a ones'-complement
 * sum does not depend on order) and incremental updates of single fields
 * (bpf_l4_csum_replace) are used, so the result is right whatever the
 * packet's ip_summed, CHECKSUM_PARTIAL included. The payload is kept: a RST
 * may carry data, and receivers ignore it; trimming it would change the
 * checksum by the sum of bytes we cannot read cheaply.
 */
#ifndef TCPSHIFT_RESET_H
#define TCPSHIFT_RESET_H

#include "parse.h"

#define TS_TCP_SEQ_OFF		offsetof(struct tcphdr, seq)
#define TS_TCP_ACK_OFF		offsetof(struct tcphdr, ack_seq)
#define TS_TCP_FLAGS_WORD_OFF	12	/* data offset, reserved bits and flags */

/* Set the TCP flags to exactly `flags`, and seq to `seq` when set_seq. */
static __always_inline int ts_tcp_set(struct __sk_buff *skb, const struct ts_pkt *p, __u8 flags,
				      bool set_seq, __be32 seq)
{
	__u32 csum_off = p->l4_off + offsetof(struct tcphdr, check);
	__be16 old_word, new_word;
	__be32 old_seq;
	int err;

	err = bpf_skb_load_bytes(skb, p->l4_off + TS_TCP_FLAGS_WORD_OFF, &old_word, 2);
	err = err ?: bpf_skb_load_bytes(skb, p->l4_off + TS_TCP_SEQ_OFF, &old_seq, 4);
	if (err)
		return err;
	new_word = old_word;
	((__u8 *)&new_word)[1] = flags;
	err = bpf_l4_csum_replace(skb, csum_off, old_word, new_word, sizeof(new_word));
	err = err ?: bpf_skb_store_bytes(skb, p->l4_off + TS_TCP_FLAGS_WORD_OFF, &new_word, 2, 0);
	if (err || !set_seq)
		return err;
	err = bpf_l4_csum_replace(skb, csum_off, old_seq, seq, sizeof(seq));
	return err ?: bpf_skb_store_bytes(skb, p->l4_off + TS_TCP_SEQ_OFF, &seq, 4, 0);
}

/*
 * Turn a client's packet (which must carry an ACK) into a RST from VIP:port
 * back to the client and send it out of the interface it came in on. Its
 * sequence number is the client's acknowledgment number, as RFC 9293 asks
 * of a reset answering a segment with ACK set.
 */
static __always_inline int ts_reset_client(struct __sk_buff *skb, const struct ts_pkt *p)
{
	__u32 addr_len = p->key.family == TS_AF_INET ? 4 : 16;
	/* __builtin_offsetof: vmlinux.h types carry CO-RE access attributes, and
	 * clang 14 turns a choice between offsetof()s of two of them into a
	 * load from the offset, which the verifier rejects. */
	__u32 saddr_off = p->l3_off + (p->key.family == TS_AF_INET
					       ? __builtin_offsetof(struct iphdr, saddr)
					       : __builtin_offsetof(struct ipv6hdr, saddr));
	__u8 macs[2 * ETH_ALEN], swapped[2 * ETH_ALEN];
	__be16 ports[2] = { p->key.dport, p->key.sport };
	__be32 ack;
	int err;

	err = bpf_skb_load_bytes(skb, 0, macs, sizeof(macs));
	/* Our source MAC is the client frame's destination: a broadcast or
	 * multicast one (group bit, the low bit of the first byte) must never
	 * be a source (IEEE 802). Such a frame is not the client talking to us
	 * (ts_parse passes what is not PACKET_HOST): no answer. */
	if (err || (macs[0] & 1))
		return TC_ACT_SHOT;
	err = bpf_skb_load_bytes(skb, p->l4_off + TS_TCP_ACK_OFF, &ack, 4);
	err = err ?: ts_tcp_set(skb, p, TCP_FLAG_RST, true, ack);
	if (err)
		return TC_ACT_SHOT;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);
	/* saddr and daddr are adjacent in both IPv4 and IPv6 headers */
	if (addr_len == 4) {
		__be32 addrs[2] = { p->key.daddr[0], p->key.saddr[0] };

		err = bpf_skb_store_bytes(skb, saddr_off, addrs, sizeof(addrs), 0);
	} else {
		__be32 addrs[8];

		__builtin_memcpy(addrs, p->key.daddr, 16);
		__builtin_memcpy(addrs + 4, p->key.saddr, 16);
		err = bpf_skb_store_bytes(skb, saddr_off, addrs, sizeof(addrs), 0);
	}
	err = err ?: bpf_skb_store_bytes(skb, p->l4_off, ports, sizeof(ports), 0);
	err = err ?: bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0);
	if (err)
		return TC_ACT_SHOT;
	return bpf_redirect(skb->ifindex, 0);
}

#endif /* TCPSHIFT_RESET_H */
