// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Invariant 8 against what an off-path sender can still aim at (spoofed
 * sources, no sequence numbers): a rollout's canary signals, both ways —
 * failures put on a healthy backend, failures of a broken one hidden — and
 * the marks of direct connections to a backend.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };
static const char *const web6_to[] = { BE6_1, BE6_2 };

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The canary counters of backend `name` of the web service of family v6. */
static struct ts_backend_stats canary(struct ts_env *e, bool v6, const char *name)
{
	return env_backend_stats(e, web_service(v6), name);
}

/* ---- a healthy backend is not made to fail -------------------------------- */

enum doomed {
	DOOMED_TTL,		/* TTL (hop limit) 1: forwarding drops it */
	DOOMED_TCP_CSUM,	/* a bad TCP checksum: the backend drops it */
	DOOMED_IP_CSUM,		/* IPv4: a bad header checksum: ip_rcv drops it */
	DOOMED_SYN_FIN,		/* SYN and FIN: dropped in LISTEN */
	DOOMED_WRONG_SIDE,	/* a source routed out of another device */
	DOOMED_KINDS,
};

static const char *const doomed_names[DOOMED_KINDS] = {
	"TTL 1", "a bad TCP checksum", "a bad IPv4 header checksum", "SYN+FIN",
	"a source from the backends' side",
};

/* SYN i of a kind that cannot lead to a connection, from a spoofed source. */
static void doomed_syn(struct pkt *p, bool v6, enum doomed kind, int i)
{
	char src[PKT_EPSTRLEN];
	struct pkt_spec s = {
		.dst = v6 ? VIP6_ADDR : VIP4_ADDR, .sport = (__u16)(20000 + i), .dport = 8008,
		.flags = PKT_SYN, .seq = 1000u * (__u32)i, .mss = true,
	};

	if (kind == DOOMED_WRONG_SIDE)
		snprintf(src, sizeof(src), v6 ? "2001:2:2::%x" : "198.18.2.%d", 100 + i);
	else
		snprintf(src, sizeof(src), v6 ? "2001:2:9::%x" : "198.19.9.%d", 10 + i);
	s.src = src;
	if (kind == DOOMED_TTL)
		s.ttl = 1;
	if (kind == DOOMED_SYN_FIN)
		s.flags |= PKT_FIN;
	ASSERT_EQ(pkt_build(p, &s), 0, "pkt_build");
	if (kind == DOOMED_TCP_CSUM)
		pkt_tcp(p)->check ^= htons(0x0101);
	if (kind == DOOMED_IP_CSUM)
		pkt_ip4(p)->check ^= htons(0x0101);
}

/*
 * Attack: SYNs to the VIP that the backend will never see or answer, each
 * sent twice a second apart (as a client that timed out would), put
 * failures on the backend they were picked for, and a rollout of a healthy
 * v2 rolls back. Each is forwarded as the stack would have it (to v2, which
 * has all the weight), but pins nothing and counts nothing: no attempt, no
 * timeout, no failure for the gate.
 */
