/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Ones'-complement arithmetic (RFC 1071, RFC 1624) for checksum fields the
 * program updates itself: the IPv4 header's, a complete TCP checksum's, and
 * the headers an ICMP error quotes. Sums are kept in 64 bits and folded at the
 * end. (A partial TCP checksum goes through bpf_l4_csum_replace: see nat.h.)
 */
#ifndef TCPSHIFT_CSUM_H
#define TCPSHIFT_CSUM_H

#define EINVAL		22	/* asm-generic/errno-base.h */

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

/*
 * The TCP pseudo-header's sum (RFC 9293 3.1, RFC 8200 8.1) of a segment of
 * len bytes (header and payload) from saddr to daddr, folded to 16 bits: what
 * a sender that leaves the checksum to its device (CHECKSUM_PARTIAL) puts in
 * the check field. Never 0: the addresses are not all zero. len may pass
 * 65,535 (a BIG TCP packet): Linux sums it as 32 bits, as IPv6 defines it.
 */
static __always_inline __u16 ts_csum_pseudo_tcp(const __be32 *saddr, const __be32 *daddr,
						bool v6, __u32 len)
{
	__u64 sum = bpf_htons(IPPROTO_TCP) + (__u64)bpf_htons((__u16)len) +
		    bpf_htons((__u16)(len >> 16));
	int words = v6 ? 4 : 1;

	for (int i = 0; i < 4; i++) {
		if (i == words)
			break;
		sum += (saddr[i] & 0xffff) + (saddr[i] >> 16) + (daddr[i] & 0xffff) +
		       (daddr[i] >> 16);
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * Fold diff, the sum change of an IPv6 address (ts_csum_diff32 over its
 * words), into the pseudo-header part of the L4 checksum at off.
 *
 * BPF_F_IPV6 (Linux 6.16, and the stable series since): with CHECKSUM_COMPLETE,
 * the helper must leave skb->csum alone, since the address and the L4 checksum
 * both sit in the packet and their changes cancel. Without the flag it
 * adjusts skb->csum as for IPv4 (where the IP header checksum takes up one of
 * the changes), and the stack later finds the sum wrong ("hw csum failure").
 * A kernel that does not know the flag refuses it (-EINVAL) before touching
 * anything: then the call is made as before, wrong sum and all, rather than
 * dropping every IPv6 packet.
 */
static __always_inline int ts_l4_csum_pseudo6(struct __sk_buff *skb, __u32 off, __u32 diff)
{
	int err = bpf_l4_csum_replace(skb, off, 0, diff, BPF_F_PSEUDO_HDR | BPF_F_IPV6);

	if (err == -EINVAL)
		err = bpf_l4_csum_replace(skb, off, 0, diff, BPF_F_PSEUDO_HDR);
	return err;
}

#endif /* TCPSHIFT_CSUM_H */
