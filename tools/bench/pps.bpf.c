// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * make bench-pps's instruments (driven by tools/bench/pps.c; BENCHMARKS.md,
 * "Packets per second through the gateway"):
 *
 * pps_gen   the packet generator, run by BPF_PROG_TEST_RUN in live-frames
 *           mode (BPF_F_TEST_XDP_LIVE_FRAMES) on the generator's veth: every
 *           run writes one client's 5-tuple, sequence numbers and flags into
 *           the frame and sends it (XDP_TX) to the gateway's device, the
 *           veth's peer. Frames are recycled without being reset, and the
 *           gateway's forwarding rewrote the last use's MACs and TTL (the
 *           skb was built on the same page): every run starts from the
 *           template, whole.
 * pps_sink  attached to the backends' devices and to the generator's: counts
 *           what arrives and drops it. During the handshake phase it also
 *           answers, as a TCP endpoint would: a backend answers a SYN with a
 *           SYN-ACK, the client side answers a SYN-ACK with the ACK, both
 *           sent back through the gateway. So every flow is
 *           confirmed through the real data plane (tcpshift's flow
 *           lifecycle, conntrack's ESTABLISHED) with sequence numbers that
 *           the generator knows: isn_client() and isn_backend() of the
 *           client's address and port.
 * pps_fwd   plain XDP forwarding without NAT, the XDP ceiling: FIB lookup,
 *           TTL, MACs, redirect through a devmap.
 *
 * IPv4 only; headers without options (the generator makes none).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "pps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP	0x0800
#define AF_INET		2
#define IPPROTO_TCP_	6
#define TCPF_FIN	0x01
#define TCPF_SYN	0x02
#define TCPF_ACK	0x10
#define TCP_FLAGS_OFF	13	/* the flags byte in the TCP header */
#define ETH_ALEN	6

/* Set by userspace through the skeleton's mmap of .bss. */
__u8 tmpl[PPS_FRAME_LEN];	/* Ethernet, IPv4, TCP headers */
__u32 gen_next;		/* frames sent so far in this phase */
__u32 gen_first;	/* the phase's first flow */
__u32 gen_flows;	/* established: flow gen_first + n % gen_flows; 0: a new flow per frame */
__u32 gen_syn;		/* send SYNs (else ACKs of the established flows) */
__u32 gen_direct;	/* to the backends' own addresses (plain forwarding), not the VIP */
__be32 vip;
__be16 vip_port;
__u32 vips;		/* flow f goes to VIP vip + pps_vip_index(f, vips) (1: vip itself) */
__be32 backend_addr[2];
__u32 reflex;		/* the sinks answer SYNs and SYN-ACKs */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PPS_PLACES * PPS_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} sink_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} fwd_ports SEC(".maps");

struct pkt {
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;
};

/* Ethernet, IPv4 without options, TCP without options: the only frames the
 * generator and the reflexes make. */
static __always_inline int parse(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	p->eth = data;
	p->ip = (void *)(p->eth + 1);
	p->tcp = (void *)(p->ip + 1);
	if ((void *)(p->tcp + 1) > end || p->eth->h_proto != bpf_htons(ETH_P_IP) ||
	    p->ip->ihl != 5 || p->ip->protocol != IPPROTO_TCP_ || p->tcp->doff != 5)
		return -1;
	return 0;
}

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Both checksums from scratch: 10 + 16 words. */
static __always_inline void checksums(struct pkt *p)
{
	__u16 *w = (__u16 *)p->ip;
	__u32 sum = 0;

	p->ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	p->ip->check = fold(sum);

	w = (__u16 *)p->tcp;
	p->tcp->check = 0;
	sum = (p->ip->saddr & 0xffff) + (p->ip->saddr >> 16) + (p->ip->daddr & 0xffff) +
	      (p->ip->daddr >> 16) + bpf_htons(IPPROTO_TCP_) + bpf_htons(sizeof(struct tcphdr));
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	p->tcp->check = fold(sum);
}

static __always_inline void set_tcp(struct pkt *p, __u32 seq, __u32 ack, __u8 flags)
{
	p->tcp->seq = bpf_htonl(seq);
	p->tcp->ack_seq = bpf_htonl(ack);
	((__u8 *)p->tcp)[TCP_FLAGS_OFF] = flags;
	p->tcp->window = bpf_htons(65535);
}

/* ---- the generator ---------------------------------------------------------- */

