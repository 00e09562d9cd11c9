// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The flow hash (include/tcpshift_hash.h), shared by the data plane and
 * userspace: deterministic for a key and seed (invariant 6), dependent on the
 * seed and on every field of the 5-tuple but not on padding, and uniform
 * enough that table slots, and so backends, get their weight share of flows
 * (invariant 1).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "libtcpshift.h"
#include "tcpshift_hash.h"
#include "unit.h"

#define UNIFORM_KEYS	100000

/*
 * Chi-square bound: for k buckets the statistic of a uniform hash follows
 * chi-square with k - 1 degrees of freedom, mean k - 1 and standard deviation
 * sqrt(2 (k - 1)). Failing at mean + 6 sd makes a false alarm (for a fixed
 * seed: never, once it passed) far less likely than a real defect, which
 * gives values many sd out.
 */
#define CHI2_SD_LIMIT	6.0

/* Newton's method: keeps the test binary free of libm. */
static double square_root(double x)
{
	double r = x > 1 ? x : 1;

	for (int i = 0; i < 64; i++)
		r = (r + x / r) / 2;
	return r;
}

static double chi2_bound(unsigned buckets)
{
	double dof = buckets - 1;

	return dof + CHI2_SD_LIMIT * square_root(2 * dof);
}

static double chi2(const unsigned *count, unsigned buckets, unsigned keys)
{
	double expect = (double)keys / buckets, x = 0;

	for (unsigned i = 0; i < buckets; i++)
		x += (count[i] - expect) * (count[i] - expect) / expect;
	return x;
}

static void key_random(struct ts_flow_key *k, struct rng *r, bool v6)
{
	memset(k, 0, sizeof(*k));
	k->family = v6 ? TS_AF_INET6 : TS_AF_INET;
	k->proto = IPPROTO_TCP;
	for (int w = 0; w < (v6 ? 4 : 1); w++) {
		k->saddr[w] = (__be32)rng_next(r);
		k->daddr[w] = (__be32)rng_next(r);
	}
	k->sport = (__be16)rng_next(r);
	k->dport = (__be16)rng_next(r);
}

/* A client on 198.18.0.1 connecting to the VIP 198.18.100.1:8008. */
static void key_client(struct ts_flow_key *k, __u16 sport)
{
	memset(k, 0, sizeof(*k));
	k->family = TS_AF_INET;
	k->proto = IPPROTO_TCP;
	k->saddr[0] = htonl(0xc6120001);
	k->daddr[0] = htonl(0xc6126401);
	k->sport = htons(sport);
	k->dport = htons(8008);
}

static void hash_inv6_same_key_same_hash(void **state)
{
	struct rng rng = { 0x4a54 };

	for (int i = 0; i < 10000; i++) {
		struct ts_flow_key a, b;
		__u32 seed = (__u32)rng_next(&rng);

		key_random(&a, &rng, i & 1);
		/* Built field by field in other memory, as the BPF side does. */
		memset(&b, 0, sizeof(b));
		memcpy(b.saddr, a.saddr, sizeof(b.saddr));
		memcpy(b.daddr, a.daddr, sizeof(b.daddr));
		b.sport = a.sport;
		b.dport = a.dport;
		b.proto = a.proto;
		b.family = a.family;
		ASSERT_TRUE(ts_flow_hash(&a, seed) == ts_flow_hash(&b, seed),
			    "key %d: equal keys, equal seeds, different hashes", i);
	}
}

/* Gateways with another seed spread flows differently (the seed is the
 * operator's knob against crafted collisions): nearly every key's hash
 * changes. With 32-bit hashes, equal values for two seeds are ~2^-32 events. */
static void hash_seed_changes_hash(void **state)
{
	struct rng rng = { 0x5eed };
	int equal = 0, same_slot = 0;
	const int keys = 20000;

	for (int i = 0; i < keys; i++) {
		struct ts_flow_key k;
		__u32 h1, h2;

		key_random(&k, &rng, i & 1);
		h1 = ts_flow_hash(&k, TS_DEFAULT_SEED);
		h2 = ts_flow_hash(&k, TS_DEFAULT_SEED + 1);
		equal += h1 == h2;
		same_slot += h1 % TS_DEFAULT_TABLE_SIZE == h2 % TS_DEFAULT_TABLE_SIZE;
	}
	ASSERT_TRUE(equal <= 1, "%d of %d keys hash the same under two seeds", equal, keys);
	/* Expected keys / 16381 ~ 1.2; 10 is far out for a Poisson(1.2). */
	ASSERT_TRUE(same_slot <= 10, "%d of %d keys get the same slot under two seeds",
		    same_slot, keys);
}

