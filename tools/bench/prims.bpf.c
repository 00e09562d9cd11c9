// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The microbenchmark's instruments (tools/bench/microbench.c), never attached
 * anywhere:
 *
 * wrap4, wrap6   reset the packet's Ethernet, IP and TCP headers from a template, give
 *                it a fresh or rotating client 5-tuple if asked, and tail-call
 *                jmp[0] (the real tcpshift program, or the empty one);
 *                wrap4_xdp, wrap6_xdp the same for XDP programs (jmp_xdp[0]). With
 *                BPF_PROG_TEST_RUN's repeat the same skb runs again and again,
 *                so without the reset a rewritten packet would no longer be the
 *                case measured (its destination is a backend after the first
 *                run), and a SYN would be a new flow only once.
 *
 * p_*            "parse + one primitive" programs, to split the data plane's
 *                per-packet time into its parts. Each works on maps of the
 *                same shape as tcpshift's (key and value sizes), declared here
 *                so that this file depends on no data plane internals.
 *
 * plain_redirect plain XDP forwarding without NAT, the ceiling of an XDP
 *                forwarder: parse, bpf_fib_lookup, TTL, MACs, a redirect
 *                through a devmap (what pps.bpf.c's pps_fwd does on the
 *                gateway of `make bench-pps`), so that tcpshift's XDP program
 *                is measured against it in the same run.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "tcpshift.h"
#include "tcpshift_hash.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define IP_MF		0x2000
#define IP_OFFSET	0x1FFF
#define ETH_HLEN_	14
#define PULL_LEN	(ETH_HLEN_ + 60 + 20)
#define TMPL4_LEN	40	/* IPv4 header without options + TCP header */
#define TMPL6_LEN	60	/* IPv6 header + TCP header */
#define TUPLE_PORTS	64000	/* client ports 1024..65023 per client address */

/* ---- wrappers ------------------------------------------------------------- */

/* Set by userspace through the skeleton's mmap of .bss. */
__u8 tmpl_eth[ETH_HLEN_];	/* fib forwarding rewrites the MACs */
__u8 tmpl4[TMPL4_LEN];
__u8 tmpl6[TMPL6_LEN];
__u32 counter;		/* runs so far, advanced by every wrapped run */
__u32 tuple_mod;	/* 0: keep the template's tuple; else tuple base + counter % mod */
__u32 tuple_base;
__u32 patch_dst;	/* the client is the destination (a reply) */
__u32 tuple_addrs;	/* 0: client i as below; else address i % tuple_addrs, port
			 * 1024 + i / tuple_addrs (consecutive clients on other hosts) */
__u32 ins_counter;	/* fresh keys of the p_ins_* programs */
__u32 vip_mod;		/* 0: keep the template's destination; else (IPv4, client ->
			 * VIP) its last two bytes become ((i - base) % vip_mod) *
			 * vip_stride: client i's packets go to a service of its own;
			 * with patch_dst, the source becomes that service's backend */
__u32 vip_stride;

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jmp SEC(".maps");

/* Client i: address ...64+hi.lo (IPv4 bytes 2-3, IPv6 bytes 14-15) and port
 * 1024 + i % TUPLE_PORTS (or as tuple_addrs says). */
static __always_inline void patch_tuple(__u8 *addr_lo, __u8 *port, __u32 i)
{
	__u32 hi = i / TUPLE_PORTS, p = 1024 + i % TUPLE_PORTS;

	if (tuple_addrs) {
		hi = i % tuple_addrs;
		p = 1024 + i / tuple_addrs;
	}

	addr_lo[0] = 64 + (__u8)(hi >> 8);
	addr_lo[1] = (__u8)hi;
	port[0] = (__u8)(p >> 8);
	port[1] = (__u8)p;
}

/* RFC 1624: the checksum at check after a 16-bit word went from old to new
 * (words as they are in the packet: the arithmetic is the same either way). */
static __always_inline void csum_patch(__u8 *check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*(__u16 *)check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	*(__u16 *)check = (__u16)~sum;
}

