// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * NAT in both directions (invariants 4 and 5): a packet to a VIP leaves with
 * the backend's address:port as destination and nothing else changed; a reply
 * of a pinned flow leaves with VIP:port as source; IPv4 header and TCP
 * checksums verify, recomputed here from the output bytes.
 */
#include <string.h>

#include "ts_test.h"

#define VIP4_80		"198.18.100.1:80"
#define BE4_1_8080	"198.18.2.11:8080"
#define BE4_2_8080	"198.18.2.12:8080"
#define VIP6_80		"[2001:2:100::1]:80"
#define BE6_1_8080	"[2001:2:2::11]:8080"
#define BE6_2_8080	"[2001:2:2::12]:8080"
#define BE4_1_ADDR	"198.18.2.11"
#define BE4_2_ADDR	"198.18.2.12"
#define BE6_1_ADDR	"2001:2:2::11"
#define BE6_2_ADDR	"2001:2:2::12"

static const char long_payload[] =
	"GET /a/fairly/long/path/so/that/the/segment/spans/many/checksum/words HTTP/1.1\r\n"
	"Host: 198.18.100.1:8008\r\nUser-Agent: tcpshift-test\r\nAccept: */*\r\n"
	"X-Padding: an odd number of bytes follows to cover the trailing byte!\r\n\r\n";

enum dir {
	FORWARD,	/* client -> VIP: the destination is rewritten */
	REPLY,		/* backend -> client: the source is rewritten */
};

/* {description, input packet, expected verdict, expected rewrite}: the expected
 * output is the input with that endpoint replaced. */
struct rewrite_fixture {
	const char	*desc;
	enum dir	dir;
	struct pkt_spec	in;
	int		verdict;
	const char	*rewrite;	/* FORWARD: new destination; REPLY: new source */
};

static void run_rewrite_fixtures(struct ts_env *e, const struct rewrite_fixture *f, size_t n)
{
	__u64 before[TS_CNT_MAX], after[TS_CNT_MAX], packets;
	size_t rewrites = 0, syns = 0;

	env_counters(e, before);
	packets = env_backend_packets(e);
	for (size_t i = 0; i < n; i++) {
		test_context("fixture %zu \"%s\"", i, f[i].desc);
		ASSERT_EQ(f[i].verdict, TC_ACT_OK, "a rewrite fixture expects TC_ACT_OK");
		if (f[i].dir == FORWARD) {
			expect_forward(e, &f[i].in, &f[i].rewrite, 1, "forward rewrite");
			syns += f[i].in.flags == PKT_SYN;
		} else {
			expect_reply(e, &f[i].in, f[i].rewrite, "reply rewrite");
		}
		rewrites++;
	}
	test_context(NULL);
	env_counters(e, after);
	ASSERT_EQ(env_backend_packets(e) - packets, rewrites,
		  "packets in backend_stats (both directions)");
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], syns, "new_flows counter");
	ASSERT_EQ(after[TS_CNT_MALFORMED] - before[TS_CNT_MALFORMED], 0, "malformed counter");
	ASSERT_EQ(after[TS_CNT_NON_SYN_MISS] - before[TS_CNT_NON_SYN_MISS], 0,
		  "non_syn_miss counter (every flow starts with a SYN)");
}

#define C4(port)	.src = CLIENT4, .sport = (port), .dst = VIP4_ADDR
#define C6(port)	.src = CLIENT6, .sport = (port), .dst = VIP6_ADDR
#define R4(be, port)	.src = (be), .sport = 8008, .dst = CLIENT4, .dport = (port)
#define R6(be, port)	.src = (be), .sport = 8008, .dst = CLIENT6, .dport = (port)

