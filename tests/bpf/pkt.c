// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Packet builders and checksum verification for the bpf tests. */
#include <stdio.h>
#include <string.h>

#include "pkt.h"

#include <linux/icmp.h>
#include <linux/icmpv6.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#define IPV6_HOPOPTS_LEN	8
#define IPV6_FRAG_LEN		8
#define NEXTHDR_HOP		0	/* RFC 8200 next-header values */
#define NEXTHDR_FRAGMENT	44
#define NEXTHDR_AUTH		51
#define IPV6_AUTH_LEN		24	/* RFC 4302: 12 bytes, then a 96-bit ICV */
#define IPV6_HOPOPTS16_LEN	16
#define TCPOPT_MSS		2
#define TCPOLEN_MSS		4
#define IP_DF			0x4000	/* frag_off flags: net/ip.h, not in UAPI */

/* The address of the test's devices (TEST_DEV_MAC, ts_test.h): frames to it
 * are PACKET_HOST, as a gateway's own are. */
static const __u8 mac_dst[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 };
static const __u8 mac_src[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 };

/* ---- checksums: 16-bit one's complement sums of big-endian words ---------- */

static __u32 sum_bytes(__u32 sum, const void *data, size_t len)
{
	const __u8 *b = data;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += (__u32)b[i] << 8 | b[i + 1];
	if (len & 1)
		sum += (__u32)b[len - 1] << 8;
	return sum;
}

static __u16 fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* Sum of the pseudo-header (RFC 793 / RFC 8200 section 8.1). */
static __u32 sum_pseudo(const struct pkt *p, const struct pkt_view *v)
{
	const __u8 *l3 = p->data + v->l3_off;
	__u32 sum = 0;

	if (v->family == 4) {
		sum = sum_bytes(sum, l3 + offsetof(struct iphdr, saddr), 8);
		sum += v->proto;
		sum += v->l4_len;
	} else {
		sum = sum_bytes(sum, l3 + offsetof(struct ipv6hdr, saddr), 32);
		sum += v->l4_len >> 16;
		sum += v->l4_len & 0xffff;
		sum += v->proto;
	}
	return sum;
}

static __u32 l4_check_off(const struct pkt_view *v)
{
	switch (v->proto) {
	case IPPROTO_TCP:
		return v->l4_off + offsetof(struct tcphdr, check);
	case IPPROTO_UDP:
		return v->l4_off + offsetof(struct udphdr, check);
	default: /* ICMP and ICMPv6 put it at the same place */
		return v->l4_off + offsetof(struct icmphdr, checksum);
	}
}

static bool l4_has_pseudo(const struct pkt_view *v)
{
	return v->proto != IPPROTO_ICMP; /* ICMPv6 has one, ICMP has not */
}

bool pkt_view(const struct pkt *p, struct pkt_view *v)
{
	const struct ethhdr *eth = (const void *)p->data;

	memset(v, 0, sizeof(*v));
	if (p->len < sizeof(*eth))
		return false;
	v->l3_off = sizeof(*eth);
	if (eth->h_proto == htons(ETH_P_IP)) {
		const struct iphdr *ip = (const void *)(p->data + v->l3_off);

		if (p->len < v->l3_off + sizeof(*ip) || ip->ihl < 5 ||
		    p->len < v->l3_off + ntohs(ip->tot_len) || ntohs(ip->tot_len) < ip->ihl * 4u)
			return false;
		v->family = 4;
		v->alen = 4;
		v->proto = ip->protocol;
		v->l4_off = v->l3_off + ip->ihl * 4u;
		v->l4_len = ntohs(ip->tot_len) - ip->ihl * 4u;
		return true;
	}
	if (eth->h_proto == htons(ETH_P_IPV6)) {
		const struct ipv6hdr *ip6 = (const void *)(p->data + v->l3_off);
		__u32 off = v->l3_off + sizeof(*ip6), end;
		__u8 next;

		if (p->len < off || p->len < off + ntohs(ip6->payload_len))
			return false;
		end = off + ntohs(ip6->payload_len);
		next = ip6->nexthdr;
		while (next == NEXTHDR_HOP || next == NEXTHDR_FRAGMENT || next == NEXTHDR_AUTH) {
			__u32 len;

			if (end < off + 8)
				return false;
			/* the length of this header, by its own type */
			if (next == NEXTHDR_FRAGMENT)
				len = IPV6_FRAG_LEN;
			else if (next == NEXTHDR_AUTH)
				len = (p->data[off + 1] + 2u) * 4;
			else
				len = (p->data[off + 1] + 1u) * 8;
			next = p->data[off];
			off += len;
		}
		if (off > end)
			return false;
		v->family = 6;
		v->alen = 16;
		v->proto = next;
		v->l4_off = off;
		v->l4_len = end - off;
		return true;
	}
	return false;
}