/* patch_tuple, keeping the checksums right: the IPv4 header's (ip_check,
 * or NULL) and the TCP one (the data plane checks a SYN's before pinning). */
static __always_inline void patch_tuple_csum(__u8 *addr_lo, __u8 *port, __u32 i, __u8 *ip_check,
					     __u8 *tcp_check)
{
	__u16 old_addr = *(__u16 *)addr_lo, old_port = *(__u16 *)port;

	patch_tuple(addr_lo, port, i);
	if (ip_check)
		csum_patch(ip_check, old_addr, *(__u16 *)addr_lo);
	csum_patch(tcp_check, old_addr, *(__u16 *)addr_lo);
	csum_patch(tcp_check, old_port, *(__u16 *)port);
}

/* The wrappers' work on the frame data..end: reset the headers of family
 * fam, patch the tuple; false when the frame is too short. */
static __always_inline bool wrap_frame(void *data, void *end, int fam)
{
	__u8 *h = data + ETH_HLEN_;

	if ((void *)h > end)
		return false;
	__builtin_memcpy(data, tmpl_eth, ETH_HLEN_);
	if (fam == 4) {
		if ((void *)(h + TMPL4_LEN) > end)
			return false;
		__builtin_memcpy(h, tmpl4, TMPL4_LEN);
	} else {
		if ((void *)(h + TMPL6_LEN) > end)
			return false;
		__builtin_memcpy(h, tmpl6, TMPL6_LEN);
	}
	if (tuple_mod) {
		__u32 i = tuple_base + counter % tuple_mod;

		/* IPv4: saddr at 12, daddr at 16, ports at 20, checksums at 10 and
		 * 36; IPv6: saddr at 8, daddr at 24, ports at 40, the TCP
		 * checksum at 56 (patching the last two address bytes) */
		if (fam == 4 && patch_dst) {
			patch_tuple_csum(h + 18, h + 22, i, h + 10, h + 36);
			if (vip_mod) {
				/* a reply from client i's service's backend v1:
				 * 198.18.4.(1 + v / 32768), port 1024 + v % 32768
				 * (microbench's config_scale) */
				__u32 v = (counter % tuple_mod) % vip_mod * vip_stride;
				__u16 old_addr = *(__u16 *)(h + 14), old_port = *(__u16 *)(h + 20);

				h[14] = 4;
				h[15] = (__u8)(1 + v / 32768);
				h[20] = (__u8)((1024 + v % 32768) >> 8);
				h[21] = (__u8)(1024 + v % 32768);
				csum_patch(h + 10, old_addr, *(__u16 *)(h + 14));
				csum_patch(h + 36, old_addr, *(__u16 *)(h + 14));
				csum_patch(h + 36, old_port, *(__u16 *)(h + 20));
			}
		} else if (fam == 4) {
			patch_tuple_csum(h + 14, h + 20, i, h + 10, h + 36);
			if (vip_mod) {
				__u32 v = (counter % tuple_mod) % vip_mod * vip_stride;
				__u16 old = *(__u16 *)(h + 18);

				h[18] = (__u8)(v >> 8);
				h[19] = (__u8)v;
				csum_patch(h + 10, old, *(__u16 *)(h + 18));
				csum_patch(h + 36, old, *(__u16 *)(h + 18));
			}
		}
		else if (patch_dst)
			patch_tuple_csum(h + 38, h + 42, i, NULL, h + 56);
		else
			patch_tuple_csum(h + 22, h + 40, i, NULL, h + 56);
	}
	counter++;
	return true;
}

SEC("tc")
int wrap4(struct __sk_buff *skb)
{
	if (wrap_frame((void *)(long)skb->data, (void *)(long)skb->data_end, 4))
		bpf_tail_call(skb, &jmp, 0);
	return 2;
}

SEC("tc")
int wrap6(struct __sk_buff *skb)
{
	if (wrap_frame((void *)(long)skb->data, (void *)(long)skb->data_end, 6))
		bpf_tail_call(skb, &jmp, 0);
	return 2;
}

