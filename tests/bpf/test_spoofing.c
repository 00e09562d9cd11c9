// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Spoofed packets against the flow state (doc/DESIGN.md "Threat model",
 * invariants 5 and 8) and the canary counters: forged direct-connection
 * marks, SYNs and ACKs that try to pin or move a client's future or current
 * flow, floods of the reverse entries, forged ICMP errors, and the canary
 * signals an attacker could forge to fail or pass a rollout. The comment
 * above each test describes an attack and what it would do; the test
 * asserts that it does not, the behaviour doc/DESIGN.md promises. An attack that needs a
 * one-arm deployment is outside the threat model and not tested here.
 */
#include <string.h>
#include <time.h>
#include <linux/icmp.h>
#include <linux/ip.h>
#include <bpf/bpf.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };

/* A client's (or a spoofed) packet to v1's own address:port. */
static struct pkt_spec to_v1_direct(__u16 sport, __u8 flags, __u32 seq)
{
	return (struct pkt_spec){ .src = CLIENT4, .dst = "198.18.2.11", .sport = sport,
				  .dport = 8008, .flags = flags, .seq = seq,
				  .mss = flags == PKT_SYN };
}

static void send_untouched(struct ts_env *e, const struct pkt_spec *s, const char *what)
{
	struct pkt in;

	ASSERT_EQ(pkt_build(&in, s), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, what);
}

/*
 * A forged direct-connection mark hides the replies of a VIP
 * flow picked up mid-stream (ECMP failover to this gateway): the attacker
 * sends one spoofed packet client:port -> v1:8008 (the client's ports are
 * known); the flow's later pickup here is never confirmed and every reply
 * of v1 reaches the client with v1's address as source. The mark is cleared
 * only by a SYN-ACK, which a pickup never sees.
 */
static void test_forged_mark_hides_pickup(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec spoof = to_v1_direct(46000, PKT_ACK, 1);
	struct pkt_spec ack = client_spec(false, 46000, PKT_ACK | PKT_PSH, 123456), r;
	char addr[PKT_EPSTRLEN];

	config_web4(e, 1, 0);
	send_untouched(e, &spoof, "the attacker's spoofed ACK to v1's own address:port");
	ack.payload = "more of a long request";
	expect_forward(e, &ack, web4_to, 1, "the client's segment, picked up mid-stream");
	r = backend_spec(&ack, BE4_1, PKT_ACK | PKT_PSH, addr);
	r.ack = 123456 + 22;
	r.payload = "the answer";
	expect_reply(e, &r, VIP4, "v1's answer to the picked-up flow comes from the VIP");
	ASSERT_EQ(env_flow_table(e, &ack), 1, "the pickup is confirmed, in flows");
}

/*
 * A flood of spoofed packets to a backend's own address:port
 * from random sources fills `replies` with direct-connection marks and
 * evicts the reverse entries of established VIP flows; one more spoofed
 * packet then marks such a flow's reply 5-tuple as direct, and its replies
 * are left un-rewritten: an established connection breaks. (In production
 * the flood needs --max-flows packets: a million is a second at 1 Mpps.)
 * Limit found: the kernel's LRU keeps an entry that a lookup referenced
 * (with a backend reply before the flood the reverse entry survives it), so
 * this hits flows whose reverse entry was not used since it was written --
 * just confirmed and the backend not answered yet, or just restored -- and
 * any flow whose entry was evicted by ordinary table pressure.
 */
