// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Weighted Maglev table builder.
 *
 * Each backend has its own preference sequence over the M slots (M prime): a
 * splitmix64 stream seeded by a fixed hash of its name, so every gateway
 * derives the same sequences. Backends take turns claiming their next free
 * preferred slot, as in Maglev; to weight them, the number of slots each one
 * gets is fixed first (largest remainder apportionment of M by weight, so a
 * share is within 1/M of its weight share), and the turns are interleaved in
 * proportion to those counts, so a weight change shifts mostly the slots it
 * must.
 *
 * Why not Maglev's (offset + j * skip) mod M permutations: two backends whose
 * skips are equal, or multiples of each other, have correlated preferences,
 * and then a small change of turn order cascades (one weight change of five
 * moved 6.7 % more slots than needed in 0.1 % of random configurations).
 * Independent streams keep the excess under 1 %; the price is more probes as
 * the table fills (about M ln M in all; 0.5 ms for M = 16381).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libtcpshift.h"

/* The splitmix64 finaliser. */
static __u64 mix64(__u64 z)
{
	z ^= z >> 30;
	z *= 0xbf58476d1ce4e5b9ULL;
	z ^= z >> 27;
	z *= 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* FNV-1a, then mixed: stable on every platform. */
static __u64 name_hash(const char *s)
{
	__u64 h = 0xcbf29ce484222325ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

struct maglev_state {
	__u32	index;		/* into the caller's array */
	__u32	target;		/* slots this backend gets */
	__u32	claimed;
	__u64	remainder;	/* of M * weight / sum, for apportionment */
	__u64	seq;		/* splitmix64 state: position in the preferences */
};

/* qsort_r: the caller's array is the argument, not a global. */
static int cmp_name(const void *a, const void *b, void *base)
{
	const struct ts_maglev_backend *mb = base;
	const struct maglev_state *x = a, *y = b;

	return strcmp(mb[x->index].name, mb[y->index].name);
}

/* Larger remainder first; ties by name order (the array's current order). */
static int cmp_remainder(const void *a, const void *b)
{
	const struct maglev_state *const *x = a, *const *y = b;

	if ((*x)->remainder != (*y)->remainder)
		return (*x)->remainder < (*y)->remainder ? 1 : -1;
	return *x < *y ? -1 : (*x > *y);
}

/* Fix each backend's slot count: floor(M * w / W), plus one for the largest
 * remainders until the counts add up to M. */
static int apportion(struct maglev_state *st, const struct ts_maglev_backend *b, size_t n,
		     __u32 m, __u64 sum)
{
	struct maglev_state **by_rem;
	__u64 assigned = 0;

	by_rem = calloc(n, sizeof(*by_rem));
	if (!by_rem)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		__u64 q = (__u64)m * b[st[i].index].weight;

		st[i].target = (__u32)(q / sum);
		st[i].remainder = b[st[i].index].weight ? q % sum : 0;
		assigned += st[i].target;
		by_rem[i] = &st[i];
	}
	qsort(by_rem, n, sizeof(*by_rem), cmp_remainder);
	for (size_t i = 0; assigned < m; i++, assigned++)
		by_rem[i]->target++;
	free(by_rem);
	return 0;
}

static void claim(struct maglev_state *s, __u32 m, __u32 *table)
{
	__u32 slot;

	do {
		s->seq += 0x9e3779b97f4a7c15ULL;
		/* multiply-shift maps the top 32 bits onto [0, m) without a division */
		slot = (__u32)(((mix64(s->seq) >> 32) * m) >> 32);
	} while (table[slot] != TS_NO_BACKEND);
	table[slot] = s->index;
	s->claimed++;
}

int ts_maglev_build(const struct ts_maglev_backend *b, size_t n, __u32 m, __u32 *table)
{
	struct maglev_state *st;
	__u32 max_target = 0;
	__u64 sum = 0;
	int err;

	if (!ts_is_prime(m))
		return -EINVAL;
	for (__u32 i = 0; i < m; i++)
		table[i] = TS_NO_BACKEND;
	for (size_t i = 0; i < n; i++) {
		if (b[i].weight > TS_MAX_WEIGHT)
			return -EINVAL;
		sum += b[i].weight;
	}
	if (sum == 0)
		return 0;

	st = calloc(n, sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		st[i].index = (__u32)i;
		st[i].seq = name_hash(b[i].name);
	}
	qsort_r(st, n, sizeof(*st), cmp_name, (void *)b);
	err = apportion(st, b, n, m, sum);
	if (err)
		goto out;
	for (size_t i = 0; i < n; i++)
		if (st[i].target > max_target)
			max_target = st[i].target;

	/* Round r gives backend i the turns it needs to have claimed
	 * ceil(r * target_i / max_target) slots: every backend progresses at
	 * the rate of its share, and all finish in the last round. */
	for (__u64 r = 1; r <= max_target; r++)
		for (size_t i = 0; i < n; i++) {
			__u64 want = (r * st[i].target + max_target - 1) / max_target;

			while (st[i].claimed < want)
				claim(&st[i], m, table);
		}
out:
	free(st);
	return err;
}
