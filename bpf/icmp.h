/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * ICMP errors about NATed flows, translated so that path MTU discovery (and
 * the other errors) work through the gateway, for IPv4 and IPv6:
 *
 *  - toward the client, about a packet the gateway sent to a backend (inner
 *    client -> backend:port): the inner destination becomes VIP:port again,
 *    and the outer source too when the backend itself sent the error;
 *  - toward the VIP, about a reply the gateway sent to a client (inner
 *    VIP:port -> client): the outer destination and the inner source become
 *    the flow's backend.
 *
 * The inner headers are data of the ICMP message: their checksums (the inner
 * IPv4 header's, and the inner TCP one when it was quoted) are updated here by
 * ones'-complement arithmetic (RFC 1624), and every changed word is folded
 * into the ICMP checksum. Handled: outer and inner IPv4 headers without
 * options, IPv6 without extension headers; anything else passes untouched.
 */
#ifndef TCPSHIFT_ICMP_H
#define TCPSHIFT_ICMP_H

#include "parse.h"
#include "csum.h"

#define ICMP_DEST_UNREACH	3	/* linux/icmp.h; code 4: fragmentation needed */
#define ICMP_TIME_EXCEEDED	11
#define ICMPV6_DEST_UNREACH	1	/* linux/icmpv6.h */
#define ICMPV6_PKT_TOOBIG	2
#define ICMPV6_TIME_EXCEED	3

/* Offsets from the start of the frame, for headers without options. */
#define TS_ICMP4_OFF	(sizeof(struct ethhdr) + sizeof(struct iphdr))
#define TS_ICMP6_OFF	(sizeof(struct ethhdr) + sizeof(struct ipv6hdr))
#define TS_ICMP_HDR	8

struct ts_icmp {
	__u8	family;
	__u32	icmp_off;	/* the ICMP header */
	__u32	in_l3;		/* the quoted IP header */
	__u32	in_l4;		/* the quoted TCP header (at least its first 8 bytes) */
	bool	in_l4_check;	/* the quoted TCP checksum is there too */
	__be32	outer_saddr[4], outer_daddr[4];
	__be32	in_saddr[4], in_daddr[4];
	__be16	in_sport, in_dport;
};

/* Where ts_icmp keeps its struct ts_icmp: off the stack, which the TCP path
 * nearly fills (ts_syn_scratch of viable.h says why). Not pinned. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ts_icmp);
} icmp_scratch SEC(".maps");

/* Parse an ICMP error quoting a TCP packet; false when it is not one we handle. */
static __always_inline bool ts_icmp_parse(struct __sk_buff *skb, __u8 family, struct ts_icmp *m)
{
	__u8 hdr[2], in_proto;
	__u16 ports[2];
	__u32 ip_end;

	m->family = family;
	if (family == TS_AF_INET) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip, sizeof(ip)) ||
		    ip.version != 4 || ip.ihl != 5 || ip.protocol != IPPROTO_ICMP ||
		    (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return false;
		m->icmp_off = TS_ICMP4_OFF;
		ip_end = sizeof(struct ethhdr) + bpf_ntohs(ip.tot_len);
		m->in_l3 = m->icmp_off + TS_ICMP_HDR;
		m->in_l4 = m->in_l3 + sizeof(struct iphdr);
		m->outer_saddr[0] = ip.saddr;
		m->outer_daddr[0] = ip.daddr;
		if (bpf_skb_load_bytes(skb, m->icmp_off, hdr, 2) ||
		    (hdr[0] != ICMP_DEST_UNREACH && hdr[0] != ICMP_TIME_EXCEEDED))
			return false;
		if (bpf_skb_load_bytes(skb, m->in_l3, &ip, sizeof(ip)) || ip.ihl != 5 ||
		    ip.version != 4)
			return false;
		in_proto = ip.protocol;
		m->in_saddr[0] = ip.saddr;
		m->in_daddr[0] = ip.daddr;
	} else {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, sizeof(struct ethhdr), &ip6, sizeof(ip6)) ||
		    ip6.version != 6 || ip6.nexthdr != NEXTHDR_ICMP)
			return false;
		m->icmp_off = TS_ICMP6_OFF;
		ip_end = TS_ICMP6_OFF + bpf_ntohs(ip6.payload_len);
		m->in_l3 = m->icmp_off + TS_ICMP_HDR;
		m->in_l4 = m->in_l3 + sizeof(struct ipv6hdr);
		__builtin_memcpy(m->outer_saddr, &ip6.saddr, 16);
		__builtin_memcpy(m->outer_daddr, &ip6.daddr, 16);
		if (bpf_skb_load_bytes(skb, m->icmp_off, hdr, 2) ||
		    (hdr[0] != ICMPV6_DEST_UNREACH && hdr[0] != ICMPV6_PKT_TOOBIG &&
		     hdr[0] != ICMPV6_TIME_EXCEED))
			return false;
		if (bpf_skb_load_bytes(skb, m->in_l3, &ip6, sizeof(ip6)) || ip6.version != 6)
			return false;
		in_proto = ip6.nexthdr;
		__builtin_memcpy(m->in_saddr, &ip6.saddr, 16);
		__builtin_memcpy(m->in_daddr, &ip6.daddr, 16);
	}
	/* the quoted IP header and 8 bytes of TCP (RFC 792), inside the packet */
	if (in_proto != IPPROTO_TCP || m->in_l4 + 8 > ip_end || ip_end > skb->len ||
	    bpf_skb_load_bytes(skb, m->in_l4, ports, sizeof(ports)))
		return false;
	m->in_sport = ports[0];
	m->in_dport = ports[1];
	/* within the IP packet: a frame may carry padding after it */
	m->in_l4_check = m->in_l4 + offsetof(struct tcphdr, check) + 2 <= ip_end;
	return true;
}