/* Weights 1/0: every new flow goes to v1, so each expected output is exact. */
static const struct rewrite_fixture v4_fixtures[] = {
	{ "SYN", FORWARD, { C4(40001), .dport = 8008, .flags = PKT_SYN, .seq = 1000 },
	  TC_ACT_OK, BE4_1 },
	{ "SYN with MSS option", FORWARD,
	  { C4(40002), .dport = 8008, .flags = PKT_SYN, .mss = true, .seq = 2000 }, TC_ACT_OK,
	  BE4_1 },
	{ "SYN with an odd-length payload", FORWARD,
	  { C4(40003), .dport = 8008, .flags = PKT_SYN, .mss = true, .payload = "hello, backend!" },
	  TC_ACT_OK, BE4_1 },
	{ "SYN with IPv4 options (ihl 6)", FORWARD,
	  { C4(40004), .dport = 8008, .flags = PKT_SYN, .ip_options = true }, TC_ACT_OK, BE4_1 },
	{ "SYN in a padded minimum-size frame", FORWARD,
	  { C4(40005), .dport = 8008, .flags = PKT_SYN, .eth_pad = true }, TC_ACT_OK, BE4_1 },
	{ "SYN|ACK from v1 (reply)", REPLY,
	  { R4(BE4_1_ADDR, 40001), .flags = PKT_SYN | PKT_ACK, .seq = 9000, .ack = 1001,
	    .mss = true },
	  TC_ACT_OK, VIP4 },
	{ "ACK", FORWARD, { C4(40001), .dport = 8008, .flags = PKT_ACK, .seq = 1001, .ack = 9001 },
	  TC_ACT_OK, BE4_1 },
	{ "PSH|ACK with a long payload", FORWARD,
	  { C4(40001), .dport = 8008, .flags = PKT_PSH | PKT_ACK, .payload = long_payload },
	  TC_ACT_OK, BE4_1 },
	{ "data reply with payload", REPLY,
	  { R4(BE4_1_ADDR, 40001), .flags = PKT_PSH | PKT_ACK, .payload = "HTTP/1.1 200 OK\r\n" },
	  TC_ACT_OK, VIP4 },
	{ "reply with IPv4 options in a padded frame", REPLY,
	  { R4(BE4_1_ADDR, 40004), .flags = PKT_ACK, .ip_options = true, .eth_pad = true },
	  TC_ACT_OK, VIP4 },
	{ "FIN|ACK", FORWARD, { C4(40001), .dport = 8008, .flags = PKT_FIN | PKT_ACK },
	  TC_ACT_OK, BE4_1 },
	/* VIP:80 -> backend:8080: the port rewrite path */
	{ "SYN to VIP:80", FORWARD, { C4(40010), .dport = 80, .flags = PKT_SYN, .mss = true },
	  TC_ACT_OK, BE4_1_8080 },
	{ "data to VIP:80", FORWARD,
	  { C4(40010), .dport = 80, .flags = PKT_PSH | PKT_ACK, .payload = long_payload },
	  TC_ACT_OK, BE4_1_8080 },
	{ "reply from backend :8080", REPLY,
	  { .src = BE4_1_ADDR, .sport = 8080, .dst = CLIENT4, .dport = 40010,
	    .flags = PKT_PSH | PKT_ACK, .payload = "odd" },
	  TC_ACT_OK, VIP4_80 },
};

static const struct rewrite_fixture v6_fixtures[] = {
	{ "SYN", FORWARD, { C6(40001), .dport = 8008, .flags = PKT_SYN, .seq = 1000 },
	  TC_ACT_OK, BE6_1 },
	{ "SYN with MSS option and an odd-length payload", FORWARD,
	  { C6(40002), .dport = 8008, .flags = PKT_SYN, .mss = true, .payload = "hello, backend!" },
	  TC_ACT_OK, BE6_1 },
	{ "SYN|ACK from v1 (reply)", REPLY,
	  { R6(BE6_1_ADDR, 40001), .flags = PKT_SYN | PKT_ACK, .mss = true, .ack = 1001 },
	  TC_ACT_OK, VIP6 },
	{ "ACK", FORWARD, { C6(40001), .dport = 8008, .flags = PKT_ACK, .seq = 1001 }, TC_ACT_OK,
	  BE6_1 },
	{ "PSH|ACK with a long payload", FORWARD,
	  { C6(40001), .dport = 8008, .flags = PKT_PSH | PKT_ACK, .payload = long_payload },
	  TC_ACT_OK, BE6_1 },
	{ "data reply with payload", REPLY,
	  { R6(BE6_1_ADDR, 40001), .flags = PKT_PSH | PKT_ACK, .payload = long_payload },
	  TC_ACT_OK, VIP6 },
	{ "RST|ACK", FORWARD, { C6(40002), .dport = 8008, .flags = PKT_RST | PKT_ACK },
	  TC_ACT_OK, BE6_1 },
	{ "SYN to VIP:80", FORWARD, { C6(40010), .dport = 80, .flags = PKT_SYN }, TC_ACT_OK,
	  BE6_1_8080 },
	{ "data to VIP:80", FORWARD,
	  { C6(40010), .dport = 80, .flags = PKT_ACK, .payload = "odd-length payload." },
	  TC_ACT_OK, BE6_1_8080 },
	{ "reply from backend :8080", REPLY,
	  { .src = BE6_1_ADDR, .sport = 8080, .dst = CLIENT6, .dport = 40010,
	    .flags = PKT_PSH | PKT_ACK, .payload = long_payload },
	  TC_ACT_OK, VIP6_80 },
};

