// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The weighted Maglev table builder (user/lib/maglev.c), the source of
 * invariant 1 (a backend's share of new flows is its weight share, up to 1/M)
 * and of invariant 6 (the same configuration gives the same table on every
 * gateway). Random configurations come from a fixed seed: a failure names the
 * table size and trial, and reproduces on every run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libtcpshift.h"
#include "unit.h"

#define MAX_BACKENDS	TS_MAX_SERVICE_BACKENDS

struct config {
	size_t				n;
	char				names[MAX_BACKENDS][TS_NAME_LEN];
	struct ts_maglev_backend	b[MAX_BACKENDS];
};

static __u32 *table_new(__u32 m)
{
	__u32 *t = malloc((m ? m : 1) * sizeof(*t));

	assert_non_null(t);
	return t;
}

static __u64 weight_sum(const struct config *c)
{
	__u64 sum = 0;

	for (size_t i = 0; i < c->n; i++)
		sum += c->b[i].weight;
	return sum;
}

/* Weights in the shapes operators use, plus the extremes. */
static __u32 random_weight(struct rng *r, int shape)
{
	switch (shape) {
	case 0:
		return rng_below(r, TS_MAX_WEIGHT + 1);	/* anything */
	case 1:
		return rng_below(r, 10);		/* small, many ties and zeros */
	default:
		return rng_below(r, 4);			/* next to a 65535 */
	}
}

/* n backends with unique random names (the preference lists come from the
 * names) and weights of one random shape. */
static void config_random(struct config *c, struct rng *r, size_t n)
{
	int shape = (int)rng_below(r, 4);
	__u32 same = 1 + rng_below(r, TS_MAX_WEIGHT);

	c->n = n;
	for (size_t i = 0; i < n; i++) {
		snprintf(c->names[i], TS_NAME_LEN, "be-%zu-%08x", i, (unsigned)rng_next(r));
		c->b[i].name = c->names[i];
		if (shape == 3)		/* all equal: every remainder ties */
			c->b[i].weight = same;
		else if (shape == 2 && i == 0)
			c->b[i].weight = TS_MAX_WEIGHT;
		else
			c->b[i].weight = random_weight(r, shape);
	}
}

/* A copy whose names live in other memory: only the strings may matter. */
static void config_copy(struct config *dst, const struct config *src)
{
	*dst = *src;
	for (size_t i = 0; i < dst->n; i++)
		dst->b[i].name = dst->names[i];
}

static void config_shuffle(struct config *c, struct rng *r)
{
	for (size_t i = c->n; i > 1; i--) {
		size_t j = rng_below(r, (__u32)i);
		struct ts_maglev_backend t = c->b[i - 1];

		c->b[i - 1] = c->b[j];
		c->b[j] = t;
	}
}

static void build_ok(const struct config *c, __u32 m, __u32 *table)
{
	int r = ts_maglev_build(c->b, c->n, m, table);

	ASSERT_TRUE(r == 0, "ts_maglev_build(n=%zu, M=%u) = %d", c->n, m, r);
}

/* Slots per backend; every slot must be an index into the input or empty.
 * Returns the number of empty (TS_NO_BACKEND) slots. */
static __u32 count_slots(const __u32 *table, __u32 m, size_t n, __u32 *slots)
{
	__u32 empty = 0;

	memset(slots, 0, n * sizeof(*slots));
	for (__u32 k = 0; k < m; k++) {
		if (table[k] == TS_NO_BACKEND) {
			empty++;
			continue;
		}
		ASSERT_TRUE(table[k] < n, "slot %u holds %u, not an index below %zu", k, table[k],
			    n);
		slots[table[k]]++;
	}
	return empty;
}

static const char *owner(const struct config *c, __u32 index)
{
	return index == TS_NO_BACKEND ? "(none)" : c->b[index].name;
}

/* Slots whose owner (by name) differs between two tables. */
static __u32 moved_slots(const struct config *a, const __u32 *ta, const struct config *b,
			 const __u32 *tb, __u32 m)
{
	__u32 moved = 0;

	for (__u32 k = 0; k < m; k++)
		moved += strcmp(owner(a, ta[k]), owner(b, tb[k])) != 0;
	return moved;
}

/* ---- invariant 1: shares ------------------------------------------------- */

static const struct {
	__u32		m;
	unsigned	trials;
} share_runs[] = {
	{ 7, 3000 }, { 251, 2000 }, { 16381, 300 }, { 65537, 60 },
};

/*
 * For every backend i of a random configuration (1..10 backends, weights w,
 * W = sum of w, table size M), checks |slots_i - M * w_i / W| against a bound,
 * in integers: |slots_i * W - M * w_i| <= max_dev(n, W).
 */
static void check_shares(const char *bound, __u64 (*max_dev)(size_t n, __u64 sum), __u64 seed)
{
	struct rng rng = { seed };
	struct config *c = calloc(1, sizeof(*c));
	__u32 slots[MAX_BACKENDS];

	assert_non_null(c);
	for (size_t run = 0; run < ARRAY_SIZE(share_runs); run++) {
		__u32 m = share_runs[run].m;
		__u32 *table = table_new(m);

		for (unsigned t = 0; t < share_runs[run].trials; t++) {
			__u64 sum;
			__u32 empty;

			config_random(c, &rng, 1 + rng_below(&rng, 10));
			build_ok(c, m, table);
			empty = count_slots(table, m, c->n, slots);
			sum = weight_sum(c);
			if (sum == 0) {
				ASSERT_EQ(empty, m, "all weights 0: empty slots");
				continue;
			}
			ASSERT_EQ(empty, 0, "weights > 0: empty slots");
			for (size_t i = 0; i < c->n; i++) {
				long long dev = (long long)slots[i] * (long long)sum -
						(long long)m * c->b[i].weight;

				ASSERT_TRUE((__u64)llabs(dev) <= max_dev(c->n, sum),
					    "%s: M=%u trial %u: backend %zu of %zu "
					    "(weight %u of %llu) has %u slots, M*w/W = %.3f",
					    bound, m, t, i, c->n, c->b[i].weight,
					    (unsigned long long)sum, slots[i],
					    (double)m * c->b[i].weight / (double)sum);
			}
		}
		free(table);
	}
	free(c);
}

/* |slots - M w / W| <= n */
static __u64 within_n_slots(size_t n, __u64 sum)
{
	return n * sum;
}

/* |slots - M w / W| < 1 */
static __u64 within_one_slot(size_t n, __u64 sum)
{
	return sum - 1;
}

/* The design's promise: share within n/M of the weight share (|.| <= n slots). */
static void maglev_inv1_share_within_n_over_m(void **state)
{
	check_shares("share within n/M", within_n_slots, 0x5ea7);
}

/* The builder's own, tighter promise (largest-remainder apportionment):
 * |slots_i - M * w_i / W| < 1. Also implies that weight 0 gets no slot. */
static void maglev_inv1_share_within_one_slot(void **state)
{
	struct rng rng = { 0x256 };
	struct config *c = calloc(1, sizeof(*c));
	__u32 *table = table_new(TS_DEFAULT_TABLE_SIZE);
	__u32 *slots = calloc(MAX_BACKENDS, sizeof(*slots));

	assert_non_null(c);
	assert_non_null(slots);
	check_shares("share within one slot", within_one_slot, 0x5ea8);

	/* And with a service's maximum number of backends. */
	for (int t = 0; t < 10; t++) {
		__u64 sum;

		config_random(c, &rng, MAX_BACKENDS);
		build_ok(c, TS_DEFAULT_TABLE_SIZE, table);
		count_slots(table, TS_DEFAULT_TABLE_SIZE, c->n, slots);
		sum = weight_sum(c);
		for (size_t i = 0; sum && i < c->n; i++) {
			long long dev = (long long)slots[i] * (long long)sum -
					(long long)TS_DEFAULT_TABLE_SIZE * c->b[i].weight;

			ASSERT_TRUE((__u64)llabs(dev) < sum,
				    "share within one slot: 256 backends, trial %d: backend %zu "
				    "(weight %u of %llu) has %u slots",
				    t, i, c->b[i].weight, (unsigned long long)sum, slots[i]);
		}
	}
	free(slots);
	free(table);
	free(c);
}

/* ---- invariant 6: determinism ---------------------------------------------- */

static void maglev_inv6_same_input_same_table(void **state)
{
	static const __u32 sizes[] = { 7, 251, 16381, 65537 };
	struct rng rng = { 0xd37 };
	struct config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	assert_non_null(a);
	assert_non_null(b);
	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		__u32 m = sizes[s];
		__u32 *ta = table_new(m), *tb = table_new(m);

		for (int t = 0; t < 20; t++) {
			config_random(a, &rng, 1 + rng_below(&rng, 10));
			config_copy(b, a);
			/* Different garbage before: the builder must write every slot. */
			memset(ta, 0x00, m * sizeof(*ta));
			memset(tb, 0xa5, m * sizeof(*tb));
			build_ok(a, m, ta);
			build_ok(b, m, tb);
			ASSERT_TRUE(!memcmp(ta, tb, m * sizeof(*ta)),
				    "M=%u trial %d: the same input gave two different tables",
				    m, t);
		}
		free(ta);
		free(tb);
	}
	free(a);
	free(b);
}

