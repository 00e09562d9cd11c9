// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ICMP errors about NATed flows: "fragmentation needed" / "packet
 * too big" quoting a packet the gateway rewrote are translated, outer and
 * quoted headers, so path MTU discovery works through the gateway.
 *
 * Each fixture builds the error around a quoted packet made by pkt_build, and
 * the expected output around the quoted packet as it must read after the
 * translation; outputs must equal them byte for byte, so every checksum
 * (outer IP, ICMP, quoted IP, quoted TCP) is proved right.
 */
#include <arpa/inet.h>
#include <string.h>
#include <linux/icmp.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/icmpv6.h>

#include "ts_test.h"

#define ROUTER4_CL	"198.18.1.1"	/* a router on the client's side */
#define ROUTER4_BE	"198.18.2.1"	/* a router on the backends' side */
#define ROUTER6_CL	"2001:2:1::1"
#define ROUTER6_BE	"2001:2:2::1"

/* The ICMP error from src to dst quoting the IP packet of `quoted` (its frame
 * without Ethernet), at most `quote` bytes of it. */
static void icmp_error(struct pkt *out, const struct pkt *quoted, const char *src,
		       const char *dst, __u32 quote)
{
	bool v6 = strchr(src, ':') != NULL;
	__u32 l3 = 14, icmp = l3 + (v6 ? 40 : 20), n = quoted->len - 14;
	__u8 *d = out->data;

	if (n > quote)
		n = quote;
	memset(out, 0, sizeof(*out));
	memcpy(d, quoted->data, 12);
	if (v6) {
		struct ipv6hdr *ip6 = (void *)(d + l3);

		d[12] = 0x86, d[13] = 0xdd;
		ip6->version = 6;
		ip6->payload_len = htons((__u16)(8 + n));
		ip6->nexthdr = IPPROTO_ICMPV6;
		ip6->hop_limit = 64;
		ASSERT_EQ(inet_pton(AF_INET6, src, &ip6->saddr), 1, src);
		ASSERT_EQ(inet_pton(AF_INET6, dst, &ip6->daddr), 1, dst);
		d[icmp] = ICMPV6_PKT_TOOBIG;
		*(__be32 *)(d + icmp + 4) = htonl(1280);
	} else {
		struct iphdr *ip = (void *)(d + l3);

		d[12] = 0x08, d[13] = 0x00;
		ip->version = 4;
		ip->ihl = 5;
		ip->tot_len = htons((__u16)(20 + 8 + n));
		ip->ttl = 64;
		ip->protocol = IPPROTO_ICMP;
		ASSERT_EQ(inet_pton(AF_INET, src, &ip->saddr), 1, src);
		ASSERT_EQ(inet_pton(AF_INET, dst, &ip->daddr), 1, dst);
		d[icmp] = ICMP_DEST_UNREACH;
		d[icmp + 1] = ICMP_FRAG_NEEDED;
		*(__be16 *)(d + icmp + 6) = htons(1400);
	}
	memcpy(d + icmp + 8, quoted->data + 14, n);
	out->len = icmp + 8 + n;
	pkt_fix_csums(out);
}

static void expect_icmp(struct ts_env *e, const struct pkt *in, const struct pkt *want,
			const char *what)
{
	struct pkt out;
	long at;

	ASSERT_EQ(env_run(e, in, &out), TC_ACT_OK, what);
	at = pkt_diff(&out, want);
	if (at >= 0) {
		pkt_dump("got", &out, at);
		pkt_dump("want", want, at);
		fail_msg("%s%s: byte %ld differs", test_context_str(), what, at);
	}
}

/* The service of a test: VIP vport, its one backend be:bport (endpoint text to). */
struct icmp_case {
	bool		v6;
	__u16		vport, bport;
	const char	*to;
};

