// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Canary signals: what the data plane counts per backend for each
 * way a connection can go — attempted, retransmitted SYN, refused, completed
 * handshake (and its time), reset by the backend, closed normally, ended any
 * other way — and the open connections they add up to.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };

/* The canary counters of backend `name` of web4. */
static struct ts_backend_stats canary(struct ts_env *e, const char *name)
{
	return env_backend_stats(e, "web4", name);
}

static struct pkt_spec client(__u16 sport, __u8 flags, __u32 seq)
{
	return (struct pkt_spec){ .src = CLIENT4, .dst = VIP4_ADDR, .sport = sport, .dport = 8008,
				  .flags = flags, .seq = seq, .ack = TEST_BACKEND_ISN + 1,
				  .mss = flags == PKT_SYN };
}

static struct pkt_spec from_v1(__u16 dport, __u8 flags, char addr[PKT_EPSTRLEN])
{
	struct pkt_spec r = { .dst = CLIENT4, .dport = dport, .flags = flags,
			      .seq = TEST_BACKEND_ISN + 1, .ack = 7001 };

	return spec_with_endpoint(&r, false, BE4_1, addr);
}

/* A backend's counters are there before its first packet, from zero (made
 * with the backend: a packet never waits for an insert), and that packet is
 * counted. */
static void test_canary_first_syn_counted(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec s = client(42001, PKT_SYN, 7000);
	struct ts_backend_stats st;
	struct ts_err err = {};
	__u32 id;

	config_web4(e, 1, 0);
	id = env_backend_id(e, "web4", "v1");
	ASSERT_TRUE(ts_stats_chunk(e->maps.backend_stats, e->maps.stats_cache, id, false, NULL,
				   &err) >= 0,
		    "v1's counters there before its first packet");
	st = canary(e, "v1");
	ASSERT_EQ(st.new_flows + st.packets + st.opened, 0, "from zero");
	expect_forward(e, &s, web4_to, 1, "v1's first SYN");
	st = canary(e, "v1");
	ASSERT_EQ(st.new_flows, 1, "its first SYN: an attempt");
	ASSERT_EQ(st.packets, 1, "its first SYN: a packet");
	expect_forward(e, &s, web4_to, 1, "the SYN again");
	st = canary(e, "v1");
	ASSERT_EQ(st.packets, 2, "the next packet added to them");
}

/* Counters left under ids not in use (by a removed backend, a killed command)
 * are not a new backend's: it starts from zero, whichever id it gets. */
static void test_canary_new_backend_from_zero(void **state)
{
	struct ts_env *e = env_of(state);
	int ncpu = libbpf_num_possible_cpus();
	struct ts_backend_stats *left = calloc(ncpu > 0 ? ncpu : 1, sizeof(*left)), st;
	__u32 v1, v2;

	config_web4(e, 1, 0);
	v1 = env_backend_id(e, "web4", "v1");
	v2 = env_backend_id(e, "web4", "v2");
	ASSERT_TRUE(left != NULL, "calloc");
	for (int c = 0; left && c < ncpu; c++)
		left[c] = (struct ts_backend_stats){ .new_flows = 7, .packets = 7, .opened = 7 };
	for (__u32 id = 0; left && id < 64; id++) {
		__u32 slot = id & (TS_STATS_CHUNK - 1);
		struct ts_err err = {};
		int fd = ts_stats_chunk(e->maps.backend_stats, e->maps.stats_cache, id, true, NULL,
					&err);

		ASSERT_TRUE(fd >= 0, err.msg);
		if (id != v1 && id != v2)
			ASSERT_EQ(bpf_map_update_elem(fd, &slot, left, BPF_ANY), 0,
				  "counters left under an id not in use");
	}
	env_backend(e, "web4", "v3", "198.18.2.13:8008", 1);
	ASSERT_LT(env_backend_id(e, "web4", "v3"), 64, "v3's id among those");
	st = canary(e, "v3");
	ASSERT_EQ(st.new_flows + st.packets + st.opened, 0, "v3's counters start from zero");
	free(left);
}