static void test_replies_flood_then_forged_mark(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46100, PKT_SYN, 7000), r;
	struct pkt_spec mark = to_v1_direct(46100, PKT_ACK, 1);
	struct ts_flow_key rkey = { .proto = IPPROTO_TCP, .family = TS_AF_INET };
	struct ts_reply_state rs;
	char addr[PKT_EPSTRLEN], src[32];
	struct pkt in, out;
	int evicted;

	config_web4(e, 1, 0);
	handshake(e, &syn, web4_to, 1, "the client's connection through the VIP");
	/* the flood: spoofed SYNs to v1:8008 from 3 x max-flows sources */
	for (__u32 i = 0; i < 3 * TEST_MAX_FLOWS; i++) {
		struct pkt_spec f = to_v1_direct((__u16)(1024 + i % 60000), PKT_SYN, i);

		snprintf(src, sizeof(src), "203.0.%u.%u", (i / 250) % 250, i % 250 + 1);
		f.src = src;
		ASSERT_EQ(pkt_build(&in, &f), 0, "pkt_build");
		env_run(e, &in, &out);
	}
	inet_pton(AF_INET, "198.18.2.11", rkey.saddr);
	inet_pton(AF_INET, CLIENT4, rkey.daddr);
	rkey.sport = htons(8008);
	rkey.dport = htons(46100);
	evicted = bpf_map_lookup_elem(e->maps.replies, &rkey, &rs) != 0;
	print_message("spoofing: the flow's reverse entry was %s by the flood\n",
		      evicted ? "evicted" : "NOT evicted");
	send_untouched(e, &mark, "one spoofed ACK client:port -> v1:8008");
	r = backend_spec(&syn, BE4_1, PKT_ACK | PKT_PSH, addr);
	r.payload = "the answer";
	expect_reply(e, &r, VIP4, "v1's answer to the established flow comes from the VIP");
}

/*
 * The reverse attack of the forged mark: a spoofed SYN
 * client:port -> VIP:port pins a half-open flow to v1; the client's later
 * direct connection to v1 on the same port gets its SYN-ACK relabelled as
 * the VIP's (ts_vip_handshake checks neither the flow's state nor that the
 * SYN-ACK answers the pinned SYN), so it never completes (invariant 5).
 * The pin even survives the client's own RST to the attacker's SYN-ACK.
 */
static void test_spoofed_vip_syn_breaks_direct(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec spoof = client_spec(false, 46200, PKT_SYN, 0x80000000U);
	struct pkt_spec rst = client_spec(false, 46200, PKT_RST, 0x80000001U);
	struct pkt_spec dsyn = to_v1_direct(46200, PKT_SYN, 1), synack;
	char addr[PKT_EPSTRLEN];

	config_web4(e, 1, 0);
	expect_forward(e, &spoof, web4_to, 1, "the attacker's SYN to the VIP, as the client");
	synack = backend_syn_ack_spec(&spoof, BE4_1, addr);
	expect_reply(e, &synack, VIP4, "v1's SYN-ACK to it reaches the client from the VIP");
	expect_forward(e, &rst, web4_to, 1, "the client's RST to that unexpected SYN-ACK");
	send_untouched(e, &dsyn, "later, the client's own SYN to v1:8008");
	synack = (struct pkt_spec){ .src = "198.18.2.11", .dst = CLIENT4, .sport = 8008,
				    .dport = 46200, .flags = PKT_SYN | PKT_ACK, .seq = 5,
				    .ack = 2, .mss = true };
	send_untouched(e, &synack, "v1's SYN-ACK of the direct connection is left alone");
}

/*
 * One spoofed ACK for a client's future 4-tuple (a
 * mid-stream pickup the backend drops, as a backend with an INVALID-drop
 * rule or a rate-limited RST does) makes the client's real connection
 * unconfirmable: its SYN finds the MIDSTREAM pin, the client's handshake ACK
 * is ignored for MIDSTREAM, and the backend's packets are ignored once the
 * SYN-ACK flag is set. The connection lives in half_open for good, where a
 * flood evicts it (then it moves), fib mode never forwards it, and it is
 * never counted opened.
 */
