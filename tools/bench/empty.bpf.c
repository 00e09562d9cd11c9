// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The microbenchmark's baseline: a tc program that does nothing. Built with
 * the same clang flags as bpf/tcpshift.bpf.c. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tc")
int empty(struct __sk_buff *skb)
{
	return 0;
}
