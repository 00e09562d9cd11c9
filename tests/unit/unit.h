/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Shared helpers of the unit tests: a fixed-seed PRNG, so that every run draws
 * the same "random" inputs and a failure reproduces, and assertion macros that
 * name the check that failed.
 */
#ifndef TCPSHIFT_UNIT_H
#define TCPSHIFT_UNIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <cmocka.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: small, fast, and the same sequence on every platform. */
struct rng {
	uint64_t state;
};

static inline uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [0, n); the modulo bias (< n / 2^64) does not matter here. */
static inline uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(rng_next(r) % n);
}

/* fail_msg() wants its format as a literal: ASSERT_TRUE(cond, "fmt", args). */
#define ASSERT_TRUE(cond, ...)				\
	do {						\
		if (!(cond))				\
			fail_msg(__VA_ARGS__);		\
	} while (0)

#define ASSERT_EQ(got, want, what)						\
	do {									\
		long long got_ = (long long)(got), want_ = (long long)(want);	\
		if (got_ != want_)						\
			fail_msg("%s: got %lld, want %lld", (what), got_, want_);	\
	} while (0)

/* The process's peak resident memory, in KiB. */
static inline long peak_rss_kib(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

/* head, then n times rep, then tail, NUL-terminated (malloc()ed), or NULL. */
static inline char *repeated(const char *head, const char *rep, size_t n, const char *tail)
{
	size_t hl = strlen(head), rl = strlen(rep), tl = strlen(tail);
	char *t = malloc(hl + rl * n + tl + 1), *p = t;

	if (!t)
		return NULL;
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < n; i++, p += rl)
		memcpy(p, rep, rl);
	memcpy(p, tail, tl + 1);
	return t;
}

/* Each group runs its tests and returns the number that failed. */
int run_parse_tests(void);
int run_maglev_tests(void);
int run_hash_tests(void);
int run_export_tests(void);
int run_cli_tests(void);
int run_layout_tests(void);
int run_health_tests(void);
int run_metrics_tests(void);
int run_etcd_tests(void);
int run_sync_tests(void);
int run_print_tests(void);
int run_live_tests(void);

#endif /* TCPSHIFT_UNIT_H */