static void doomed_syns(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct ts_backend_stats base, st;
	__u64 conns, fail, doomed = 0;
	char got[PKT_EPSTRLEN];

	config_web(e, v6, 0, 1);
	base = canary(e, v6, "v2");
	for (int round = 0; round < 2; round++) {
		for (int k = 0; k < DOOMED_KINDS; k++) {
			if (k == DOOMED_IP_CSUM && v6)
				continue;
			for (int i = 0; i < 20; i++) {
				struct pkt in, out;
				int r;

				test_context("%s, %s, SYN %d, %s", v6 ? "IPv6" : "IPv4",
					     doomed_names[k], i, round ? "again" : "first");
				doomed_syn(&in, v6, k, i);
				/* (the wrong side's arrive on the clients' device) */
				test_dev_force = k == DOOMED_WRONG_SIDE ?
							 test_ifindex(TEST_DEV_CLIENT) : 0;
				r = env_run(e, &in, &out);
				test_dev_force = 0;
				ASSERT_EQ(r, TC_ACT_OK, "verdict");
				ASSERT_STREQ(pkt_endpoint(&out, true, got), to[1],
					     "forwarded to v2 all the same");
				doomed++;
			}
		}
		if (!round)
			sleep_ms(1100);
	}
	test_context(NULL);
	st = canary(e, v6, "v2");
	ASSERT_EQ(st.new_flows - base.new_flows, 0, "attempts counted for v2");
	ASSERT_EQ(st.syn_retransmits - base.syn_retransmits, 0, "timeouts counted for v2");
	ASSERT_EQ(st.packets - base.packets, 0, "packets counted for v2");
	ASSERT_EQ(env_flow_count(e), 0, "pins");
	ASSERT_EQ(env_counter(e, TS_CNT_NEW_FLOWS), 0, "new_flows");
	ASSERT_EQ(env_counter(e, TS_CNT_SYN_NOT_VIABLE), doomed, "syn_not_viable");
	ts_gate_outcomes(&base, &st, &st, &conns, &fail);
	ASSERT_EQ(fail, 0, "failures the gate sees");

	/* a real client's SYN (from the clients' side, checksums right) is
	 * pinned and counted as before */
	{
		struct pkt_spec syn = client_spec(v6, 21000, PKT_SYN, 7000);

		ASSERT_EQ(handshake(e, &syn, to + 1, 1, "a real client"), 0, "on v2");
		st = canary(e, v6, "v2");
		ASSERT_EQ(st.new_flows - base.new_flows, 1, "its attempt");
		ASSERT_EQ(st.handshakes - base.handshakes, 1, "its handshake");
	}
}

static void test_v4_doomed_syns_count_nothing(void **state)
{
	doomed_syns(env_of(state), false);
}

static void test_v6_doomed_syns_count_nothing(void **state)
{
	doomed_syns(env_of(state), true);
}

/*
 * The mirror: a broken v2 (it answers no SYN) must not pass the gate because
 * an attacker evicted its half-open pins before the clients sent their SYNs
 * again (a flood of spoofed ACKs to the VIP replaces the whole half_open
 * table within the second). The evicted attempts stay unanswered, and the
 * gate counts them as failures.
 */
static void hidden_timeouts(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct ts_backend_stats base, st;
	__u64 conns, fail;

	config_web(e, v6, 0, 1);
	base = canary(e, v6, "v2");
	for (int i = 0; i < 5; i++) {
		struct pkt_spec syn = client_spec(v6, (__u16)(22000 + i), PKT_SYN, 7000);

		test_context("client %d", i);
		expect_forward(e, &syn, to + 1, 1, "a real client's SYN, unanswered");
	}
	test_context(NULL);
	for (__u32 i = 0; i < 3 * TEST_MAX_FLOWS / 4 + 1000; i++) {
		char src[PKT_EPSTRLEN];
		struct pkt_spec s = {
			.src = src, .dst = v6 ? VIP6_ADDR : VIP4_ADDR, .sport = (__u16)(1024 + i),
			.dport = 8008, .flags = PKT_ACK, .seq = i * 7919u, .ack = i * 104729u,
		};
		struct pkt in, out;

		snprintf(src, sizeof(src), v6 ? "2001:2:9::%x:%x" : "198.19.%u.%u", i / 250,
			 1 + i % 250);
		ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
		env_run(e, &in, &out);
	}
	sleep_ms(1100);
	for (int i = 0; i < 5; i++) {
		struct pkt_spec syn = client_spec(v6, (__u16)(22000 + i), PKT_SYN, 7000);

		test_context("client %d", i);
		expect_forward(e, &syn, to + 1, 1, "its SYN again, a second later");
	}
	test_context(NULL);
	st = canary(e, v6, "v2");
	ts_gate_outcomes(&base, &st, &st, &conns, &fail);
	ASSERT_EQ(st.handshakes - base.handshakes, 0, "handshakes");
	ASSERT_GE(fail, 5, "failures the gate sees (5 clients never answered)");
	ASSERT_EQ(conns, fail, "connections with an outcome: the failures");
}

static void test_v4_hidden_timeouts(void **state)
{
	hidden_timeouts(env_of(state), false);
}

static void test_v6_hidden_timeouts(void **state)
{
	hidden_timeouts(env_of(state), true);
}