/* Errors toward the client about a packet the gateway sent to the backend. */
static void icmp_to_client(struct ts_env *e, const struct icmp_case *c)
{
	bool v6 = c->v6;
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *router = v6 ? ROUTER6_BE : ROUTER4_BE;
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 50000, .dport = c->vport,
				.flags = PKT_SYN };
	struct pkt_spec sent = { .src = client, .dst = be, .sport = 50000, .dport = c->bport,
				 .flags = PKT_ACK, .seq = 1, .ack = 1,
				 .payload = "a segment too big for the path" };
	struct pkt_spec orig = sent;
	struct pkt q_sent, q_orig, in, want;
	const char *const to[] = { c->to };
	__u64 before = env_counter(e, TS_CNT_ICMP);

	expect_forward(e, &syn, to, 1, "SYN pinned to the backend");
	orig.dst = vip;
	orig.dport = c->vport;
	ASSERT_EQ(pkt_build(&q_sent, &sent), 0, "pkt_build");
	ASSERT_EQ(pkt_build(&q_orig, &orig), 0, "pkt_build");

	icmp_error(&in, &q_sent, router, client, 1000);
	icmp_error(&want, &q_orig, router, client, 1000);
	expect_icmp(e, &in, &want, "from a router: the quoted destination becomes the VIP");

	icmp_error(&in, &q_sent, be, client, 1000);
	icmp_error(&want, &q_orig, vip, client, 1000);
	expect_icmp(e, &in, &want, "from the backend: its address becomes the VIP too");

	/* RFC 792 quotes 8 bytes of the transport header: no TCP checksum */
	icmp_error(&in, &q_sent, router, client, (v6 ? 40 : 20) + 8);
	icmp_error(&want, &q_orig, router, client, (v6 ? 40 : 20) + 8);
	expect_icmp(e, &in, &want, "8 bytes of TCP quoted");
	ASSERT_EQ(env_counter(e, TS_CNT_ICMP) - before, 3, "icmp_translated counter");
	(void)v6;
}

/* An error toward the VIP about a reply the gateway sent to the client. */
static void icmp_to_vip(struct ts_env *e, const struct icmp_case *c)
{
	bool v6 = c->v6;
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *router = v6 ? ROUTER6_CL : ROUTER4_CL;
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 50001, .dport = c->vport,
				.flags = PKT_SYN };
	struct pkt_spec reply = { .src = vip, .dst = client, .sport = c->vport, .dport = 50001,
				  .flags = PKT_ACK, .seq = 1, .ack = 1,
				  .payload = "a reply too big for the client's path" };
	struct pkt_spec orig = reply;
	struct pkt q_reply, q_orig, in, want;
	const char *const to[] = { c->to };

	expect_forward(e, &syn, to, 1, "SYN pinned to the backend");
	orig.src = be;
	orig.sport = c->bport;
	ASSERT_EQ(pkt_build(&q_reply, &reply), 0, "pkt_build");
	ASSERT_EQ(pkt_build(&q_orig, &orig), 0, "pkt_build");
	icmp_error(&in, &q_reply, router, vip, 1000);
	icmp_error(&want, &q_orig, router, be, 1000);
	expect_icmp(e, &in, &want, "the error goes to the flow's backend, about its own packet");
}

/* An error quoting a packet of no NATed flow passes untouched. */
static void icmp_not_ours(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4;
	struct pkt_spec other = { .src = client, .dst = v6 ? "2001:2:9::9" : "198.18.9.9",
				  .sport = 50002, .dport = 8008, .flags = PKT_ACK };
	struct pkt q, in;

	ASSERT_EQ(pkt_build(&q, &other), 0, "pkt_build");
	icmp_error(&in, &q, v6 ? ROUTER6_BE : ROUTER4_BE, client, 1000);
	expect_untouched(e, &in, TC_ACT_OK, "an error about another destination");
}

/*
 * Path MTU discovery through the gateway's own error: the gateway
 * rewrote the client's segment at ingress and cannot forward it, so its
 * "fragmentation needed" quotes client -> backend. It leaves through the
 * egress program, which translates it; any other packet leaves untouched.
 */