/*
 * Replace the quoted packet's source (in_src) or destination address and port
 * with addr:port, and the outer source (outer_src) or destination address with
 * outer_addr when outer_addr is not NULL. Returns 0 or a negative error.
 */
static __always_inline int ts_icmp_rewrite(struct __sk_buff *skb, const struct ts_icmp *m,
					   bool in_src, const __be32 *addr, __be16 port,
					   bool outer_src, const __be32 *outer_addr)
{
	bool v4 = m->family == TS_AF_INET;
	__u32 alen = v4 ? 4 : 16;
	__u32 check_off = m->icmp_off + 2;
	__u32 in_addr_off = m->in_l3 + (v4 ? (in_src ? 12 : 16) : (in_src ? 8 : 24));
	const __be32 *old_addr = in_src ? m->in_saddr : m->in_daddr;
	__be16 old_ports[2] = { m->in_sport, m->in_dport }, new_ports[2] = { m->in_sport,
									      m->in_dport };
	__s64 d_addr, d_ports;
	__u64 d_icmp;
	__u16 check, new_check;
	int err = 0;

	new_ports[in_src ? 0 : 1] = port;
	d_addr = bpf_csum_diff((__be32 *)old_addr, alen, (__be32 *)addr, alen, 0);
	d_ports = bpf_csum_diff((__be32 *)old_ports, 4, (__be32 *)new_ports, 4, 0);
	if (d_addr < 0 || d_ports < 0)
		return -1;
	/* the ICMP checksum covers every quoted byte we change */
	d_icmp = (__u32)d_addr + (__u64)(__u32)d_ports;

	/* the quoted IPv4 header's checksum covers its addresses */
	if (v4) {
		err = bpf_skb_load_bytes(skb, m->in_l3 + 10, &check, 2);
		if (err)
			return err;
		new_check = ts_csum_update(check, (__u32)d_addr);
		err = bpf_skb_store_bytes(skb, m->in_l3 + 10, &new_check, 2, 0);
		d_icmp += ts_csum_diff16(check, new_check);
	}
	/* the quoted TCP checksum covers the pseudo-header and the ports */
	if (!err && m->in_l4_check) {
		__u32 off = m->in_l4 + offsetof(struct tcphdr, check);

		err = bpf_skb_load_bytes(skb, off, &check, 2);
		if (err)
			return err;
		new_check = ts_csum_update(check, (__u32)d_addr + (__u64)(__u32)d_ports);
		err = bpf_skb_store_bytes(skb, off, &new_check, 2, 0);
		d_icmp += ts_csum_diff16(check, new_check);
	}
	err = err ?: bpf_skb_store_bytes(skb, in_addr_off, addr, alen, 0);
	err = err ?: bpf_skb_store_bytes(skb, m->in_l4, new_ports, 4, 0);
	err = err ?: bpf_l4_csum_replace(skb, check_off, 0, ts_csum_fold32(d_icmp), 0);
	if (err || !outer_addr)
		return err;

	{
		const __be32 *old = outer_src ? m->outer_saddr : m->outer_daddr;
		__u32 off = sizeof(struct ethhdr) +
			    (v4 ? (outer_src ? 12 : 16) : (outer_src ? 8 : 24));

		if (v4) {
			err = bpf_l3_csum_replace(skb, sizeof(struct ethhdr) + 10, old[0],
						  outer_addr[0], 4);
		} else {
			/* ICMPv6's checksum covers the IPv6 pseudo-header */
			__s64 d = bpf_csum_diff((__be32 *)old, 16, (__be32 *)outer_addr, 16, 0);

			err = d < 0 ? (int)d : ts_l4_csum_pseudo6(skb, check_off, (__u32)d);
		}
		err = err ?: bpf_skb_store_bytes(skb, off, outer_addr, alen, 0);
	}
	return err;
}

#endif /* TCPSHIFT_ICMP_H */