bool pkt_ip_csum_ok(const struct pkt *p)
{
	struct pkt_view v;

	if (!pkt_view(p, &v))
		return false;
	if (v.family == 6)
		return true;
	return fold(sum_bytes(0, p->data + v.l3_off, v.l4_off - v.l3_off)) == 0xffff;
}

bool pkt_l4_csum_ok(const struct pkt *p)
{
	struct pkt_view v;
	__u32 sum;

	if (!pkt_view(p, &v) || v.l4_len < 8)
		return false;
	sum = l4_has_pseudo(&v) ? sum_pseudo(p, &v) : 0;
	sum = sum_bytes(sum, p->data + v.l4_off, v.l4_len);
	return fold(sum) == 0xffff;
}

static void put16(__u8 *at, __u16 host)
{
	at[0] = (__u8)(host >> 8);
	at[1] = (__u8)host;
}

void pkt_partial_csum(struct pkt *p)
{
	struct pkt_view v;
	__u16 check;

	if (!pkt_view(p, &v) || !l4_has_pseudo(&v))
		return;
	check = htons(fold(sum_pseudo(p, &v)));
	memcpy(p->data + l4_check_off(&v), &check, sizeof(check));
}

void pkt_fix_csums(struct pkt *p)
{
	struct pkt_view v;
	__u32 sum, at;

	if (!pkt_view(p, &v))
		return;
	if (v.family == 4) {
		at = v.l3_off + offsetof(struct iphdr, check);
		put16(p->data + at, 0);
		put16(p->data + at, (__u16)~fold(sum_bytes(0, p->data + v.l3_off,
							    v.l4_off - v.l3_off)));
	}
	if (v.proto != IPPROTO_TCP && v.proto != IPPROTO_UDP && v.proto != IPPROTO_ICMP &&
	    v.proto != IPPROTO_ICMPV6)
		return;
	at = l4_check_off(&v);
	if (at + 2 > v.l4_off + v.l4_len)
		return;
	put16(p->data + at, 0);
	sum = l4_has_pseudo(&v) ? sum_pseudo(p, &v) : 0;
	sum = (__u16)~fold(sum_bytes(sum, p->data + v.l4_off, v.l4_len));
	/* RFC 768: a computed UDP checksum of 0 is sent as all ones */
	if (v.proto == IPPROTO_UDP && sum == 0)
		sum = 0xffff;
	put16(p->data + at, (__u16)sum);
}

void pkt_fix_ip_csum(struct pkt *p)
{
	struct iphdr *ip = pkt_ip4(p);
	__u32 hlen;

	if (!ip || p->len < sizeof(struct ethhdr) + sizeof(*ip))
		return;
	hlen = ip->ihl < 5 ? sizeof(*ip) : ip->ihl * 4u;
	if (hlen > p->len - sizeof(struct ethhdr))
		hlen = sizeof(*ip);
	ip->check = 0;
	ip->check = htons((__u16)~fold(sum_bytes(0, ip, hlen)));
}

/* ---- builders --------------------------------------------------------------- */

static int parse_addr(const char *s, __u8 addr[16], int *family)
{
	*family = strchr(s, ':') ? 6 : 4;
	return inet_pton(*family == 6 ? AF_INET6 : AF_INET, s, addr) == 1 ? 0 : -1;
}