static void icmp_from_the_gateway(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *self = v6 ? ROUTER6_CL : ROUTER4_CL;
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 50003, .dport = 8008,
				.flags = PKT_SYN };
	struct pkt_spec sent = { .src = client, .dst = be, .sport = 50003, .dport = 8008,
				 .flags = PKT_ACK, .seq = 1, .ack = 1,
				 .payload = "a segment too big for the backends' link" };
	struct pkt_spec orig = sent;
	struct pkt q_sent, q_orig, in, want, out;
	const char *const to[] = { v6 ? BE6_1 : BE4_1 };

	expect_forward(e, &syn, to, 1, "SYN pinned to the backend");
	orig.dst = vip;
	ASSERT_EQ(pkt_build(&q_sent, &sent), 0, "pkt_build");
	ASSERT_EQ(pkt_build(&q_orig, &orig), 0, "pkt_build");
	icmp_error(&in, &q_sent, self, client, 1000);
	icmp_error(&want, &q_orig, self, client, 1000);
	ASSERT_EQ(env_run_egress(e, &in, &out), TC_ACT_OK, "egress verdict");
	ASSERT_PKT_EQ(&out, &want, "the gateway's own error leaves quoting the VIP");
	ASSERT_EQ(env_run_egress(e, &q_sent, &out), TC_ACT_OK, "egress verdict, TCP");
	ASSERT_PKT_EQ(&out, &q_sent, "a TCP segment leaves untouched");
}

/*
 * An error to the gateway itself about its own connection to a backend: a
 * local client's, balanced at connect() (load --cgroup), or a health check. The
 * socket is connected to the backend's own address, so the error must reach
 * it quoting that address, untranslated.
 */
static void icmp_to_the_gateway(struct ts_env *e, bool v6)
{
	const char *self = v6 ? ROUTER6_BE : ROUTER4_BE;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	struct pkt_spec sent = { .src = self, .dst = be, .sport = 39001, .dport = 8008,
				 .flags = PKT_ACK, .seq = 1, .ack = 1,
				 .payload = "a segment of a local client" };
	struct pkt q, in;
	__u64 before = env_counter(e, TS_CNT_ICMP);

	ASSERT_EQ(pkt_build(&q, &sent), 0, "pkt_build");
	icmp_error(&in, &q, be, self, 1000);
	expect_untouched(e, &in, TC_ACT_OK, "an error from the backend to the gateway itself");
	ASSERT_EQ(env_counter(e, TS_CNT_ICMP), before, "icmp_translated counter");
}

/*
 * A spoofed packet with the client's address:port as source, sent to the
 * backend's own address:port, looks like a direct connection to the backend
 * on the reply 5-tuple of the client's confirmed connection through the VIP.
 * It must not stop the translation of the errors about that connection (a
 * router's on the backends' side at ingress, the gateway's own at egress):
 * without them the client ignores errors that quote the backend's address,
 * and its connection black-holes where the path MTU is smaller.
 */
static void icmp_after_forged_direct_mark(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *const to[] = { v6 ? BE6_1 : BE4_1 };
	struct pkt_spec syn = client_spec(v6, 50005, PKT_SYN, 7000);
	struct pkt_spec spoof = { .src = client, .dst = be, .sport = 50005, .dport = 8008,
				  .flags = PKT_ACK, .seq = 123456, .ack = 654321 };
	struct pkt_spec sent = { .src = client, .dst = be, .sport = 50005, .dport = 8008,
				 .flags = PKT_ACK, .seq = 7001, .ack = TEST_BACKEND_ISN + 1,
				 .payload = "a segment too big for the path" };
	struct pkt_spec orig = sent, r;
	struct pkt q_sent, q_orig, in, want, out;
	char addr[PKT_EPSTRLEN];

	test_context("%s", v6 ? "IPv6" : "IPv4");
	config_web(e, v6, 1, 0);
	handshake(e, &syn, to, 1, "the client's connection through the VIP");
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(pkt_build(&in, &spoof), 0, "pkt_build");
		expect_untouched(e, &in, TC_ACT_OK,
				 "a spoofed packet from the client's address:port to v1 itself");
		spoof.flags = PKT_SYN;
	}
	orig.dst = vip;
	ASSERT_EQ(pkt_build(&q_sent, &sent), 0, "pkt_build");
	ASSERT_EQ(pkt_build(&q_orig, &orig), 0, "pkt_build");
	icmp_error(&in, &q_sent, v6 ? ROUTER6_BE : ROUTER4_BE, client, 1000);
	icmp_error(&want, &q_orig, v6 ? ROUTER6_BE : ROUTER4_BE, client, 1000);
	expect_icmp(e, &in, &want, "a router's error about the connection is translated");
	icmp_error(&in, &q_sent, v6 ? ROUTER6_CL : ROUTER4_CL, client, 1000);
	icmp_error(&want, &q_orig, v6 ? ROUTER6_CL : ROUTER4_CL, client, 1000);
	ASSERT_EQ(env_run_egress(e, &in, &out), TC_ACT_OK, "egress verdict");
	ASSERT_PKT_EQ(&out, &want, "the gateway's own error about it leaves quoting the VIP");
	r = backend_spec(&syn, to[0], PKT_ACK | PKT_PSH, addr);
	r.payload = "the answer";
	expect_reply(e, &r, v6 ? VIP6 : VIP4, "v1's data still reaches the client from the VIP");
	test_context(NULL);
}

