// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Robustness of the data plane: half-open flows live apart from
 * established ones, so a SYN flood cannot evict an established flow; a
 * backend past its drain deadline has its flows closed with a RST.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <bpf/bpf.h>
#include <string.h>
#include <time.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };

static struct pkt_spec client4(__u16 sport, __u8 flags)
{
	return (struct pkt_spec){
		.src = CLIENT4,
		.dst = VIP4_ADDR,
		.sport = sport,
		.dport = 8008,
		.flags = flags,
		.seq = 9000,
		.ack = 0x5000,
		.mss = flags == PKT_SYN,
	};
}

/* A SYN is pinned in half_open; the client's ACK of the backend's SYN-ACK
 * moves it to flows. */
static void test_half_open_promoted_on_ack(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client4(41000, PKT_SYN), ack;
	__u64 before = 0;
	int b;

	config_web4(e, 1, 1);
	before = env_counter(e, TS_CNT_PROMOTED);
	b = expect_forward(e, &syn, web4_to, 2, "SYN");
	ASSERT_EQ(env_flow_table(e, &syn), 2, "after the SYN the flow is half-open");
	expect_forward(e, &syn, &web4_to[b], 1, "a retransmitted SYN follows the half-open pin");
	backend_syn_ack(e, &syn, web4_to[b], "the backend's SYN-ACK");
	ASSERT_EQ(env_flow_table(e, &syn), 2, "after the SYN-ACK the flow is still half-open");
	ack = handshake_ack_spec(&syn);
	expect_forward(e, &ack, &web4_to[b], 1, "the ACK follows the pin");
	ASSERT_EQ(env_flow_table(e, &syn), 1, "after the ACK the flow is established");
	ASSERT_EQ(env_counter(e, TS_CNT_PROMOTED) - before, 1, "promoted counter");
	set_web_weights(e, "web4", b == 1, b == 0);
	expect_forward(e, &ack, &web4_to[b], 1, "the promoted flow keeps its backend");
}

/*
 * With the flow table at 1024 entries (half_open 1024), 40 established flows
 * survive 200,000 SYNs from spoofed sources in 198.19.0.0/16, each sent
 * twice. (With SYNs pinned straight into flows, the LRU evicts them: the test
 * fails.)
 */