/* The table depends on the set of (name, weight) pairs, not on their order in
 * the input (the maps list backends in id order, which differs per gateway). */
static void maglev_inv6_input_order_does_not_matter(void **state)
{
	static const struct {
		__u32		m;
		int		trials;
	} runs[] = { { 7, 500 }, { 251, 300 }, { 16381, 60 } };
	struct rng rng = { 0x0bde };
	struct config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	assert_non_null(a);
	assert_non_null(b);
	for (size_t s = 0; s < ARRAY_SIZE(runs); s++) {
		__u32 m = runs[s].m;
		__u32 *ta = table_new(m), *tb = table_new(m);

		for (int t = 0; t < runs[s].trials; t++) {
			__u32 moved;

			config_random(a, &rng, 1 + rng_below(&rng, 10));
			config_copy(b, a);
			config_shuffle(b, &rng);
			build_ok(a, m, ta);
			build_ok(b, m, tb);
			moved = moved_slots(a, ta, b, tb, m);
			ASSERT_TRUE(moved == 0,
				    "M=%u trial %d (%zu backends): %u slots change owner when the "
				    "input is permuted", m, t, a->n, moved);
		}
		free(ta);
		free(tb);
	}
	free(a);
	free(b);
}

/*
 * Pins the table of two fixed configurations. Gateways behind ECMP are
 * upgraded one by one, so during a rollout two versions of the builder must
 * still agree (invariant 6). If this fails after a deliberate change to the
 * builder or the name hash, that change moves flows between gateways of
 * different versions: say so in the release notes, then update the values.
 */
