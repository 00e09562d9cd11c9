// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Weighted new flows (invariant 1), pinning at scale (invariant 2) and
 * deterministic picks (invariant 6), over thousands of flows.
 */
#include <stdio.h>
#include <string.h>

#include "ts_test.h"
#include "tcpshift_hash.h"

#define SPLIT_FLOWS	10000
#define RANDOM_FLOWS	1000
#define MAX_BE		4
/* source addresses 198.18.1.10-17 / 2001:2:1::10-17: not the gateway's own
 * (198.18.1.1), which a SYN from outside never comes from */
#define SPLIT_CLIENTS	8

static const char *const names[MAX_BE] = { "v1", "v2", "v3", "v4" };
static const char *const be4[MAX_BE] = { BE4_1, BE4_2, "198.18.2.13:8008", "198.18.2.14:8008" };
static const char *const be6[MAX_BE] = { BE6_1, BE6_2, "[2001:2:2::13]:8008",
					  "[2001:2:2::14]:8008" };

static const char *service(bool v6)
{
	return v6 ? "web6" : "web4";
}

static void config_service(struct ts_env *e, bool v6, size_t n, const __u32 *w)
{
	env_service(e, service(v6), v6 ? VIP6 : VIP4, TS_DEFAULT_TABLE_SIZE);
	for (size_t i = 0; i < n; i++)
		env_backend(e, service(v6), names[i], v6 ? be6[i] : be4[i], w[i]);
}

/* sqrt without libm: Newton's method, plenty for a printed bound */
static double root(double x)
{
	double r = x > 1 ? x : 1;

	if (x <= 0)
		return 0;
	for (int i = 0; i < 64; i++)
		r = (r + x / r) / 2;
	return r;
}

/* The live table's share of each backend (ts_table_shares), by our index. */
static void table_shares(struct ts_env *e, bool v6, size_t n, double *share)
{
	__u32 slots[TS_MAX_SERVICE_BACKENDS] = { 0 };
	struct ts_config cfg = {};
	struct ts_service_cfg *s;
	struct ts_err err = {};
	int r;

	ASSERT_OK(ts_config_read(&e->maps, &cfg, &err), err, "ts_config_read");
	s = ts_config_service(&cfg, service(v6));
	r = s ? ts_table_shares(&e->maps, s, slots, &err) : -1;
	for (size_t i = 0; s && !r && i < n; i++) {
		share[i] = 0;
		for (size_t j = 0; j < s->nbackends; j++)
			if (!strcmp(s->backends[j].be.name, names[i]))
				share[i] = (double)slots[j] / s->svc.table_size;
	}
	ts_config_free(&cfg);
	ASSERT_TRUE(s != NULL, "the service is in the configuration");
	ASSERT_OK(r, err, "ts_table_shares");
}

/* A client of the split tests: flow i of a batch starting at port base. */
static struct pkt_spec split_flow(bool v6, __u32 i, __u16 base, __u8 flags, char *src)
{
	snprintf(src, PKT_EPSTRLEN, v6 ? "2001:2:1::%u" : "198.18.1.%u", 10 + i % SPLIT_CLIENTS);
	return (struct pkt_spec){
		.src = src,
		.dst = v6 ? VIP6_ADDR : VIP4_ADDR,
		.sport = (__u16)(base + i),
		.dport = 8008,
		.flags = flags,
		.mss = flags == PKT_SYN,
	};
}

/* SPLIT_FLOWS new flows; picked[i] = the backend of flow i (NULL: not kept). */
static void send_split(struct ts_env *e, bool v6, size_t n, __u16 base, __u32 *counts,
		       __u8 *picked)
{
	const char *const *to = v6 ? be6 : be4;

	memset(counts, 0, n * sizeof(*counts));
	for (__u32 i = 0; i < SPLIT_FLOWS; i++) {
		char src[PKT_EPSTRLEN];
		struct pkt_spec syn = split_flow(v6, i, base, PKT_SYN, src);
		int b;

		test_context("SYN %u from %s port %u", i, src, syn.sport);
		b = expect_forward(e, &syn, to, n, "new flow");
		counts[b]++;
		if (picked)
			picked[i] = (__u8)b;
	}
	test_context(NULL);
}