/* The same in front of XDP programs (load --mode xdp): jmp_xdp[0]. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} jmp_xdp SEC(".maps");

SEC("xdp")
int wrap4_xdp(struct xdp_md *ctx)
{
	if (wrap_frame((void *)(long)ctx->data, (void *)(long)ctx->data_end, 4))
		bpf_tail_call(ctx, &jmp_xdp, 0);
	return XDP_ABORTED;
}

SEC("xdp")
int wrap6_xdp(struct xdp_md *ctx)
{
	if (wrap_frame((void *)(long)ctx->data, (void *)(long)ctx->data_end, 6))
		bpf_tail_call(ctx, &jmp_xdp, 0);
	return XDP_ABORTED;
}

/* ---- plain XDP forwarding ------------------------------------------------------ */

/* Filled by microbench.c with the bench device: the redirect's target. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u32);
} redirect_ports SEC(".maps");

SEC("xdp")
int plain_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct bpf_fib_lookup fib = { .l4_protocol = IPPROTO_TCP };
	struct ethhdr *eth = data;
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	fib.ifindex = ctx->ingress_ifindex;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
		    ip->ttl <= 1)
			return XDP_PASS;
		tcp = (void *)(ip + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		fib.family = 2;		/* AF_INET */
		fib.tot_len = bpf_ntohs(ip->tot_len);
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP || ip6->hop_limit <= 1)
			return XDP_PASS;
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		fib.family = 10;	/* AF_INET6 */
		fib.tot_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		__builtin_memcpy(fib.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, 16);
	} else {
		return XDP_PASS;
	}
	fib.sport = tcp->source;
	fib.dport = tcp->dest;
	if (bpf_fib_lookup(ctx, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return XDP_PASS;
	if (fib.family == 2) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 sum;

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		/* TTL - 1, the header checksum adjusted (RFC 1624) */
		sum = (__u32)ip->check + bpf_htons(0x0100);
		ip->check = (__u16)(sum + (sum >= 0xffff));
		ip->ttl--;
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		ip6->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, fib.dmac, 6);
	__builtin_memcpy(eth->h_source, fib.smac, 6);
	return bpf_redirect_map(&redirect_ports, fib.ifindex, 0);
}

/* ---- maps shaped like tcpshift's ------------------------------------------ */

struct bench_endpoint {		/* 20 bytes, like the services key */
	__be32	addr[4];
	__be16	port;
	__u8	proto;
	__u8	family;
};

struct bench_service {		/* 48 bytes, like a services value */
	__u32	id;
	__u32	table_size;
	__u32	table_half;
	__u32	flags;
	char	name[32];
};

struct bench_backend {		/* 80 bytes, like a backends value */
	__be32	addr[4];
	__be16	port;
	__u8	family;
	__u8	state;
	__u32	generation;
	__u32	table_halves;
	__u32	pad;
	__u64	deadline;
	char	name[32];
};

struct bench_stats {
	__u64	new_flows;
	__u64	packets;
	__u64	bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, struct bench_endpoint);
	__type(value, struct bench_service);
} svc SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow);
} flow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct bench_backend);
} be SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TS_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct bench_stats);
} stats SEC(".maps");

struct bench_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TS_MAX_SERVICES);
	__type(key, __u32);
	__array(values, struct bench_table);
} tables SEC(".maps");

/* Insert targets, sized by userspace (tiny unless an insert run loads them big). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow);
} ins_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow);
} ins_lru_pcpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct ts_flow_key);
	__type(value, struct ts_flow);
} ins_hash SEC(".maps");

/* ---- a parser like tcpshift's ------------------------------------------------ */

struct bench_pkt {
	struct ts_flow_key key;
	__u32	l3_off;
	__u32	l4_off;
	__u8	flags;
};

