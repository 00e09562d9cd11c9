/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The seeded flow hash, one definition for both sides: the BPF program picks
 * a table slot with it, and userspace (tests, `pick`) computes the same value.
 * It never uses skb->hash, which is random per boot: gateways configured with
 * the same seed hash a flow identically (invariant 6).
 *
 * MurmurHash3 (x86_32) over the words of the client -> VIP 5-tuple.
 */
#ifndef TCPSHIFT_HASH_H
#define TCPSHIFT_HASH_H

#include "tcpshift.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

static __always_inline __u32 ts_rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 ts_murmur_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51U;
	k = ts_rotl32(k, 15);
	k *= 0x1b873593U;
	h ^= k;
	h = ts_rotl32(h, 13);
	return h * 5 + 0xe6546b64U;
}

static __always_inline __u32 ts_murmur_final(__u32 h, __u32 len)
{
	h ^= len;
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/* The key's words are hashed as the host reads them: gateways of the same
 * byte order (every x86 and arm64 machine) hash a flow identically; a
 * big-endian gateway would not agree with a little-endian one. */
static __always_inline __u32 ts_flow_hash(const struct ts_flow_key *k, __u32 seed)
{
	__u32 h = seed;

	h = ts_murmur_mix(h, k->saddr[0]);
	h = ts_murmur_mix(h, k->saddr[1]);
	h = ts_murmur_mix(h, k->saddr[2]);
	h = ts_murmur_mix(h, k->saddr[3]);
	h = ts_murmur_mix(h, k->daddr[0]);
	h = ts_murmur_mix(h, k->daddr[1]);
	h = ts_murmur_mix(h, k->daddr[2]);
	h = ts_murmur_mix(h, k->daddr[3]);
	h = ts_murmur_mix(h, ((__u32)k->sport << 16) | k->dport);
	h = ts_murmur_mix(h, ((__u32)k->proto << 8) | k->family);
	return ts_murmur_final(h, 40);
}

#endif /* TCPSHIFT_HASH_H */