static void test_spoofed_ack_blocks_confirmation(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec spoof = client_spec(false, 46300, PKT_ACK, 0x80000000U);
	struct pkt_spec syn = client_spec(false, 46300, PKT_SYN, 7000);
	struct pkt_spec ack = handshake_ack_spec(&syn), r;
	char addr[PKT_EPSTRLEN];
	int b;

	config_web4(e, 1, 1);
	b = expect_forward(e, &spoof, web4_to, 2, "the attacker's ACK, pinned mid-stream");
	expect_forward(e, &syn, &web4_to[b], 1, "the client's SYN");
	backend_syn_ack(e, &syn, web4_to[b], "the backend's SYN-ACK");
	expect_forward(e, &ack, &web4_to[b], 1, "the client's ACK");
	r = backend_spec(&syn, web4_to[b], PKT_ACK | PKT_PSH, addr);
	r.payload = "hello";
	expect_reply(e, &r, VIP4, "the backend's data");
	ASSERT_EQ(env_flow_table(e, &syn), 1, "the client's connection is confirmed, in flows");
}

/*
 * A spoofed SYN sent before the client's own SYN on its
 * 4-tuple sets the flow's client_end to the attacker's sequence number; the
 * client's SYN, outside that window, does not move it, and the real
 * handshake confirms the flow with it. The attacker then closes the
 * established flow with a RST at a sequence number he chose (probability 1,
 * not 2^-15), after which a SYN of his moves the flow; the client's own
 * FIN/RST, outside the window, are ignored (the canary never sees it end).
 */
static void test_spoofed_syn_owns_window(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec spoof = client_spec(false, 46400, PKT_SYN, 0x80000000U);
	struct pkt_spec syn = client_spec(false, 46400, PKT_SYN, 7000);
	struct pkt_spec brst = client_spec(false, 46400, PKT_RST, 0x80000001U);
	struct pkt_spec fin = client_spec(false, 46400, PKT_FIN | PKT_ACK, 7001);
	struct ts_flow flow;
	int b;

	config_web4(e, 1, 1);
	b = expect_forward(e, &spoof, web4_to, 2, "the attacker's SYN on the client's 4-tuple");
	/* the backend's SYN-ACK to it is lost (the client's NAT drops it) */
	handshake(e, &syn, &web4_to[b], 1, "the client's own connection");
	ASSERT_EQ(env_flow_lookup(e, &syn, &flow), 0, "the flow");
	ASSERT_EQ(flow.client_end, 7001, "client_end follows the client, not the attacker");
	expect_forward(e, &brst, &web4_to[b], 1, "the attacker's RST at his own sequence number");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "does not close the flow");
	expect_forward(e, &fin, &web4_to[b], 1, "the client's own FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSING, "counts");
}

/* The canary counters of backend `name` of web4. */
static struct ts_backend_stats canary(struct ts_env *e, const char *name)
{
	struct ts_backend_stats st = {};
	struct ts_config cfg = {};
	const struct ts_service_cfg *s;
	struct ts_err err = {};

	ASSERT_OK(ts_config_read(&e->maps, &cfg, &err), err, "ts_config_read");
	s = ts_config_service(&cfg, "web4");
	ASSERT_TRUE(s != NULL, "service web4");
	for (size_t i = 0; s && i < s->nbackends; i++)
		if (!strcmp(s->backends[i].be.name, name))
			ASSERT_OK(ts_backend_stats_read(&e->maps, s->backends[i].id, &st, &err),
				  err, "ts_backend_stats_read");
	ts_config_free(&cfg);
	return st;
}

/*
 * A SYN on the 4-tuple of a confirmed flow whose backend is
 * past its drain deadline (the client reconnecting from the same port, or
 * anyone spoofing it) deletes the flow from flows without counting it
 * ended: opened - ended of the drained backend stays above 0 for good, and
 * a rollout waiting for it to drain waits for nothing.
 */
