/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Local clients: socket-level balancing of the processes in the cgroup of
 * `load --cgroup` (doc/DESIGN.md, "Local clients"). Included at the end of
 * tcpshift.bpf.c: one object, the same maps, and the pick, liveness and
 * counting helpers of the tc program.
 *
 *   connect4/6     a TCP connect() to a VIP:port gets a backend from the
 *                  service's live Maglev table and is connected to it: no
 *                  packet of the connection is ever rewritten;
 *   getpeername4/6 such a socket's peer is the VIP:port it asked for;
 *   sockops        the connection's life, from its SYN to its close: the
 *                  entry `flows` lists (local_flows) and the canary counters;
 *   iter/tcp       run by the control plane (the sweep): closes the local
 *                  connections of removed backends and of drains past their
 *                  deadline, with bpf_sock_destroy.
 */
#ifndef TCPSHIFT_LOCAL_H
#define TCPSHIFT_LOCAL_H

/* uapi values vmlinux.h does not carry (it has types, not macros) */
#define TS_SOCK_STREAM		1
#define TS_ECONNREFUSED		111
#define TS_ECONNRESET		104

/* weak: an object whose sweep is not loaded (no --cgroup) loads on kernels
 * without it */
extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;

/*
 * The hash that picks a local connection's table slot. Its source port is
 * not chosen yet at connect(), so the 5-tuple cannot be hashed; what the
 * split needs is an input that differs between connections and a hash that
 * spreads it evenly over the table: then each connection lands on a uniform
 * slot, independently of the others, and backend b gets a share of
 * connections that converges on its share of the table. The socket cookie
 * differs for every socket of this boot; the random word makes a socket that
 * connects again (after a failed connect) draw afresh, as a new source port
 * would. Local connections are seen by this host alone: nothing requires
 * another gateway to compute the same pick (invariant 6 is about forwarded
 * flows).
 */
static __always_inline __u32 ts_local_hash(__u64 cookie, __u32 random, __u32 seed)
{
	__u32 h = seed;

	h = ts_murmur_mix(h, (__u32)cookie);
	h = ts_murmur_mix(h, (__u32)(cookie >> 32));
	h = ts_murmur_mix(h, random);
	return ts_murmur_final(h, 12);
}

/* The address a sock_addr hook passes on: connect()'s or getpeername()'s. */
static __always_inline void ts_local_set_addr(struct bpf_sock_addr *ctx, __u8 family,
					      const __be32 *addr, __be16 port)
{
	if (family == TS_AF_INET) {
		ctx->user_ip4 = addr[0];
	} else {
		ctx->user_ip6[0] = addr[0];
		ctx->user_ip6[1] = addr[1];
		ctx->user_ip6[2] = addr[2];
		ctx->user_ip6[3] = addr[3];
	}
	ctx->user_port = port;
}

/*
 * connect() of a socket in the cgroup: to a VIP:port of a TCP service, in
 * the instance's network namespace, it connects to a backend picked by the
 * live table instead. No backend of weight > 0: the connect fails with
 * ECONNREFUSED (the tc path drops such a SYN). Returns the hook's verdict.
 */
static __always_inline int ts_local_connect(struct bpf_sock_addr *ctx, __u8 family)
{
	struct ts_endpoint_key vip = { .proto = IPPROTO_TCP, .family = family };
	struct bpf_sock *sk = ctx->sk;
	struct ts_local_sock *ls;
	struct ts_settings *cfg;
	struct ts_service *svc;
	struct ts_backend *be;
	__u32 zero = 0, id;

	if (ctx->type != TS_SOCK_STREAM || ctx->protocol != IPPROTO_TCP || !sk)
		return 1;
	if (family == TS_AF_INET) {
		vip.addr[0] = ctx->user_ip4;
	} else {
		vip.addr[0] = ctx->user_ip6[0];
		vip.addr[1] = ctx->user_ip6[1];
		vip.addr[2] = ctx->user_ip6[2];
		vip.addr[3] = ctx->user_ip6[3];
	}
	vip.port = (__be16)ctx->user_port;
	svc = bpf_map_lookup_elem(&services, &vip);
	cfg = bpf_map_lookup_elem(&settings, &zero);
	if (!svc || !cfg || cfg->netns_cookie != bpf_get_netns_cookie(ctx)) {
		/* a socket balanced before, connecting again elsewhere */
		if (bpf_sk_storage_get(&local_socks, sk, NULL, 0))
			bpf_sk_storage_delete(&local_socks, sk);
		return 1;
	}
	be = ts_pick_hash(svc, ts_local_hash(bpf_get_socket_cookie(ctx), bpf_get_prandom_u32(),
					     cfg->seed),
			  NULL, &id);
	if (!be || !ts_backend_weighted(be, svc) || be->family != family) {
		ts_count(TS_CNT_NO_BACKEND);
		bpf_set_retval(-TS_ECONNREFUSED);
		return 0;
	}
	ls = bpf_sk_storage_get(&local_socks, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ls) {
		/* no memory for its pin: refused rather than untracked */
		ts_count(TS_CNT_NO_BACKEND);
		bpf_set_retval(-TS_ECONNREFUSED);
		return 0;
	}
	__builtin_memset(ls, 0, sizeof(*ls));
	__builtin_memcpy(ls->key.daddr, vip.addr, sizeof(ls->key.daddr));
	ls->key.dport = vip.port;
	ls->key.proto = IPPROTO_TCP;
	ls->key.family = family;
	ls->flow.backend_id = id;
	ls->flow.generation = be->generation;
	ls->flow.service_id = svc->id;
	ls->flow.flags = TS_FLOW_F_LOCAL;
	ts_local_set_addr(ctx, family, be->addr, be->port);
	ts_count(TS_CNT_LOCAL_CONNECTS);
	return 1;
}

