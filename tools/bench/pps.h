/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What make bench-pps's generator and sinks (tools/bench/pps.bpf.c) and its
 * driver (tools/bench/pps.c) agree on: the flows' addresses, ports and
 * initial sequence numbers, and the sinks' counters.
 */
#ifndef TCPSHIFT_PPS_H
#define TCPSHIFT_PPS_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* The frames: Ethernet, IPv4 and TCP headers without options. */
#define PPS_FRAME_LEN		54

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
	PPS_KIND_ACK,		/* any other segment with ACK */
	PPS_KIND_OTHER,		/* not TCP/IPv4 without options, or no ACK */
	PPS_KINDS,
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

#endif