static void test_canary_syn_after_deadline(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46600, PKT_SYN, 7000);
	struct ts_backend_stats st;
	struct ts_err err = {};
	struct timespec ts = { .tv_nsec = 20000000L };

	config_web4(e, 1, 1);
	/* v1 alone takes it, then both take new flows */
	set_web_weights(e, "web4", 1, 0);
	handshake(e, &syn, web4_to, 1, "a connection to v1");
	set_web_weights(e, "web4", 1, 1);
	ASSERT_OK(ts_backend_drain(&e->maps, "web4", "v1", 1, &err), err, "drain v1, deadline now");
	nanosleep(&ts, NULL);
	syn.seq = 900000;
	expect_forward(e, &syn, &web4_to[1], 1, "a SYN on the 4-tuple after v1's deadline");
	st = canary(e, "v1");
	ASSERT_EQ(st.opened, 1, "v1 opened");
	ASSERT_EQ(st.opened - st.ended, 0, "v1's open connections (opened - ended)");
}

/*
 * A handshake whose SYN-ACK this gateway saw is a live
 * connection (the client's ACK is one client RTT away), but its pin is
 * half-open: when its backend is set to weight 0 in that window, one blind
 * SYN on the client's 4-tuple re-picks it, and the client's ACK and data
 * then go to the other backend, which resets them.
 */
static void test_blind_syn_moves_synacked_handshake(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46800, PKT_SYN, 7000);
	struct pkt_spec blind = client_spec(false, 46800, PKT_SYN, 0x80000000U);
	struct pkt_spec ack = handshake_ack_spec(&syn);
	int b;

	config_web4(e, 1, 1);
	b = expect_forward(e, &syn, web4_to, 2, "the client's SYN");
	backend_syn_ack(e, &syn, web4_to[b], "its backend's SYN-ACK");
	set_web_weights(e, "web4", b == 1, b == 0); /* its backend drains */
	expect_forward(e, &blind, &web4_to[b], 1, "a blind SYN goes to the pinned backend");
	expect_forward(e, &ack, &web4_to[b], 1, "the client's ACK reaches its backend");
}

/*
 * A client's 4-tuple used again (same backend) while the
 * earlier connection's reverse entry is still in `replies`: the backend's
 * RST refusing the new SYN matches that stale entry (ts_reply_confirmed),
 * so the half-open pin is not dropped and `refused` is not counted -- the
 * canary misses a new version that refuses connections.
 */
static void test_refused_on_reused_tuple(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46900, PKT_SYN, 7000);
	struct pkt_spec fin = client_spec(false, 46900, PKT_FIN | PKT_ACK, 7001), r;
	char addr[PKT_EPSTRLEN];
	struct ts_flow flow;

	config_web4(e, 1, 0);
	handshake(e, &syn, web4_to, 1, "the first connection");
	expect_forward(e, &fin, web4_to, 1, "the client's FIN");
	r = backend_spec(&syn, BE4_1, PKT_FIN | PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "v1's FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "the first connection ended");
	syn.seq = 900000;
	expect_forward(e, &syn, web4_to, 1, "a new SYN on the same 4-tuple");
	r = backend_spec(&syn, BE4_1, PKT_RST | PKT_ACK, addr);
	r.seq = 0;
	expect_reply(e, &r, VIP4, "v1 refuses it");
	ASSERT_EQ(canary(e, "v1").refused, 1, "v1 refused");
	ASSERT_NEQ(env_flow_lookup(e, &syn, &flow), 0, "the refused pin is gone");
}

/*
 * Spoofed ACKs for a client's future 4-tuples pin them
 * mid-stream (the backend drops stray ACKs); after a weight change that
 * leaves their backend weighted, the client's real SYNs follow those pins,
 * not the new weights ("no future 4-tuple is pinned to a backend a later SYN
 * must follow"): the attacker keeps the old split for chosen clients.
 */