/* Every byte of the 5-tuple feeds the hash; the padding does not (a BPF key
 * built on the stack may carry anything there). */
static void hash_covers_every_field_but_padding(void **state)
{
	static const struct {
		const char	*field;
		size_t		offset;
		size_t		size;
		bool		hashed;
	} fields[] = {
		{ "saddr", offsetof(struct ts_flow_key, saddr), 16, true },
		{ "daddr", offsetof(struct ts_flow_key, daddr), 16, true },
		{ "sport", offsetof(struct ts_flow_key, sport), 2, true },
		{ "dport", offsetof(struct ts_flow_key, dport), 2, true },
		{ "proto", offsetof(struct ts_flow_key, proto), 1, true },
		{ "family", offsetof(struct ts_flow_key, family), 1, true },
		{ "pad", offsetof(struct ts_flow_key, pad), 2, false },
	};
	struct rng rng = { 0xf1e1d };

	for (int t = 0; t < 200; t++) {
		struct ts_flow_key k;
		__u32 seed = (__u32)rng_next(&rng), h;

		key_random(&k, &rng, true);
		h = ts_flow_hash(&k, seed);
		for (size_t f = 0; f < ARRAY_SIZE(fields); f++)
			for (size_t bit = 0; bit < fields[f].size * 8; bit++) {
				struct ts_flow_key x = k;
				__u8 *p = (__u8 *)&x + fields[f].offset + bit / 8;

				*p ^= (__u8)(1 << (bit % 8));
				ASSERT_TRUE((ts_flow_hash(&x, seed) != h) == fields[f].hashed,
					    "flipping bit %zu of %s %s the hash", bit,
					    fields[f].field,
					    fields[f].hashed ? "does not change" : "changes");
			}
	}
}

/*
 * Reference MurmurHash3 x86_32 (Austin Appleby's algorithm, written out here
 * from its definition), reading 4-byte blocks little-endian.
 */