static void test_v4_icmp_after_forged_direct_mark(void **state)
{
	icmp_after_forged_direct_mark(env_of(state), false);
}

static void test_v6_icmp_after_forged_direct_mark(void **state)
{
	icmp_after_forged_direct_mark(env_of(state), true);
}

static void test_v4_icmp(void **state)
{
	struct ts_env *e = env_of(state);
	const struct icmp_case same = { false, 8008, 8008, BE4_1 };
	const struct icmp_case ports = { false, 80, 8080, "198.18.2.11:8080" };

	config_web4(e, 1, 0);
	icmp_to_client(e, &same);
	icmp_to_vip(e, &same);
	icmp_not_ours(e, false);
	icmp_from_the_gateway(e, false);
	icmp_to_the_gateway(e, false);
	env_service(e, "web80", VIP4_ADDR ":80", TS_DEFAULT_TABLE_SIZE);
	env_backend(e, "web80", "b", ports.to, 1);
	test_context("VIP :80, backend :8080");
	icmp_to_client(e, &ports);
	icmp_to_vip(e, &ports);
	test_context(NULL);
}

static void test_v6_icmp(void **state)
{
	struct ts_env *e = env_of(state);
	const struct icmp_case same = { true, 8008, 8008, BE6_1 };
	const struct icmp_case ports = { true, 80, 8080, "[2001:2:2::11]:8080" };

	config_web6(e, 1, 0);
	icmp_to_client(e, &same);
	icmp_to_vip(e, &same);
	icmp_not_ours(e, true);
	icmp_from_the_gateway(e, true);
	icmp_to_the_gateway(e, true);
	env_service(e, "web80", "[" VIP6_ADDR "]:80", TS_DEFAULT_TABLE_SIZE);
	env_backend(e, "web80", "b", ports.to, 1);
	test_context("VIP :80, backend :8080");
	icmp_to_client(e, &ports);
	icmp_to_vip(e, &ports);
	test_context(NULL);
}

/* The same with CHECKSUM_COMPLETE skbs: skb->csum stays the sum of the packet
 * (the outer ICMPv6 address change needs BPF_F_IPV6, as in nat.h). */
static void test_icmp_checksum_complete(void **state)
{
	struct ts_env *e = env_of(state);
	const struct icmp_case v4 = { false, 8008, 8008, BE4_1 };
	const struct icmp_case v6 = { true, 8008, 8008, BE6_1 };

	if (!env_csum_complete(e))
		return;
	config_web4(e, 1, 0);
	config_web6(e, 1, 0);
	icmp_to_client(e, &v4);
	icmp_to_vip(e, &v4);
	icmp_to_client(e, &v6);
	icmp_to_vip(e, &v6);
}

int run_icmp_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_v4_icmp),
		TEST(test_v6_icmp),
		TEST(test_icmp_checksum_complete),
		TEST(test_v4_icmp_after_forged_direct_mark),
		TEST(test_v6_icmp_after_forged_direct_mark),
	};

	return cmocka_run_group_tests_name("icmp", tests, NULL, NULL);
}
