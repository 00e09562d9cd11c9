/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What make bench-pps's generator and sinks (tools/bench/pps.bpf.c) and its
 * driver (tools/bench/pps.c) agree on: the flows' addresses, ports and
 * initial sequence numbers, the sinks' counters, and the one piece of code
 * that writes a generated frame, shared by the BPF generator (live frames)
 * and the driver's AF_PACKET sender.
 */
#ifndef TCPSHIFT_PPS_H
#define TCPSHIFT_PPS_H

#ifdef __VMLINUX_H__
#define pps_htons bpf_htons
#define pps_htonl bpf_htonl
#define pps_ntohl bpf_ntohl
#else
#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <arpa/inet.h>
#define pps_htons htons
#define pps_htonl htonl
#define pps_ntohl ntohl
#endif

/* The frames: Ethernet, IPv4 and TCP headers without options, then a
 * payload of zeros (the connections' request and response). */
#define PPS_FRAME_LEN		54
#define PPS_REQUEST_LEN		64	/* the client's request, on its handshake ACK */
#define PPS_RESPONSE_LEN	128	/* the backend's response */

#define PPS_TCP_FIN		0x01
#define PPS_TCP_SYN		0x02
#define PPS_TCP_PSH		0x08
#define PPS_TCP_ACK		0x10
#define PPS_TCP_FLAGS_OFF	13	/* the flags byte in the TCP header */

/* Clients: flow f is 198.18.128.0/17 address 1 + f % PPS_CLIENT_ADDRS, port
 * 1024 + f / PPS_CLIENT_ADDRS: distinct for 2^31 flows. The gateway routes
 * the prefix to the generator's side through one neighbour. */
#define PPS_CLIENT_NET		0xc6128000u	/* 198.18.128.0 */
#define PPS_CLIENT_PREFIX	17
#define PPS_CLIENT_ADDRS	32512u

static inline __u32 pps_client_addr(__u32 f)
{
	return PPS_CLIENT_NET + 1 + f % PPS_CLIENT_ADDRS;
}

static inline __u16 pps_client_port(__u32 f)
{
	return 1024 + f / PPS_CLIENT_ADDRS;
}

/* The VIP of flow f among n consecutive ones (make bench-scale): a hash of
 * f, so that consecutive flows land on services spread over all n. */
static inline __u32 pps_vip_index(__u32 f, __u32 n)
{
	f ^= f >> 16;
	f *= 0x7feb352du;
	f ^= f >> 15;
	f *= 0x846ca68bu;
	f ^= f >> 16;
	return n > 1 ? f % n : 0;
}

/* Initial sequence numbers, functions of the client's address and port, so
 * that the generator can acknowledge a SYN-ACK it never saw. */
static inline __u32 pps_isn_client(__u32 addr, __u16 port)
{
	return (addr ^ ((__u32)port << 16)) * 2654435761u;
}

static inline __u32 pps_isn_backend(__u32 addr, __u16 port)
{
	return pps_isn_client(addr, port) ^ 0x5a5a5a5au;
}

/* The sinks count per place (which side received, by destination address:
 * the clients' prefix, or the third byte of a backend's 198.18.B.x) and kind
 * of segment. */
enum {
	PPS_PLACE_CLIENT,
	PPS_PLACE_B1,		/* 198.18.2.0/24 */
	PPS_PLACE_B2,		/* 198.18.3.0/24 */
	PPS_PLACE_OTHER,
	PPS_PLACES,
};

enum {
	PPS_KIND_SYN,
	PPS_KIND_SYNACK,
	PPS_KIND_ACK,		/* ACK without SYN, FIN or payload */
	PPS_KIND_DATA,		/* ACK with a payload, without FIN */
	PPS_KIND_FIN,		/* FIN with ACK */
	PPS_KIND_OTHER,		/* not TCP/IPv4 without options, no ACK, or an answer that failed */
	PPS_KINDS,
};