SEC("cgroup/connect4")
int tcpshift_connect4(struct bpf_sock_addr *ctx)
{
	return ts_local_connect(ctx, TS_AF_INET);
}

SEC("cgroup/connect6")
int tcpshift_connect6(struct bpf_sock_addr *ctx)
{
	return ts_local_connect(ctx, TS_AF_INET6);
}

/* A balanced socket's peer, as its process knows it: the VIP:port. */
static __always_inline int ts_local_getpeername(struct bpf_sock_addr *ctx, __u8 family)
{
	struct bpf_sock *sk = ctx->sk;
	struct ts_local_sock *ls;

	if (!sk)
		return 1;
	ls = bpf_sk_storage_get(&local_socks, sk, NULL, 0);
	if (!ls || ls->key.family != family)
		return 1;
	ts_local_set_addr(ctx, family, ls->key.daddr, ls->key.dport);
	return 1;
}

SEC("cgroup/getpeername4")
int tcpshift_getpeername4(struct bpf_sock_addr *ctx)
{
	return ts_local_getpeername(ctx, TS_AF_INET);
}

SEC("cgroup/getpeername6")
int tcpshift_getpeername6(struct bpf_sock_addr *ctx)
{
	return ts_local_getpeername(ctx, TS_AF_INET6);
}

/* The SYN is about to leave: the source port is known, the connection is
 * listed (state syn) and counted as an attempt; its retransmission timeouts
 * and state changes are followed from now on. */
static __always_inline void ts_local_syn(struct bpf_sock_ops *skops, struct ts_local_sock *ls)
{
	struct ts_backend_stats *s = ts_stats(ls->flow.backend_id);

	if (ls->key.family == TS_AF_INET) {
		ls->key.saddr[0] = skops->local_ip4;
	} else {
		ls->key.saddr[0] = skops->local_ip6[0];
		ls->key.saddr[1] = skops->local_ip6[1];
		ls->key.saddr[2] = skops->local_ip6[2];
		ls->key.saddr[3] = skops->local_ip6[3];
	}
	ls->key.sport = bpf_htons((__u16)skops->local_port);	/* host order there */
	ls->flow.tcp_state = TS_TCP_SYN_SEEN;
	ls->flow.created_ns = bpf_ktime_get_ns();
	ls->flow.last_seen_ns = ls->flow.created_ns;
	/* Another socket can hold the key: the kernel gives a port to two
	 * connections whose destinations differ, and two of one VIP differ
	 * by their backends. Its entry stays; this one is not listed. */
	if (bpf_map_update_elem(&local_flows, &ls->key, &ls->flow, BPF_NOEXIST)) {
		ls->flow.flags |= TS_FLOW_F_UNLISTED;
		ts_count(TS_CNT_LOCAL_UNTRACKED);
	}
	if (s)
		s->new_flows++;
	/* added to what another program of the cgroup may have asked for */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_RTO_CB_FLAG |
						 BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* The local entry `flows` lists follows the socket's pin (it is there
 * unless local_flows was full at the SYN or another socket held its key:
 * TS_FLOW_F_UNLISTED). */
static __always_inline void ts_local_publish(struct ts_local_sock *ls)
{
	ls->flow.last_seen_ns = bpf_ktime_get_ns();
	if (!(ls->flow.flags & TS_FLOW_F_UNLISTED))
		bpf_map_update_elem(&local_flows, &ls->key, &ls->flow, BPF_EXIST);
}

/* The handshake completed: a connection opened, as the tc path counts one. */
static __always_inline void ts_local_established(struct ts_local_sock *ls)
{
	struct ts_backend_stats *s = ts_stats(ls->flow.backend_id);

	ls->flow.tcp_state = TS_TCP_ESTABLISHED;
	ts_count_handshake(&ls->flow);
	if (s) {
		s->handshakes++;
		s->opened++;
	}
	ts_local_publish(ls);
}

