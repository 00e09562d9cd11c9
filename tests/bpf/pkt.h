/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Packet builders for the bpf tests: Ethernet + IPv4/IPv6 + TCP (or UDP, ICMP,
 * ARP) with correct IP and upper-layer checksums, and an independent reader
 * that checks the checksums of what the program wrote.
 *
 * A packet is described by a struct pkt_spec; the builder is deterministic, so
 * the expected output of a rewrite is the same spec with the destination (or
 * source) replaced, built again. Malformed packets are built valid and then
 * broken with the accessors below.
 */
#ifndef TS_TEST_PKT_H
#define TS_TEST_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <arpa/inet.h> /* before the UAPI headers: libc-compat keeps them apart */
#include <linux/types.h>

#define PKT_MAX		512
#define PKT_EPSTRLEN	64	/* "[IPv6 address]:port" */

/* TCP flags, byte 13 of the header (RFC 9293). linux/tcp.h only has them as
 * big-endian words or bitfields. */
enum pkt_tcp_flag {
	PKT_FIN	= 0x01,
	PKT_SYN	= 0x02,
	PKT_RST	= 0x04,
	PKT_PSH	= 0x08,
	PKT_ACK	= 0x10,
};

enum pkt_v6_ext {
	PKT_V6_NO_EXT = 0,
	PKT_V6_HOPOPTS,		/* an 8-byte hop-by-hop header before the L4 header */
	PKT_V6_FRAGMENT,	/* an 8-byte fragment header, fields from frag_off */
	PKT_V6_AUTH,		/* a 24-byte authentication header (12-byte ICV) */
	PKT_V6_HOPOPTS_AUTH,	/* a 16-byte hop-by-hop header, then that AH */
};

struct pkt_spec {
	const char	*src;		/* IPv4 or IPv6 literal: the family follows */
	const char	*dst;
	__u16		sport;		/* host byte order */
	__u16		dport;
	__u8		flags;		/* enum pkt_tcp_flag */
	__u8		proto;		/* 0 (TCP), IPPROTO_UDP, IPPROTO_ICMP(V6) */
	bool		mss;		/* TCP MSS option, as in a SYN */
	bool		ip_options;	/* IPv4: 4 bytes of options (ihl 6) */
	bool		eth_pad;	/* pad the frame with zeros to the Ethernet minimum */
	bool		arp;		/* an ARP request from src for dst instead of IP */
	enum pkt_v6_ext	v6_ext;
	/* IPv4: frag_off field (IP_MF | offset in 8-byte units), 0 means DF;
	 * IPv6 fragment header: offset in 8-byte units << 3 | M bit */
	__u16		frag_off;
	__u16		ethertype;	/* 0: from the family; else written over it */
	/* destination MAC (6 bytes); NULL: 02:00:00:00:00:01, the address of
	 * the devices the bpf tests run packets on (PACKET_HOST there) */
	const __u8	*eth_dst;
	__u8		ttl;		/* IPv4 TTL or IPv6 hop limit; 0: 64 */
	__u32		seq;
	__u32		ack;
	const char	*payload;	/* NUL-terminated, NULL for none */
};

struct pkt {
	__u8	data[PKT_MAX];
	__u32	len;
};

/* Where the headers of a packet are, as read by the test (not by the program). */
struct pkt_view {
	int	family;		/* 4, 6, or 0: not IP */
	__u8	proto;		/* upper-layer protocol */
	__u32	l3_off;
	__u32	l4_off;
	__u32	l4_len;		/* from the IP length fields */
	__u32	alen;		/* address length: 4 or 16 */
};

/* Build s into p. Returns 0, or -1 (and prints why) for a spec it cannot build. */
int pkt_build(struct pkt *p, const struct pkt_spec *s);

/* Read the headers of p; false if it is not IPv4/IPv6 or is truncated. */
bool pkt_view(const struct pkt *p, struct pkt_view *v);
/* The IPv4 header checksum of p verifies (true for IPv6). */
bool pkt_ip_csum_ok(const struct pkt *p);
/* The TCP/UDP/ICMP checksum of p verifies, over the right pseudo-header. */
bool pkt_l4_csum_ok(const struct pkt *p);
/* Recompute every checksum of p (after a deliberate change). */
void pkt_fix_csums(struct pkt *p);
/* Leave only the pseudo-header's sum in the L4 checksum field, as a sender
 * whose device is to finish the checksum does (CHECKSUM_PARTIAL). */
void pkt_partial_csum(struct pkt *p);
/* Recompute only the IPv4 header checksum, whatever ihl and tot_len say. */
void pkt_fix_ip_csum(struct pkt *p);

/* "addr:port" of the destination (dst) or source of a TCP/UDP packet;
 * "?" when it has none. */
const char *pkt_endpoint(const struct pkt *p, bool dst, char buf[PKT_EPSTRLEN]);
/* Split "198.18.2.11:8008" or "[2001:2::1]:8008" into address text and port;
 * addr must hold PKT_EPSTRLEN bytes. Returns 0 or -1. */
int pkt_split_endpoint(const char *ep, char *addr, __u16 *port);

/* Offset of the first byte where a and b differ, ignoring the IPv4 header
 * checksum and the L4 checksum (check those with pkt_*_csum_ok); -1 if equal. */
long pkt_diff_ignoring_csums(const struct pkt *a, const struct pkt *b);
/* Offset of the first differing byte (or of the end of the shorter); -1 if equal. */
long pkt_diff(const struct pkt *a, const struct pkt *b);
/* Hex dump of p to stderr, marking offset mark (-1: none). */
void pkt_dump(const char *title, const struct pkt *p, long mark);

/* Header accessors for breaking packets on purpose (NULL if absent). */
struct iphdr *pkt_ip4(struct pkt *p);
struct ipv6hdr *pkt_ip6(struct pkt *p);
struct tcphdr *pkt_tcp(struct pkt *p);

#endif /* TS_TEST_PKT_H */
