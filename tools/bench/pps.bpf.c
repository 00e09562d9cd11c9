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
 *           what arrives, per kind of segment, and drops it, or answers it
 *           as a TCP endpoint would (reflex), sent back through the
 *           gateway with sequence numbers that follow from the segment it
 *           answers (the ISNs are isn_client() and isn_backend() of the
 *           client's address and port, so the generator knows them):
 *           PPS_REFLEX_HANDSHAKE: a backend answers a SYN with a SYN-ACK,
 *           the client side a SYN-ACK with the ACK; every flow is confirmed
 *           through the real data plane (tcpshift's flow lifecycle,
 *           conntrack's ESTABLISHED).
 *           PPS_REFLEX_CONN: whole connections, seven segments: SYN (the
 *           generator), SYN-ACK, the client's ACK carrying its request
 *           (PPS_REQUEST_LEN bytes), the backend's response
 *           (PPS_RESPONSE_LEN), the client's FIN, the backend's FIN, the
 *           client's last ACK. In the baseline the gateway's device runs
 *           this program too and answers as the backend.
 * pps_relay the AF_PACKET sender's relay onto the generator's device (below).
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
#define ETH_ALEN	6

/* Set by userspace through the skeleton's mmap of .bss. */
__u8 tmpl[PPS_FRAME_LEN];	/* Ethernet, IPv4, TCP headers */
struct pps_gen gen;
__u32 reflex;		/* PPS_REFLEX_*: what the sinks answer */
__u32 relay_to;		/* pps_relay's target: the generator's device */

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

/* ---- the generator ---------------------------------------------------------- */

SEC("xdp")
int pps_gen(struct xdp_md *ctx)
{
	struct pkt p;

	if (parse(ctx, &p))
		return XDP_ABORTED;
	__builtin_memcpy(p.eth, tmpl, PPS_FRAME_LEN);
	pps_gen_frame((__u8 *)p.eth, &gen, gen.next++);
	return XDP_TX;
}

/* pps_relay: on the peer of the AF_PACKET sender's own veth, passes each frame
 * on to the generator's device by a redirect, so that the gateway receives
 * XDP frames as from pps_gen (an skb sent straight to the gateway's device
 * would be copied there into an XDP frame whenever it has an XDP program:
 * a cost of veth's, not the gateway's). */
SEC("xdp")
int pps_relay(struct xdp_md *ctx)
{
	return bpf_redirect(relay_to, 0);
}

/* ---- the sinks -------------------------------------------------------------- */

/* Room for the headers at the frame's start (after a resize, before they are
 * written there). */
static __always_inline int parse_room(struct xdp_md *ctx, struct pkt *p)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;

	p->eth = data;
	p->ip = (void *)(p->eth + 1);
	p->tcp = (void *)(p->ip + 1);
	return (void *)(p->tcp + 1) > end ? -1 : 0;
}

static __always_inline void count(__u32 place, __u32 kind)
{
	__u32 key = place * PPS_KINDS + kind;
	__u64 *c = bpf_map_lookup_elem(&sink_counts, &key);

	if (c)
		(*c)++;
}

/* Zero the payload of a frame resized to len bytes of it (constant sizes for
 * the verifier). */
static __always_inline int zero_payload(struct pkt *p, void *end, __u32 len)
{
	__u8 *payload = (__u8 *)(p->tcp + 1);

	if (len == PPS_REQUEST_LEN) {
		if (payload + PPS_REQUEST_LEN > (__u8 *)end)
			return -1;
		__builtin_memset(payload, 0, PPS_REQUEST_LEN);
	} else if (len == PPS_RESPONSE_LEN) {
		if (payload + PPS_RESPONSE_LEN > (__u8 *)end)
			return -1;
		__builtin_memset(payload, 0, PPS_RESPONSE_LEN);
	}
	return 0;
}

/* Resize the frame to carry len bytes of payload (zeros) after its headers.
 * A longer frame grows at the head, not at the tail: a frame that veth made
 * from an skb has little tailroom, and XDP_PACKET_HEADROOM at the head; the
 * headers move to the new start. */
static __always_inline int resize(struct xdp_md *ctx, struct pkt *p, __u32 old_len, __u32 len)
{
	int delta = (int)len - (int)old_len;
	__u8 hdr[PPS_FRAME_LEN];

	if (delta > 0) {
		__builtin_memcpy(hdr, p->eth, PPS_FRAME_LEN);
		if (bpf_xdp_adjust_head(ctx, -delta) || parse_room(ctx, p))
			return -1;
		__builtin_memcpy(p->eth, hdr, PPS_FRAME_LEN);
	} else if (delta < 0) {
		if (bpf_xdp_adjust_tail(ctx, delta) || parse(ctx, p))
			return -1;
	}
	return zero_payload(p, (void *)(long)ctx->data_end, len);
}

/* Send the packet back where it came from, as its receiver's answer with
 * len bytes of payload (zeros) in place of its old_len. Through a redirect to the device itself, not
 * XDP_TX: veth kicks its peer's NAPI after XDP_TX only when the peer has an
 * XDP program (the gateway's devices have GRO instead), and after a
 * redirect always. An answer that cannot be made is counted (OTHER), so its
 * connection shows as not completed. */
static __always_inline int answer(struct xdp_md *ctx, struct pkt *p, __u32 old_len, __u32 seq,
				  __u32 ack, __u8 flags, __u32 len)
{
	__u8 mac[ETH_ALEN];
	__be32 a;
	__be16 port;

	if (resize(ctx, p, old_len, len)) {
		count(PPS_PLACE_OTHER, PPS_KIND_OTHER);
		return XDP_DROP;
	}
	a = p->ip->saddr;
	port = p->tcp->source;
	__builtin_memcpy(mac, p->eth->h_source, ETH_ALEN);
	__builtin_memcpy(p->eth->h_source, p->eth->h_dest, ETH_ALEN);
	__builtin_memcpy(p->eth->h_dest, mac, ETH_ALEN);
	p->ip->saddr = p->ip->daddr;
	p->ip->daddr = a;
	p->ip->ttl = 64;
	p->ip->tot_len = bpf_htons(sizeof(struct iphdr) + sizeof(struct tcphdr) + len);
	p->tcp->source = p->tcp->dest;
	p->tcp->dest = port;
	pps_set_tcp(p->tcp, seq, ack, flags);
	pps_checksums(p->ip, p->tcp, len);
	return bpf_redirect(ctx->ingress_ifindex, 0);
}

SEC("xdp")
int pps_sink(struct xdp_md *ctx)
{
	__u32 place, kind, seq, ack, len;
	__u8 flags;
	struct pkt p;

	if (parse(ctx, &p)) {
		count(PPS_PLACE_OTHER, PPS_KIND_OTHER);
		return XDP_DROP;
	}
	place = pps_place(bpf_ntohl(p.ip->daddr));
	flags = ((__u8 *)p.tcp)[PPS_TCP_FLAGS_OFF];
	len = bpf_ntohs(p.ip->tot_len) - sizeof(struct iphdr) - sizeof(struct tcphdr);
	if ((flags & (PPS_TCP_SYN | PPS_TCP_ACK)) == PPS_TCP_SYN)
		kind = PPS_KIND_SYN;
	else if (flags & PPS_TCP_SYN)
		kind = flags & PPS_TCP_ACK ? PPS_KIND_SYNACK : PPS_KIND_OTHER;
	else if (!(flags & PPS_TCP_ACK))
		kind = PPS_KIND_OTHER;
	else if (flags & PPS_TCP_FIN)
		kind = PPS_KIND_FIN;
	else
		kind = len ? PPS_KIND_DATA : PPS_KIND_ACK;
	count(place, kind);
	if (reflex == PPS_REFLEX_NONE)
		return XDP_DROP;
	/* what the answer acknowledges: this segment whole */
	seq = bpf_ntohl(p.tcp->seq);
	ack = bpf_ntohl(p.tcp->ack_seq);
	if (place != PPS_PLACE_CLIENT) {
		/* a backend (in the baseline, the gateway's device as one) */
		if (kind == PPS_KIND_SYN)
			return answer(ctx, &p, len, pps_isn_backend(bpf_ntohl(p.ip->saddr),
							       bpf_ntohs(p.tcp->source)),
				      seq + 1, PPS_TCP_SYN | PPS_TCP_ACK, 0);
		if (reflex != PPS_REFLEX_CONN)
			return XDP_DROP;
		if (kind == PPS_KIND_DATA)	/* the request: the response */
			return answer(ctx, &p, len, ack, seq + len, PPS_TCP_PSH | PPS_TCP_ACK,
				      PPS_RESPONSE_LEN);
		if (kind == PPS_KIND_FIN)	/* the client closed: close too */
			return answer(ctx, &p, len, ack, seq + len + 1, PPS_TCP_FIN | PPS_TCP_ACK, 0);
		return XDP_DROP;		/* the last ACK */
	}
	if (kind == PPS_KIND_SYNACK)
		return reflex == PPS_REFLEX_CONN
			       ? answer(ctx, &p, len, ack, seq + 1, PPS_TCP_PSH | PPS_TCP_ACK,
					PPS_REQUEST_LEN)
			       : answer(ctx, &p, len, ack, seq + 1, PPS_TCP_ACK, 0);
	if (reflex != PPS_REFLEX_CONN)
		return XDP_DROP;
	if (kind == PPS_KIND_DATA)	/* the response: close */
		return answer(ctx, &p, len, ack, seq + len, PPS_TCP_FIN | PPS_TCP_ACK, 0);
	if (kind == PPS_KIND_FIN)	/* the backend's FIN: the last ACK */
		return answer(ctx, &p, len, ack, seq + len + 1, PPS_TCP_ACK, 0);
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