/* The upper-layer header and payload of s at l4; returns its length. */
static __u32 build_l4(__u8 *l4, const struct pkt_spec *s, __u8 proto)
{
	size_t plen = s->payload ? strlen(s->payload) : 0;
	__u32 hlen;

	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = (void *)l4;

		hlen = sizeof(*tcp) + (s->mss ? TCPOLEN_MSS : 0);
		memset(tcp, 0, hlen);
		tcp->source = htons(s->sport);
		tcp->dest = htons(s->dport);
		tcp->seq = htonl(s->seq);
		tcp->ack_seq = htonl(s->ack);
		tcp->doff = hlen / 4;
		l4[13] = s->flags;
		tcp->window = htons(64240);
		if (s->mss) {
			l4[20] = TCPOPT_MSS;
			l4[21] = TCPOLEN_MSS;
			put16(l4 + 22, 1460);
		}
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = (void *)l4;

		hlen = sizeof(*udp);
		udp->source = htons(s->sport);
		udp->dest = htons(s->dport);
		udp->len = htons((__u16)(hlen + plen));
		udp->check = 0;
	} else { /* ICMP or ICMPv6 echo request */
		struct icmphdr *icmp = (void *)l4;

		hlen = sizeof(*icmp);
		memset(icmp, 0, hlen);
		icmp->type = proto == IPPROTO_ICMP ? ICMP_ECHO : ICMPV6_ECHO_REQUEST;
		icmp->un.echo.id = htons(s->sport);
		icmp->un.echo.sequence = htons(1);
	}
	memcpy(l4 + hlen, s->payload ? s->payload : "", plen);
	return hlen + (__u32)plen;
}

static void build_arp(struct pkt *p, const __u8 *src, const __u8 *dst)
{
	struct arphdr *arp = (void *)(p->data + sizeof(struct ethhdr));
	__u8 *body = (__u8 *)(arp + 1);

	arp->ar_hrd = htons(ARPHRD_ETHER);
	arp->ar_pro = htons(ETH_P_IP);
	arp->ar_hln = ETH_ALEN;
	arp->ar_pln = 4;
	arp->ar_op = htons(ARPOP_REQUEST);
	memcpy(body, mac_src, ETH_ALEN);
	memcpy(body + ETH_ALEN, src, 4);
	memset(body + ETH_ALEN + 4, 0, ETH_ALEN);
	memcpy(body + 2 * ETH_ALEN + 4, dst, 4);
	p->len = sizeof(struct ethhdr) + sizeof(*arp) + 2 * (ETH_ALEN + 4);
}

/* An IPv6 authentication header (RFC 4302) before proto: its length field
 * counts 4-byte words less 2, unlike every other extension header's. */
static void build_auth(__u8 *ah, __u8 proto)
{
	ah[0] = proto;
	ah[1] = IPV6_AUTH_LEN / 4 - 2;
	memcpy(ah + 4, "\x00\x00\x10\x01", 4);	/* SPI */
	memcpy(ah + 8, "\x00\x00\x00\x01", 4);	/* sequence number */
	memset(ah + 12, 0xa5, IPV6_AUTH_LEN - 12);	/* ICV: not checked here */
}