static void maglev_inv6_table_unchanged_across_versions(void **state)
{
	static const struct ts_maglev_backend canary[] = {
		{ "v1", 90 }, { "v2", 10 },
	};
	static const struct ts_maglev_backend mixed[] = {
		{ "web-a", 3 }, { "web-b", 2 }, { "web-c", 0 }, { "web-d", 5 }, { "web-e", 1 },
	};
	static const struct {
		const char			*what;
		const struct ts_maglev_backend	*b;
		size_t				n;
		__u32				m;
		__u64				fnv;	/* FNV-1a over the slot values */
	} pins[] = {
		{ "v1=90 v2=10, M=16381", canary, ARRAY_SIZE(canary), 16381,
		  0xd435ba21f8c47075ULL },
		{ "web-a..e, M=251", mixed, ARRAY_SIZE(mixed), 251, 0x6533e033435038b1ULL },
	};

	for (size_t p = 0; p < ARRAY_SIZE(pins); p++) {
		__u32 *table = table_new(pins[p].m);
		__u64 h = 0xcbf29ce484222325ULL;
		int r = ts_maglev_build(pins[p].b, pins[p].n, pins[p].m, table);

		ASSERT_TRUE(r == 0, "%s: ts_maglev_build = %d", pins[p].what, r);
		/* By value, byte by byte little-endian: the same on every host. */
		for (__u32 k = 0; k < pins[p].m; k++)
			for (int byte = 0; byte < 4; byte++) {
				h ^= (table[k] >> (8 * byte)) & 0xff;
				h *= 0x100000001b3ULL;
			}
		ASSERT_TRUE(h == pins[p].fnv, "%s: table hash 0x%016llx, pinned 0x%016llx",
			    pins[p].what, (unsigned long long)h,
			    (unsigned long long)pins[p].fnv);
		free(table);
	}
}