/* The socket's error when its state changed: why a connection ended. */
static __always_inline int ts_local_sk_err(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct tcp_sock *tp = sk ? bpf_skc_to_tcp_sock(sk) : NULL;

	return tp ? tp->inet_conn.icsk_inet.sk.sk_err : 0;
}

static __always_inline void ts_local_state(struct bpf_sock_ops *skops, struct ts_local_sock *ls)
{
	__u32 from = skops->args[0], to = skops->args[1];
	bool confirmed = ls->flow.tcp_state != TS_TCP_SYN_SEEN;
	struct ts_backend_stats *s;
	int err;

	if (to != BPF_TCP_CLOSE) {
		if (to == BPF_TCP_ESTABLISHED || ls->flow.tcp_state == TS_TCP_CLOSING)
			return;
		/* FIN_WAIT1, CLOSE_WAIT and the states after them */
		ls->flow.tcp_state = TS_TCP_CLOSING;
		ts_local_publish(ls);
		return;
	}
	if (!(ls->flow.flags & TS_FLOW_F_UNLISTED))
		bpf_map_delete_elem(&local_flows, &ls->key);
	if (ls->flow.tcp_state == TS_TCP_CLOSED)
		return;
	err = ts_local_sk_err(skops);
	if (!confirmed) {
		/* its SYN answered with a RST */
		s = ts_stats(ls->flow.backend_id);
		if (s && err == TS_ECONNREFUSED)
			s->refused++;
		ls->flow.tcp_state = TS_TCP_CLOSED;
		return;
	}
	/* FINs both ways end in LAST_ACK or (through TIME_WAIT) in FIN_WAIT2,
	 * CLOSING or FIN_WAIT1; an abort or an error from anywhere */
	/* no key: a local socket's flow is no other gateway's to carry */
	ts_flow_end(NULL, &ls->flow, true,
		    err == TS_ECONNRESET ? TS_END_BACKEND_RST
		    : !err && from != BPF_TCP_ESTABLISHED && from != BPF_TCP_CLOSE_WAIT
			    ? TS_END_FINS
			    : TS_END_OTHER);
}

SEC("sockops")
int tcpshift_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct ts_local_sock *ls;
	struct ts_backend_stats *s;

	if (!sk)
		return 1;
	ls = bpf_sk_storage_get(&local_socks, sk, NULL, 0);
	if (!ls)
		return 1;
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		ts_local_syn(skops, ls);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		ts_local_established(ls);
		break;
	case BPF_SOCK_OPS_RTO_CB:
		/* its SYN timed out once (RFC 6298's 1 s): counted once; later
		 * timeouts (of an established connection) count nothing */
		if (ls->flow.tcp_state != TS_TCP_SYN_SEEN || (ls->flow.flags & TS_FLOW_F_TIMED_OUT))
			break;
		ls->flow.flags |= TS_FLOW_F_TIMED_OUT;
		s = ts_stats(ls->flow.backend_id);
		if (s)
			s->syn_retransmits++;
		break;
	case BPF_SOCK_OPS_STATE_CB:
		ts_local_state(skops, ls);
		break;
	}
	return 1;
}

/*
 * The sweep: the control plane reads this iterator (user/lib/local.c) after a
 * change of the configuration, and the agent every second. A local
 * connection whose backend was removed (or its service deleted) is closed at
 * once, one past its backend's drain deadline too; each is counted, and its
 * close then runs through sockops like any other.
 */
SEC("iter/tcp")
int tcpshift_local_sweep(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct ts_endpoint_key vip = { .proto = IPPROTO_TCP };
	struct ts_local_sock *ls;
	struct ts_service *svc;
	struct ts_backend *be;
	struct tcp_sock *tp;

	tp = skc ? bpf_skc_to_tcp_sock(skc) : NULL;
	if (!tp)
		return 0;
	ls = bpf_sk_storage_get(&local_socks, tp, NULL, 0);
	if (!ls || ls->flow.tcp_state == TS_TCP_CLOSED)
		return 0;
	__builtin_memcpy(vip.addr, ls->key.daddr, sizeof(vip.addr));
	vip.port = ls->key.dport;
	vip.family = ls->key.family;
	svc = bpf_map_lookup_elem(&services, &vip);
	be = svc ? ts_pinned_backend(svc, &ls->flow) : NULL;
	if (be && !ts_drain_expired(be, bpf_ktime_get_ns()))
		return 0;
	if (bpf_sock_destroy(skc))
		return 0;
	ts_count(be ? TS_CNT_LOCAL_DRAIN_CLOSED : TS_CNT_LOCAL_REMOVED);
	return 0;
}

#endif /* TCPSHIFT_LOCAL_H */