/* The gate on a healthy v2: spoofed SYNs it answers count nothing, a real
 * client's handshake is a connection, a refusal a failure. */
static void test_gate_outcomes(void **state)
{
	struct ts_env *e = env_of(state);
	struct ts_backend_stats base, st;
	struct pkt_spec syn;
	char addr[PKT_EPSTRLEN];
	__u64 conns, fail;

	config_web4(e, 0, 1);
	base = canary(e, false, "v2");
	for (int i = 0; i < 10; i++) {
		syn = client_spec(false, (__u16)(23000 + i), PKT_SYN, 7000);
		expect_forward(e, &syn, web4_to + 1, 1, "a spoofed SYN");
		backend_syn_ack(e, &syn, BE4_2, "v2 answers it");
	}
	syn = client_spec(false, 23100, PKT_SYN, 7000);
	handshake(e, &syn, web4_to + 1, 1, "a real client");
	syn = client_spec(false, 23101, PKT_SYN, 7000);
	expect_forward(e, &syn, web4_to + 1, 1, "a SYN v2 refuses");
	{
		struct pkt_spec r = backend_spec(&syn, BE4_2, PKT_RST | PKT_ACK, addr);

		expect_reply(e, &r, VIP4, "v2's RST");
	}
	st = canary(e, false, "v2");
	ts_gate_outcomes(&base, &st, &st, &conns, &fail);
	ASSERT_EQ(conns, 2, "connections: the handshake and the refusal");
	ASSERT_EQ(fail, 1, "failures: the refusal");
	/* read a moment before the last SYN, nothing is unanswered yet */
	ts_gate_outcomes(&base, &base, &st, &conns, &fail);
	ASSERT_EQ(fail, 1, "failures with nothing settled");
}

/* ---- direct connections survive a flood ----------------------------------- */

/* Spoofed "connection" i from the clients' side, a source of its own, to
 * backend endpoint `be`: a SYN and an ACK, so that what it leaves in an LRU
 * table is looked up again, as a real connection's is. */
static void spoof_to_backend(struct ts_env *e, bool v6, const char *be, __u32 i)
{
	char src[PKT_EPSTRLEN], addr[PKT_EPSTRLEN];
	struct pkt_spec s = {
		.src = src, .dst = addr, .sport = (__u16)(1024 + i % 60000),
		.flags = PKT_SYN, .seq = i * 2654435761u,
	};
	struct pkt in, out;

	ASSERT_EQ(pkt_split_endpoint(be, addr, &s.dport), 0, "endpoint");
	if (v6)
		snprintf(src, sizeof(src), "2001:2:9::%x", i + 1);
	else
		snprintf(src, sizeof(src), "198.19.%u.%u", i / 250, 1 + i % 250);
	for (int k = 0; k < 2; k++) {
		ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
		ASSERT_EQ(env_run(e, &in, &out), TC_ACT_OK, "a spoofed packet to the backend");
		s.flags = PKT_ACK;
		s.seq++;
		s.ack = i * 40503u;
	}
}

/*
 * Attack: a flood of spoofed packets to a backend's own address:port evicts
 * the mark of a real direct connection to it, and the backend's next packet
 * leaves relabelled with the VIP as its source: the connection fails. A
 * direct connection confirmed by its handshake passes both ways untouched,
 * whatever the flood.
 */