/* Descriptors this process has open. */
static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	ASSERT_TRUE(d != NULL, "/proc/self/fd");
	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

/* Reading the counters of backends in many chunks keeps one chunk open, not
 * one per chunk: a daemon's few struct ts_maps stay far from the 1,024
 * descriptors a service gets whatever the number of backends. */
static void test_canary_reads_hold_one_descriptor(void **state)
{
	struct ts_env *e = env_of(state);
	struct ts_backend_stats st;
	struct ts_err err = {};
	int before;

	config_web4(e, 1, 0);
	for (__u32 c = 0; c < 8; c++) {
		int fd = ts_stats_chunk(e->maps.backend_stats, NULL, c * TS_STATS_CHUNK, true, NULL,
					&err);

		ASSERT_TRUE(fd >= 0, err.msg);
		close(fd);
	}
	before = open_fds();
	for (int round = 0; round < 2; round++)
		for (__u32 c = 0; c < 8; c++)
			ASSERT_OK(ts_backend_stats_read(&e->maps, c * TS_STATS_CHUNK + 3, &st, &err),
				  err, "read a backend's counters");
	ASSERT_LT(open_fds(), before + 2, "at most one more descriptor after reading 8 chunks");
}

/* Every way a connection to v1 goes, counted once each; v2 sees none. */
static void test_canary_signals(void **state)
{
	struct ts_env *e = env_of(state);
	struct ts_backend_stats st, v2;
	char addr[PKT_EPSTRLEN];
	struct pkt_spec s, r;
	__u64 hist = 0;

	config_web4(e, 1, 0);
	/* 1: a handshake, its SYN sent again at once (no timeout: a spoofed
	 * SYN sent twice looks like that), then after a second (the client's
	 * RTO: a timeout, counted once); then FINs both ways */
	s = client(40001, PKT_SYN, 7000);
	expect_forward(e, &s, web4_to, 1, "SYN");
	expect_forward(e, &s, web4_to, 1, "the SYN again at once");
	{
		struct timespec ts = { .tv_sec = 1, .tv_nsec = 100 * 1000000L };

		nanosleep(&ts, NULL);
	}
	expect_forward(e, &s, web4_to, 1, "the SYN again after a second: a timeout");
	ASSERT_EQ(handshake(e, &s, web4_to, 1, "connection 1"), 0, "on v1");
	s = client(40001, PKT_FIN | PKT_ACK, 7001);
	expect_forward(e, &s, web4_to, 1, "the client's FIN");
	r = from_v1(40001, PKT_FIN | PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "v1's FIN");
	/* 2: refused */
	s = client(40002, PKT_SYN, 7000);
	expect_forward(e, &s, web4_to, 1, "SYN 2");
	r = from_v1(40002, PKT_RST | PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "v1 refuses it");
	/* 3: reset by v1 after the handshake */
	s = client(40003, PKT_SYN, 7000);
	handshake(e, &s, web4_to, 1, "connection 3");
	r = from_v1(40003, PKT_RST, addr);
	expect_reply(e, &r, VIP4, "v1 resets it");
	/* 4: reset by the client: ended, neither reset nor closed */
	s = client(40004, PKT_SYN, 7000);
	handshake(e, &s, web4_to, 1, "connection 4");
	s = client(40004, PKT_RST, 7001);
	expect_forward(e, &s, web4_to, 1, "the client's RST");
	/* 5: open, with data both ways */
	s = client(40005, PKT_SYN, 7000);
	handshake(e, &s, web4_to, 1, "connection 5");
	s = client(40005, PKT_ACK | PKT_PSH, 7001);
	s.payload = "a request";
	expect_forward(e, &s, web4_to, 1, "data to v1");
	r = from_v1(40005, PKT_ACK | PKT_PSH, addr);
	r.payload = "its answer";
	expect_reply(e, &r, VIP4, "data from v1");
	/* 6: picked up mid-stream, confirmed by v1: open, no handshake */
	s = client(40006, PKT_ACK, 7001);
	expect_forward(e, &s, web4_to, 1, "a mid-stream pickup");
	r = from_v1(40006, PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "v1 answers it");
	/* 7: a spoofed SYN, answered by v1, then a wrong ACK v1 resets: not a
	 * refusal (the RST came after a SYN-ACK) */
	s = client(40007, PKT_SYN, 7000);
	expect_forward(e, &s, web4_to, 1, "a spoofed SYN");
	backend_syn_ack(e, &s, BE4_1, "v1 answers it");
	r = from_v1(40007, PKT_RST, addr);
	expect_reply(e, &r, VIP4, "v1 resets the wrong ACK");

	st = canary(e, "v1");
	ASSERT_EQ(st.new_flows, 6, "attempts (the SYNs of 1-5, 7)");
	ASSERT_EQ(st.syn_retransmits, 1, "timeouts (1's SYN after a second, counted once)");
	ASSERT_EQ(st.handshakes, 4, "handshakes completed (1, 3, 4, 5)");
	ASSERT_EQ(st.refused, 1, "refused");
	ASSERT_EQ(st.reset, 1, "reset by the backend");
	ASSERT_EQ(st.closed, 1, "closed by FINs both ways");
	ASSERT_EQ(st.opened, 5, "opened (4 handshakes, 1 pickup)");
	ASSERT_EQ(st.ended, 3, "ended (FINs, v1's RST, the client's RST)");
	ASSERT_EQ(ts_backend_open(&st), 2, "open now (5 and 6)");
	for (int i = 0; i < TS_HANDSHAKE_BUCKETS; i++)
		hist += st.handshake_hist[i];
	ASSERT_EQ(hist, 5, "handshake times (the SYN-ACKs of 1, 3, 4, 5, 7)");
	ASSERT_GT(st.handshake_ns_sum, 0, "handshake time sum");
	ASSERT_EQ(ts_handshake_count(&st), 5, "ts_handshake_count");
	ASSERT_GT(ts_handshake_quantile(&st, 0.5), 0, "median handshake bucket");
	ASSERT_EQ(st.bytes_to_backend + st.bytes_from_backend, st.bytes, "bytes each way add up");
	ASSERT_GT(st.bytes_to_backend, 0, "bytes to v1");
	ASSERT_GT(st.bytes_from_backend, 0, "bytes from v1");

	v2 = canary(e, "v2");
	ASSERT_EQ(v2.new_flows + v2.opened + v2.packets + ts_handshake_count(&v2), 0,
		  "v2 (weight 0) saw nothing");
}