static void test_syn_flood_cannot_evict_established(void **state)
{
	struct ts_env *e = fixture_env(state, 1, TEST_SEED, 1024);
	struct pkt_spec est[40];
	int backend[40];
	char src[16];
	__u32 half = 0;

	config_web4(e, 1, 1);
	for (int i = 0; i < 40; i++) {
		struct pkt_spec syn = client4((__u16)(30000 + i), PKT_SYN);

		est[i] = handshake_ack_spec(&syn);
		backend[i] = handshake(e, &syn, web4_to, 2, "an established flow");
	}
	set_web_weights(e, "web4", 0, 1);
	for (int i = 0; i < 200000; i++) {
		struct pkt_spec syn = {
			.src = src,
			.dst = VIP4_ADDR,
			.sport = (__u16)(1024 + i % 60000),
			.dport = 8008,
			.flags = PKT_SYN,
		};
		struct pkt in, out;

		snprintf(src, sizeof(src), "198.19.%d.%d", (i / 250) % 256, 1 + i % 250);
		ASSERT_EQ(pkt_build(&in, &syn), 0, "pkt_build");
		/* twice, as flood tools retransmit: the second lookup marks the
		 * entry referenced, so the kernel's LRU no longer evicts the
		 * flood's entries before idle established ones */
		ASSERT_EQ(env_run(e, &in, &out), TC_ACT_OK, "a spoofed SYN is forwarded");
		ASSERT_EQ(env_run(e, &in, &out), TC_ACT_OK, "and its retransmission");
	}
	ASSERT_EQ(ts_count_entries(e->maps.half_open, sizeof(struct ts_flow_key), &half), 0,
		  "count half_open");
	ASSERT_LE(half, 1024, "half_open stays within its size");
	for (int i = 0; i < 40; i++) {
		test_context("established flow %d", i);
		ASSERT_EQ(env_flow_table(e, &est[i]), 1, "still in flows");
		expect_forward(e, &est[i], &web4_to[backend[i]], 1, "still on its backend");
	}
	test_context(NULL);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * drain --timeout: before the deadline the backend's flows continue; after
 * it, a client packet is answered with a RST (redirected back), a client RST
 * still reaches the backend, a reply from the backend becomes a RST, and a
 * new SYN on the 5-tuple goes elsewhere. Other backends are untouched.
 */
static void test_drain_deadline_closes_flows(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec on[2];
	bool have[2] = { false, false };
	struct ts_err err;
	struct pkt in, out, want;
	struct pkt_spec reply, want_spec;
	char addr[PKT_EPSTRLEN];

	config_web4(e, 1, 1);
	for (__u16 port = 32000; port < 32064 && !(have[0] && have[1]); port++) {
		struct pkt_spec syn = client4(port, PKT_SYN);
		int b = expect_forward(e, &syn, web4_to, 2, "SYN");

		if (have[b])
			continue;
		on[b] = client4(port, PKT_ACK);
		expect_forward(e, &on[b], &web4_to[b], 1, "ACK");
		have[b] = true;
	}
	ASSERT_TRUE(have[0] && have[1], "flows on both backends");

	ASSERT_EQ(ts_backend_drain(&e->maps, "web4", "v1", 3600ULL * 1000000000ULL, &err), 0,
		  err.msg);
	expect_forward(e, &on[0], &web4_to[0], 1, "before the deadline the flow continues");

	ASSERT_EQ(ts_backend_drain(&e->maps, "web4", "v1", 1000000ULL, &err), 0, err.msg);
	sleep_ms(30);	/* past the deadline by more than a tick: the data plane reads the coarse clock */
	expect_reset(e, &on[0], "after the deadline: a RST to the client");
	ASSERT_EQ(env_counter(e, TS_CNT_DRAIN_CLOSED), 1, "drain_closed counter");
	expect_forward(e, &on[1], &web4_to[1], 1, "a flow on v2 is untouched");

	on[0].flags = PKT_RST;
	expect_forward(e, &on[0], &web4_to[0], 1, "the client's RST still reaches v1");

	reply = (struct pkt_spec){ .dst = CLIENT4, .dport = on[0].sport, .flags = PKT_ACK,
				   .seq = 777, .payload = "late data" };
	reply = spec_with_endpoint(&reply, false, BE4_1, addr);
	ASSERT_EQ(env_send(e, &reply, &in, &out), TC_ACT_OK, "a reply from v1: verdict");
	want_spec = reply;
	want_spec.src = VIP4_ADDR;
	want_spec.flags = PKT_RST;
	ASSERT_EQ(pkt_build(&want, &want_spec), 0, "pkt_build");
	ASSERT_EQ(pkt_diff_ignoring_csums(&out, &want), -1,
		  "a reply from v1 leaves as a RST from the VIP");
	ASSERT_TRUE(pkt_ip_csum_ok(&out) && pkt_l4_csum_ok(&out), "the RST's checksums");

	on[0].flags = PKT_SYN;
	expect_forward(e, &on[0], &web4_to[1], 1, "a new SYN on the 5-tuple goes to v2");
}

/*
 * backend del is committed by the table switch alone: with its tidying
 * undone (as if the command was killed right after the commit: state still
 * active, index entry still there, and settings still saying a change holds
 * the lock), the removed backend's flows are closed all the same, and the
 * next change tidies it.
 */
static void test_removal_takes_effect_at_the_commit(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client4(33000, PKT_SYN), ack = client4(33000, PKT_ACK);
	struct ts_endpoint_key key = { .proto = IPPROTO_TCP, .family = TS_AF_INET };
	struct ts_backend be;
	struct ts_reply reply;
	struct ts_settings st;
	struct ts_err err;
	__u32 id, zero = 0;
	int b;

	config_web4(e, 1, 0);
	b = expect_forward(e, &syn, web4_to, 1, "SYN to v1");
	expect_forward(e, &ack, &web4_to[b], 1, "ACK to v1");
	ASSERT_EQ(inet_pton(AF_INET, "198.18.2.11", key.addr), 1, "v1 address");
	key.port = htons(8008);
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backend_addrs, &key, &reply), 0, "v1 indexed");
	id = reply.backend_id;

	env_backend_del(e, "web4", "v1");
	/* undo the tidying that follows the commit */
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &id, &be), 0, "read v1");
	be.state = TS_BACKEND_ACTIVE;
	ASSERT_EQ(bpf_map_update_elem(e->maps.backends, &id, &be, BPF_EXIST), 0, "v1 active");
	ASSERT_EQ(bpf_map_update_elem(e->maps.backend_addrs, &key, &reply, BPF_ANY), 0,
		  "v1 indexed again");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &st), 0, "read settings");
	ASSERT_EQ(st.flags & TS_SETTINGS_F_CHANGING, 0, "a clean change leaves no flag");
	st.flags |= TS_SETTINGS_F_CHANGING;
	ASSERT_EQ(bpf_map_update_elem(e->maps.settings, &zero, &st, BPF_EXIST), 0,
		  "the flag a killed change leaves");
	ack.ack = 0x1000;
	expect_reset(e, &ack, "v1's flow is closed by the commit alone");

	/* the next change tidies what the killed one left */
	env_backend(e, "web4", "v3", "198.18.2.13:8008", 1);
	ASSERT_NEQ(bpf_map_lookup_elem(e->maps.backend_addrs, &key, &reply), 0,
		   "v1's index entry is gone");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &id, &be), 0, "read v1");
	ASSERT_EQ(be.state, TS_BACKEND_REMOVED, "v1 marked removed");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &st), 0, "read settings");
	ASSERT_EQ(st.flags & TS_SETTINGS_F_CHANGING, 0, "repaired: the flag is cleared");
	(void)err;
}

int run_robust_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_half_open_promoted_on_ack),
		TEST(test_syn_flood_cannot_evict_established),
		TEST(test_drain_deadline_closes_flows),
		TEST(test_removal_takes_effect_at_the_commit),
	};

	return cmocka_run_group_tests_name("robustness", tests, NULL, NULL);
}