/* Weights 0/1: the other backend, exactly. */
static const struct rewrite_fixture v4_second_fixtures[] = {
	{ "SYN", FORWARD, { C4(41001), .dport = 8008, .flags = PKT_SYN, .mss = true }, TC_ACT_OK,
	  BE4_2 },
	{ "SYN|ACK from v2 (reply)", REPLY, { R4(BE4_2_ADDR, 41001), .flags = PKT_SYN | PKT_ACK },
	  TC_ACT_OK, VIP4 },
	{ "data", FORWARD,
	  { C4(41001), .dport = 8008, .flags = PKT_ACK, .payload = long_payload }, TC_ACT_OK,
	  BE4_2 },
	{ "SYN to VIP:80", FORWARD, { C4(41010), .dport = 80, .flags = PKT_SYN }, TC_ACT_OK,
	  BE4_2_8080 },
	{ "reply from backend :8080", REPLY,
	  { .src = BE4_2_ADDR, .sport = 8080, .dst = CLIENT4, .dport = 41010, .flags = PKT_ACK },
	  TC_ACT_OK, VIP4_80 },
};

static const struct rewrite_fixture v6_second_fixtures[] = {
	{ "SYN", FORWARD, { C6(41001), .dport = 8008, .flags = PKT_SYN, .mss = true }, TC_ACT_OK,
	  BE6_2 },
	{ "SYN|ACK from v2 (reply)", REPLY, { R6(BE6_2_ADDR, 41001), .flags = PKT_SYN | PKT_ACK },
	  TC_ACT_OK, VIP6 },
	{ "SYN to VIP:80", FORWARD, { C6(41010), .dport = 80, .flags = PKT_SYN }, TC_ACT_OK,
	  BE6_2_8080 },
	{ "reply from backend :8080", REPLY,
	  { .src = BE6_2_ADDR, .sport = 8080, .dst = CLIENT6, .dport = 41010,
	    .flags = PKT_ACK, .payload = "x" },
	  TC_ACT_OK, VIP6_80 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void config_port80(struct ts_env *e, bool v6, __u32 w1, __u32 w2)
{
	const char *svc = v6 ? "web6-80" : "web4-80";

	env_service(e, svc, v6 ? VIP6_80 : VIP4_80, TS_DEFAULT_TABLE_SIZE);
	env_backend(e, svc, "v1", v6 ? BE6_1_8080 : BE4_1_8080, w1);
	env_backend(e, svc, "v2", v6 ? BE6_2_8080 : BE4_2_8080, w2);
}

/* Invariants 4, 5: IPv4 forward and reply rewrite, v1 has all the weight. */
static void test_v4_rewrite_fixtures(void **state)
{
	struct ts_env *e = env_of(state);

	config_web4(e, 1, 0);
	config_port80(e, false, 1, 0);
	run_rewrite_fixtures(e, v4_fixtures, N(v4_fixtures));
}

/* Invariants 4, 5: IPv6 forward and reply rewrite, v6 pseudo-header checksum. */
static void test_v6_rewrite_fixtures(void **state)
{
	struct ts_env *e = env_of(state);

	config_web6(e, 1, 0);
	config_port80(e, true, 1, 0);
	run_rewrite_fixtures(e, v6_fixtures, N(v6_fixtures));
}

/* Invariants 4, 5: the same with v2 holding all the weight. */
static void test_rewrite_to_second_backend(void **state)
{
	struct ts_env *e = env_of(state);

	config_web4(e, 0, 1);
	config_port80(e, false, 0, 1);
	config_web6(e, 0, 1);
	config_port80(e, true, 0, 1);
	run_rewrite_fixtures(e, v4_second_fixtures, N(v4_second_fixtures));
	run_rewrite_fixtures(e, v6_second_fixtures, N(v6_second_fixtures));
}

/*
 * Invariants 4, 5 with both backends in use: the reply of each flow comes from
 * the backend its SYN was sent to and leaves as VIP:port; so does the same
 * packet from the other backend: replies are rewritten by the backend_addrs
 * index, with no per-flow state, so that a gateway that never saw a flow
 * rewrites its replies too.
 */
static void reply_follows_backend(struct ts_env *e, bool v6)
{
	const char *const be4[] = { BE4_1, BE4_2 }, *const be6[] = { BE6_1, BE6_2 };
	const char *const *to = v6 ? be6 : be4;
	int used[2] = { 0, 0 };

	for (__u16 i = 0; i < 32; i++) {
		struct pkt_spec syn = {
			.src = v6 ? CLIENT6 : CLIENT4,
			.dst = v6 ? VIP6_ADDR : VIP4_ADDR,
			.sport = (__u16)(42000 + i),
			.dport = 8008,
			.flags = PKT_SYN,
			.mss = true,
		};
		struct pkt_spec reply = {
			.dst = syn.src,
			.dport = syn.sport,
			.flags = PKT_SYN | PKT_ACK,
			.payload = i & 1 ? "odd" : "even",
		};
		char addr[PKT_EPSTRLEN];
		int b;

		test_context("flow from port %u", syn.sport);
		b = expect_forward(e, &syn, to, 2, "SYN");
		used[b]++;
		reply = spec_with_endpoint(&reply, false, to[b], addr);
		expect_reply(e, &reply, v6 ? VIP6 : VIP4, "reply from the chosen backend");
		/* no per-flow state: any packet from a backend address:port
		 * leaves as VIP:port (a flow pinned by another gateway) */
		reply = spec_with_endpoint(&reply, false, to[!b], addr);
		expect_reply(e, &reply, v6 ? VIP6 : VIP4, "same packet from the other backend");
	}
	test_context(NULL);
	ASSERT_GT(used[0], 0, "flows given to v1 (weights 1/1, 32 flows)");
	ASSERT_GT(used[1], 0, "flows given to v2 (weights 1/1, 32 flows)");
}

static void test_v4_reply_follows_backend(void **state)
{
	struct ts_env *e = env_of(state);

	config_web4(e, 1, 1);
	reply_follows_backend(e, false);
}

static void test_v6_reply_follows_backend(void **state)
{
	struct ts_env *e = env_of(state);

	config_web6(e, 1, 1);
	reply_follows_backend(e, true);
}

/*
 * Invariant 4 with CHECKSUM_COMPLETE skbs (what most NICs hand up): the
 * rewrite keeps skb->csum the sum of the packet, else the stack of the
 * gateway or of a backend behind a veth finds the checksum wrong and
 * recomputes it ("hw csum failure"). IPv6 address changes need BPF_F_IPV6.
 */
static void test_v6_rewrite_checksum_complete(void **state)
{
	struct ts_env *e = env_of(state);

	if (!env_csum_complete(e))
		return;
	config_web6(e, 1, 0);
	config_port80(e, true, 1, 0);
	run_rewrite_fixtures(e, v6_fixtures, N(v6_fixtures));
	set_web_weights(e, "web6", 1, 1);
	reply_follows_backend(e, true);
}

static void test_v4_rewrite_checksum_complete(void **state)
{
	struct ts_env *e = env_of(state);

	if (!env_csum_complete(e))
		return;
	config_web4(e, 1, 0);
	config_port80(e, false, 1, 0);
	run_rewrite_fixtures(e, v4_fixtures, N(v4_fixtures));
	set_web_weights(e, "web4", 1, 1);
	reply_follows_backend(e, false);
}

int run_nat_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_v4_rewrite_fixtures),
		TEST(test_v6_rewrite_fixtures),
		TEST(test_rewrite_to_second_backend),
		TEST(test_v4_reply_follows_backend),
		TEST(test_v6_reply_follows_backend),
		TEST(test_v4_rewrite_checksum_complete),
		TEST(test_v6_rewrite_checksum_complete),
	};

	return cmocka_run_group_tests_name("nat (invariants 4, 5)", tests, NULL, NULL);
}