int pkt_build(struct pkt *p, const struct pkt_spec *s)
{
	struct ethhdr *eth = (void *)p->data;
	__u8 src[16], dst[16], proto = s->proto ? s->proto : IPPROTO_TCP;
	int family, dfamily;
	__u32 l3 = sizeof(*eth), l4, l4_len;

	memset(p, 0, sizeof(*p));
	if (parse_addr(s->src, src, &family) || parse_addr(s->dst, dst, &dfamily) ||
	    family != dfamily || (s->payload && strlen(s->payload) > 256)) {
		fprintf(stderr, "pkt_build: bad spec %s -> %s\n", s->src, s->dst);
		return -1;
	}
	memcpy(eth->h_dest, s->eth_dst ? s->eth_dst : mac_dst, ETH_ALEN);
	memcpy(eth->h_source, mac_src, ETH_ALEN);
	if (s->arp) {
		eth->h_proto = htons(ETH_P_ARP);
		build_arp(p, src, dst);
		goto out;
	}
	if (family == 4) {
		struct iphdr *ip = (void *)(p->data + l3);
		__u32 ihl = sizeof(*ip) + (s->ip_options ? 4 : 0);

		eth->h_proto = htons(ETH_P_IP);
		l4 = l3 + ihl;
		l4_len = build_l4(p->data + l4, s, proto);
		ip->version = 4;
		ip->ihl = ihl / 4;
		ip->tos = 0x10;
		ip->tot_len = htons((__u16)(ihl + l4_len));
		ip->id = htons(0x5eed);
		ip->frag_off = htons(s->frag_off ? s->frag_off : IP_DF);
		ip->ttl = s->ttl ? s->ttl : 64;
		ip->protocol = proto;
		memcpy(&ip->saddr, src, 4);
		memcpy(&ip->daddr, dst, 4);
		if (s->ip_options) {
			__u8 *opt = (__u8 *)(ip + 1);

			opt[0] = opt[1] = opt[2] = IPOPT_NOOP;
			opt[3] = IPOPT_END;
		}
		p->len = l4 + l4_len;
	} else {
		struct ipv6hdr *ip6 = (void *)(p->data + l3);
		__u8 *ext = (__u8 *)(ip6 + 1);
		__u32 ext_len = s->v6_ext == PKT_V6_NO_EXT	  ? 0
				: s->v6_ext == PKT_V6_AUTH	  ? IPV6_AUTH_LEN
				: s->v6_ext == PKT_V6_HOPOPTS_AUTH ? IPV6_HOPOPTS16_LEN + IPV6_AUTH_LEN
								  : 8;

		eth->h_proto = htons(ETH_P_IPV6);
		l4 = l3 + sizeof(*ip6) + ext_len;
		l4_len = build_l4(p->data + l4, s, proto);
		ip6->version = 6;
		ip6->priority = 0;
		ip6->flow_lbl[0] = 0x0b; /* a non-zero flow label: must survive the rewrite */
		ip6->flow_lbl[1] = 0xee;
		ip6->flow_lbl[2] = 0xf0;
		ip6->payload_len = htons((__u16)(ext_len + l4_len));
		ip6->hop_limit = s->ttl ? s->ttl : 64;
		memcpy(&ip6->saddr, src, 16);
		memcpy(&ip6->daddr, dst, 16);
		if (s->v6_ext == PKT_V6_HOPOPTS) {
			ip6->nexthdr = NEXTHDR_HOP;
			ext[0] = proto;
			ext[1] = 0;	/* length in 8-byte units beyond the first */
			ext[2] = 1;	/* PadN option, 4 bytes of padding */
			ext[3] = 4;
		} else if (s->v6_ext == PKT_V6_FRAGMENT) {
			ip6->nexthdr = NEXTHDR_FRAGMENT;
			ext[0] = proto;
			put16(ext + 2, s->frag_off);
			memcpy(ext + 4, "\x00\x00\x5e\xed", 4);	/* identification */
		} else if (s->v6_ext == PKT_V6_AUTH) {
			ip6->nexthdr = NEXTHDR_AUTH;
			build_auth(ext, proto);
		} else if (s->v6_ext == PKT_V6_HOPOPTS_AUTH) {
			ip6->nexthdr = NEXTHDR_HOP;
			ext[0] = NEXTHDR_AUTH;
			ext[1] = 1;	/* 16 bytes */
			ext[2] = 1;	/* PadN option, 12 bytes of padding */
			ext[3] = 12;
			build_auth(ext + IPV6_HOPOPTS16_LEN, proto);
		} else {
			ip6->nexthdr = proto;
		}
		p->len = l4 + l4_len;
	}
	pkt_fix_csums(p);
out:
	if (s->eth_pad && p->len < ETH_ZLEN)
		p->len = ETH_ZLEN;	/* the bytes are already zero */
	if (s->ethertype)
		eth->h_proto = htons(s->ethertype);
	return 0;
}