/* ---- disruption ----------------------------------------------------------- */

/*
 * Changing one weight of five must move about the slots whose share changes
 * and no more: moved <= M * sum_i max(0, new_share_i - old_share_i) + 2% of M.
 *
 * Maglev does not guarantee this for every set of names: when two backends'
 * preference lists are correlated (equal skips, or one skip twice the other),
 * a change of turn order cascades along their shared cycle. With random names
 * that happens in about 0.1-0.2% of configurations at M = 16381 (rarer at
 * 65537). So each trial is checked, the ones over the bound are printed, and
 * the test asserts they stay rare (<= 1%) and that the average excess is small.
 */
static void maglev_weight_change_moves_share_difference(void **state)
{
	static const struct {
		__u32		m;
		int		trials;
	} runs[] = { { 16381, 1000 }, { 65537, 150 } };
	struct rng rng = { 0x3e16 };
	struct config *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

	assert_non_null(a);
	assert_non_null(b);
	for (size_t s = 0; s < ARRAY_SIZE(runs); s++) {
		__u32 m = runs[s].m;
		__u32 *ta = table_new(m), *tb = table_new(m);
		int checked = 0, over = 0;
		double excess_sum = 0;

		for (int t = 0; t < runs[s].trials; t++) {
			size_t j = rng_below(&rng, 5);
			double need = 0, excess;
			__u64 wa, wb;
			__u32 moved;

			config_random(a, &rng, 5);
			config_copy(b, a);
			b->b[j].weight = random_weight(&rng, (int)rng_below(&rng, 2));
			wa = weight_sum(a);
			wb = weight_sum(b);
			if (!wa || !wb)
				continue;	/* from or to an empty table: nothing to keep */
			for (size_t i = 0; i < 5; i++) {
				double d = (double)b->b[i].weight / (double)wb -
					   (double)a->b[i].weight / (double)wa;

				need += d > 0 ? d * m : 0;
			}
			build_ok(a, m, ta);
			build_ok(b, m, tb);
			moved = moved_slots(a, ta, b, tb, m);
			excess = ((double)moved - need) / m;
			excess_sum += excess;
			checked++;
			if (excess > 0.02) {
				over++;
				print_message("M=%u trial %d: backend %zu weight %u -> %u moved "
					      "%u slots, share difference %.0f (+%.2f%% of M)\n",
					      m, t, j, a->b[j].weight, b->b[j].weight, moved, need,
					      100 * excess);
			}
		}
		ASSERT_TRUE(checked > runs[s].trials / 2, "M=%u: only %d trials checked", m,
			    checked);
		ASSERT_TRUE(over * 100 <= checked,
			    "M=%u: %d of %d weight changes moved more than the share difference "
			    "+ 2%% of M", m, over, checked);
		ASSERT_TRUE(excess_sum / checked < 0.005,
			    "M=%u: weight changes move on average %.2f%% of M more than needed",
			    m, 100 * excess_sum / checked);
		free(ta);
		free(tb);
	}
	free(a);
	free(b);
}