static __always_inline int parse_tcp(void *data, void *end, struct bench_pkt *p, __u32 l4_off,
				     __u32 l4_len)
{
	struct tcphdr *tcp = data + l4_off;
	__u32 doff;

	if ((void *)(tcp + 1) > end || l4_len < sizeof(*tcp))
		return -1;
	doff = tcp->doff * 4;
	if (doff < sizeof(*tcp) || doff > l4_len)
		return -1;
	p->key.sport = tcp->source;
	p->key.dport = tcp->dest;
	p->key.proto = IPPROTO_TCP;
	p->flags = ((__u8 *)tcp)[13];
	p->l4_off = l4_off;
	return 0;
}

static __always_inline int parse(struct __sk_buff *skb, struct bench_pkt *p)
{
	__u32 l3_len, l4_off, l4_len;
	void *data, *end;
	struct ethhdr *eth;

	if (skb->data_end - skb->data < PULL_LEN && skb->len > skb->data_end - skb->data)
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
	asm volatile("" : "+r"(skb));
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	l3_len = skb->len - sizeof(*eth);
	p->l3_off = sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl, tot_len;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return -1;
		ihl = ip->ihl * 4;
		tot_len = bpf_ntohs(ip->tot_len);
		if (ip->version != 4 || ihl < sizeof(*ip) || tot_len < ihl || tot_len > l3_len ||
		    (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			return -1;
		p->key.family = TS_AF_INET;
		p->key.saddr[0] = ip->saddr;
		p->key.daddr[0] = ip->daddr;
		l4_off = sizeof(*eth) + ihl;
		l4_len = tot_len - ihl;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		__u32 plen;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		plen = bpf_ntohs(ip6->payload_len);
		if (ip6->version != 6 || plen + sizeof(*ip6) > l3_len)
			return -1;
		p->key.family = TS_AF_INET6;
		__builtin_memcpy(p->key.saddr, &ip6->saddr, 16);
		__builtin_memcpy(p->key.daddr, &ip6->daddr, 16);
		l4_off = sizeof(*eth) + sizeof(*ip6);
		l4_len = plen;
	} else {
		return -1;
	}
	/* one TCP parse for both families: a bounded offset, checked here */
	if (l4_off > sizeof(*eth) + 60)
		return -1;
	return parse_tcp(data, end, p, l4_off, l4_len);
}

#define PARSE_OR_OUT(p)                                                                         \
	struct bench_pkt p = {};                                                                \
	if (parse(skb, &p))                                                                     \
		return 1

/* ---- parse + one primitive ----------------------------------------------------- */

SEC("tc")
int p_parse(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return p.flags == 0xff;
}

/* A services lookup: destination address:port (hit or miss by the packet). */
SEC("tc")
int p_svc(struct __sk_buff *skb)
{
	struct bench_endpoint k = {};

	PARSE_OR_OUT(p);
	__builtin_memcpy(k.addr, p.key.daddr, sizeof(k.addr));
	k.port = p.key.dport;
	k.proto = p.key.proto;
	k.family = p.key.family;
	return bpf_map_lookup_elem(&svc, &k) != NULL;
}

/* A flows lookup: the 40-byte 5-tuple key in an LRU hash. */
SEC("tc")
int p_flow(struct __sk_buff *skb)
{
	struct ts_flow *f;

	PARSE_OR_OUT(p);
	f = bpf_map_lookup_elem(&flow, &p.key);
	return f ? (int)f->backend_id : 7;
}

/* The flow hash (MurmurHash3 over the 5-tuple), as tcpshift computes it. */
SEC("tc")
int p_hash(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return ts_flow_hash(&p.key, 0x5eed) % 16381 == 12345;
}

SEC("tc")
int p_ktime(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return (bpf_ktime_get_ns() & 1) + 3;
}

/* Cheaper clocks, good enough for a last-seen stamp of 1 s granularity. */
SEC("tc")
int p_ktime_coarse(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return (bpf_ktime_get_coarse_ns() & 1) + 3;
}

SEC("tc")
int p_jiffies(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return (bpf_jiffies64() & 1) + 3;
}

/* An IPv4-only flow table with a 16-byte key: what a smaller key saves. */
struct flow_key16 {
	__be32	saddr;
	__be32	daddr;
	__be16	sport;
	__be16	dport;
	__u32	proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TS_DEFAULT_MAX_FLOWS);
	__type(key, struct flow_key16);
	__type(value, struct ts_flow);
} flow16 SEC(".maps");

