// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hostile packets: a fuzz test of invariants 4 and 5 through
 * BPF_PROG_TEST_RUN. Well over 100,000 random and mutated packets go through
 * the real program, configured with an IPv4 and an IPv6 service (and a second
 * IPv4 service on the same VIP address, whose backends share addresses with
 * the first one's: only address:port tells them apart), and every result is
 * judged by an oracle that reads the packet itself:
 *
 *  (a) a packet that is not TCP to a configured VIP:port nor TCP from a
 *      configured backend address:port (as its own headers say, read as
 *      leniently as any parser could) and is not an ICMP error about one,
 *      comes out byte for byte unchanged with TC_ACT_OK;
 *  (b) a rewritten packet was well-formed (never a malformed packet or a
 *      fragment), and only its destination changed, to a backend of the
 *      service of its VIP:port that is not removed (forward), or only its
 *      source, to the VIP:port of its backend's service (reply); IP and TCP
 *      checksums verify if they did, and a wrong one stays as wrong; an ICMP
 *      error about one of our endpoints may be translated instead: only the
 *      outer addresses and the quoted TCP header's addresses and ports (and
 *      checksums, kept as above) change, a quoted backend endpoint to its
 *      VIP:port or a VIP:port to one of its backends, an outer address only
 *      together with the quoted one it stands for, nothing past the datagram;
 *  (c) the verdict is TC_ACT_OK or TC_ACT_SHOT, or TC_ACT_REDIRECT for a
 *      client's packet once some backend is removed or past its drain
 *      deadline, and then the output is a well-formed RST from that VIP:port
 *      back to the client.
 *
 * Flows pinned before the run ("sentinels", never mutated) check more: their
 * packets keep going to their backend (invariant 2) while it is active, and
 * are closed (dropped or reset), never moved, once it is drained past its
 * deadline or removed; their backends' replies get the VIP as source
 * (invariant 4). The run has two phases: every backend active, then one
 * backend per service drained with an expired deadline and one removed.
 *
 * Packet classes: fully random bytes; random bytes under an IP ethertype;
 * valid packets (IPv4/IPv6, TCP/UDP/ICMP, to the VIPs, to other addresses,
 * from backends, ...); the same with 1-4 mutations (bit flips, truncation,
 * random ihl/doff/tot_len/payload_len/frag_off/protocol/flags/version/
 * ethertype, inserted IPv4 options and IPv6 extension headers, retargeting
 * to a VIP or backend, checksums fixed or not); ICMP errors quoting a NATed
 * flow; every template cut at every length, raw and with lengths adjusted.
 *
 * Each packet is generated from its own PRNG stream of the seed (printed;
 * TS_FUZZ_SEED overrides it, TS_FUZZ_PACKETS the count), so a failure report
 * (seed, phase, class, number, mutations, both packets) reproduces.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ts_test.h"

#define FUZZ_DEFAULT_SEED	0x5eedf0221234ULL
#define FUZZ_DEFAULT_PACKETS	300000
#define FUZZ_MAX_REPORTS	8	/* failures printed in full; all are counted */

#define ETH_LEN		14
#define ETYPE_IP	0x0800
#define ETYPE_IPV6	0x86dd
#define ETYPE_VLAN	0x8100
#define V4_MIN		(ETH_LEN + 20)
#define V6_MIN		(ETH_LEN + 40)
#define TCP_RST		0x04
#define TCP_SYN		0x02
#define TCP_ACK		0x10

/* ---- the configuration under test ------------------------------------------------ */

enum fate {
	ACTIVE,		/* in both phases */
	DRAINED,	/* phase 2: weight 0, drain deadline passed */
	REMOVED,	/* phase 2: deleted */
};

static const struct fz_service {
	const char *name, *vip;
} services[] = {
	{ "web4", VIP4 },
	{ "api4", "198.18.100.1:9009" },
	{ "web6", VIP6 },
};

static const struct fz_backend {
	int svc;
	const char *name, *ep;
	enum fate fate;
} backends[] = {
	{ 0, "v1", BE4_1, ACTIVE },
	{ 0, "v2", BE4_2, ACTIVE },
	{ 0, "v3", "198.18.2.13:8008", DRAINED },
	{ 0, "v4", "198.18.2.14:8008", REMOVED },
	/* web4's v1 and v2 addresses, another port */
	{ 1, "a1", "198.18.2.11:9000", ACTIVE },
	{ 1, "a2", "198.18.2.12:9000", ACTIVE },
	{ 2, "v1", BE6_1, ACTIVE },
	{ 2, "v2", BE6_2, ACTIVE },
	{ 2, "v3", "[2001:2:2::13]:8008", DRAINED },
	{ 2, "v4", "[2001:2:2::14]:8008", REMOVED },
};

#define N(a)	(sizeof(a) / sizeof((a)[0]))
#define NSVC	N(services)
#define NBE	N(backends)

/* An endpoint read once from the tables above. */
struct ep {
	int	family;			/* 4 or 6 */
	__u8	addr[16];
	__u16	port;			/* host order */
	char	text[PKT_EPSTRLEN];	/* the address alone */
};

static struct ep svc_ep[NSVC], be_ep[NBE];

/* ---- PRNG: splitmix64, one stream per packet ---------------------------------------- */

struct rng {
	__u64 s;
};