/* What the sinks answer (pps.bpf.c, "the sinks"). */
enum {
	PPS_REFLEX_NONE,	/* count and drop */
	PPS_REFLEX_HANDSHAKE,	/* SYN -> SYN-ACK at a backend, SYN-ACK -> ACK at the client */
	PPS_REFLEX_CONN,	/* whole connections: request, response, FINs both ways */
};

static inline __u32 pps_place(__u32 daddr)
{
	if ((daddr >> (32 - PPS_CLIENT_PREFIX)) == (PPS_CLIENT_NET >> (32 - PPS_CLIENT_PREFIX)))
		return PPS_PLACE_CLIENT;
	if ((daddr & 0xffffff00u) == 0xc6120200u)
		return PPS_PLACE_B1;
	if ((daddr & 0xffffff00u) == 0xc6120300u)
		return PPS_PLACE_B2;
	return PPS_PLACE_OTHER;
}

/* What the generator sends: its frame n is flow first + n % flows (flows 0:
 * flow first + n, a new flow per frame), a SYN or the ACK of the flow's
 * handshake, to the VIP (vip + pps_vip_index over vips) or, direct, to a
 * backend's own address. Network byte order where the type says so. */
struct pps_gen {
	__u32 next;		/* frames sent so far in this phase */
	__u32 first;
	__u32 flows;
	__u32 syn;
	__u32 direct;
	__u32 vips;
	__be32 vip;
	__be32 backend_addr[2];
	__be16 vip_port;
	__u16 pad;
};

/* The checksum loops fully unrolled for the BPF verifier (clang); gcc builds
 * the driver. */
#ifdef __clang__
#define PPS_UNROLL _Pragma("unroll")
#else
#define PPS_UNROLL
#endif

static inline __u16 pps_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Both checksums from scratch (10 + 10 words of headers); the payload of
 * payload_len bytes is zeros, so only its length counts (pseudo-header). */
static inline void pps_checksums(struct iphdr *ip, struct tcphdr *tcp, __u32 payload_len)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

	ip->check = 0;
	PPS_UNROLL
	for (int i = 0; i < 10; i++)
		sum += w[i];
	ip->check = pps_fold(sum);

	w = (__u16 *)tcp;
	tcp->check = 0;
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
	      pps_htons(6 /* TCP */) + pps_htons(sizeof(struct tcphdr) + payload_len);
	PPS_UNROLL
	for (int i = 0; i < 10; i++)
		sum += w[i];
	tcp->check = pps_fold(sum);
}

static inline void pps_set_tcp(struct tcphdr *tcp, __u32 seq, __u32 ack, __u8 flags)
{
	tcp->seq = pps_htonl(seq);
	tcp->ack_seq = pps_htonl(ack);
	((__u8 *)tcp)[PPS_TCP_FLAGS_OFF] = flags;
	tcp->window = pps_htons(65535);
}

/* Frame n of the generator into frame, which holds the template (MACs, IPv4
 * and TCP headers of PPS_FRAME_LEN bytes). */
static inline void pps_gen_frame(__u8 *frame, const struct pps_gen *g, __u32 n)
{
	struct iphdr *ip = (struct iphdr *)(frame + sizeof(struct ethhdr));
	struct tcphdr *tcp = (struct tcphdr *)(ip + 1);
	__u32 f = g->flows ? g->first + n % g->flows : g->first + n;
	__u32 addr = pps_client_addr(f), isn;
	__u16 port = pps_client_port(f);

	isn = pps_isn_client(addr, port);
	ip->saddr = pps_htonl(addr);
	ip->daddr = g->direct ? g->backend_addr[f & 1]
			      : pps_htonl(pps_ntohl(g->vip) + pps_vip_index(f, g->vips));
	tcp->source = pps_htons(port);
	tcp->dest = g->vip_port;
	if (g->syn)
		pps_set_tcp(tcp, isn, 0, PPS_TCP_SYN);
	else
		pps_set_tcp(tcp, isn + 1, pps_isn_backend(addr, port) + 1, PPS_TCP_ACK);
	pps_checksums(ip, tcp, 0);
}

#endif
