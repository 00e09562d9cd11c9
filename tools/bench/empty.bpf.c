// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The microbenchmark's baselines: a tc and an XDP program that do nothing.
 * Built with the same clang flags as bpf/tcpshift.bpf.c. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int empty(struct __sk_buff *skb)
{
	return 0;
}

SEC("xdp")
int empty_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}