/* Each count within 4 sigma of the binomial expectation of its weight share. */
static void check_split(struct ts_env *e, const char *label, bool v6, size_t n, const __u32 *w,
			const __u32 *counts)
{
	double share[MAX_BE], sum = 0;

	table_shares(e, v6, n, share);
	for (size_t i = 0; i < n; i++)
		sum += w[i];
	printf("  %s, %d new flows:\n", label, SPLIT_FLOWS);
	for (size_t i = 0; i < n; i++) {
		double p = w[i] / sum, want = SPLIT_FLOWS * p, diff = counts[i] - want;
		double var = SPLIT_FLOWS * p * (1 - p);
		char what[200];

		printf("    %s weight %u: observed %u, expected %.1f, |diff| %.1f, bound 4 sigma "
		       "%.1f (table share %.3f%%, weight share %.3f%%)\n",
		       names[i], w[i], counts[i], want, diff < 0 ? -diff : diff, 4 * root(var),
		       100 * share[i], 100 * p);
		snprintf(what, sizeof(what),
			 "%s: %s observed %u, expected %.1f within 4 sigma = %.1f", label,
			 names[i], counts[i], want, 4 * root(var));
		/* |diff| <= 4 sigma, squared: exact for weight 0 (sigma 0) */
		ASSERT_TRUE(diff * diff <= 16 * var + 1e-9, what);
	}
}

static void weighted_split(struct ts_env *e, const char *label, bool v6, size_t n,
			   const __u32 *w)
{
	__u32 counts[MAX_BE];

	config_service(e, v6, n, w);
	send_split(e, v6, n, 20000, counts, NULL);
	check_split(e, label, v6, n, w, counts);
	ASSERT_EQ(env_counter(e, TS_CNT_NEW_FLOWS), SPLIT_FLOWS, "new_flows counter");
}

/* Invariant 1 */
static void test_split_90_10_v4(void **state)
{
	weighted_split(env_of(state), "IPv4 90/10", false, 2, (const __u32[]){ 90, 10 });
}

static void test_split_3_1_v4(void **state)
{
	weighted_split(env_of(state), "IPv4 3/1", false, 2, (const __u32[]){ 3, 1 });
}

static void test_split_50_50_v6(void **state)
{
	weighted_split(env_of(state), "IPv6 50/50", true, 2, (const __u32[]){ 50, 50 });
}

static void test_split_1_2_3_0_v4(void **state)
{
	weighted_split(env_of(state), "IPv4 1/2/3/0", false, 4, (const __u32[]){ 1, 2, 3, 0 });
}

/*
 * Invariants 1 and 2 at scale: 10,000 flows pinned at 90/10; the weights go to
 * 10/90; every one of them keeps its backend, and 10,000 new flows split 10/90.
 */
static void test_shift_90_10_to_10_90_keeps_pins(void **state)
{
	static __u8 picked[SPLIT_FLOWS];
	struct ts_env *e = env_of(state);
	const __u32 before[] = { 90, 10 }, after[] = { 10, 90 };
	__u32 counts[2], moved = 0;

	config_service(e, false, 2, before);
	send_split(e, false, 2, 20000, counts, picked);
	check_split(e, "IPv4 90/10 before the shift", false, 2, before, counts);
	set_web_weights(e, "web4", after[0], after[1]);
	for (__u32 i = 0; i < SPLIT_FLOWS; i++) {
		char src[PKT_EPSTRLEN], got[PKT_EPSTRLEN];
		struct pkt_spec ack = split_flow(false, i, 20000, PKT_ACK, src);
		struct pkt in, out;

		test_context("ACK %u from %s port %u", i, src, ack.sport);
		ASSERT_EQ(env_send(e, &ack, &in, &out), TC_ACT_OK, "verdict");
		moved += strcmp(pkt_endpoint(&out, true, got), be4[picked[i]]) != 0;
	}
	test_context(NULL);
	printf("  pinned flows moved by the shift: %u of %d\n", moved, SPLIT_FLOWS);
	ASSERT_EQ(moved, 0, "pinned flows moved to another backend by a weight change");
	ASSERT_EQ(env_counter(e, TS_CNT_NON_SYN_MISS), 0, "non_syn_miss counter (no evictions)");
	send_split(e, false, 2, 40000, counts, NULL);
	check_split(e, "IPv4 10/90 after the shift", false, 2, after, counts);
}

/* ---- determinism (invariant 6) ----------------------------------------------------- */

struct random_flow {
	char	src[PKT_EPSTRLEN];
	__u16	sport;
};