static void test_spoofed_ack_prepins_after_weight_change(void **state)
{
	struct ts_env *e = env_of(state);
	int pinned_v1 = 0, followed_v1 = 0;

	config_web4(e, 1, 1);
	for (__u16 i = 0; i < 64; i++) {
		struct pkt_spec ack = client_spec(false, (__u16)(47000 + i), PKT_ACK, 0x80000000U);

		pinned_v1 += expect_forward(e, &ack, web4_to, 2, "a spoofed ACK") == 0;
	}
	set_web_weights(e, "web4", 1, 100);
	for (__u16 i = 0; i < 64; i++) {
		struct pkt_spec syn = client_spec(false, (__u16)(47000 + i), PKT_SYN, 7000);

		followed_v1 += expect_forward(e, &syn, web4_to, 2, "the client's SYN") == 0;
	}
	print_message("spoofing: %d of 64 pre-pinned to v1; then at 1:100 %d SYNs went to v1\n",
		      pinned_v1, followed_v1);
	ASSERT_LE(followed_v1, 4, "SYNs to v1 at weights 1:100 (about 64/101 expected)");
}

/* Spoofed SYNs to v1:8008 from n distinct random sources: each leaves a
 * direct-connection mark in `replies`. */
static void flood_direct_marks(struct ts_env *e, __u32 from, __u32 n)
{
	char src[32];
	struct pkt in, out;

	for (__u32 i = from; i < from + n; i++) {
		struct pkt_spec f = to_v1_direct((__u16)(1024 + i % 60000), PKT_SYN, i);

		snprintf(src, sizeof(src), "203.0.%u.%u", (i / 250) % 250, i % 250 + 1);
		f.src = src;
		ASSERT_EQ(pkt_build(&in, &f), 0, "pkt_build");
		env_run(e, &in, &out);
	}
}

/*
 * The same flood,
 * with no knowledge of anyone's ports,
 * evicts the marks of real direct connections to a backend (monitoring,
 * health checks): their replies then take the stateless ECMP path and are
 * relabelled as the VIP's until the client's next packet marks the tuple
 * again. A client answers such a packet with a RST whose sequence number is
 * the one the backend expects (its ACK number), and that RST, sent to the
 * VIP, reaches the same backend: the direct connection would be aborted.
 * The kernel's LRU keeps the mark: every packet of the connection looks it
 * up, and a referenced entry is not evicted by a flood of new ones.
 */
static void test_replies_flood_breaks_direct(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = to_v1_direct(47100, PKT_SYN, 1), ack = syn, synack, data;

	config_web4(e, 1, 0);
	ack.flags = PKT_ACK;
	ack.seq = 2;
	ack.ack = 6;
	synack = (struct pkt_spec){ .src = "198.18.2.11", .dst = CLIENT4, .sport = 8008,
				    .dport = 47100, .flags = PKT_SYN | PKT_ACK, .seq = 5,
				    .ack = 2, .mss = true };
	send_untouched(e, &syn, "the client's SYN to v1 itself");
	send_untouched(e, &synack, "v1's SYN-ACK");
	send_untouched(e, &ack, "the client's ACK");
	flood_direct_marks(e, 0, 3 * TEST_MAX_FLOWS);
	data = synack;
	data.flags = PKT_ACK | PKT_PSH;
	data.seq = 6;
	data.payload = "a long download, segment n";
	send_untouched(e, &data, "v1's data on the direct connection is left alone");
}

/*
 * The client's own sequence numbers can leave the window
 * for good: its segments take another gateway for more than 64 KiB (an ECMP
 * change and back, a link flap) and return beyond client_end +
 * TS_SEQ_WINDOW. client_end then never moves again (only in-window segments
 * move it), though the backend's ACKs, which this gateway forwards, show
 * where the client is: the client's FIN and RST are ignored, the flow never
 * ends (the canary's open count drifts up).
 */
static void test_window_lost_after_gap(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 47200, PKT_SYN, 7000), r;
	struct pkt_spec data = client_spec(false, 47200, PKT_ACK | PKT_PSH, 7001 + 200000);
	struct pkt_spec fin = client_spec(false, 47200, PKT_FIN | PKT_ACK, 7001 + 200000 + 5);
	char addr[PKT_EPSTRLEN];

	config_web4(e, 1, 0);
	handshake(e, &syn, web4_to, 1, "the client's connection");
	/* 200000 bytes went through another gateway; they come back here */
	data.payload = "data.";
	expect_forward(e, &data, web4_to, 1, "the client's data, back on this gateway");
	r = backend_spec(&syn, BE4_1, PKT_ACK, addr);
	r.ack = 7001 + 200000 + 5;
	expect_reply(e, &r, VIP4, "v1 acknowledges it");
	expect_forward(e, &fin, web4_to, 1, "the client's FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSING, "the client's FIN counts");
}

