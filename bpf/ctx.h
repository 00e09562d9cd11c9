/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * One flow logic, two hooks (doc/DESIGN.md, "XDP"): the programs at tc and at
 * XDP call the same functions with a struct ts_ctx, and the few primitives
 * that differ between the hooks (where the packet is, its length, checksum
 * updates, verdicts, redirects) branch on ts_is_xdp(c). Each program sets
 * c.xdp to a constant and everything is inlined, so the compiler keeps only
 * that hook's branch: the verifier never sees an skb helper in the XDP
 * program. That needs the struct to stay in registers: never take the
 * address of one of its fields (a map key is a copy). ts_is_xdp enforces it
 * at build time.
 */
#ifndef TCPSHIFT_CTX_H
#define TCPSHIFT_CTX_H

#define TC_ACT_OK	0	/* linux/pkt_cls.h */
#define TC_ACT_SHOT	2

struct ts_ctx {
	void	*ctx;		/* struct __sk_buff * or struct xdp_md * */
	__u32	ifindex;	/* the device the packet arrived on */
	bool	xdp;
	bool	partial_csum;	/* XDP: its device may hand over partial checksums */
};

/* Never defined: a reference to it that survives optimization (the hook not
 * known at compile time) fails the build at the link. */
extern bool ts_ctx_hook_not_constant(void);

static __always_inline bool ts_is_xdp(const struct ts_ctx *c)
{
	if (!__builtin_constant_p(c->xdp))
		return ts_ctx_hook_not_constant();
	return c->xdp;
}

static __always_inline struct __sk_buff *ts_skb(const struct ts_ctx *c)
{
	return c->ctx;
}

static __always_inline struct xdp_md *ts_xdp(const struct ts_ctx *c)
{
	return c->ctx;
}

static __always_inline void *ts_data(const struct ts_ctx *c)
{
	return ts_is_xdp(c) ? (void *)(long)ts_xdp(c)->data : (void *)(long)ts_skb(c)->data;
}

static __always_inline void *ts_data_end(const struct ts_ctx *c)
{
	return ts_is_xdp(c) ? (void *)(long)ts_xdp(c)->data_end : (void *)(long)ts_skb(c)->data_end;
}

/* The frame's length, Ethernet header included (all of it: an XDP frame is
 * linear here, multi-buffer frames are not attached for). */
static __always_inline __u32 ts_len(const struct ts_ctx *c)
{
	return ts_is_xdp(c) ? (__u32)(ts_data_end(c) - ts_data(c)) : ts_skb(c)->len;
}

/* The packet goes on as it is (or, at tc, as rewritten: the stack routes it). */
static __always_inline int ts_ok(const struct ts_ctx *c)
{
	return ts_is_xdp(c) ? XDP_PASS : TC_ACT_OK;
}

static __always_inline int ts_drop(const struct ts_ctx *c)
{
	return ts_is_xdp(c) ? XDP_DROP : TC_ACT_SHOT;
}

#endif /* TCPSHIFT_CTX_H */