static __u32 murmur3_32(const __u8 *data, size_t len, __u32 seed)
{
	const __u32 c1 = 0xcc9e2d51, c2 = 0x1b873593;
	__u32 h = seed, k;
	size_t i;

	for (i = 0; i + 4 <= len; i += 4) {
		k = (__u32)data[i] | (__u32)data[i + 1] << 8 | (__u32)data[i + 2] << 16 |
		    (__u32)data[i + 3] << 24;
		k *= c1;
		k = (k << 15) | (k >> 17);
		k *= c2;
		h ^= k;
		h = (h << 13) | (h >> 19);
		h = h * 5 + 0xe6546b64;
	}
	k = 0;
	switch (len & 3) {
	case 3:
		k ^= (__u32)data[i + 2] << 16;
		/* fallthrough */
	case 2:
		k ^= (__u32)data[i + 1] << 8;
		/* fallthrough */
	case 1:
		k ^= data[i];
		k *= c1;
		k = (k << 15) | (k >> 17);
		k *= c2;
		h ^= k;
	}
	h ^= (__u32)len;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/*
 * The header documents MurmurHash3 over the key's words (as the host reads
 * them): saddr[0..3], daddr[0..3], sport << 16 | dport, proto << 8 | family.
 * Check the reference on published test vectors, then the header against it:
 * an accidental change of the hash would re-pick every flow-table miss.
 */
static void hash_is_murmur3_over_key_words(void **state)
{
	static const struct {
		const char	*data;
		size_t		len;
		__u32		seed;
		__u32		want;
	} vectors[] = {
		{ "", 0, 0, 0 },
		{ "", 0, 1, 0x514e28b7 },
		{ "", 0, 0xffffffff, 0x81f16f39 },
		{ "\xff\xff\xff\xff", 4, 0, 0x76293b50 },
		{ "\x21\x43\x65\x87", 4, 0, 0xf55b516b },
		{ "\x21\x43\x65\x87", 4, 0x5082edee, 0x2362f9de },
		{ "\x21\x43\x65", 3, 0, 0x7e4a8634 },
		{ "\x21\x43", 2, 0, 0xa0f7b07a },
		{ "\x21", 1, 0, 0x72661cf4 },
		{ "\x00\x00\x00\x00", 4, 0, 0x2362f9de },
		{ "aaaa", 4, 0x9747b28c, 0x5a97808a },
		{ "Hello, world!", 13, 0x9747b28c, 0x24884cba },
		{ "The quick brown fox jumps over the lazy dog", 43, 0x9747b28c, 0x2fa826cd },
	};
	struct rng rng = { 0x3e3 };

	for (size_t v = 0; v < ARRAY_SIZE(vectors); v++) {
		__u32 got = murmur3_32((const __u8 *)vectors[v].data, vectors[v].len,
				       vectors[v].seed);

		ASSERT_TRUE(got == vectors[v].want, "reference murmur3 vector %zu: 0x%08x, want "
			    "0x%08x", v, got, vectors[v].want);
	}
	for (int i = 0; i < 10000; i++) {
		struct ts_flow_key k;
		__u32 words[10], seed = (__u32)rng_next(&rng);
		__u8 bytes[40];

		key_random(&k, &rng, i & 1);
		for (int w = 0; w < 4; w++) {
			words[w] = k.saddr[w];
			words[4 + w] = k.daddr[w];
		}
		words[8] = (__u32)k.sport << 16 | k.dport;
		words[9] = (__u32)k.proto << 8 | k.family;
		for (int b = 0; b < 40; b++)
			bytes[b] = (__u8)(words[b / 4] >> (8 * (b % 4)));
		ASSERT_TRUE(ts_flow_hash(&k, seed) == murmur3_32(bytes, sizeof(bytes), seed),
			    "key %d: ts_flow_hash differs from MurmurHash3 over the key words", i);
	}
}

/* 100k random keys (v4 and v6) into 64 buckets and into the 16381 slots of
 * the default table, as the data plane does (hash % M). */
static void hash_uniform_over_random_keys(void **state)
{
	static const unsigned buckets[] = { 64, TS_DEFAULT_TABLE_SIZE };
	struct rng rng = { 0x0a1f };
	unsigned *count = calloc(TS_DEFAULT_TABLE_SIZE, sizeof(*count));

	assert_non_null(count);
	for (size_t b = 0; b < ARRAY_SIZE(buckets); b++) {
		double x;

		memset(count, 0, TS_DEFAULT_TABLE_SIZE * sizeof(*count));
		for (unsigned i = 0; i < UNIFORM_KEYS; i++) {
			struct ts_flow_key k;

			key_random(&k, &rng, i & 1);
			count[ts_flow_hash(&k, TS_DEFAULT_SEED) % buckets[b]]++;
		}
		x = chi2(count, buckets[b], UNIFORM_KEYS);
		ASSERT_TRUE(x < chi2_bound(buckets[b]),
			    "chi-square over %u buckets = %.1f, bound (mean + %.0f sd) %.1f",
			    buckets[b], x, CHI2_SD_LIMIT, chi2_bound(buckets[b]));
	}
	free(count);
}

/* Real traffic has little entropy: one client, one VIP, only the source port
 * varies. Those flows too must spread evenly. */
static void hash_uniform_over_source_ports(void **state)
{
	static const __u32 seeds[] = { TS_DEFAULT_SEED, 0, 1, 0xffffffff };
	const unsigned buckets = 64, keys = 65536 - 1024;

	for (size_t s = 0; s < ARRAY_SIZE(seeds); s++) {
		unsigned count[64] = { 0 };
		double x;

		for (unsigned port = 1024; port < 65536; port++) {
			struct ts_flow_key k;

			key_client(&k, (__u16)port);
			count[ts_flow_hash(&k, seeds[s]) % buckets]++;
		}
		x = chi2(count, buckets, keys);
		ASSERT_TRUE(x < chi2_bound(buckets),
			    "seed 0x%08x: chi-square over %u buckets = %.1f, bound %.1f", seeds[s],
			    buckets, x, chi2_bound(buckets));
	}
}

int run_hash_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hash_inv6_same_key_same_hash),
		cmocka_unit_test(hash_seed_changes_hash),
		cmocka_unit_test(hash_covers_every_field_but_padding),
		cmocka_unit_test(hash_is_murmur3_over_key_words),
		cmocka_unit_test(hash_uniform_over_random_keys),
		cmocka_unit_test(hash_uniform_over_source_ports),
	};

	return cmocka_run_group_tests_name("flow_hash", tests, NULL, NULL);
}