SEC("xdp")
int pps_gen(struct xdp_md *ctx)
{
	__u32 n = gen_next++, f, addr, isn;
	struct pkt p;
	__u16 port;

	if (parse(ctx, &p))
		return XDP_ABORTED;
	__builtin_memcpy(p.eth, tmpl, PPS_FRAME_LEN);
	f = gen_flows ? gen_first + n % gen_flows : gen_first + n;
	addr = pps_client_addr(f);
	port = pps_client_port(f);
	isn = pps_isn_client(addr, port);
	p.ip->saddr = bpf_htonl(addr);
	p.ip->daddr = gen_direct ? backend_addr[f & 1]
				 : bpf_htonl(bpf_ntohl(vip) + pps_vip_index(f, vips));
	p.tcp->source = bpf_htons(port);
	p.tcp->dest = vip_port;
	if (gen_syn)
		set_tcp(&p, isn, 0, TCPF_SYN);
	else
		set_tcp(&p, isn + 1, pps_isn_backend(addr, port) + 1, TCPF_ACK);
	checksums(&p);
	return XDP_TX;
}

/* ---- the sinks -------------------------------------------------------------- */

static __always_inline void count(__u32 place, __u32 kind)
{
	__u32 key = place * PPS_KINDS + kind;
	__u64 *c = bpf_map_lookup_elem(&sink_counts, &key);

	if (c)
		(*c)++;
}

/* Send the packet back where it came from, as its receiver's answer. Through
 * a redirect to the device itself, not XDP_TX: veth kicks its peer's NAPI
 * after XDP_TX only when the peer has an XDP program (the gateway's devices
 * have GRO instead), and after a redirect always. */
static __always_inline int answer(struct xdp_md *ctx, struct pkt *p, __u32 seq, __u32 ack,
				  __u8 flags)
{
	__u8 mac[ETH_ALEN];
	__be32 a = p->ip->saddr;
	__be16 port = p->tcp->source;

	__builtin_memcpy(mac, p->eth->h_source, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, p->eth->h_dest, ETH_ALEN);
	__builtin_memcpy(p->eth->h_dest, mac, ETH_ALEN);
	p->ip->saddr = p->ip->daddr;
	p->ip->daddr = a;
	p->ip->ttl = 64;
	p->tcp->source = p->tcp->dest;
	p->tcp->dest = port;
	set_tcp(p, seq, ack, flags);
	checksums(p);
	return bpf_redirect(ctx->ingress_ifindex, 0);
}

SEC("xdp")
int pps_sink(struct xdp_md *ctx)
{
	__u32 place, kind, caddr;
	__u8 flags;
	struct pkt p;

	if (parse(ctx, &p)) {
		count(PPS_PLACE_OTHER, PPS_KIND_OTHER);
		return XDP_DROP;
	}
	place = pps_place(bpf_ntohl(p.ip->daddr));
	flags = ((__u8 *)p.tcp)[TCP_FLAGS_OFF];
	if ((flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN)
		kind = PPS_KIND_SYN;
	else if ((flags & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK))
		kind = PPS_KIND_SYNACK;
	else if (flags & TCPF_ACK)
		kind = PPS_KIND_ACK;
	else
		kind = PPS_KIND_OTHER;
	count(place, kind);
	if (!reflex)
		return XDP_DROP;
	if (kind == PPS_KIND_SYN && place != PPS_PLACE_CLIENT) {
		caddr = bpf_ntohl(p.ip->saddr);
		return answer(ctx, &p, pps_isn_backend(caddr, bpf_ntohs(p.tcp->source)),
			      bpf_ntohl(p.tcp->seq) + 1, TCPF_SYN | TCPF_ACK);
	}
	if (kind == PPS_KIND_SYNACK && place == PPS_PLACE_CLIENT)
		return answer(ctx, &p, bpf_ntohl(p.tcp->ack_seq), bpf_ntohl(p.tcp->seq) + 1, TCPF_ACK);
	return XDP_DROP;
}

/* ---- plain XDP forwarding ------------------------------------------------------ */

SEC("xdp")
int pps_fwd(struct xdp_md *ctx)
{
	struct bpf_fib_lookup fib = {};
	__u32 sum;
	struct pkt p;

	if (parse(ctx, &p) || p.ip->ttl <= 1)
		return XDP_PASS;
	fib.family = AF_INET;
	fib.tos = p.ip->tos;
	fib.l4_protocol = p.ip->protocol;
	fib.tot_len = bpf_ntohs(p.ip->tot_len);
	fib.ipv4_src = p.ip->saddr;
	fib.ipv4_dst = p.ip->daddr;
	fib.ifindex = ctx->ingress_ifindex;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	/* TTL - 1, the header checksum adjusted (RFC 1624) */
	sum = (__u32)p.ip->check + bpf_htons(0x0100);
	p.ip->check = (__u16)(sum + (sum >= 0xffff));
	p.ip->ttl--;
	__builtin_memcpy(p.eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(p.eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect_map(&fwd_ports, fib.ifindex, 0);
}