static void direct_under_flood(struct ts_env *e, bool v6)
{
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11", *cl = v6 ? CLIENT6 : CLIENT4;
	struct pkt_spec syn = { .src = cl, .dst = be, .sport = 44500, .dport = 8008,
				.flags = PKT_SYN, .seq = 1, .mss = true };
	struct pkt_spec synack = { .src = be, .dst = cl, .sport = 8008, .dport = 44500,
				   .flags = PKT_SYN | PKT_ACK, .seq = 5000, .ack = 2, .mss = true };
	struct pkt_spec ack = syn, data, reply;
	struct pkt in;

	config_web(e, v6, 1, 1);
	ack.flags = PKT_ACK;
	ack.mss = false;
	ack.seq = 2;
	ack.ack = 5001;
	data = ack;
	data.flags = PKT_ACK | PKT_PSH;
	data.payload = "GET /metrics";
	reply = synack;
	reply.flags = PKT_ACK | PKT_PSH;
	reply.mss = false;
	reply.seq = 5001;
	reply.ack = 2;
	reply.payload = "banner";
	ASSERT_EQ(pkt_build(&in, &syn), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "the client's SYN to v1 itself");
	ASSERT_EQ(pkt_build(&in, &synack), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "v1's SYN-ACK");
	ASSERT_EQ(pkt_build(&in, &ack), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "the client's ACK");
	/* the marks' tables hold TEST_MAX_FLOWS / 4: the flood replaces them
	 * many times over */
	for (__u32 i = 0; i < 3 * TEST_MAX_FLOWS; i++)
		spoof_to_backend(e, v6, v6 ? "[2001:2:2::11]:8008" : BE4_1, i);
	/* the backend's packet first: a client's packet would mark the
	 * connection again */
	ASSERT_EQ(pkt_build(&in, &reply), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "v1's packet after the flood: not the VIP's");
	ASSERT_EQ(pkt_build(&in, &data), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "the client's, after the flood");
}

static void test_v4_direct_under_flood(void **state)
{
	direct_under_flood(env_of(state), false);
}

static void test_v6_direct_under_flood(void **state)
{
	direct_under_flood(env_of(state), true);
}

/* A blind ACK (the backend's SYN-ACK not seen by its sender) confirms no
 * direct connection: its mark stays in the table a flood churns. */
static void test_blind_ack_confirms_no_direct_mark(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = { .src = CLIENT4, .dst = "198.18.2.11", .sport = 44600,
				.dport = 8008, .flags = PKT_SYN, .seq = 1, .mss = true };
	struct pkt_spec synack = { .src = "198.18.2.11", .dst = CLIENT4, .sport = 8008,
				   .dport = 44600, .flags = PKT_SYN | PKT_ACK, .seq = 5000,
				   .ack = 2 };
	struct pkt_spec ack = syn;
	struct ts_flow_key rkey = {};
	__u32 mark;
	char path[160];
	struct pkt in;
	int fd;

	config_web4(e, 1, 1);
	ack.flags = PKT_ACK;
	ack.mss = false;
	ack.seq = 2;
	ack.ack = 5001 + 3 * 65536;
	ASSERT_EQ(pkt_build(&in, &syn), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "a spoofed SYN to v1 itself");
	ASSERT_EQ(pkt_build(&in, &synack), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "v1's SYN-ACK");
	ASSERT_EQ(pkt_build(&in, &ack), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "an ACK that does not acknowledge it");
	snprintf(path, sizeof(path), "%s/direct", e->pin_dir);
	fd = bpf_obj_get(path);
	ASSERT_TRUE(fd >= 0, "the direct map");
	inet_pton(AF_INET, "198.18.2.11", &rkey.saddr[0]);
	inet_pton(AF_INET, CLIENT4, &rkey.daddr[0]);
	rkey.sport = htons(8008);
	rkey.dport = htons(44600);
	rkey.proto = IPPROTO_TCP;
	rkey.family = TS_AF_INET;
	ASSERT_NEQ(bpf_map_lookup_elem(fd, &rkey, &mark), 0, "no confirmed mark");
	ack.ack = 5001;
	ASSERT_EQ(pkt_build(&in, &ack), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "the ACK of the SYN-ACK");
	ASSERT_EQ(bpf_map_lookup_elem(fd, &rkey, &mark), 0, "confirmed");
	close(fd);
}

int run_offpath_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_v4_doomed_syns_count_nothing),
		TEST(test_v6_doomed_syns_count_nothing),
		TEST(test_v4_hidden_timeouts),
		TEST(test_v6_hidden_timeouts),
		TEST(test_gate_outcomes),
		TEST(test_v4_direct_under_flood),
		TEST(test_v6_direct_under_flood),
		TEST(test_blind_ack_confirms_no_direct_mark),
	};

	return cmocka_run_group_tests_name("off-path attacks (invariant 8)", tests, NULL, NULL);
}