/* ---- reading ---------------------------------------------------------------- */

const char *pkt_endpoint(const struct pkt *p, bool dst, char buf[PKT_EPSTRLEN])
{
	char addr[INET6_ADDRSTRLEN];
	struct pkt_view v;
	const __u8 *a, *port;

	if (!pkt_view(p, &v) || (v.proto != IPPROTO_TCP && v.proto != IPPROTO_UDP) ||
	    p->len < v.l4_off + 4) {
		snprintf(buf, PKT_EPSTRLEN, "?");
		return buf;
	}
	if (v.family == 4)
		a = p->data + v.l3_off + (dst ? offsetof(struct iphdr, daddr)
					      : offsetof(struct iphdr, saddr));
	else
		a = p->data + v.l3_off + (dst ? offsetof(struct ipv6hdr, daddr)
					      : offsetof(struct ipv6hdr, saddr));
	port = p->data + v.l4_off + (dst ? 2 : 0);
	inet_ntop(v.family == 4 ? AF_INET : AF_INET6, a, addr, sizeof(addr));
	snprintf(buf, PKT_EPSTRLEN, v.family == 4 ? "%s:%u" : "[%s]:%u", addr,
		 (unsigned int)port[0] << 8 | port[1]);
	return buf;
}

int pkt_split_endpoint(const char *ep, char *addr, __u16 *port)
{
	const char *colon = strrchr(ep, ':');
	size_t n;
	unsigned int v;

	if (!colon || sscanf(colon + 1, "%u", &v) != 1 || v > 65535)
		return -1;
	n = (size_t)(colon - ep);
	if (ep[0] == '[') {
		if (n < 2 || ep[n - 1] != ']')
			return -1;
		ep++;
		n -= 2;
	}
	if (n >= PKT_EPSTRLEN)
		return -1;
	memcpy(addr, ep, n);
	addr[n] = '\0';
	*port = (__u16)v;
	return 0;
}

long pkt_diff(const struct pkt *a, const struct pkt *b)
{
	__u32 n = a->len < b->len ? a->len : b->len;

	for (__u32 i = 0; i < n; i++)
		if (a->data[i] != b->data[i])
			return (long)i;
	return a->len == b->len ? -1 : (long)n;
}

static void clear_csums(struct pkt *p)
{
	struct pkt_view v;
	__u32 at;

	if (!pkt_view(p, &v))
		return;
	if (v.family == 4)
		put16(p->data + v.l3_off + offsetof(struct iphdr, check), 0);
	at = l4_check_off(&v);
	if (at + 2 <= p->len)
		put16(p->data + at, 0);
}

long pkt_diff_ignoring_csums(const struct pkt *a, const struct pkt *b)
{
	struct pkt ca = *a, cb = *b;

	clear_csums(&ca);
	clear_csums(&cb);
	return pkt_diff(&ca, &cb);
}

void pkt_dump(const char *title, const struct pkt *p, long mark)
{
	fprintf(stderr, "  %s (%u bytes):", title, p->len);
	for (__u32 i = 0; i < p->len; i++) {
		if (i % 16 == 0)
			fprintf(stderr, "\n    %04x:", i);
		fprintf(stderr, (long)i == mark ? " [%02x]" : " %02x", p->data[i]);
	}
	fprintf(stderr, "\n");
}

struct iphdr *pkt_ip4(struct pkt *p)
{
	const struct ethhdr *eth = (const void *)p->data;

	return eth->h_proto == htons(ETH_P_IP) ? (void *)(p->data + sizeof(*eth)) : NULL;
}

struct ipv6hdr *pkt_ip6(struct pkt *p)
{
	const struct ethhdr *eth = (const void *)p->data;

	return eth->h_proto == htons(ETH_P_IPV6) ? (void *)(p->data + sizeof(*eth)) : NULL;
}

struct tcphdr *pkt_tcp(struct pkt *p)
{
	struct pkt_view v;

	if (!pkt_view(p, &v) || v.proto != IPPROTO_TCP)
		return NULL;
	return (void *)(p->data + v.l4_off);
}