SEC("tc")
int p_flow16(struct __sk_buff *skb)
{
	struct flow_key16 k = {};
	struct ts_flow *f;

	PARSE_OR_OUT(p);
	k.saddr = p.key.saddr[0];
	k.daddr = p.key.daddr[0];
	k.sport = p.key.sport;
	k.dport = p.key.dport;
	k.proto = p.key.proto;
	f = bpf_map_lookup_elem(&flow16, &k);
	return f ? (int)f->backend_id : 7;
}

/* A backends lookup (array). */
SEC("tc")
int p_backend(struct __sk_buff *skb)
{
	struct bench_backend *b;
	__u32 id = 1;

	PARSE_OR_OUT(p);
	b = bpf_map_lookup_elem(&be, &id);
	return b ? b->state : 9;
}

/* Per-CPU stats of a backend: lookup and three adds. */
SEC("tc")
int p_stats(struct __sk_buff *skb)
{
	struct bench_stats *s;
	__u32 id = 1;

	PARSE_OR_OUT(p);
	s = bpf_map_lookup_elem(&stats, &id);
	if (!s)
		return 9;
	s->packets++;
	s->bytes += skb->len;
	s->new_flows += p.flags & 1;
	return 0;
}

/* A table pick: outer array-of-maps lookup, then the slot in the inner table
 * (slot from the port, not the hash: p_hash measures that). */
SEC("tc")
int p_table(struct __sk_buff *skb)
{
	__u32 id = 0, slot;
	__u64 *e;
	void *t;

	PARSE_OR_OUT(p);
	t = bpf_map_lookup_elem(&tables, &id);
	if (!t)
		return 9;
	slot = bpf_ntohs(p.key.sport) % 16381;
	e = bpf_map_lookup_elem(t, &slot);
	return e ? (int)(*e & 3) : 8;
}

/* The NAT rewrite of the destination address (to the same value: the packet
 * stays the same for the next repeat), with incremental checksum updates as
 * tcpshift does them. */
static __always_inline int rewrite(struct __sk_buff *skb, struct bench_pkt *p, bool port)
{
	__u32 csum_off = p->l4_off + offsetof(struct tcphdr, check);
	int err;

	if (p->key.family == TS_AF_INET) {
		err = bpf_l4_csum_replace(skb, csum_off, p->key.daddr[0], p->key.daddr[0],
					  BPF_F_PSEUDO_HDR | sizeof(__be32));
		err = err ?: bpf_l3_csum_replace(skb, p->l3_off + offsetof(struct iphdr, check),
						 p->key.daddr[0], p->key.daddr[0], sizeof(__be32));
		err = err ?: bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct iphdr, daddr),
						 p->key.daddr, sizeof(__be32), 0);
	} else {
		__s64 diff = bpf_csum_diff(p->key.daddr, 16, p->key.daddr, 16, 0);

		err = diff < 0 ? (int)diff : 0;
		err = err ?: bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR);
		err = err ?: bpf_skb_store_bytes(skb, p->l3_off + offsetof(struct ipv6hdr, daddr),
						 p->key.daddr, 16, 0);
	}
	if (port) {
		err = err ?: bpf_l4_csum_replace(skb, csum_off, p->key.dport, p->key.dport,
						 sizeof(__be16));
		err = err ?: bpf_skb_store_bytes(skb, p->l4_off + offsetof(struct tcphdr, dest),
						 &p->key.dport, sizeof(__be16), 0);
	}
	return err ? 2 : 0;
}

/* The rewrite's parts: the checksum helpers without the store, and the
 * store alone, by helper and by a direct packet write. */
