/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Ones'-complement arithmetic (RFC 1071, RFC 1624) for checksum fields the
 * program updates itself: the IPv4 header's, and the headers an ICMP error
 * quotes. Sums are kept in 64 bits and folded at the end. (TCP checksums of
 * the packet itself go through bpf_l4_csum_replace: see nat.h.)
 */
#ifndef TCPSHIFT_CSUM_H
#define TCPSHIFT_CSUM_H

static __always_inline __u32 ts_csum_fold32(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)sum;
}

/* The check field after data whose sum changed by diff. */
static __always_inline __u16 ts_csum_update(__u16 check, __u64 diff)
{
	__u64 sum = (__u16)~check + (__u64)ts_csum_fold32(diff);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* How the sum changes when a 16-bit word goes from old to new. */
static __always_inline __u64 ts_csum_diff16(__u16 old, __u16 new)
{
	return (__u16)~old + (__u64)new;
}

/* How the sum changes when a 32-bit word goes from old to new. */
static __always_inline __u64 ts_csum_diff32(__be32 old, __be32 new)
{
	return (__u64)(~old & 0xffff) + (~old >> 16) + (new & 0xffff) + (new >> 16);
}

#endif /* TCPSHIFT_CSUM_H */
