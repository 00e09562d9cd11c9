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

/* A request to v1 on the connection from port sport (its data at seq), and
 * v1's answer. */
static void exchange(struct ts_env *e, __u16 sport, __u32 seq)
{
	struct pkt_spec s = client(sport, PKT_ACK | PKT_PSH, seq), r;
	char addr[PKT_EPSTRLEN];

	s.payload = "a request";
	expect_forward(e, &s, web4_to, 1, "data to v1");
	r = from_v1(sport, PKT_ACK | PKT_PSH, addr);
	r.payload = "its answer";
	expect_reply(e, &r, VIP4, "data from v1");
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
	exchange(e, 40005, 7001);
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

/* The length of s's packet as the program counts it. */
static __u64 spec_len(const struct pkt_spec *s)
{
	struct pkt p;

	ASSERT_EQ(pkt_build(&p, s), 0, "pkt_build");
	return p.len;
}

/* Move an entry's stamp two seconds back: as if its last count were that old. */
static void stamps_back(struct ts_env *e, const struct pkt_spec *s, const struct pkt_spec *r)
{
	struct ts_flow_key fk = env_flow_key(s), rk = env_flow_key(r);
	struct ts_reply_state rs;
	struct ts_flow_entry f;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "its flow");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rk, &rs), 0, "its reverse entry");
	f.flow.last_seen_ns -= 2 * TS_LAST_SEEN_GRANULARITY_NS;
	rs.counted_ns -= 2 * TS_LAST_SEEN_GRANULARITY_NS;
	ASSERT_EQ(bpf_map_update_elem(e->maps.flows, &fk, &f, BPF_EXIST), 0, "flows update");
	ASSERT_EQ(bpf_map_update_elem(e->maps.replies, &rk, &rs, BPF_EXIST), 0, "replies update");
}

/* An established flow's packets, each way, wait in its entries (flows,
 * replies) and reach its backend's counters when the entry's count is a
 * second old and when the flow ends: every one of them, once. */
static void test_canary_counted_per_flow(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec s = client(43001, PKT_SYN, 7000), r;
	struct ts_backend_stats base, st;
	char addr[PKT_EPSTRLEN];
	__u64 to = 0, from = 0, n;
	struct ts_flow_key fk, rk;
	struct ts_reply_state rs;
	struct ts_flow_entry f;

	config_web4(e, 1, 0);
	handshake(e, &s, web4_to, 1, "a connection to v1");
	base = canary(e, "v1");
	fk = env_flow_key(&s);
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "its flow");
	ASSERT_TRUE(f.flow.flags & TS_FLOW_F_COUNTED, "counted in its entry once confirmed");
	ASSERT_EQ(f.flow.packets + f.flow.bytes, 0, "from zero");

	for (int i = 0; i < 3; i++) {
		s = client(43001, PKT_ACK | PKT_PSH, 7001 + 5 * i);
		s.payload = "hello";
		expect_forward(e, &s, web4_to, 1, "data to v1");
		to += spec_len(&s);
	}
	for (int i = 0; i < 2; i++) {
		r = from_v1(43001, PKT_ACK | PKT_PSH, addr);
		r.payload = "an answer";
		expect_reply(e, &r, VIP4, "data from v1");
		from += spec_len(&r);
	}
	st = canary(e, "v1");
	ASSERT_EQ(st.packets - base.packets, 0, "established packets wait in their entries");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "its flow");
	ASSERT_EQ(f.flow.packets, 3, "the client's packets, in its flow's entry");
	ASSERT_EQ(f.flow.bytes, to, "... and their bytes");
	rk = env_flow_key(&r);
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rk, &rs), 0, "its reverse entry");
	ASSERT_EQ(rs.packets, 2, "the replies, in the reverse entry");
	ASSERT_EQ(rs.bytes, from, "... and their bytes");

	/* a second later, the next packet each way adds them */
	stamps_back(e, &s, &r);
	s = client(43001, PKT_ACK | PKT_PSH, 7016);
	s.payload = "hello";
	expect_forward(e, &s, web4_to, 1, "data to v1, a second later");
	to += spec_len(&s);
	expect_reply(e, &r, VIP4, "data from v1, a second later");
	from += spec_len(&r);
	st = canary(e, "v1");
	ASSERT_EQ(st.packets - base.packets, 7, "every packet so far (4 + 3), once");
	ASSERT_EQ(st.bytes_to_backend - base.bytes_to_backend, to, "bytes to v1");
	ASSERT_EQ(st.bytes_from_backend - base.bytes_from_backend, from, "bytes from v1");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "its flow");
	ASSERT_EQ(f.flow.packets + f.flow.bytes, 0, "its flow's entry has none waiting");

	/* more each way, then the end: FINs both ways add what waits, and
	 * what comes after is counted at once */
	expect_forward(e, &s, web4_to, 1, "data to v1 again");
	to += spec_len(&s);
	expect_reply(e, &r, VIP4, "data from v1 again");
	from += spec_len(&r);
	s = client(43001, PKT_ACK | PKT_FIN, 7021);
	expect_forward(e, &s, web4_to, 1, "the client's FIN");
	to += spec_len(&s);
	r = from_v1(43001, PKT_ACK | PKT_FIN, addr);
	expect_reply(e, &r, VIP4, "v1's FIN");
	from += spec_len(&r);
	st = canary(e, "v1");
	n = st.packets - base.packets;
	ASSERT_EQ(n, 11, "every packet (6 + 5), once, when the flow ended");
	ASSERT_EQ(st.bytes_to_backend - base.bytes_to_backend, to, "bytes to v1");
	ASSERT_EQ(st.bytes_from_backend - base.bytes_from_backend, from, "bytes from v1");
	ASSERT_EQ(st.bytes - base.bytes, to + from, "bytes");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rk, &rs), 0, "its reverse entry");
	ASSERT_TRUE(rs.flags & TS_REPLY_F_ENDED, "the reverse entry knows the flow ended");
	ASSERT_EQ(rs.packets + rs.bytes, 0, "none waiting in it");
	r = from_v1(43001, PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "v1's last ACK");
	s = client(43001, PKT_ACK, 7022);
	expect_forward(e, &s, web4_to, 1, "the client's last ACK");
	st = canary(e, "v1");
	ASSERT_EQ(st.packets - base.packets, n + 2, "packets after the end, at once");
}