SEC("tc")
int p_csum_only(struct __sk_buff *skb)
{
	__u32 csum_off;
	int err;

	PARSE_OR_OUT(p);
	csum_off = p.l4_off + offsetof(struct tcphdr, check);
	if (p.key.family == TS_AF_INET) {
		err = bpf_l4_csum_replace(skb, csum_off, p.key.daddr[0], p.key.daddr[0],
					  BPF_F_PSEUDO_HDR | sizeof(__be32));
		err = err ?: bpf_l3_csum_replace(skb, p.l3_off + offsetof(struct iphdr, check),
						 p.key.daddr[0], p.key.daddr[0], sizeof(__be32));
	} else {
		__s64 diff = bpf_csum_diff(p.key.daddr, 16, p.key.daddr, 16, 0);

		err = diff < 0 ? (int)diff : 0;
		err = err ?: bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR);
	}
	return err ? 2 : 0;
}

SEC("tc")
int p_store_helper(struct __sk_buff *skb)
{
	int err;

	PARSE_OR_OUT(p);
	if (p.key.family == TS_AF_INET)
		err = bpf_skb_store_bytes(skb, p.l3_off + offsetof(struct iphdr, daddr),
					  p.key.daddr, sizeof(__be32), 0);
	else
		err = bpf_skb_store_bytes(skb, p.l3_off + offsetof(struct ipv6hdr, daddr),
					  p.key.daddr, 16, 0);
	return err ? 2 : 0;
}

SEC("tc")
int p_store_direct(struct __sk_buff *skb)
{
	void *data, *end;

	PARSE_OR_OUT(p);
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (p.key.family == TS_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN_;

		if ((void *)(ip + 1) > end)
			return 2;
		ip->daddr = p.key.daddr[0];
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN_;

		if ((void *)(ip6 + 1) > end)
			return 2;
		__builtin_memcpy(&ip6->daddr, p.key.daddr, 16);
	}
	return 0;
}

SEC("tc")
int p_rewrite(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return rewrite(skb, &p, false);
}

SEC("tc")
int p_rewrite_port(struct __sk_buff *skb)
{
	PARSE_OR_OUT(p);
	return rewrite(skb, &p, true);
}

/* A write of an existing flows entry (what a state change costs). */
SEC("tc")
int p_update(struct __sk_buff *skb)
{
	struct ts_flow f = { .backend_id = 1, .tcp_state = 2 };

	PARSE_OR_OUT(p);
	return bpf_map_update_elem(&flow, &p.key, &f, BPF_ANY) ? 5 : 0;
}

/* A pin event for sync (bpf/sync.h): a ring buffer record reserved, filled
 * and committed. Nobody reads this ring, so the record is discarded rather
 * than submitted (the same commit, without the wakeup check): the ring never
 * fills. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

SEC("tc")
int p_ringbuf(struct __sk_buff *skb)
{
	struct ts_sync_event *e;

	PARSE_OR_OUT(p);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 5;
	__builtin_memcpy(&e->key, &p.key, sizeof(e->key));
	e->backend_id = 1;
	e->generation = 1;
	e->client_end = p.key.sport;
	e->type = TS_SYNC_PIN;
	e->time_ns = 0;
	bpf_ringbuf_discard(e, 0);
	return 0;
}

/* Inserts of a fresh key every run: what pinning a new flow costs, per map kind. */
#define INSERT_PROG(name, map)                                                                  \
	SEC("tc")                                                                               \
	int name(struct __sk_buff *skb)                                                         \
	{                                                                                       \
		struct ts_flow f = { .backend_id = 1, .tcp_state = 1 };                         \
                                                                                                \
		PARSE_OR_OUT(p);                                                                \
		p.key.saddr[3] ^= ins_counter++;                                                \
		return bpf_map_update_elem(&map, &p.key, &f, BPF_ANY) ? 5 : 0;                  \
	}

INSERT_PROG(p_ins_lru, ins_lru)
INSERT_PROG(p_ins_lru_pcpu, ins_lru_pcpu)
INSERT_PROG(p_ins_hash, ins_hash)
