/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Header parsing for tcpshift: Ethernet, then IPv4 or IPv6, then TCP. */
#ifndef TCPSHIFT_PARSE_H
#define TCPSHIFT_PARSE_H

#include "tcpshift.h"
#include "ctx.h"

/* vmlinux.h carries types, not macros: the few UAPI constants we need. */
#define ETH_ALEN	6	/* linux/if_ether.h */
#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define IP_MF		0x2000	/* linux/ip.h: more fragments */
#define IP_OFFSET	0x1FFF
#define NEXTHDR_FRAGMENT 44	/* net/ipv6.h */
#define NEXTHDR_ICMP	58	/* net/ipv6.h */
#define NEXTHDR_HOP	0
#define NEXTHDR_ROUTING	43
#define NEXTHDR_AUTH	51
#define NEXTHDR_DEST	60
#define TS_V6_EXT_MAX	4	/* extension headers walked to find TCP */
#define PACKET_HOST	0	/* linux/if_packet.h: skb->pkt_type */

#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04
#define TCP_FLAG_ACK	0x10

/* Enough linear data for Ethernet + the largest IPv4 header + a TCP header. */
#define TS_PULL_LEN	(sizeof(struct ethhdr) + 60 + sizeof(struct tcphdr))

enum ts_parse_result {
	TS_PARSE_TCP = 0,	/* pkt filled in */
	TS_PARSE_OTHER,		/* not IPv4/IPv6 TCP: not ours */
	TS_PARSE_MALFORMED,	/* truncated or invalid IPv4/IPv6/TCP headers */
	TS_PARSE_FRAGMENT,	/* IP fragment carrying TCP */
	TS_PARSE_ICMP,		/* ICMP or ICMPv6: key.family set, nothing else */
	TS_PARSE_V6_EXT,	/* IPv6 TCP behind extension headers: key filled, not NATed */
};

struct ts_pkt {
	struct ts_flow_key key;	/* as on the wire: saddr/daddr, sport/dport */
	__u32	l3_off;
	__u32	l4_off;
	__u32	seq;		/* host order */
	__u32	ack;		/* host order */
	__u32	seq_len;	/* payload bytes, plus one each for SYN and FIN */
	__u16	l4_hlen;	/* TCP header length, options included */
	__u8	tcp_flags;
};

static __always_inline int ts_parse_tcp(void *data, void *data_end, struct ts_pkt *p,
					__u32 l4_off, __u32 l4_len)
{
	struct tcphdr *tcp = data + l4_off;
	__u32 doff;

	if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp))
		return TS_PARSE_MALFORMED;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || doff > l4_len)
		return TS_PARSE_MALFORMED;
	p->key.sport = tcp->source;
	p->key.dport = tcp->dest;
	p->key.proto = IPPROTO_TCP;
	/* byte 13 of the TCP header holds the flags */
	p->tcp_flags = ((__u8 *)tcp)[13];
	p->seq = bpf_ntohl(tcp->seq);
	p->ack = bpf_ntohl(tcp->ack_seq);
	p->seq_len = l4_len - doff + !!(p->tcp_flags & TCP_FLAG_SYN) +
		     !!(p->tcp_flags & TCP_FLAG_FIN);
	p->l4_off = l4_off;
	p->l4_hlen = doff;
	return TS_PARSE_TCP;
}

static __always_inline int ts_parse_ipv4(void *data, void *data_end, struct ts_pkt *p,
					 __u32 l3_len)
{
	struct iphdr *ip = data + sizeof(struct ethhdr);
	__u32 ihl, tot_len;

	if ((void *)(ip + 1) > data_end)
		return TS_PARSE_MALFORMED;
	if (ip->protocol == IPPROTO_ICMP) {
		p->key.family = TS_AF_INET;
		return TS_PARSE_ICMP;
	}
	if (ip->protocol != IPPROTO_TCP)
		return TS_PARSE_OTHER;
	ihl = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	/* BIG TCP: a GRO packet over 64 KiB carries tot_len 0. */
	if (tot_len == 0 && l3_len > 0xffff)
		tot_len = l3_len;
	if (ip->version != 4 || ihl < sizeof(*ip) || tot_len < ihl || tot_len > l3_len)
		return TS_PARSE_MALFORMED;
	p->key.family = TS_AF_INET;
	p->key.saddr[0] = ip->saddr;
	p->key.daddr[0] = ip->daddr;
	p->l3_off = sizeof(struct ethhdr);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return TS_PARSE_FRAGMENT;
	return ts_parse_tcp(data, data_end, p, sizeof(struct ethhdr) + ihl, tot_len - ihl);
}