/*
 * Maglev's minimal disruption: from 4 equal backends to 5, the new one takes
 * 1/5 of the slots, and about only those change owner: changed <= (1/5 + 2%)
 * of M, of which at most 2% of M move between the old backends. (Removing the
 * fifth again is the same pair of tables the other way round.)
 */
static void maglev_add_backend_moves_slots_to_it(void **state)
{
	static const char *const name_sets[][5] = {
		{ "v1", "v2", "v3", "v4", "v5" },
		{ "web-1", "web-2", "web-3", "web-4", "web-5" },
		{ "backend-a", "backend-b", "backend-c", "backend-d", "backend-e" },
		{ "v4", "v3", "v2", "v1", "v0" },	/* the new name sorts first */
		{ "blue", "green", "red", "yellow", "canary" },
		{ "198.18.2.11", "198.18.2.12", "198.18.2.13", "198.18.2.14", "198.18.2.15" },
	};
	static const __u32 sizes[] = { 16381, 65537 };

	for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
		__u32 m = sizes[s];
		__u32 *before = table_new(m), *after = table_new(m);

		for (size_t set = 0; set < ARRAY_SIZE(name_sets); set++) {
			struct ts_maglev_backend b[5];
			__u32 moved = 0, between_old = 0;

			for (size_t i = 0; i < 5; i++)
				b[i] = (struct ts_maglev_backend){ name_sets[set][i], 100 };
			assert_int_equal(ts_maglev_build(b, 4, m, before), 0);
			assert_int_equal(ts_maglev_build(b, 5, m, after), 0);
			for (__u32 k = 0; k < m; k++) {
				moved += before[k] != after[k];
				between_old += before[k] != after[k] && after[k] != 4;
			}
			ASSERT_TRUE(moved <= m / 5 + m / 50,
				    "M=%u, adding %s to %s..: %u slots (%.2f%%) change owner, "
				    "more than 1/5 + 2%%", m, name_sets[set][4], name_sets[set][0],
				    moved, 100.0 * moved / m);
			ASSERT_TRUE(between_old <= m / 50,
				    "M=%u, adding %s to %s..: %u slots (%.2f%%) move between "
				    "the old backends", m, name_sets[set][4], name_sets[set][0],
				    between_old,
				    100.0 * between_old / m);
		}
		free(before);
		free(after);
	}
}

/* The same with random names: the bound may fail for a rare correlated set
 * (see maglev_weight_change_moves_share_difference), but at most for 1%. */
static void maglev_add_backend_random_names(void **state)
{
	const __u32 m = TS_DEFAULT_TABLE_SIZE;
	const int trials = 300;
	struct rng rng = { 0xadd };
	__u32 *before = table_new(m), *after = table_new(m);
	struct config *c = calloc(1, sizeof(*c));
	int over = 0;

	assert_non_null(c);
	for (int t = 0; t < trials; t++) {
		__u32 moved = 0;

		config_random(c, &rng, 5);
		for (size_t i = 0; i < 5; i++)
			c->b[i].weight = 1;
		build_ok(c, m, after);
		c->n = 4;
		build_ok(c, m, before);
		for (__u32 k = 0; k < m; k++)
			moved += before[k] != after[k];
		if (moved > m / 5 + m / 50) {
			over++;
			print_message("M=%u: adding %s to %s, %s, %s, %s moved %.2f%% of slots\n",
				      m, c->names[4], c->names[0], c->names[1], c->names[2],
				      c->names[3], 100.0 * moved / m);
		}
	}
	ASSERT_TRUE(over * 100 <= trials,
		    "%d of %d additions moved more than 1/5 + 2%% of the slots", over, trials);
	free(c);
	free(before);
	free(after);
}

/* ---- edge cases and invalid input ------------------------------------------ */