static __u64 mix64(__u64 z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static __u64 rnd(struct rng *r)
{
	return mix64(r->s += 0x9e3779b97f4a7c15ULL);
}

static __u32 below(struct rng *r, __u32 n)
{
	return n ? (__u32)(rnd(r) % n) : 0;
}

static bool chance(struct rng *r, unsigned int percent)
{
	return below(r, 100) < percent;
}

static struct rng stream(__u64 seed, __u32 kind, __u32 n)
{
	return (struct rng){ mix64(seed ^ mix64(((__u64)kind << 40) + n + 1)) };
}

/* ---- reading packets: our own parser, independent of the program's ----------------- */

static __u16 get16(const __u8 *b)
{
	return (__u16)(b[0] << 8 | b[1]);
}

static void set16(__u8 *b, __u16 v)
{
	b[0] = (__u8)(v >> 8);
	b[1] = (__u8)v;
}

static __u32 get32(const __u8 *b)
{
	return (__u32)b[0] << 24 | (__u32)b[1] << 16 | (__u32)b[2] << 8 | b[3];
}

struct view {
	int	family;		/* 4 or 6 */
	__u32	l3, l4;		/* offsets */
	__u32	end;		/* end of the datagram: its length fields (strict), or the frame */
	__u32	saddr, daddr;	/* offsets of the addresses */
	__u32	alen;
	__u8	proto;		/* upper layer, after IPv6 extension headers */
	bool	frag;		/* a fragment (not a whole datagram) */
};

/* IPv6 extension headers from off, within limit; the upper layer in v. */
static bool walk_v6(const struct pkt *p, __u32 limit, __u8 next, __u32 off, struct view *v)
{
	for (int i = 0; i < 8; i++) {
		switch (next) {
		case 0:		/* hop-by-hop */
		case 43:	/* routing */
		case 60:	/* destination options */
			if (off + 8 > limit)
				return false;
			next = p->data[off];
			off += (p->data[off + 1] + 1u) * 8;
			break;
		case 44:	/* fragment: offset << 3 | M */
			if (off + 8 > limit)
				return false;
			if (get16(p->data + off + 2) & 0xfff9)
				v->frag = true;
			next = p->data[off];
			off += 8;
			break;
		case 51:	/* authentication header */
			if (off + 8 > limit)
				return false;
			next = p->data[off];
			off += (p->data[off + 1] + 2u) * 4;
			break;
		default:
			v->proto = next;
			v->l4 = off;
			return off <= limit;
		}
	}
	return false;
}

/* Where a parser may find the headers, lengths and versions unchecked: any
 * packet a correct program might take for TCP to or from X reads so here. */
static bool view_lenient(const struct pkt *p, struct view *v)
{
	__u16 etype;

	memset(v, 0, sizeof(*v));
	if (p->len < ETH_LEN)
		return false;
	etype = get16(p->data + 12);
	v->l3 = ETH_LEN;
	v->end = p->len;
	if (etype == ETYPE_IP) {
		__u32 ihl;

		if (p->len < V4_MIN)
			return false;
		ihl = (p->data[ETH_LEN] & 0xf) * 4u;
		if (ihl < 20)
			return false;
		v->family = 4;
		v->alen = 4;
		v->saddr = ETH_LEN + 12;
		v->daddr = ETH_LEN + 16;
		v->proto = p->data[ETH_LEN + 9];
		v->l4 = ETH_LEN + ihl;
		v->frag = get16(p->data + ETH_LEN + 6) & 0x3fff;
		return v->l4 <= p->len;
	}
	if (etype == ETYPE_IPV6) {
		if (p->len < V6_MIN)
			return false;
		v->family = 6;
		v->alen = 16;
		v->saddr = ETH_LEN + 8;
		v->daddr = ETH_LEN + 24;
		return walk_v6(p, p->len, p->data[ETH_LEN + 6], V6_MIN, v);
	}
	return false;
}

/* A well-formed IP packet (and TCP header, if TCP): versions, lengths, doff. */
static bool view_strict(const struct pkt *p, struct view *v)
{
	if (!view_lenient(p, v))
		return false;
	if (v->family == 4) {
		__u32 tot = get16(p->data + ETH_LEN + 2);

		if (p->data[ETH_LEN] >> 4 != 4 || tot < v->l4 - ETH_LEN || ETH_LEN + tot > p->len)
			return false;
		v->end = ETH_LEN + tot;
	} else {
		__u32 end = V6_MIN + get16(p->data + ETH_LEN + 4);

		if (p->data[ETH_LEN] >> 4 != 6 || end > p->len)
			return false;
		v->end = end;
		v->frag = false;
		if (!walk_v6(p, end, p->data[ETH_LEN + 6], V6_MIN, v))
			return false;
	}
	if (v->proto == IPPROTO_TCP) {
		__u32 l4_len = v->end - v->l4, doff;

		if (l4_len < 20)
			return false;
		doff = (p->data[v->l4 + 12] >> 4) * 4u;
		if (doff < 20 || doff > l4_len)
			return false;
	}
	return true;
}

static bool has_ports(const struct pkt *p, const struct view *v)
{
	return v->l4 + 4 <= p->len;
}

static __u16 port_of(const struct pkt *p, const struct view *v, bool dst)
{
	return get16(p->data + v->l4 + (dst ? 2 : 0));
}

static const __u8 *addr_of(const struct pkt *p, const struct view *v, bool dst)
{
	return p->data + (dst ? v->daddr : v->saddr);
}

static bool ep_is(const struct ep *e, int family, const __u8 *addr, __u16 port)
{
	return e->family == family && e->port == port &&
	       !memcmp(e->addr, addr, family == 4 ? 4 : 16);
}

/* The service whose VIP:port is the packet's destination (dst) or source; -1. */
static int find_vip(const struct pkt *p, const struct view *v, bool dst)
{
	if (v->proto != IPPROTO_TCP || !has_ports(p, v))
		return -1;
	for (size_t i = 0; i < NSVC; i++)
		if (ep_is(&svc_ep[i], v->family, addr_of(p, v, dst), port_of(p, v, dst)))
			return (int)i;
	return -1;
}

/* The backend whose address:port is the packet's destination (dst) or source; -1. */
static int find_be(const struct pkt *p, const struct view *v, bool dst)
{
	if (v->proto != IPPROTO_TCP || !has_ports(p, v))
		return -1;
	for (size_t i = 0; i < NBE; i++)
		if (ep_is(&be_ep[i], v->family, addr_of(p, v, dst), port_of(p, v, dst)))
			return (int)i;
	return -1;
}

/* Any VIP or backend address (whatever the port). */
static bool our_addr(int family, const __u8 *a)
{
	for (size_t i = 0; i < NSVC; i++)
		if (svc_ep[i].family == family && !memcmp(svc_ep[i].addr, a, family == 4 ? 4 : 16))
			return true;
	for (size_t i = 0; i < NBE; i++)
		if (be_ep[i].family == family && !memcmp(be_ep[i].addr, a, family == 4 ? 4 : 16))
			return true;
	return false;
}

/* ---- checksums ------------------------------------------------------------------------ */

static __u32 sum16(__u32 s, const __u8 *b, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (__u32)b[i] << 8 | b[i + 1];
	if (n & 1)
		s += (__u32)b[n - 1] << 8;
	return s;
}

static __u16 fold(__u32 s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* The ones'-complement sum a receiver computes: 0xffff when the checksum verifies. */
static __u16 ip_resid(const struct pkt *p, const struct view *v)
{
	return fold(sum16(0, p->data + v->l3, v->l4 - v->l3));
}

static __u16 l4_resid(const struct pkt *p, const struct view *v)
{
	__u32 len = v->end - v->l4, s = 0;

	if (v->proto != IPPROTO_ICMP) {
		/* source and destination are adjacent in both IPv4 and IPv6 */
		s = sum16(s, p->data + v->saddr, 2 * v->alen);
		s += v->proto + (len >> 16) + (len & 0xffff);
	}
	return fold(sum16(s, p->data + v->l4, len));
}

static bool resid_ok(__u16 r)
{
	return r == 0xffff;
}

/* Equal, up to the two zeros of ones'-complement arithmetic. */
static bool resid_same(__u16 a, __u16 b)
{
	return a == b || ((a == 0 || a == 0xffff) && (b == 0 || b == 0xffff));
}

static __u32 l4_check_off(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 2;
	default:
		return 0;
	}
}

/* Make whatever checksums the packet's headers allow verify. */
static void fix_csums(struct pkt *p)
{
	struct view v;
	__u32 at;

	if (view_lenient(p, &v) && v.family == 4) {
		set16(p->data + ETH_LEN + 10, 0);
		set16(p->data + ETH_LEN + 10, (__u16)~ip_resid(p, &v));
	}
	if (!view_strict(p, &v) || v.frag || !(at = l4_check_off(v.proto)) ||
	    v.l4 + at + 2 > v.end)
		return;
	set16(p->data + v.l4 + at, 0);
	at = (__u16)~l4_resid(p, &v);
	if (v.proto == IPPROTO_UDP && at == 0)
		at = 0xffff;
	set16(p->data + v.l4 + l4_check_off(v.proto), (__u16)at);
}

/* Cut p to len, its IP length field saying so and its checksums fixed; false
 * when len leaves no room for the IP header. */
static bool cut_consistently(struct pkt *p, __u32 len)
{
	__u16 etype = p->len >= ETH_LEN ? get16(p->data + 12) : 0;

	if (etype == ETYPE_IP && len >= V4_MIN)
		set16(p->data + ETH_LEN + 2, (__u16)(len - ETH_LEN));
	else if (etype == ETYPE_IPV6 && len >= V6_MIN)
		set16(p->data + ETH_LEN + 4, (__u16)(len - V6_MIN));
	else
		return false;
	p->len = len;
	fix_csums(p);
	return true;
}

/* ---- the run --------------------------------------------------------------------------- */

enum cls {
	C_RANDOM,	/* random bytes */
	C_RANDOM_IP,	/* random bytes under an IP ethertype */
	C_VALID,	/* a valid packet */
	C_MUTATED,	/* a valid packet (or ICMP error), mutated */
	C_ICMP,		/* an ICMP error quoting a packet of a NATed flow */
	C_PINNED,	/* a packet of a sentinel flow, either way */
	C_TRUNCATED,	/* every template cut at every length */
	C_N,
};

static const char *const cls_name[C_N] = {
	"random", "random-ip", "valid", "mutated", "icmp-error", "pinned", "truncated",
};

enum outcome {
	O_SENT,
	O_SKIPPED,	/* EINVAL: the kernel refuses frames this short */
	O_UNTOUCHED,	/* TC_ACT_OK, unchanged */
	O_DROPPED,	/* TC_ACT_SHOT */
	O_FORWARDED,	/* destination rewritten to a backend */
	O_REPLIED,	/* source rewritten to the VIP */
	O_ICMP_NAT,	/* an ICMP error translated */
	O_RESET,	/* TC_ACT_REDIRECT with a RST to the client */
	O_FAILED,
	O_N,
};

static const char *const outcome_name[O_N] = {
	"sent", "skipped", "untouched", "dropped", "forwarded", "replied", "icmp-nat", "reset",
	"FAILED",
};

/* A flow pinned before the run, whose packets are never mutated. */
struct sentinel {
	int	svc, be;
	char	client[PKT_EPSTRLEN];
	__u16	sport;
};

#define MAX_SENTINELS	64

struct fuzz {
	struct ts_env	*e;
	__u64		seed;
	int		phase;	/* 1: all active; 2: v3 past its drain deadline, v4 gone */
	struct sentinel	sent[MAX_SENTINELS];
	size_t		nsent;
	__u64		stats[C_N][O_N];
	unsigned int	failures;
	unsigned int	max_reports;
	struct {
		char		why[160];	/* the reason, numbers and addresses as N */
		unsigned int	count;
		int		phase;
		enum cls	cls;
		__u32		n;		/* the first packet that failed so */
	} kinds[32];
	size_t		nkinds;
};

/* How a packet was made: for the checks and the failure report. */
struct gen {
	enum cls	cls;
	__u32		n;		/* its number in the class's stream */
	char		trail[256];	/* the template and mutations */
	int		sentinel;	/* index in fuzz.sent, or -1 */
	bool		reply;		/* sentinel: backend -> client */
	bool		plain_forward;	/* unmutated TCP to a VIP (no extension header, no
					 * fragment): phase 1 must forward it */
};

static void trail_add(struct gen *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void trail_add(struct gen *g, const char *fmt, ...)
{
	size_t n = strlen(g->trail);
	va_list ap;

	if (n + 2 >= sizeof(g->trail))
		return;
	if (n)
		g->trail[n++] = ' ';
	va_start(ap, fmt);
	vsnprintf(g->trail + n, sizeof(g->trail) - n, fmt, ap);
	va_end(ap);
}

/* ---- judging one result --------------------------------------------------------------- */

struct range {
	__u32 off, len;
};

/* First offset where a and b differ outside the skipped ranges; -1 if none. */
static long diff_except(const struct pkt *a, const struct pkt *b, const struct range *skip,
			size_t nskip)
{
	__u32 n = a->len < b->len ? a->len : b->len;

	for (__u32 i = 0; i < n; i++) {
		bool skipped = false;

		if (a->data[i] == b->data[i])
			continue;
		for (size_t k = 0; k < nskip && !skipped; k++)
			skipped = i >= skip[k].off && i < skip[k].off + skip[k].len;
		if (!skipped)
			return (long)i;
	}
	return a->len == b->len ? -1 : (long)n;
}

#define WHY(...) (snprintf(why, why_len, __VA_ARGS__), false)
#define FAILED(...) (snprintf(why, why_len, __VA_ARGS__), O_FAILED)

static void ep_text(const struct pkt *p, const struct view *v, bool dst, char *buf, size_t len)
{
	char a[64];

	inet_ntop(v->family == 4 ? AF_INET : AF_INET6, addr_of(p, v, dst), a, sizeof(a));
	if (has_ports(p, v))
		snprintf(buf, len, v->family == 4 ? "%s:%u" : "[%s]:%u", a, port_of(p, v, dst));
	else
		snprintf(buf, len, "%s", a);
}

/* NAT keeps checksums: valid stays valid, a wrong one stays exactly as wrong. */
static bool csums_kept(const struct pkt *in, const struct view *vi, const struct pkt *out,
		       const struct view *vo, char *why, size_t why_len)
{
	__u16 a, b;

	if (vi->family == 4) {
		a = ip_resid(in, vi);
		b = ip_resid(out, vo);
		if (resid_ok(a) && !resid_ok(b))
			return WHY("IPv4 header checksum no longer verifies");
		if (!resid_same(a, b))
			return WHY("IPv4 header checksum error changed (sum %#06x -> %#06x)", a, b);
	}
	a = l4_resid(in, vi);
	b = l4_resid(out, vo);
	if (resid_ok(a) && !resid_ok(b))
		return WHY("TCP checksum no longer verifies");
	if (!resid_same(a, b))
		return WHY("TCP checksum error changed (sum %#06x -> %#06x)", a, b);
	return true;
}

/* Forward: only the destination changed, to a backend of the VIP's service. */
static bool check_forward(const struct fuzz *f, const struct pkt *in, const struct view *v,
			  int svc, const struct pkt *out, char *why, size_t why_len)
{
	const struct range skip[] = {
		{ v->daddr, v->alen },
		{ v->l4 + 2, 2 },
		{ ETH_LEN + 10, v->family == 4 ? 2 : 0 },
		{ v->l4 + 16, 2 },
	};
	char ep[PKT_EPSTRLEN];
	long at;
	int be;

	if (out->len != in->len)
		return WHY("forwarded, but its length changed %u -> %u", in->len, out->len);
	be = find_be(out, v, true);
	ep_text(out, v, true, ep, sizeof(ep));
	if (be < 0)
		return WHY("forward to %s: the new destination %s is no backend",
			   services[svc].vip, ep);
	if (backends[be].svc != svc)
		return WHY("forward to %s: the new destination %s is a backend of %s, not of %s",
			   services[svc].vip, ep, services[backends[be].svc].name,
			   services[svc].name);
	if (f->phase == 2 && backends[be].fate == REMOVED)
		return WHY("forward to %s: sent to %s, a removed backend", services[svc].vip, ep);
	at = diff_except(out, in, skip, N(skip));
	if (at >= 0)
		return WHY("forward: byte %ld changed (only the destination and checksums may)",
			   at);
	return csums_kept(in, v, out, v, why, why_len);
}

/* Reply: only the source changed, to the VIP:port of the backend's service (and,
 * past the backend's drain deadline, the flags may become a RST). */
static bool check_reply(const struct fuzz *f, const struct pkt *in, const struct view *v, int be,
			const struct pkt *out, char *why, size_t why_len)
{
	bool may_reset = f->phase == 2 && backends[be].fate == DRAINED;
	const struct range skip[] = {
		{ v->saddr, v->alen },
		{ v->l4, 2 },
		{ ETH_LEN + 10, v->family == 4 ? 2 : 0 },
		{ v->l4 + 16, 2 },
		{ v->l4 + 13, may_reset ? 1 : 0 },
	};
	int svc = backends[be].svc;
	char ep[PKT_EPSTRLEN];
	__u8 flags;
	long at;

	if (out->len != in->len)
		return WHY("reply, but its length changed %u -> %u", in->len, out->len);
	ep_text(out, v, false, ep, sizeof(ep));
	if (find_vip(out, v, false) != svc)
		return WHY("reply from %s: the new source %s is not %s", backends[be].ep, ep,
			   services[svc].vip);
	at = diff_except(out, in, skip, N(skip));
	if (at >= 0)
		return WHY("reply: byte %ld changed (only the source and checksums may)", at);
	flags = out->data[v->l4 + 13];
	if (flags != in->data[v->l4 + 13] && (!(flags & TCP_RST) || (flags & TCP_SYN)))
		return WHY("reply past the drain deadline: flags %#04x are no RST", flags);
	return csums_kept(in, v, out, v, why, why_len);
}

/* TC_ACT_REDIRECT: a RST from the VIP:port the client sent to, back to the client. */
static bool check_reset(const struct fuzz *f, const struct pkt *in, const struct pkt *out,
			char *why, size_t why_len)
{
	struct view vi, vo;
	__u8 flags;

	if (f->phase == 1)
		return WHY("TC_ACT_REDIRECT while no backend is removed or past its drain "
			   "deadline");
	if (!view_strict(in, &vi) || vi.frag || vi.proto != IPPROTO_TCP)
		return WHY("TC_ACT_REDIRECT for a malformed packet or a fragment");
	if (find_vip(in, &vi, true) < 0)
		return WHY("TC_ACT_REDIRECT for a packet that is not to a VIP:port");
	if (!view_strict(out, &vo) || vo.frag || vo.proto != IPPROTO_TCP ||
	    vo.family != vi.family)
		return WHY("TC_ACT_REDIRECT: the output is no well-formed TCP packet");
	flags = out->data[vo.l4 + 13];
	if (!(flags & TCP_RST) || (flags & TCP_SYN))
		return WHY("TC_ACT_REDIRECT: the output's flags %#04x are no RST", flags);
	if (memcmp(addr_of(out, &vo, false), addr_of(in, &vi, true), vi.alen) ||
	    port_of(out, &vo, false) != port_of(in, &vi, true))
		return WHY("RST: its source is not the VIP:port the client sent to");
	if (memcmp(addr_of(out, &vo, true), addr_of(in, &vi, false), vi.alen) ||
	    port_of(out, &vo, true) != port_of(in, &vi, false))
		return WHY("RST: it is not addressed to the client");
	if (memcmp(out->data, in->data + 6, 6))
		return WHY("RST: Ethernet destination is not the client's sender");
	if ((in->data[vi.l4 + 13] & TCP_ACK) &&
	    get32(out->data + vo.l4 + 4) != get32(in->data + vi.l4 + 8))
		return WHY("RST: seq %u is not the client's ack %u (RFC 9293 3.10.7.1)",
			   get32(out->data + vo.l4 + 4), get32(in->data + vi.l4 + 8));
	if (vi.family == 4 && resid_ok(ip_resid(in, &vi)) && !resid_ok(ip_resid(out, &vo)))
		return WHY("RST: IPv4 header checksum does not verify");
	if (resid_ok(l4_resid(in, &vi)) && !resid_ok(l4_resid(out, &vo)))
		return WHY("RST: TCP checksum does not verify");
	return true;
}

/* The ICMP error message types (RFC 792, RFC 4443). */
static bool icmp_error(const struct pkt *p, const struct view *v)
{
	__u8 type;

	if (v->l4 + 8 > p->len)
		return false;
	type = p->data[v->l4];
	if (v->family == 4 && v->proto == IPPROTO_ICMP)
		return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
	return v->family == 6 && v->proto == IPPROTO_ICMPV6 && type >= 1 && type <= 4;
}

/* The packet an ICMP error quotes, from its IP header (no extension headers). */
static bool view_inner(const struct pkt *p, const struct view *outer, struct view *v)
{
	__u32 l3 = outer->l4 + 8;

	memset(v, 0, sizeof(*v));
	v->l3 = l3;
	v->end = p->len;
	if (l3 + 20 <= p->len && p->data[l3] >> 4 == 4 && (p->data[l3] & 0xf) >= 5) {
		v->family = 4;
		v->alen = 4;
		v->saddr = l3 + 12;
		v->daddr = l3 + 16;
		v->proto = p->data[l3 + 9];
		v->l4 = l3 + (p->data[l3] & 0xf) * 4u;
		return true;
	}
	if (l3 + 40 <= p->len && p->data[l3] >> 4 == 6) {
		v->family = 6;
		v->alen = 16;
		v->saddr = l3 + 8;
		v->daddr = l3 + 24;
		v->proto = p->data[l3 + 6];
		v->l4 = l3 + 40;
		return true;
	}
	return false;
}

/* An ICMP error about one of our endpoints: the gateway may translate it. */
static bool icmp_ours(const struct pkt *p, const struct view *v)
{
	struct view in;

	if (!icmp_error(p, v))
		return false;
	if (our_addr(v->family, addr_of(p, v, false)) || our_addr(v->family, addr_of(p, v, true)))
		return true;
	return view_inner(p, v, &in) &&
	       (our_addr(in.family, addr_of(p, &in, false)) ||
		our_addr(in.family, addr_of(p, &in, true)));
}

/* Where an ICMP translation may take a quoted endpoint: a backend's to its
 * service's VIP:port, a VIP's to a backend of its service that is not removed. */
static bool icmp_maps_to(const struct fuzz *f, int family, const __u8 *from, __u16 from_port,
			 const __u8 *to, __u16 to_port)
{
	for (size_t i = 0; i < NBE; i++)
		if (ep_is(&be_ep[i], family, from, from_port))
			return ep_is(&svc_ep[backends[i].svc], family, to, to_port);
	for (size_t i = 0; i < NSVC; i++) {
		if (!ep_is(&svc_ep[i], family, from, from_port))
			continue;
		for (size_t j = 0; j < NBE; j++)
			if (backends[j].svc == (int)i &&
			    !(f->phase == 2 && backends[j].fate == REMOVED) &&
			    ep_is(&be_ep[j], family, to, to_port))
				return true;
		return false;
	}
	return false;
}

/*
 * A translated ICMP error. The outer packet was well-formed; only the outer
 * addresses, the quoted TCP header's addresses and ports, and checksums
 * changed; a quoted endpoint went from a backend to its VIP:port or from a
 * VIP:port to one of its backends; an outer address changed only together
 * with the quoted one it stands for; nothing past the IP datagram changed; and
 * checksums are kept (valid stays valid, a wrong one stays as wrong).
 */
static bool check_icmp(const struct fuzz *f, const struct pkt *in, const struct view *v,
		       const struct pkt *out, char *why, size_t why_len)
{
	struct range skip[8];
	struct view iv, sv;
	size_t n = 0;
	bool inner, moved[2] = { false, false };
	long at;

	if (out->len != in->len)
		return WHY("ICMP error translated, but its length changed %u -> %u", in->len,
			   out->len);
	if (!view_strict(in, &sv) || sv.frag || sv.l4 + 8 > sv.end)
		return WHY("a malformed ICMP error (or a fragment) was rewritten (invariant 5)");
	skip[n++] = (struct range){ v->saddr, 2 * v->alen };
	skip[n++] = (struct range){ ETH_LEN + 10, v->family == 4 ? 2 : 0 };
	skip[n++] = (struct range){ v->l4 + 2, 2 };
	/* only a quoted TCP header with its ports: tcpshift NATs nothing else */
	inner = view_inner(in, v, &iv) && iv.proto == IPPROTO_TCP && iv.l4 + 4 <= sv.end;
	if (inner) {
		skip[n++] = (struct range){ iv.saddr, 2 * iv.alen };
		skip[n++] = (struct range){ iv.l3 + 10, iv.family == 4 ? 2 : 0 };
		skip[n++] = (struct range){ iv.l4, 4 };
		skip[n++] = (struct range){ iv.l4 + 16, 2 };
	}
	at = diff_except(out, in, skip, n);
	if (at >= 0)
		return WHY("ICMP error: byte %ld changed (only addresses, ports and checksums "
			   "may)", at);
	for (__u32 i = sv.end; i < in->len; i++)
		if (in->data[i] != out->data[i])
			return WHY("ICMP error: byte %u changed, past the end of the IP datagram "
				   "(%u bytes)", i, sv.end);
	for (int dst = 0; inner && dst < 2; dst++) {
		const __u8 *a = addr_of(in, &iv, dst), *b = addr_of(out, &iv, dst);
		__u16 pa = port_of(in, &iv, dst), pb = port_of(out, &iv, dst);

		moved[dst] = memcmp(a, b, iv.alen) || pa != pb;
		if (moved[dst] && !icmp_maps_to(f, iv.family, a, pa, b, pb))
			return WHY("ICMP error: quoted %s rewritten, but not from a backend to "
				   "its VIP:port or from a VIP:port to its backend",
				   dst ? "destination" : "source");
	}
	for (int dst = 0; dst < 2; dst++) {
		const __u8 *a = addr_of(in, v, dst), *b = addr_of(out, v, dst);
		bool ok = false;

		if (!memcmp(a, b, v->alen))
			continue;
		for (int k = 0; k < 2 && !ok; k++)
			ok = moved[k] && !memcmp(a, addr_of(in, &iv, k), v->alen) &&
			     !memcmp(b, addr_of(out, &iv, k), v->alen);
		if (!ok)
			return WHY("ICMP error: outer %s rewritten, but not as the quoted "
				   "endpoint it stands for", dst ? "destination" : "source");
	}
	if (v->family == 4 && !resid_same(ip_resid(in, v), ip_resid(out, v)))
		return WHY("ICMP error: IPv4 header checksum %s",
			   resid_ok(ip_resid(in, v)) ? "no longer verifies" : "error changed");
	if (inner && iv.family == 4 && iv.l4 <= sv.end &&
	    !resid_same(ip_resid(in, &iv), ip_resid(out, &iv)))
		return WHY("ICMP error: quoted IPv4 header checksum %s",
			   resid_ok(ip_resid(in, &iv)) ? "no longer verifies" : "error changed");
	if (!resid_same(l4_resid(in, &sv), l4_resid(out, &sv)))
		return WHY("ICMP error: ICMP checksum %s",
			   resid_ok(l4_resid(in, &sv)) ? "no longer verifies" : "error changed");
	/* the quoted TCP checksum, when the whole quoted segment is there */
	if (inner && iv.l4 + 20 <= sv.end) {
		iv.end = iv.family == 4 ? iv.l3 + get16(in->data + iv.l3 + 2)
					: iv.l4 + get16(in->data + iv.l3 + 4);
		if (iv.end >= iv.l4 + 20 && iv.end <= sv.end &&
		    !resid_same(l4_resid(in, &iv), l4_resid(out, &iv)))
			return WHY("ICMP error: quoted TCP checksum %s",
				   resid_ok(l4_resid(in, &iv)) ? "no longer verifies"
							       : "error changed");
	}
	return true;
}

/* Judge one run: the outcome, or O_FAILED with why. */
static enum outcome judge(const struct fuzz *f, const struct pkt *in, const struct pkt *out,
			  int verdict, char *why, size_t why_len)
{
	bool lenient = false, to_vip = false, from_be = false, icmp = false;
	struct view v, sv;
	int svc, be;

	if (verdict != TC_ACT_OK && verdict != TC_ACT_SHOT && verdict != TC_ACT_REDIRECT)
		return FAILED("verdict %d: only TC_ACT_OK, TC_ACT_SHOT or TC_ACT_REDIRECT",
			      verdict);
	lenient = view_lenient(in, &v);
	if (lenient) {
		to_vip = find_vip(in, &v, true) >= 0;
		from_be = find_be(in, &v, false) >= 0;
		icmp = icmp_ours(in, &v);
	}
	if (!to_vip && !from_be && !icmp) {
		/* (a) hands off */
		if (verdict != TC_ACT_OK)
			return FAILED("not to a VIP:port, not from a backend: verdict %d, want "
				      "TC_ACT_OK", verdict);
		if (pkt_diff(out, in) >= 0)
			return FAILED("not to a VIP:port, not from a backend: modified at byte %ld",
				      pkt_diff(out, in));
		return O_UNTOUCHED;
	}
	if (verdict == TC_ACT_SHOT)
		return O_DROPPED;
	if (verdict == TC_ACT_REDIRECT)
		return check_reset(f, in, out, why, why_len) ? O_RESET : O_FAILED;
	if (pkt_diff(out, in) < 0)
		return O_UNTOUCHED;
	if (icmp)
		return check_icmp(f, in, &v, out, why, why_len) ? O_ICMP_NAT : O_FAILED;
	/* (b) rewritten: must have been well-formed, whole, and ours */
	if (!view_strict(in, &sv) || sv.proto != IPPROTO_TCP)
		return FAILED("a malformed packet was rewritten (invariant 5)");
	if (sv.frag)
		return FAILED("a fragment was rewritten");
	svc = find_vip(in, &sv, true);
	be = find_be(in, &sv, false);
	if (svc >= 0 && check_forward(f, in, &sv, svc, out, why, why_len))
		return O_FORWARDED;
	if (be >= 0) {
		char first[200];

		snprintf(first, sizeof(first), "%s", svc >= 0 ? why : "");
		if (check_reply(f, in, &sv, be, out, why, why_len))
			return O_REPLIED;
		if (first[0]) /* both readings fail: say both */
			snprintf(why + strlen(why), why_len - strlen(why), "; as a forward: %s",
				 first);
	}
	if (!why[0])
		return FAILED("rewritten, but as neither a forward nor a reply");
	return O_FAILED;
}

/* What the sentinel flows, and valid packets in phase 1, must get beyond (a)-(c). */
static bool judge_expected(const struct fuzz *f, const struct gen *g, const struct pkt *out,
			   enum outcome o, char *why, size_t why_len)
{
	if (g->sentinel >= 0) {
		const struct sentinel *s = &f->sent[g->sentinel];
		const struct fz_backend *b = &backends[s->be];
		bool gone = f->phase == 2 && b->fate != ACTIVE;
		struct view v;

		if (g->reply) {
			if (!gone && o != O_REPLIED)
				return WHY("reply of a pinned flow from %s: %s, want the VIP as "
					   "source (invariant 4)", b->ep, outcome_name[o]);
			if (gone && b->fate == DRAINED && o != O_REPLIED && o != O_DROPPED)
				return WHY("reply from %s past its drain deadline: %s", b->ep,
					   outcome_name[o]);
			return true;
		}
		if (!gone) {
			if (o != O_FORWARDED || !view_strict(out, &v) ||
			    find_be(out, &v, true) != s->be)
				return WHY("packet of a flow pinned to %s %s: %s, not forwarded "
					   "there (invariant 2)", services[b->svc].name, b->name,
					   outcome_name[o]);
			return true;
		}
		if (o != O_DROPPED && o != O_RESET)
			return WHY("packet of a flow pinned to %s %s, %s: %s, want it closed "
				   "(dropped or reset), never moved", services[b->svc].name,
				   b->name,
				   b->fate == REMOVED ? "removed" : "past its drain deadline",
				   outcome_name[o]);
		return true;
	}
	if (g->plain_forward && f->phase == 1 && o != O_FORWARDED)
		return WHY("a valid TCP packet to a VIP:port, every backend active: %s, want "
			   "forwarded", outcome_name[o]);
	return true;
}

/* The kernel refuses frames shorter than Ethernet + the IP header its ethertype
 * names (EINVAL): those are skipped, and counted. */
static bool refused_as_short(const struct pkt *p)
{
	__u16 etype = p->len >= ETH_LEN ? get16(p->data + 12) : 0;

	return p->len < ETH_LEN || (etype == ETYPE_IP && p->len < V4_MIN) ||
	       (etype == ETYPE_IPV6 && p->len < V6_MIN);
}

/* Count failures by kind: the reason with its numbers and addresses blanked. */
static void count_kind(struct fuzz *f, const struct gen *g, const char *why)
{
	char key[160];
	size_t o = 0, i;

	for (const char *c = why; *c && o + 1 < sizeof(key); c++) {
		if ((isxdigit((unsigned char)*c) || *c == '.' || *c == ':') &&
		    (c == why || !isalnum((unsigned char)c[-1]))) {
			const char *e = c;

			while (isxdigit((unsigned char)*e) || *e == '.' || *e == ':')
				e++;
			/* a run with a digit is a number or an address; a word stays */
			for (const char *d = c; d < e; d++)
				if (isdigit((unsigned char)*d)) {
					key[o++] = 'N';
					c = e - 1;
					goto next;
				}
		}
		key[o++] = *c;
next:;
	}
	key[o] = '\0';
	for (i = 0; i < f->nkinds; i++)
		if (!strcmp(f->kinds[i].why, key))
			break;
	if (i == f->nkinds) {
		if (f->nkinds == N(f->kinds))
			return;
		f->nkinds++;
		snprintf(f->kinds[i].why, sizeof(f->kinds[i].why), "%s", key);
		f->kinds[i].phase = f->phase;
		f->kinds[i].cls = g->cls;
		f->kinds[i].n = g->n;
	}
	f->kinds[i].count++;
}

static void report(struct fuzz *f, const struct gen *g, const struct pkt *in,
		   const struct pkt *out, int verdict, const char *why)
{
	f->failures++;
	f->stats[g->cls][O_FAILED]++;
	count_kind(f, g, why);
	if (f->failures > f->max_reports)
		return;
	fprintf(stderr,
		"fuzz failure %u: %s\n  seed %#llx, phase %d, %s packet %u: %s\n  verdict %d\n",
		f->failures, why, (unsigned long long)f->seed, f->phase, cls_name[g->cls], g->n,
		g->trail, verdict);
	pkt_dump("in", in, -1);
	if (out)
		pkt_dump("out", out, pkt_diff(out, in));
}

static void run_one(struct fuzz *f, const struct pkt *in, const struct gen *g)
{
	struct pkt out;
	char why[512] = "";
	enum outcome o;
	int verdict = -1, r;

	f->stats[g->cls][O_SENT]++;
	r = env_try_run(f->e, in, &out, &verdict);
	if (r == -EINVAL && refused_as_short(in)) {
		f->stats[g->cls][O_SKIPPED]++;
		return;
	}
	if (r) {
		snprintf(why, sizeof(why), "BPF_PROG_TEST_RUN: %s", strerror(-r));
		report(f, g, in, NULL, verdict, why);
		return;
	}
	o = judge(f, in, &out, verdict, why, sizeof(why));
	if (o != O_FAILED && !judge_expected(f, g, &out, o, why, sizeof(why)))
		o = O_FAILED;
	if (o == O_FAILED)
		report(f, g, in, &out, verdict, why);
	else
		f->stats[g->cls][o]++;
}

/* ---- making packets ------------------------------------------------------------------- */

struct spec_buf {
	char src[PKT_EPSTRLEN], dst[PKT_EPSTRLEN], payload[200];
};

static const __u8 flag_choices[] = {
	PKT_SYN,	   PKT_SYN | PKT_ACK, PKT_ACK, PKT_PSH | PKT_ACK, PKT_FIN | PKT_ACK,
	PKT_RST,	   PKT_RST | PKT_ACK, PKT_FIN, 0,
};

static void client_addr(struct rng *r, int family, char *buf)
{
	if (family == 4)
		snprintf(buf, PKT_EPSTRLEN, chance(r, 90) ? "198.18.1.%u" : "10.9.8.%u",
			 1 + below(r, 254));
	else
		snprintf(buf, PKT_EPSTRLEN, chance(r, 90) ? "2001:2:1::%x" : "fd00:9::%x",
			 1 + below(r, 0xfffe));
}

static int random_backend_of(struct rng *r, int svc)
{
	int idx[NBE], n = 0;

	for (size_t i = 0; i < NBE; i++)
		if (backends[i].svc == svc)
			idx[n++] = (int)i;
	return idx[below(r, (__u32)n)];
}

static void random_payload(struct rng *r, char *buf, size_t max)
{
	size_t n = 1 + below(r, (__u32)max - 1);

	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(' ' + below(r, 95));
	buf[n] = '\0';
}

/* A valid packet of some kind, to, from or near our endpoints. */
static void gen_valid(struct fuzz *f, struct rng *r, struct pkt *p, struct gen *g)
{
	int family = chance(r, 50) ? 4 : 6;
	int svc = family == 6 ? 2 : (int)below(r, 2), be = random_backend_of(r, svc);
	const struct ep *vip = &svc_ep[svc], *bep = &be_ep[be];
	struct pkt_spec s = { .src = NULL };
	struct spec_buf b;
	__u32 role = below(r, 100);
	const char *what;

	client_addr(r, family, b.src);
	snprintf(b.dst, sizeof(b.dst), "%s", vip->text);
	s.src = b.src;
	s.dst = b.dst;
	s.sport = (__u16)(1024 + below(r, 59000));
	s.dport = vip->port;
	if (role < 45) {
		what = "client->VIP";
	} else if (role < 62) {
		what = "backend->client";
		snprintf(b.dst, sizeof(b.dst), "%s", b.src);
		snprintf(b.src, sizeof(b.src), "%s", bep->text);
		s.dport = s.sport;
		s.sport = bep->port;
	} else if (role < 68) {
		what = "client->VIP:other-port";
		s.dport = (__u16)(chance(r, 50) ? vip->port + 1 + below(r, 3) : below(r, 65536));
	} else if (role < 74) {
		what = "client->other-address";
		snprintf(b.dst, sizeof(b.dst), family == 4 ? "198.18.100.%u" : "2001:2:100::%x",
			 2 + below(r, 200));
	} else if (role < 80) {
		what = "client->backend";
		snprintf(b.dst, sizeof(b.dst), "%s", bep->text);
		s.dport = bep->port;
	} else if (role < 86) {
		what = "VIP->client";
		snprintf(b.dst, sizeof(b.dst), "%s", b.src);
		snprintf(b.src, sizeof(b.src), "%s", vip->text);
		s.dport = s.sport;
		s.sport = vip->port;
	} else if (role < 92) {
		what = "backend:other-port->client";
		snprintf(b.dst, sizeof(b.dst), "%s", b.src);
		snprintf(b.src, sizeof(b.src), "%s", bep->text);
		s.dport = s.sport;
		s.sport = (__u16)(bep->port + 1 + below(r, 100));
	} else {
		what = "client->client";
		client_addr(r, family, b.dst);
		s.dport = (__u16)below(r, 65536);
	}
	s.flags = chance(r, 85) ? flag_choices[below(r, N(flag_choices))] : (__u8)below(r, 256);
	s.proto = chance(r, 86) ? 0 : chance(r, 70) ? IPPROTO_UDP
				     : family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6;
	s.mss = chance(r, 40);
	s.ip_options = family == 4 && chance(r, 15);
	s.eth_pad = chance(r, 10);
	if (family == 6 && chance(r, 20)) {
		s.v6_ext = chance(r, 50) ? PKT_V6_HOPOPTS : PKT_V6_FRAGMENT;
		s.frag_off = (__u16)(chance(r, 40) ? 0 : below(r, 65536) & 0xfff9);
	} else if (family == 4 && chance(r, 10)) {
		static const __u16 frags[] = { 0x2000, 0x2000 | 185, 185, 0x4000, 0x8000 };

		s.frag_off = chance(r, 70) ? frags[below(r, N(frags))] : (__u16)below(r, 65536);
	}
	s.seq = (__u32)rnd(r);
	s.ack = (__u32)rnd(r);
	if (chance(r, 40)) {
		random_payload(r, b.payload, 160);
		s.payload = b.payload;
	}
	if (pkt_build(p, &s))
		fail_msg("pkt_build(%s -> %s)", s.src, s.dst);
	g->plain_forward = role < 45 && s.proto == 0 && s.v6_ext == PKT_V6_NO_EXT &&
			   !(s.frag_off & 0x3fff);
	trail_add(g, "%s IPv%d %s flags=%#x%s%s%s%s", what, family,
		  s.proto == 0 ? "TCP" : s.proto == IPPROTO_UDP ? "UDP" : "ICMP", s.flags,
		  s.mss ? " mss" : "", s.ip_options ? " ip-options" : "",
		  s.v6_ext == PKT_V6_HOPOPTS ? " hop-by-hop" : s.v6_ext ? " frag-header" : "",
		  s.frag_off ? " frag_off" : "");
}

/* An ICMP error quoting a packet of (or like) a NATed flow. */
static void gen_icmp(struct fuzz *f, struct rng *r, struct pkt *p, struct gen *g)
{
	int family = chance(r, 50) ? 4 : 6;
	int svc = family == 6 ? 2 : (int)below(r, 2), be = random_backend_of(r, svc);
	const struct ep *vip = &svc_ep[svc], *bep = &be_ep[be];
	char client[PKT_EPSTRLEN], router[PKT_EPSTRLEN], fill[200];
	struct pkt_spec is = { .flags = PKT_ACK | PKT_PSH, .payload = "quoted data" };
	struct pkt_spec os = { .proto = family == 4 ? IPPROTO_ICMP : IPPROTO_ICMPV6 };
	struct pkt inner;
	__u32 kind = below(r, 5), ilen, l4;
	const char *what;

	client_addr(r, family, client);
	snprintf(router, sizeof(router), family == 4 ? "198.18.9.%u" : "2001:2:9::%x",
		 1 + below(r, 250));
	is.sport = (__u16)(1024 + below(r, 59000));
	switch (kind) {
	case 0: /* about a reply on its way to the client: sent to the VIP */
		what = "ICMP to VIP about VIP->client";
		is.src = vip->text;
		is.sport = vip->port;
		is.dst = client;
		is.dport = (__u16)(1024 + below(r, 59000));
		os.src = router;
		os.dst = vip->text;
		break;
	case 1: /* about a forwarded packet on its way to the backend: sent to the client */
		what = "ICMP to client about client->backend";
		is.src = client;
		is.dst = bep->text;
		is.dport = bep->port;
		os.src = router;
		os.dst = client;
		break;
	case 2: /* from the backend itself */
		what = "ICMP from backend about client->backend";
		is.src = client;
		is.dst = bep->text;
		is.dport = bep->port;
		os.src = bep->text;
		os.dst = client;
		break;
	case 3: /* as case 0, but addressed to some other host: not the gateway's */
		what = "ICMP to a third host about VIP->client";
		is.src = vip->text;
		is.sport = vip->port;
		is.dst = client;
		is.dport = (__u16)(1024 + below(r, 59000));
		os.src = router;
		os.dst = family == 4 ? "198.18.5.5" : "2001:2:5::5";
		break;
	default: /* about a client's packet to the VIP: sent back to the client */
		what = "ICMP to client about client->VIP";
		is.src = client;
		is.dst = vip->text;
		is.dport = vip->port;
		os.src = router;
		os.dst = client;
		break;
	}
	if (pkt_build(&inner, &is))
		fail_msg("pkt_build(inner)");
	/* the IP header and 8 bytes (RFC 792), or more */
	ilen = inner.len - ETH_LEN;
	if (chance(r, 50))
		ilen = (family == 4 ? 20 : 40) + 8;
	/* built as an echo request (8-byte header), then made an error */
	memset(fill, 'x', ilen);
	fill[ilen] = '\0';
	os.payload = fill;
	if (pkt_build(p, &os))
		fail_msg("pkt_build(ICMP)");
	l4 = p->len - ilen - 8;
	if (family == 4) {
		static const __u8 types[][2] = {
			{ 3, 4 }, { 3, 4 }, { 3, 3 }, { 11, 0 }, { 12, 0 },
		};
		__u32 t = below(r, N(types));

		p->data[l4] = types[t][0];
		p->data[l4 + 1] = types[t][1];
		set16(p->data + l4 + 4, 0);
		set16(p->data + l4 + 6, (__u16)(576 + below(r, 1000)));
	} else {
		static const __u8 types[][2] = { { 2, 0 }, { 2, 0 }, { 1, 4 }, { 3, 0 }, { 4, 0 } };
		__u32 t = below(r, N(types)), mtu = 1280 + below(r, 300);

		p->data[l4] = types[t][0];
		p->data[l4 + 1] = types[t][1];
		set16(p->data + l4 + 4, (__u16)(mtu >> 16));
		set16(p->data + l4 + 6, (__u16)mtu);
	}
	memcpy(p->data + l4 + 8, inner.data + ETH_LEN, ilen);
	fix_csums(p);
	trail_add(g, "%s IPv%d type %u code %u, quoting %u bytes", what, family, p->data[l4],
		  p->data[l4 + 1], ilen);
}

/* Random bytes, mostly short. */
static void gen_random(struct rng *r, struct pkt *p, struct gen *g)
{
	p->len = chance(r, 60) ? below(r, 120) : below(r, PKT_MAX + 1);
	for (__u32 i = 0; i < p->len; i++)
		p->data[i] = (__u8)rnd(r);
	trail_add(g, "%u random bytes", p->len);
}

/* Make the packet's destination a VIP:port, or its source a backend address:port,
 * wherever its headers put them. */
static void retarget(struct rng *r, struct pkt *p, struct gen *g)
{
	struct view v;
	bool dst = chance(r, 60);
	const struct ep *e;
	__u32 i;

	if (!view_lenient(p, &v))
		return;
	if (dst) {
		do
			i = below(r, NSVC);
		while (svc_ep[i].family != v.family);
		e = &svc_ep[i];
	} else {
		do
			i = below(r, NBE);
		while (be_ep[i].family != v.family);
		e = &be_ep[i];
	}
	memcpy(p->data + (dst ? v.daddr : v.saddr), e->addr, v.alen);
	if (v.l4 + 4 <= p->len)
		set16(p->data + v.l4 + (dst ? 2 : 0), e->port);
	trail_add(g, "retarget-%s=%s", dst ? "dst" : "src", e->text);
}

/* Random bytes under an IP ethertype, with some header fields made plausible. */
static void gen_random_ip(struct rng *r, struct pkt *p, struct gen *g)
{
	int family = chance(r, 50) ? 4 : 6;
	__u32 min = family == 4 ? V4_MIN : V6_MIN;

	p->len = min + (chance(r, 70) ? below(r, 80) : below(r, PKT_MAX - min + 1));
	for (__u32 i = 0; i < p->len; i++)
		p->data[i] = (__u8)rnd(r);
	set16(p->data + 12, family == 4 ? ETYPE_IP : ETYPE_IPV6);
	if (chance(r, 70))
		p->data[ETH_LEN] = (__u8)(family << 4 | (family == 4 && chance(r, 50)
								 ? 5 : p->data[ETH_LEN] & 0xf));
	if (chance(r, 60))
		p->data[ETH_LEN + (family == 4 ? 9 : 6)] = IPPROTO_TCP;
	if (chance(r, 30))
		set16(p->data + ETH_LEN + (family == 4 ? 2 : 4),
		      (__u16)(p->len - (family == 4 ? ETH_LEN : V6_MIN)));
	if (chance(r, 40))
		retarget(r, p, g);
	if (chance(r, 30)) {
		struct view v;

		if (view_lenient(p, &v) && v.l4 + 13 <= p->len)
			p->data[v.l4 + 12] = 0x50;
	}
	if (chance(r, 50))
		fix_csums(p);
	trail_add(g, "IPv%d ethertype, %u random bytes", family, p->len);
}

/* ---- mutations -------------------------------------------------------------------------- */

static __u32 header_pos(struct rng *r, const struct pkt *p)
{
	__u32 lim = p->len < 90 ? p->len : 90;

	return chance(r, 75) ? below(r, lim) : below(r, p->len);
}

/* Insert n bytes at off (the packet grows), if there is room. */
static bool insert_bytes(struct pkt *p, __u32 off, __u32 n)
{
	if (off > p->len || p->len + n > PKT_MAX)
		return false;
	memmove(p->data + off + n, p->data + off, p->len - off);
	p->len += n;
	return true;
}

static void mut_ip_options(struct rng *r, struct pkt *p, struct gen *g)
{
	__u8 *ip = p->data + ETH_LEN;
	__u32 ihl = (ip[0] & 0xf) < 5 ? 5 : ip[0] & 0xf, words, off;

	if (ihl >= 15)
		return;
	words = 1 + below(r, 15 - ihl);
	off = ETH_LEN + ihl * 4;
	if (!insert_bytes(p, off, words * 4))
		return;
	switch (below(r, 3)) {
	case 0: /* NOPs and an end of list */
		memset(p->data + off, 1, words * 4);
		p->data[off + words * 4 - 1] = 0;
		break;
	case 1: /* a record-route option filling the space */
		p->data[off] = 7;
		p->data[off + 1] = (__u8)(words * 4 - 1);
		p->data[off + 2] = 4;
		memset(p->data + off + 3, 0, words * 4 - 3);
		break;
	default:
		for (__u32 i = 0; i < words * 4; i++)
			p->data[off + i] = (__u8)rnd(r);
	}
	ip[0] = (__u8)((ip[0] & 0xf0) | (ihl + words));
	set16(ip + 2, (__u16)(get16(ip + 2) + words * 4));
	fix_csums(p);
	trail_add(g, "ip-options+%u", words * 4);
}

static void mut_v6_ext(struct rng *r, struct pkt *p, struct gen *g)
{
	static const __u8 types[] = { 0, 60, 43, 44, 44 };
	__u8 type = types[below(r, N(types))], *ip6 = p->data + ETH_LEN, *h;
	__u32 len = type == 44 ? 8 : 8 * (1 + below(r, 4));

	if (!insert_bytes(p, V6_MIN, len))
		return;
	h = p->data + V6_MIN;
	memset(h, 0, len);
	h[0] = ip6[6];
	ip6[6] = type;
	if (type == 44) {
		set16(h + 2, chance(r, 40) ? 0 : (__u16)(below(r, 65536) & 0xfff9));
		memcpy(h + 4, "\x12\x34\x56\x78", 4);
	} else {
		h[1] = (__u8)(len / 8 - 1);
		if (type == 43) { /* routing: type, segments left, then data */
			h[2] = (__u8)below(r, 5);
			h[3] = (__u8)(chance(r, 70) ? 0 : below(r, 4));
			for (__u32 i = 4; i < len; i++)
				h[i] = (__u8)rnd(r);
		} else if (chance(r, 70)) { /* one PadN option over the rest */
			h[2] = 1;
			h[3] = (__u8)(len - 4);
		} else {
			for (__u32 i = 2; i < len; i++)
				h[i] = (__u8)rnd(r);
		}
	}
	set16(ip6 + 4, (__u16)(get16(ip6 + 4) + len));
	trail_add(g, "v6-ext(%u,%u)", type, len);
}

static void mutate(struct rng *r, struct pkt *p, struct gen *g)
{
	struct view v;
	bool ip = view_lenient(p, &v);
	bool v4 = p->len >= V4_MIN && get16(p->data + 12) == ETYPE_IP;
	bool v6 = p->len >= V6_MIN && get16(p->data + 12) == ETYPE_IPV6;
	bool l4 = ip && v.l4 + 14 <= p->len;
	__u32 at, x;

	switch (below(r, 19)) {
	case 0:
	case 1:
		for (x = 1 + below(r, 4); x && p->len; x--) {
			at = header_pos(r, p);
			p->data[at] ^= (__u8)(1u << below(r, 8));
			trail_add(g, "bitflip@%u", at);
		}
		break;
	case 2:
		if (p->len) {
			at = header_pos(r, p);
			p->data[at] = (__u8)rnd(r);
			trail_add(g, "byte@%u=%#x", at, p->data[at]);
		}
		break;
	case 3:
		p->len = chance(r, 60) ? below(r, (p->len < 90 ? p->len : 90) + 1)
				       : below(r, p->len + 1);
		trail_add(g, "truncate@%u", p->len);
		break;
	case 4:
		for (x = 1 + below(r, 64); x && p->len < PKT_MAX; x--)
			p->data[p->len++] = (__u8)rnd(r);
		trail_add(g, "extend->%u", p->len);
		break;
	case 5:
		if (v4) {
			p->data[ETH_LEN] = (__u8)((p->data[ETH_LEN] & 0xf0) | below(r, 16));
			trail_add(g, "ihl=%u", p->data[ETH_LEN] & 0xf);
		}
		break;
	case 6:
		if (l4) {
			p->data[v.l4 + 12] = (__u8)(below(r, 16) << 4 | (p->data[v.l4 + 12] & 0xf));
			trail_add(g, "doff=%u", p->data[v.l4 + 12] >> 4);
		}
		break;
	case 7:
		if (v4) {
			x = get16(p->data + ETH_LEN + 2);
			x = chance(r, 50) ? x + below(r, 17) - 8 : below(r, 65536);
			set16(p->data + ETH_LEN + 2, (__u16)x);
			trail_add(g, "tot_len=%u", (__u16)x);
		}
		break;
	case 8:
		if (v6) {
			x = get16(p->data + ETH_LEN + 4);
			x = chance(r, 50) ? x + below(r, 17) - 8 : below(r, 65536);
			set16(p->data + ETH_LEN + 4, (__u16)x);
			trail_add(g, "payload_len=%u", (__u16)x);
		}
		break;
	case 9:
		if (v4) {
			static const __u16 frags[] = { 0x2000, 0x2001, 0x0001, 0x1fff, 0x4000,
						       0x8000 };

			x = chance(r, 60) ? frags[below(r, N(frags))] : below(r, 65536);
			set16(p->data + ETH_LEN + 6, (__u16)x);
			trail_add(g, "frag_off=%#x", x);
		} else if (v6) {
			/* a fragment header in front of the upper layer */
			mut_v6_ext(r, p, g);
		}
		break;
	case 10:
		if (v4 || v6) {
			static const __u8 protos[] = { 6, 17, 1, 58, 0, 43, 44, 51, 60, 41, 59 };

			x = chance(r, 70) ? protos[below(r, N(protos))] : below(r, 256);
			p->data[ETH_LEN + (v4 ? 9 : 6)] = (__u8)x;
			trail_add(g, "%s=%u", v4 ? "protocol" : "nexthdr", x);
		}
		break;
	case 11:
		if (l4) {
			p->data[v.l4 + 13] = (__u8)rnd(r);
			trail_add(g, "tcp-flags=%#x", p->data[v.l4 + 13]);
		}
		break;
	case 12:
		if (v4 || v6) {
			p->data[ETH_LEN] = (__u8)((below(r, 16) << 4) | (p->data[ETH_LEN] & 0xf));
			trail_add(g, "version=%u", p->data[ETH_LEN] >> 4);
		}
		break;
	case 13:
		if (p->len >= ETH_LEN) {
			static const __u16 types[] = { ETYPE_IP, ETYPE_IPV6, ETYPE_VLAN, 0x0806,
						       0x88b5 };

			x = chance(r, 80) ? types[below(r, N(types))] : below(r, 65536);
			set16(p->data + 12, (__u16)x);
			trail_add(g, "ethertype=%#06x", x);
		}
		break;
	case 14:
		if (v4)
			mut_ip_options(r, p, g);
		break;
	case 15:
		if (v6)
			mut_v6_ext(r, p, g);
		break;
	case 16:
		retarget(r, p, g);
		break;
	case 17:
		fix_csums(p);
		trail_add(g, "fix-csums");
		break;
	default:
		/* a cut that keeps the length fields consistent */
		if (v4 || v6) {
			x = v4 ? V4_MIN : V6_MIN;
			cut_consistently(p, x + below(r, p->len - x + 1));
			trail_add(g, "consistent-cut@%u", p->len);
		}
		break;
	}
}

/* ---- sentinels ------------------------------------------------------------------------- */

static struct pkt_spec sentinel_spec(const struct sentinel *s, bool reply, __u8 flags)
{
	const struct ep *vip = &svc_ep[s->svc], *be = &be_ep[s->be];

	if (reply)
		return (struct pkt_spec){ .src = be->text, .sport = be->port, .dst = s->client,
					  .dport = s->sport, .flags = flags };
	return (struct pkt_spec){ .src = s->client, .sport = s->sport, .dst = vip->text,
				  .dport = vip->port, .flags = flags };
}

/* Pin flows (SYN, then the client's ACK) until every backend has two. */
static void pin_sentinels(struct fuzz *f)
{
	for (size_t svc = 0; svc < NSVC; svc++) {
		unsigned int per_be[NBE] = { 0 };
		bool done = false;

		for (__u32 i = 0; i < 400 && !done && f->nsent < MAX_SENTINELS; i++) {
			struct sentinel *s = &f->sent[f->nsent];
			struct pkt_spec spec;
			struct pkt in, out;
			struct view v;
			int be;

			s->svc = (int)svc;
			snprintf(s->client, sizeof(s->client),
				 svc_ep[svc].family == 4 ? "198.18.7.%u" : "2001:2:7::%x",
				 1 + i % 200);
			s->sport = (__u16)(61000 + 400 * svc + i);
			spec = sentinel_spec(s, false, PKT_SYN);
			spec.mss = true;
			test_context("pinning sentinel %s:%u -> %s", s->client, s->sport,
				     services[svc].vip);
			ASSERT_EQ(env_send(f->e, &spec, &in, &out), TC_ACT_OK, "SYN verdict");
			ASSERT_TRUE(view_strict(&out, &v), "SYN forwarded");
			be = find_be(&out, &v, true);
			ASSERT_TRUE(be >= 0 && backends[be].svc == (int)svc,
				    "SYN went to a backend of the service");
			spec = sentinel_spec(s, false, PKT_ACK);
			ASSERT_EQ(env_send(f->e, &spec, &in, &out), TC_ACT_OK, "ACK verdict");
			if (per_be[be] >= 2)
				continue;
			per_be[be]++;
			s->be = be;
			f->nsent++;
			done = true;
			for (size_t b = 0; b < NBE; b++)
				done &= backends[b].svc != (int)svc || per_be[b] >= 2;
		}
		test_context(NULL);
		ASSERT_TRUE(done, "every backend got two sentinel flows");
	}
}

static void gen_sentinel(struct fuzz *f, struct rng *r, struct pkt *p, struct gen *g)
{
	const struct sentinel *s;
	struct pkt_spec spec;
	char payload[200];

	g->sentinel = (int)below(r, (__u32)f->nsent);
	g->reply = chance(r, 40);
	s = &f->sent[g->sentinel];
	spec = sentinel_spec(s, g->reply, chance(r, 50) ? PKT_ACK : PKT_PSH | PKT_ACK);
	spec.seq = (__u32)rnd(r);
	spec.ack = (__u32)rnd(r);
	if (chance(r, 50)) {
		random_payload(r, payload, 160);
		spec.payload = payload;
	}
	if (pkt_build(p, &spec))
		fail_msg("pkt_build(sentinel)");
	trail_add(g, "sentinel %s %s:%u %s %s %s", services[s->svc].name, s->client, s->sport,
		  g->reply ? "<-" : "->", backends[s->be].name, backends[s->be].ep);
}

/* ---- the phases ------------------------------------------------------------------------ */

/* The PRNG streams of a seed: one per packet of each kind. */
enum stream_kind {
	S_PACKET = 1,
	S_TRUNC,
};

static void run_random(struct fuzz *f, __u32 first, __u32 count)
{
	for (__u32 n = first; n < first + count; n++) {
		struct rng r = stream(f->seed, S_PACKET, n);
		struct gen g = { .n = n, .sentinel = -1 };
		struct pkt p;
		__u32 c = below(&r, 100);

		memset(&p, 0, sizeof(p));
		if (c < 8) {
			g.cls = C_RANDOM;
			gen_random(&r, &p, &g);
		} else if (c < 20) {
			g.cls = C_RANDOM_IP;
			gen_random_ip(&r, &p, &g);
		} else if (c < 32) {
			g.cls = C_VALID;
			gen_valid(f, &r, &p, &g);
		} else if (c < 38) {
			g.cls = C_ICMP;
			gen_icmp(f, &r, &p, &g);
		} else if (c < 44) {
			g.cls = C_PINNED;
			gen_sentinel(f, &r, &p, &g);
		} else {
			g.cls = C_MUTATED;
			if (chance(&r, 88))
				gen_valid(f, &r, &p, &g);
			else
				gen_icmp(f, &r, &p, &g);
			g.plain_forward = false;
			for (__u32 k = 1 + below(&r, 4); k; k--)
				mutate(&r, &p, &g);
			if (chance(&r, 50)) {
				fix_csums(&p);
				trail_add(&g, "+csums");
			}
		}
		run_one(f, &p, &g);
	}
}

/* Every template cut at every length: raw, and with the IP length fields (and
 * checksums) made to agree with the cut. */
static void run_truncations(struct fuzz *f)
{
	for (__u32 t = 0; t < 24; t++) {
		struct rng r = stream(f->seed, S_TRUNC, t + 100 * (__u32)f->phase);
		struct gen g0 = { .cls = C_TRUNCATED, .sentinel = -1 };
		struct pkt full;

		memset(&full, 0, sizeof(full));
		if (t < 16)
			gen_valid(f, &r, &full, &g0);
		else if (t < 20)
			gen_icmp(f, &r, &full, &g0);
		else
			gen_sentinel(f, &r, &full, &g0);
		g0.sentinel = -1;
		g0.plain_forward = false;
		for (__u32 len = 0; len <= full.len; len++) {
			for (int consistent = 0; consistent < 2; consistent++) {
				struct gen g = g0;
				struct pkt p = full;

				g.n = t * 1000 + len;
				if (!consistent)
					p.len = len;
				else if (!cut_consistently(&p, len))
					continue;
				trail_add(&g, "%s@%u", consistent ? "consistent-cut" : "cut", len);
				run_one(f, &p, &g);
			}
		}
	}
}

/* Phase 2: v3 of each web service drained with a deadline that then passes,
 * v4 removed. */
static void enter_phase2(struct fuzz *f)
{
	struct ts_err err = {};

	for (size_t i = 0; i < NBE; i++) {
		const struct fz_backend *b = &backends[i];
		char what[96];

		snprintf(what, sizeof(what), "%s %s %s", b->fate == DRAINED ? "drain" : "delete",
			 services[b->svc].name, b->name);
		if (b->fate == DRAINED)
			ASSERT_OK(ts_backend_drain(&f->e->maps, services[b->svc].name, b->name,
						   1000000 /* 1 ms */, &err),
				  err, what);
		else if (b->fate == REMOVED)
			env_backend_del(f->e, services[b->svc].name, b->name);
	}
	usleep(20000); /* past the deadline */
	f->phase = 2;
}

static void parse_ep(const char *s, struct ep *e)
{
	char addr[PKT_EPSTRLEN];

	ASSERT_EQ(pkt_split_endpoint(s, addr, &e->port), 0, s);
	e->family = strchr(addr, ':') ? 6 : 4;
	ASSERT_EQ(inet_pton(e->family == 6 ? AF_INET6 : AF_INET, addr, e->addr), 1, s);
	snprintf(e->text, sizeof(e->text), "%s", addr);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_stats(const struct fuzz *f, double secs)
{
	__u64 total[O_N] = { 0 }, c[TS_CNT_MAX];

	printf("  %-11s", "class");
	for (int o = 0; o < O_N; o++)
		printf(" %9s", outcome_name[o]);
	printf("\n");
	for (int k = 0; k < C_N; k++) {
		printf("  %-11s", cls_name[k]);
		for (int o = 0; o < O_N; o++) {
			printf(" %9llu", (unsigned long long)f->stats[k][o]);
			total[o] += f->stats[k][o];
		}
		printf("\n");
	}
	printf("  %-11s", "total");
	for (int o = 0; o < O_N; o++)
		printf(" %9llu", (unsigned long long)total[o]);
	printf("\n  %llu packets in %.1f s (%.0f/s); %u flows pinned at the end\n",
	       (unsigned long long)total[O_SENT], secs, total[O_SENT] / (secs > 0 ? secs : 1),
	       env_flow_count(f->e));
	env_counters(f->e, c);
	printf("  program counters:");
	for (int i = 0; i < TS_CNT_MAX; i++)
		printf(" %s=%llu", ts_counter_name(i), (unsigned long long)c[i]);
	printf("\n");
}

/* Invariants 4 and 5: random and mutated packets, judged one by one;
 * with csum_complete, as CHECKSUM_COMPLETE skbs, whose skb->csum the kernel
 * checks after every run (a run that leaves it wrong fails with EBADMSG). */
static void fuzz_packets(void **state, bool csum_complete)
{
	static struct fuzz fz;
	struct fuzz *f = &fz;
	const char *env;
	__u32 packets = FUZZ_DEFAULT_PACKETS;
	__u64 sent = 0;
	double t0;

	memset(f, 0, sizeof(*f));
	f->e = env_of(state);
	if (csum_complete && !env_csum_complete(f->e))
		return;
	f->seed = FUZZ_DEFAULT_SEED;
	f->phase = 1;
	env = getenv("TS_FUZZ_SEED");
	if (env && *env)
		f->seed = strtoull(env, NULL, 0);
	f->max_reports = FUZZ_MAX_REPORTS;
	env = getenv("TS_FUZZ_REPORTS");
	if (env && *env)
		f->max_reports = (unsigned int)strtoul(env, NULL, 0);
	env = getenv("TS_FUZZ_PACKETS");
	if (env && *env)
		packets = (__u32)strtoul(env, NULL, 0);
	printf("  fuzz: seed %#llx (TS_FUZZ_SEED to change), %u random packets "
	       "(TS_FUZZ_PACKETS) + truncations\n", (unsigned long long)f->seed, packets);

	for (size_t i = 0; i < NSVC; i++)
		parse_ep(services[i].vip, &svc_ep[i]);
	for (size_t i = 0; i < NBE; i++)
		parse_ep(backends[i].ep, &be_ep[i]);
	for (size_t i = 0; i < NSVC; i++)
		env_service(f->e, services[i].name, services[i].vip, TS_DEFAULT_TABLE_SIZE);
	for (size_t i = 0; i < NBE; i++)
		env_backend(f->e, services[backends[i].svc].name, backends[i].name, backends[i].ep,
			    1);
	pin_sentinels(f);

	t0 = now_s();
	run_truncations(f);
	run_random(f, 0, packets / 2);
	enter_phase2(f);
	run_random(f, packets / 2, packets - packets / 2);
	run_truncations(f);
	print_stats(f, now_s() - t0);

	for (int k = 0; k < C_N; k++)
		sent += f->stats[k][O_SENT] - f->stats[k][O_SKIPPED];
	if (f->failures > f->max_reports)
		fprintf(stderr, "  ... and %u more failures (TS_FUZZ_REPORTS=N prints N)\n",
			f->failures - f->max_reports);
	for (size_t i = 0; i < f->nkinds; i++)
		fprintf(stderr, "  %6u x %s (first: phase %d, %s packet %u)\n", f->kinds[i].count,
			f->kinds[i].why, f->kinds[i].phase, cls_name[f->kinds[i].cls],
			f->kinds[i].n);
	ASSERT_EQ(f->failures, 0, "packets that broke invariants 2, 4 or 5 (reported above)");
	if (packets >= FUZZ_DEFAULT_PACKETS)
		ASSERT_GE(sent, 100000, "packets run through the program");
	ASSERT_GT(f->stats[C_MUTATED][O_FORWARDED] + f->stats[C_TRUNCATED][O_FORWARDED], 0,
		  "mutated packets that were still forwarded (the oracle is not idle)");
	ASSERT_GT(f->stats[C_PINNED][O_RESET] + f->stats[C_PINNED][O_DROPPED], 0,
		  "packets of closed flows dropped or reset");
}

static void test_fuzz_packets(void **state)
{
	fuzz_packets(state, false);
}

/* The same packets as CHECKSUM_COMPLETE skbs: every rewrite, RST
 * and ICMP translation keeps skb->csum the sum of the packet. */
static void test_fuzz_packets_checksum_complete(void **state)
{
	fuzz_packets(state, true);
}

int run_fuzz_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST_LARGE(test_fuzz_packets),
		TEST_LARGE(test_fuzz_packets_checksum_complete),
	};

	return cmocka_run_group_tests_name("fuzz (hostile packets)", tests, NULL, NULL);
}