/* The hop-by-hop header of a BIG TCP packet (ts_parse_ipv6). */
#define TS_IPV6_TLV_JUMBO	0xc2
struct ts_hop_jumbo {
	__u8	nexthdr;
	__u8	hdrlen;		/* 8-byte units after the first 8: 0 */
	__u8	type;		/* TS_IPV6_TLV_JUMBO */
	__u8	len;		/* of the option's data: 4 */
	__be32	payload_len;	/* all after the IPv6 header, this header too */
};

static __always_inline void ts_parse_ipv6_addrs(const struct ipv6hdr *ip6, struct ts_pkt *p)
{
	p->key.family = TS_AF_INET6;
	__builtin_memcpy(p->key.saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->key.daddr, &ip6->daddr, 16);
	p->l3_off = sizeof(struct ethhdr);
}

/*
 * An IPv6 packet whose TCP header sits behind hop-by-hop, routing, destination
 * or authentication headers: walked (up to TS_V6_EXT_MAX) to fill the key,
 * so that one to a service is counted; tcpshift does not rewrite such
 * packets (invariant 5: passed untouched).
 */
static __always_inline int ts_parse_ipv6_ext(void *data, void *data_end, struct ipv6hdr *ip6,
					     struct ts_pkt *p)
{
	__u32 off = sizeof(struct ethhdr) + sizeof(*ip6);
	__u8 next = ip6->nexthdr;
	struct tcphdr *tcp;

	for (int i = 0; i < TS_V6_EXT_MAX; i++) {
		__u8 *ext = data + off;
		__u32 len;

		if (next != NEXTHDR_HOP && next != NEXTHDR_ROUTING && next != NEXTHDR_DEST &&
		    next != NEXTHDR_AUTH)
			break;
		if (off > 1024 || (void *)(ext + 2) > data_end)
			return TS_PARSE_OTHER;
		/* The length unit is the header's own, so chosen by its type (next,
		 * still): AH counts 4-byte words less 2 (RFC 4302), the others
		 * 8-byte units less 1 (RFC 8200). ext[0] is the type after it. */
		len = next == NEXTHDR_AUTH ? (ext[1] + 2) * 4 : (ext[1] + 1) * 8;
		next = ext[0];
		off += len;
	}
	if (next != IPPROTO_TCP || off > 2048)
		return TS_PARSE_OTHER;
	tcp = data + off;
	if ((void *)(tcp + 1) > data_end)
		return TS_PARSE_OTHER;
	ts_parse_ipv6_addrs(ip6, p);
	p->key.sport = tcp->source;
	p->key.dport = tcp->dest;
	p->key.proto = IPPROTO_TCP;
	return TS_PARSE_V6_EXT;
}