/* A removed backend's connections end when they are closed. */
static void test_canary_removal_ends(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec s = client(41001, PKT_SYN, 7000);
	struct ts_backend_stats st;

	config_web4(e, 1, 1);
	set_web_weights(e, "web4", 1, 0);
	handshake(e, &s, web4_to, 1, "a connection to v1");
	st = canary(e, "v1");
	ASSERT_EQ(ts_backend_open(&st), 1, "open before");
	{
		struct ts_err err = {};

		ASSERT_OK(ts_backend_drain(&e->maps, "web4", "v1", 1, &err), err,
			  "drain v1, deadline now");
	}
	{
		struct timespec ts = { .tv_nsec = 30 * 1000000L };

		nanosleep(&ts, NULL);
	}
	s = client(41001, PKT_ACK, 7001);
	expect_reset(e, &s, "past the deadline: a RST");
	expect_reset(e, &s, "and again");
	st = canary(e, "v1");
	ASSERT_EQ(st.ended, 1, "ended once");
	ASSERT_EQ(ts_backend_open(&st), 0, "open after");
}

int run_canary_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_canary_signals),
		TEST(test_canary_removal_ends),
		TEST(test_canary_first_syn_counted),
		TEST(test_canary_new_backend_from_zero),
		TEST(test_canary_reads_hold_one_descriptor),
	};

	return cmocka_run_group_tests_name("canary signals", tests, NULL, NULL);
}