static __u32 xorshift32(__u32 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* Clients anywhere in 198.18.0.0/15 or 2001:2::/48, any port from 1024. */
static void random_flows(struct random_flow *f, size_t n, bool v6, __u32 seed)
{
	for (size_t i = 0; i < n; i++) {
		__u32 a = xorshift32(&seed), b = xorshift32(&seed), c = xorshift32(&seed);

		if (v6)
			snprintf(f[i].src, sizeof(f[i].src), "2001:2:0:%x:%x:%x:%x:%x",
				 a & 0xffff, a >> 16, b & 0xffff, b >> 16, c & 0xffff);
		else
			snprintf(f[i].src, sizeof(f[i].src), "198.%u.%u.%u", 18 + (a & 1),
				 (a >> 8) & 0xff, (a >> 16) & 0xff);
		f[i].sport = (__u16)(1024 + (c >> 16) % (65536 - 1024));
	}
}

static struct pkt_spec random_syn(const struct random_flow *f, bool v6)
{
	return (struct pkt_spec){
		.src = f->src,
		.dst = v6 ? VIP6_ADDR : VIP4_ADDR,
		.sport = f->sport,
		.dport = 8008,
		.flags = PKT_SYN,
	};
}

/* Index of the backend the data plane gives a new flow of f. */
static int pick(struct ts_env *e, const struct random_flow *f, bool v6, size_t n)
{
	struct pkt_spec syn = random_syn(f, v6);

	return expect_forward(e, &syn, v6 ? be6 : be4, n, "SYN");
}

/*
 * The same pick computed in userspace from the public pieces alone: the
 * seeded flow hash of tcpshift_hash.h over the client -> VIP key, modulo M,
 * in the table ts_maglev_build makes from the (name, weight) pairs.
 */
static int userspace_pick(const struct random_flow *f, bool v6, __u32 seed, const __u32 *table)
{
	struct ts_flow_key key = {};
	int af = v6 ? AF_INET6 : AF_INET;

	ASSERT_EQ(inet_pton(af, f->src, key.saddr), 1, "client address");
	ASSERT_EQ(inet_pton(af, v6 ? VIP6_ADDR : VIP4_ADDR, key.daddr), 1, "VIP address");
	key.sport = htons(f->sport);
	key.dport = htons(8008);
	key.proto = IPPROTO_TCP;
	key.family = v6 ? TS_AF_INET6 : TS_AF_INET;
	return (int)table[ts_flow_hash(&key, seed) % TS_DEFAULT_TABLE_SIZE];
}

static void maglev_table(size_t n, const __u32 *w, __u32 *table)
{
	struct ts_maglev_backend b[MAX_BE];

	for (size_t i = 0; i < n; i++)
		b[i] = (struct ts_maglev_backend){ .name = names[i], .weight = w[i] };
	ASSERT_EQ(ts_maglev_build(b, n, TS_DEFAULT_TABLE_SIZE, table), 0, "ts_maglev_build");
}

static const __u32 det_weights[] = { 5, 3, 2 };
#define DET_N 3

static void check_seed(struct ts_env *e, __u32 want)
{
	struct ts_settings s;
	struct ts_err err = {};

	ASSERT_OK(ts_settings_read(&e->maps, &s, &err), err, "ts_settings_read");
	ASSERT_EQ(s.seed, want, "seed in the settings map");
}

/*
 * Invariant 6: two gateways (two loads, two pin directories) with the same
 * configuration and seed give every flow the same backend, and that backend is
 * the one userspace computes from the seed and the weights.
 */
static void test_same_config_same_seed_same_picks(void **state)
{
	static struct random_flow flows[RANDOM_FLOWS];
	static __u32 table[TS_DEFAULT_TABLE_SIZE];
	struct ts_env *a = env_of(state), *b = fixture_env(state, 1, TEST_SEED, TEST_MAX_FLOWS);
	__u32 differ = 0, not_userspace = 0, used[DET_N] = { 0 };

	check_seed(a, TEST_SEED);
	check_seed(b, TEST_SEED);
	maglev_table(DET_N, det_weights, table);
	for (int v6 = 0; v6 < 2; v6++) {
		config_service(a, v6, DET_N, det_weights);
		config_service(b, v6, DET_N, det_weights);
		random_flows(flows, RANDOM_FLOWS, v6, 0x6a7e + v6);
		for (size_t i = 0; i < RANDOM_FLOWS; i++) {
			int pa, pb, pu;

			test_context("flow %s port %u", flows[i].src, flows[i].sport);
			pa = pick(a, &flows[i], v6, DET_N);
			pb = pick(b, &flows[i], v6, DET_N);
			pu = userspace_pick(&flows[i], v6, TEST_SEED, table);
			used[pa]++;
			if (pa != pb && differ++ == 0)
				printf("  first difference: %s port %u: %s vs %s\n", flows[i].src,
				       flows[i].sport, names[pa], names[pb]);
			if (pa != pu && not_userspace++ == 0)
				printf("  first difference from userspace: %s port %u: %s vs %s\n",
				       flows[i].src, flows[i].sport, names[pa], names[pu]);
		}
		test_context(NULL);
	}
	printf("  %d flows: %u picked differently by the two loads, %u differently from "
	       "userspace; v1/v2/v3 got %u/%u/%u\n",
	       2 * RANDOM_FLOWS, differ, not_userspace, used[0], used[1], used[2]);
	ASSERT_EQ(differ, 0, "flows picked differently by two identically configured loads");
	ASSERT_EQ(not_userspace, 0, "flows picked differently from ts_flow_hash + ts_maglev_build");
}

/* Invariant 6: the seed is what decides; another seed, other picks. */
static void test_other_seed_other_picks(void **state)
{
	static struct random_flow flows[RANDOM_FLOWS];
	static __u32 table[TS_DEFAULT_TABLE_SIZE];
	const __u32 other = TEST_SEED ^ 0x9e3779b9U;
	struct ts_env *a = env_of(state), *c = fixture_env(state, 1, other, TEST_MAX_FLOWS);
	__u32 differ = 0, not_userspace = 0;

	check_seed(c, other);
	maglev_table(DET_N, det_weights, table);
	config_service(a, false, DET_N, det_weights);
	config_service(c, false, DET_N, det_weights);
	random_flows(flows, RANDOM_FLOWS, false, 0x5eed);
	for (size_t i = 0; i < RANDOM_FLOWS; i++) {
		int pa, pc;

		test_context("flow %s port %u", flows[i].src, flows[i].sport);
		pa = pick(a, &flows[i], false, DET_N);
		pc = pick(c, &flows[i], false, DET_N);
		differ += pa != pc;
		not_userspace += pc != userspace_pick(&flows[i], false, other, table);
	}
	test_context(NULL);
	/* with shares .5/.3/.2 two independent picks differ with probability .62 */
	printf("  %d flows: %u picked differently with seed %#x than with %#x (expected ~%d)\n",
	       RANDOM_FLOWS, differ, other, TEST_SEED, RANDOM_FLOWS * 62 / 100);
	ASSERT_GT(differ, RANDOM_FLOWS / 4, "flows picked differently under another seed");
	ASSERT_EQ(not_userspace, 0, "picks under the other seed differ from userspace");
}

/*
 * Invariant 6: the same configuration reached another way (backends added in
 * another order, weights changed on the way) gives the same picks.
 */
static void test_config_order_does_not_matter(void **state)
{
	static struct random_flow flows[RANDOM_FLOWS];
	struct ts_env *a = env_of(state), *b = fixture_env(state, 1, TEST_SEED, TEST_MAX_FLOWS);
	__u32 differ = 0;

	config_service(a, false, DET_N, det_weights);
	env_service(b, "web4", VIP4, TS_DEFAULT_TABLE_SIZE);
	env_backend(b, "web4", "v3", be4[2], 7);
	env_backend(b, "web4", "v1", be4[0], 1);
	env_backend(b, "web4", "v4", be4[3], 4);
	env_backend(b, "web4", "v2", be4[1], 0);
	env_backend_del(b, "web4", "v4");
	env_weights(b, "web4", 3, (const char *const[]){ "v2", "v3", "v1" },
		    (const __u32[]){ det_weights[1], det_weights[2], det_weights[0] });
	random_flows(flows, RANDOM_FLOWS, false, 0x07de);
	for (size_t i = 0; i < RANDOM_FLOWS; i++) {
		test_context("flow %s port %u", flows[i].src, flows[i].sport);
		differ += pick(a, &flows[i], false, DET_N) != pick(b, &flows[i], false, DET_N);
	}
	test_context(NULL);
	printf("  %d flows: %u picked differently after another order of changes\n",
	       RANDOM_FLOWS, differ);
	ASSERT_EQ(differ, 0, "flows picked differently by the same configuration built in "
			     "another order");
}

int run_split_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST_LARGE(test_split_90_10_v4),
		TEST_LARGE(test_split_3_1_v4),
		TEST_LARGE(test_split_50_50_v6),
		TEST_LARGE(test_split_1_2_3_0_v4),
		TEST_LARGE(test_shift_90_10_to_10_90_keeps_pins),
		TEST(test_same_config_same_seed_same_picks),
		TEST(test_other_seed_other_picks),
		TEST(test_config_order_does_not_matter),
	};

	return cmocka_run_group_tests_name("split (invariants 1, 2, 6)", tests, NULL, NULL);
}