static __always_inline int ts_parse_ipv6(void *data, void *data_end, struct ts_pkt *p,
					 __u32 l3_len)
{
	struct ipv6hdr *ip6 = data + sizeof(struct ethhdr);
	__u32 payload_len;

	if ((void *)(ip6 + 1) > data_end)
		return TS_PARSE_MALFORMED;
	if (ip6->nexthdr == NEXTHDR_FRAGMENT) {
		/* the fragment header's first byte is the next header */
		__u8 *frag_next = (__u8 *)(ip6 + 1);

		if ((void *)(frag_next + 1) > data_end)
			return TS_PARSE_MALFORMED;
		return *frag_next == IPPROTO_TCP ? TS_PARSE_FRAGMENT : TS_PARSE_OTHER;
	}
	if (ip6->nexthdr == NEXTHDR_ICMP) {
		p->key.family = TS_AF_INET6;
		return TS_PARSE_ICMP;
	}
	payload_len = bpf_ntohs(ip6->payload_len);
	/* BIG TCP: Linux's GRO and GSO packets of IPv6 over 64 KiB carry
	 * payload_len 0 and a hop-by-hop header of the jumbo payload option
	 * alone (RFC 2675), which Linux adds and strips itself: their TCP is
	 * NATed as any other, behind it. */
	if (ip6->nexthdr == NEXTHDR_HOP && payload_len == 0 && l3_len > 0xffff + sizeof(*ip6)) {
		struct ts_hop_jumbo *hop = (void *)(ip6 + 1);
		__u32 jumbo_len;

		if ((void *)(hop + 1) > data_end)
			return TS_PARSE_MALFORMED;
		jumbo_len = bpf_ntohl(hop->payload_len);
		if (hop->nexthdr == IPPROTO_TCP && hop->hdrlen == 0 &&
		    hop->type == TS_IPV6_TLV_JUMBO && hop->len == 4) {
			if (ip6->version != 6 || jumbo_len < sizeof(*hop) ||
			    jumbo_len > l3_len - sizeof(*ip6))
				return TS_PARSE_MALFORMED;
			ts_parse_ipv6_addrs(ip6, p);
			return ts_parse_tcp(data, data_end, p,
					    sizeof(struct ethhdr) + sizeof(*ip6) + sizeof(*hop),
					    jumbo_len - sizeof(*hop));
		}
	}
	/* Behind extension headers: found (for the counters) but not NATed. */
	if (ip6->nexthdr != IPPROTO_TCP)
		return ts_parse_ipv6_ext(data, data_end, ip6, p);
	/* (one over 64 KiB with payload_len 0 but no jumbo option: its length
	 * is the packet's) */
	if (payload_len == 0 && l3_len > 0xffff + sizeof(*ip6))
		payload_len = l3_len - sizeof(*ip6);
	if (ip6->version != 6 || payload_len + sizeof(*ip6) > l3_len)
		return TS_PARSE_MALFORMED;
	ts_parse_ipv6_addrs(ip6, p);
	return ts_parse_tcp(data, data_end, p, sizeof(struct ethhdr) + sizeof(*ip6), payload_len);
}

static __always_inline int ts_parse(struct ts_ctx *c, struct ts_pkt *p)
{
	void *data, *data_end;
	struct ethhdr *eth;
	__u32 l3_len;

	if (!ts_is_xdp(c)) {
		struct __sk_buff *skb = ts_skb(c);

		/* Invariant 5: a frame not addressed to this host (another
		 * host's MAC seen in promiscuous mode, a broadcast, a
		 * multicast) is not ours, even if it carries a packet to a
		 * VIP: the stack would not route it either. A field load,
		 * first, so that such frames cost nothing more. (XDP has no
		 * pkt_type: its program compares the MAC itself.) */
		if (skb->pkt_type != PACKET_HOST)
			return TS_PARSE_OTHER;
		/* Headers of a non-linear skb may not be in its linear part. */
		if (skb->data_end - skb->data < TS_PULL_LEN &&
		    skb->len > skb->data_end - skb->data)
			bpf_skb_pull_data(skb, skb->len < TS_PULL_LEN ? skb->len : TS_PULL_LEN);
		/* Keep clang from reusing ctx+offset pointers computed above:
		 * the verifier rejects loads through a modified ctx pointer. */
		asm volatile("" : "+r"(skb));
		c->ctx = skb;
	}
	data = ts_data(c);
	data_end = ts_data_end(c);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return TS_PARSE_OTHER;
	l3_len = ts_len(c) - sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return ts_parse_ipv4(data, data_end, p, l3_len);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return ts_parse_ipv6(data, data_end, p, l3_len);
	return TS_PARSE_OTHER;
}

#endif /* TCPSHIFT_PARSE_H */