/*
 * The rollout gate (user/daemon/rollout.c) fails a step when
 * (refused + syn_retransmits) / new_flows of the new version is too high.
 * An off-path attacker sends each spoofed SYN twice, back to back: every
 * duplicate counts as a client that timed out waiting for the SYN-ACK
 * (syn_retransmits), so 2 packets per 4-tuple make a 100 % failure rate and
 * force any rollout to roll back. (The converse also works: spoofed SYNs to
 * fresh 4-tuples add attempts that dilute the failures of a broken version
 * that answers nothing.)
 */
static void test_canary_forced_syn_retransmits(void **state)
{
	struct ts_env *e = env_of(state);
	struct ts_backend_stats st;

	config_web4(e, 0, 1);	/* v2 is the new version, taking everything */
	for (__u16 i = 0; i < 10; i++) {
		struct pkt_spec syn = client_spec(false, (__u16)(48000 + i), PKT_SYN, 0x1000U * i);

		expect_forward(e, &syn, &web4_to[1], 1, "a spoofed SYN");
		expect_forward(e, &syn, &web4_to[1], 1, "the same, a microsecond later");
	}
	st = canary(e, "v2");
	ASSERT_EQ(st.new_flows, 10, "v2 attempts");
	ASSERT_EQ(st.syn_retransmits, 0,
		  "v2 SYN retransmits (a duplicate within the RTO is no client's timeout)");
}

/*
 * The attacker can also make the new version "refuse": a
 * spoofed SYN, then a spoofed ACK with a wrong acknowledgment number, which
 * a backend holding the handshake in SYN-RECV answers with a RST (RFC 9293,
 * Linux tcp_check_req without syncookies). That RST, after a SYN-ACK, is
 * counted as refused. A refusal answers the SYN: a RST after the SYN-ACK is
 * not one.
 */
static void test_canary_forced_refused(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 48100, PKT_SYN, 0x2000U);
	struct pkt_spec ack = client_spec(false, 48100, PKT_ACK, 0x2001U), r;
	char addr[PKT_EPSTRLEN];

	config_web4(e, 0, 1);
	expect_forward(e, &syn, &web4_to[1], 1, "a spoofed SYN");
	backend_syn_ack(e, &syn, BE4_2, "v2's SYN-ACK (to the real client, who drops it)");
	ack.ack = 0xdeadbeef;
	expect_forward(e, &ack, &web4_to[1], 1, "a spoofed ACK, wrong ack number");
	r = backend_spec(&syn, BE4_2, PKT_RST, addr);
	r.seq = 0xdeadbeef;
	r.ack = 0;
	expect_reply(e, &r, VIP4, "v2's RST to that ACK");
	ASSERT_EQ(canary(e, "v2").refused, 0, "v2 refused");
}


/*
 * A pickup is confirmed by any answer of the backend but a
 * RST -- also the ACK a backend's TIME-WAIT socket sends to any segment on
 * the 4-tuple of a connection it closed (servers close keep-alive
 * connections first). An off-path attacker's ACK on such a 4-tuple, which
 * this gateway no longer holds (another gateway's flow, or evicted), is so
 * confirmed into flows; the client's next connection from that port must
 * follow it, to a backend now of weight 0.
 */