static const struct {
	const char	*what;
	__u32		m;
	size_t		n;
	__u32		weight[3];
	int		ret;
	__u32		slots[3];	/* per backend, when ret == 0; the rest are empty */
} edge_cases[] = {
	{ "weight 0 gets no slot", 251, 3, { 3, 0, 5 }, 0, { 94, 0, 157 } },
	{ "all weights 0: every slot empty", 251, 3, { 0, 0, 0 }, 0, { 0, 0, 0 } },
	{ "no backends: every slot empty", 16381, 0, { 0 }, 0, { 0 } },
	{ "a single backend gets every slot", 16381, 1, { 1 }, 0, { 16381 } },
	{ "a single backend of weight 65535", 65537, 1, { 65535 }, 0, { 65537 } },
	{ "the smallest table, M = 2", 2, 2, { 1, 1 }, 0, { 1, 1 } },
	{ "65535 vs 1, M = 16381: 1/4 slot rounds to 0", 16381, 2, { 65535, 1 }, 0,
	  { 16381, 0 } },
	{ "65535 vs 1, M = 131071: 2 slots", 131071, 2, { 65535, 1 }, 0, { 131069, 2 } },
	{ "1 vs 65535 vs 65535, M = 65537: 1/2 slot rounds to 1", 65537, 3, { 1, 65535, 65535 },
	  0, { 1, 32768, 32768 } },
	{ "M = 16380 is not prime", 16380, 2, { 1, 1 }, -EINVAL },
	{ "M = 65536 is not prime", 65536, 2, { 1, 1 }, -EINVAL },
	{ "M = 0", 0, 2, { 1, 1 }, -EINVAL },
	{ "M = 1", 1, 2, { 1, 1 }, -EINVAL },
	{ "weight 65536", 251, 2, { 1, 65536 }, -EINVAL },
	{ "weight 0xffffffff", 251, 3, { 0xffffffff, 1, 1 }, -EINVAL },
};

static void maglev_edge_cases_and_invalid_input(void **state)
{
	static const char *const names[] = { "e0", "e1", "e2" };

	for (size_t c = 0; c < ARRAY_SIZE(edge_cases); c++) {
		struct ts_maglev_backend b[3];
		__u32 *table = table_new(edge_cases[c].m);
		__u32 slots[3], empty, want_empty = edge_cases[c].m;
		int r;

		for (size_t i = 0; i < edge_cases[c].n; i++)
			b[i] = (struct ts_maglev_backend){ names[i], edge_cases[c].weight[i] };
		r = ts_maglev_build(b, edge_cases[c].n, edge_cases[c].m, table);
		ASSERT_TRUE(r == edge_cases[c].ret, "%s: returned %d, want %d", edge_cases[c].what,
			    r, edge_cases[c].ret);
		if (r) {
			free(table);
			continue;
		}
		empty = count_slots(table, edge_cases[c].m, edge_cases[c].n, slots);
		for (size_t i = 0; i < edge_cases[c].n; i++) {
			ASSERT_TRUE(slots[i] == edge_cases[c].slots[i],
				    "%s: backend %zu has %u slots, want %u", edge_cases[c].what, i,
				    slots[i], edge_cases[c].slots[i]);
			want_empty -= edge_cases[c].slots[i];
		}
		ASSERT_TRUE(empty == want_empty, "%s: %u empty slots, want %u", edge_cases[c].what,
			    empty, want_empty);
		free(table);
	}
}

int run_maglev_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(maglev_inv1_share_within_n_over_m),
		cmocka_unit_test(maglev_inv1_share_within_one_slot),
		cmocka_unit_test(maglev_inv6_same_input_same_table),
		cmocka_unit_test(maglev_inv6_input_order_does_not_matter),
		cmocka_unit_test(maglev_inv6_table_unchanged_across_versions),
		cmocka_unit_test(maglev_weight_change_moves_share_difference),
		cmocka_unit_test(maglev_add_backend_moves_slots_to_it),
		cmocka_unit_test(maglev_add_backend_random_names),
		cmocka_unit_test(maglev_edge_cases_and_invalid_input),
	};

	return cmocka_run_group_tests_name("maglev", tests, NULL, NULL);
}