/* Counts waiting in an entry are moved at once when its bytes reach
 * TS_PENDING_MAX, a second or not: a flood of packets on a flow (its own
 * or spoofed on its 4-tuple) never wraps them. */
static void test_canary_counted_before_they_wrap(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec s = client(43003, PKT_SYN, 7000);
	struct ts_backend_stats base, st;
	struct ts_flow_key fk;
	struct ts_flow_entry f;
	__u64 len;

	config_web4(e, 1, 0);
	handshake(e, &s, web4_to, 1, "a connection to v1");
	base = canary(e, "v1");
	fk = env_flow_key(&s);
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "its flow");
	f.flow.packets = 1000;
	f.flow.bytes = TS_PENDING_MAX - 10;
	ASSERT_EQ(bpf_map_update_elem(e->maps.flows, &fk, &f, BPF_EXIST), 0,
		  "counts near the limit in its entry");
	s = client(43003, PKT_ACK | PKT_PSH, 7001);
	s.payload = "a request";
	len = spec_len(&s);
	expect_forward(e, &s, web4_to, 1, "data to v1");
	st = canary(e, "v1");
	ASSERT_EQ(st.packets - base.packets, 1001, "moved with the packet that reached the limit");
	ASSERT_EQ(st.bytes_to_backend - base.bytes_to_backend, TS_PENDING_MAX - 10 + len,
		  "their bytes");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "its flow");
	ASSERT_EQ(f.flow.packets + f.flow.bytes, 0, "none left waiting");
}

/* The backend's RST ends a flow too, and adds what waits. */
static void test_canary_counted_to_reset(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec s = client(43002, PKT_SYN, 7000), r;
	struct ts_backend_stats base, st;
	char addr[PKT_EPSTRLEN];

	config_web4(e, 1, 0);
	handshake(e, &s, web4_to, 1, "a connection to v1");
	base = canary(e, "v1");
	exchange(e, 43002, 7001);
	ASSERT_EQ(canary(e, "v1").packets - base.packets, 0, "waiting in their entries");
	r = from_v1(43002, PKT_RST, addr);
	expect_reply(e, &r, VIP4, "v1's RST");
	st = canary(e, "v1");
	ASSERT_EQ(st.packets - base.packets, 3, "all three when v1 reset it");
	ASSERT_EQ(st.reset - base.reset, 1, "reset");
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
		TEST(test_canary_counted_per_flow),
		TEST(test_canary_counted_to_reset),
		TEST(test_canary_counted_before_they_wrap),
		TEST(test_canary_first_syn_counted),
		TEST(test_canary_new_backend_from_zero),
		TEST(test_canary_reads_hold_one_descriptor),
	};

	return cmocka_run_group_tests_name("canary signals", tests, NULL, NULL);
}