static void test_timewait_ack_confirms_prepin(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec spoof = client_spec(false, 48400, PKT_ACK, 0x80000000U);
	struct pkt_spec syn = client_spec(false, 48400, PKT_SYN, 7000), r;
	char addr[PKT_EPSTRLEN];
	int b;

	config_web4(e, 1, 1);
	b = expect_forward(e, &spoof, web4_to, 2, "the attacker's ACK, pinned mid-stream");
	r = backend_spec(&spoof, web4_to[b], PKT_ACK, addr);
	r.seq = 0x11111111;	/* the TIME-WAIT socket's snd_nxt */
	r.ack = 0x22222222;	/* the old connection's rcv_nxt: not the attacker's */
	expect_reply(e, &r, VIP4, "the backend's TIME-WAIT socket answers with an ACK");
	set_web_weights(e, "web4", b == 1, b == 0);
	expect_forward(e, &syn, &web4_to[!b], 1, "the client's next SYN on the port");
}

/* The ICMP error from src to dst quoting the IP packet of `quoted` (as in
 * test_icmp.c: IPv4 "fragmentation needed", MTU 1400). */
static void icmp_error4(struct pkt *out, const struct pkt *quoted, const char *src,
			const char *dst)
{
	__u32 l3 = 14, icmp = l3 + 20, n = quoted->len - 14;
	__u8 *d = out->data;
	struct iphdr *ip = (void *)(d + l3);

	memset(out, 0, sizeof(*out));
	memcpy(d, quoted->data, 12);
	d[12] = 0x08, d[13] = 0x00;
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons((__u16)(20 + 8 + n));
	ip->ttl = 64;
	ip->protocol = IPPROTO_ICMP;
	inet_pton(AF_INET, src, &ip->saddr);
	inet_pton(AF_INET, dst, &ip->daddr);
	d[icmp] = ICMP_DEST_UNREACH;
	d[icmp + 1] = ICMP_FRAG_NEEDED;
	*(__be16 *)(d + icmp + 6) = htons(576);
	memcpy(d + icmp + 8, quoted->data + 14, n);
	out->len = icmp + 8 + n;
	pkt_fix_csums(out);
}

/*
 * A forged ICMP error "from" a backend's address, arriving
 * on the clients' side, is relabelled to come from the VIP: ICMP errors get
 * no reverse-path check, against the Threat model's "packets with a
 * backend's address as source: never relabelled as a VIP". (The attacker
 * could spoof the VIP to the client directly; the gain is small.)
 */
static void test_forged_icmp_from_client_side(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec q = to_v1_direct(46700, PKT_ACK | PKT_PSH, 7001);
	struct pkt quoted, in, out;
	int verdict;

	config_web4(e, 1, 0);
	q.payload = "a request";
	ASSERT_EQ(pkt_build(&quoted, &q), 0, "pkt_build");
	icmp_error4(&in, &quoted, "198.18.2.11", CLIENT4);

	test_dev_force = test_ifindex(TEST_DEV_CLIENT);
	verdict = env_run(e, &in, &out);
	test_dev_force = 0; /* before any check: a failed one does not return */
	ASSERT_EQ(verdict, TC_ACT_OK, "verdict");
	ASSERT_PKT_EQ(&out, &in, "an ICMP error 'from v1' arriving from the clients is untouched");
}

int run_spoofing_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_forged_mark_hides_pickup),
		TEST(test_replies_flood_then_forged_mark),
		TEST(test_spoofed_vip_syn_breaks_direct),
		TEST(test_spoofed_ack_blocks_confirmation),
		TEST(test_spoofed_syn_owns_window),
		TEST(test_canary_syn_after_deadline),
		TEST(test_forged_icmp_from_client_side),
		TEST(test_blind_syn_moves_synacked_handshake),
		TEST(test_refused_on_reused_tuple),
		TEST(test_spoofed_ack_prepins_after_weight_change),
		TEST(test_replies_flood_breaks_direct),
		TEST(test_window_lost_after_gap),
		TEST(test_canary_forced_syn_retransmits),
		TEST(test_canary_forced_refused),
		TEST(test_timewait_ack_confirms_prepin),
	};

	return cmocka_run_group_tests_name("spoofing (invariants 5, 8, canary)", tests, NULL, NULL);
}
