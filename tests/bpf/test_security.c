// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Invariant 8 (off-path attackers change nothing) and invariant 5 (hands
 * off what did not go through a VIP): what an attacker who knows a client's
 * address and port, but not its sequence numbers, can send; forged replies;
 * direct connections to a backend; a backend connecting to its own VIP.
 * doc/DESIGN.md, "Threat model" and "Flow lifecycle".
 */
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };
static const char *const web6_to[] = { BE6_1, BE6_2 };

/*
 * Attack 1: a RST or SYN|FIN with a guessed sequence number, then a SYN, for a
 * client's 4-tuple. The pin stays, the SYN goes to the pinned backend (whose
 * TCP answers it with a challenge ACK), and the connection goes on — also
 * while its backend drains. A RST within the window does close it, and then a
 * SYN is a new connection that follows the weights.
 */
static void blind_close_then_syn(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_spec(v6, 41000, PKT_SYN, 7000);
	struct pkt_spec data = client_spec(v6, 41000, PKT_PSH | PKT_ACK, 7001);
	struct pkt_spec blind;
	__u64 spoof = env_counter(e, TS_CNT_SPOOF_REJECTED);
	const __u32 guesses[] = { 7001 + 0x80000000U, 7001 + TS_SEQ_WINDOW + 1,
				  7001 - TS_SEQ_WINDOW - 1, 0x12345678 };
	int b;

	config_web(e, v6, 1, 1);
	b = handshake(e, &syn, to, 2, "the client's connection");
	set_web_weights(e, web_service(v6), b == 1, b == 0); /* its backend drains */
	for (size_t i = 0; i < sizeof(guesses) / sizeof(guesses[0]); i++) {
		test_context("guessed seq %#x", guesses[i]);
		blind = client_spec(v6, 41000, PKT_RST, guesses[i]);
		expect_forward(e, &blind, &to[b], 1, "a blind RST goes on to the pinned backend");
		ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "... and closes nothing");
		blind = client_spec(v6, 41000, PKT_SYN | PKT_FIN, guesses[i]);
		expect_forward(e, &blind, &to[b], 1, "a blind SYN|FIN goes to the pinned backend");
		blind = client_spec(v6, 41000, PKT_FIN | PKT_ACK, guesses[i]);
		expect_forward(e, &blind, &to[b], 1, "a blind FIN goes to the pinned backend");
		ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "... and closes nothing");
		blind = client_spec(v6, 41000, PKT_SYN, guesses[i]);
		expect_forward(e, &blind, &to[b], 1, "then a SYN goes to the pinned backend");
		ASSERT_EQ(env_flow_table(e, &syn), 1, "the pin is still confirmed, in flows");
		blind = client_spec(v6, 41000, PKT_ACK, guesses[i]);
		expect_forward(e, &blind, &to[b], 1, "a blind ACK does not move the window");
	}
	test_context(NULL);
	ASSERT_EQ(env_counter(e, TS_CNT_SPOOF_REJECTED) - spoof,
		  3 * sizeof(guesses) / sizeof(guesses[0]), "spoof_rejected counter");
	expect_forward(e, &data, &to[b], 1, "the client's own data still reaches its backend");

	/* the client's own RST: within the window */
	blind = client_spec(v6, 41000, PKT_RST, 7001);
	expect_forward(e, &blind, &to[b], 1, "the client's RST reaches its backend");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "an in-window RST ends the connection");
	expect_forward(e, &syn, &to[!b], 1, "a SYN after it is new: it follows the weights");
}

static void test_v4_blind_close_then_syn(void **state)
{
	blind_close_then_syn(env_of(state), false);
}

static void test_v6_blind_close_then_syn(void **state)
{
	blind_close_then_syn(env_of(state), true);
}

/* A connection ends with FINs both ways (in-window for the client's), or
 * with the backend's RST; only then does a SYN pick afresh. */
static void test_connection_end(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 41100, PKT_SYN, 7000);
	struct pkt_spec fin = client_spec(false, 41100, PKT_FIN | PKT_ACK, 7001);
	struct pkt_spec syn2 = client_spec(false, 41101, PKT_SYN, 7000), r;
	char addr[PKT_EPSTRLEN];
	int b;

	config_web4(e, 1, 1);
	b = handshake(e, &syn, web4_to, 2, "connection 1");
	set_web_weights(e, "web4", b == 1, b == 0);
	expect_forward(e, &fin, &web4_to[b], 1, "the client's FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSING, "one FIN: closing");
	expect_forward(e, &syn, &web4_to[b], 1, "a SYN while the backend has not closed");
	r = backend_spec(&syn, web4_to[b], PKT_FIN | PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "the backend's FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "FINs both ways: closed");
	expect_forward(e, &syn, &web4_to[!b], 1, "a SYN after both FINs follows the weights");

	set_web_weights(e, "web4", 1, 1);
	b = handshake(e, &syn2, web4_to, 2, "connection 2");
	set_web_weights(e, "web4", b == 1, b == 0);
	r = backend_spec(&syn2, web4_to[b], PKT_RST, addr);
	expect_reply(e, &r, VIP4, "the backend's RST");
	ASSERT_EQ(env_flow_state(e, &syn2), TS_TCP_CLOSED, "the backend's RST: closed");
	expect_forward(e, &syn2, &web4_to[!b], 1, "a SYN after it follows the weights");
}

/* A 4-tuple used again after its connection ended: the new connection is
 * confirmed like the first, though the first left its reverse entry. */
static void test_reused_tuple_confirmed_again(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 41300, PKT_SYN, 7000);
	struct pkt_spec fin = client_spec(false, 41300, PKT_FIN | PKT_ACK, 7001), r;
	char addr[PKT_EPSTRLEN];

	config_web4(e, 1, 0);
	handshake(e, &syn, web4_to, 1, "the first connection");
	expect_forward(e, &fin, web4_to, 1, "the client's FIN");
	r = backend_spec(&syn, BE4_1, PKT_FIN | PKT_ACK, addr);
	expect_reply(e, &r, VIP4, "v1's FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "the first connection ended");
	syn.seq = 900000;
	handshake(e, &syn, web4_to, 1, "the second connection on the same 4-tuple");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "the second is established");
}

/* The backend's SYN-ACK sent again after the flow was confirmed (the
 * client's ACK was lost past the gateway) removes the reverse entry, like
 * any SYN-ACK; the flow's replies are still the VIP's, from that SYN-ACK on,
 * and the entry is back. The same SYN-ACK forged on the clients' side
 * removes nothing: the entry goes only for one that arrives on its device. */
static void test_synack_again_after_confirmed(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 41400, PKT_SYN, 7000), r, forged;
	struct ts_flow_key rkey = { .proto = IPPROTO_TCP, .family = TS_AF_INET };
	struct ts_reply_state rs;
	char addr[PKT_EPSTRLEN];
	struct pkt in;

	config_web4(e, 1, 0);
	handshake(e, &syn, web4_to, 1, "the connection");
	inet_pton(AF_INET, "198.18.2.11", rkey.saddr);
	inet_pton(AF_INET, CLIENT4, rkey.daddr);
	rkey.sport = htons(8008);
	rkey.dport = htons(41400);
	forged = backend_syn_ack_spec(&syn, BE4_1, addr);
	ASSERT_EQ(pkt_build(&in, &forged), 0, "pkt_build");
	test_dev_force = test_ifindex(TEST_DEV_CLIENT);
	expect_untouched(e, &in, TC_ACT_OK, "v1's SYN-ACK forged on the clients' side");
	test_dev_force = 0;
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rkey, &rs), 0,
		  "the reverse entry is still there");
	backend_syn_ack(e, &syn, BE4_1, "v1's SYN-ACK again: from the VIP");
	r = backend_spec(&syn, BE4_1, PKT_ACK | PKT_PSH, addr);
	r.payload = "the answer";
	expect_reply(e, &r, VIP4, "v1's answer: from the VIP");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rkey, &rs), 0,
		  "the reverse entry is back");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "the flow is established");
}

/*
 * The handshake's ACK confirms a flow only when it acknowledges the SYN-ACK
 * this gateway saw: a blind ACK after a spoofed SYN leaves it half-open.
 */
static void test_blind_ack_does_not_confirm(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 41200, PKT_SYN, 7000);
	struct pkt_spec ack = client_spec(false, 41200, PKT_ACK, 7001);
	int b;

	config_web4(e, 1, 1);
	b = expect_forward(e, &syn, web4_to, 2, "a spoofed SYN");
	backend_syn_ack(e, &syn, web4_to[b], "the backend's SYN-ACK, to the real client");
	ack.ack = TEST_BACKEND_ISN + 0x10000;
	expect_forward(e, &ack, &web4_to[b], 1, "a blind ACK");
	ASSERT_EQ(env_flow_table(e, &syn), 2, "the flow stays half-open");
	ASSERT_EQ(env_counter(e, TS_CNT_SPOOF_REJECTED), 1, "spoof_rejected counter");
}

/*
 * Attack 3: spoofed ACKs (mid-stream pickups) and refused SYNs pin nothing a
 * later connection must follow: when their backend drains, the real SYN on
 * those 4-tuples goes to a backend that takes new flows. Without the
 * backend's answer a pickup stays half-open; with its RST it is gone.
 */
static void test_spoofed_packets_do_not_prepin(void **state)
{
	struct ts_env *e = env_of(state);
	__u64 refused = 0;
	int on_v1 = 0;

	config_web4(e, 1, 1);
	for (__u16 i = 0; i < 64; i++) {
		struct pkt_spec ack = client_spec(false, (__u16)(42000 + i), PKT_ACK, 99);
		struct pkt_spec syn = client_spec(false, (__u16)(42100 + i), PKT_SYN, 99);
		char addr[PKT_EPSTRLEN];
		struct pkt_spec rst;
		int b;

		test_context("port %u", 42000 + i);
		b = expect_forward(e, &ack, web4_to, 2, "a spoofed ACK is routed by the table");
		ASSERT_EQ(env_flow_table(e, &ack), 2, "held apart in half_open");
		on_v1 += b == 0;
		if (i % 2) {
			/* the backend has no such connection: RST */
			rst = backend_spec(&ack, web4_to[b], PKT_RST, addr);
			expect_reply(e, &rst, VIP4, "the backend's RST");
			ASSERT_EQ(env_flow_table(e, &ack), 0, "the backend's RST ends the pickup");
		}
		b = expect_forward(e, &syn, web4_to, 2, "a SYN to be refused");
		rst = backend_spec(&syn, web4_to[b], PKT_RST | PKT_ACK, addr);
		expect_reply(e, &rst, VIP4, "the backend refuses it");
		ASSERT_EQ(env_flow_table(e, &syn), 0, "a refused SYN leaves no pin");
	}
	test_context(NULL);
	refused = env_counter(e, TS_CNT_BACKEND_REFUSED);
	ASSERT_EQ(refused, 64 + 32, "backend_refused counter");
	ASSERT_GT(on_v1, 0, "some pickups went to v1");

	set_web_weights(e, "web4", 0, 1);
	for (__u16 i = 0; i < 64; i++) {
		struct pkt_spec syn = client_spec(false, (__u16)(42000 + i), PKT_SYN, 5000);
		struct pkt_spec syn2 = client_spec(false, (__u16)(42100 + i), PKT_SYN, 5000);

		test_context("port %u", 42000 + i);
		expect_forward(e, &syn, &web4_to[1], 1, "the real SYN goes to v2, not drained v1");
		expect_forward(e, &syn2, &web4_to[1], 1, "... also after a refused SYN");
	}
	test_context(NULL);
}

/* A flow picked up mid-stream (another gateway's flow after an ECMP change)
 * is confirmed by the backend's answer when that answer acknowledges the
 * client's own window, and then held like any other. A blind segment's
 * answer (a live connection's duplicate ACK, a TIME-WAIT socket's ACK)
 * acknowledges something else, and confirms nothing. */
static void test_midstream_confirmed_by_backend(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec ack = client_spec(false, 43000, PKT_ACK | PKT_PSH, 123456);
	struct pkt_spec blind = client_spec(false, 43001, PKT_ACK, 555);
	struct pkt_spec rst, r;
	char addr[PKT_EPSTRLEN];
	__u32 len;
	int b;

	ack.payload = "more of a long request";
	len = (__u32)strlen(ack.payload);
	config_web4(e, 1, 1);
	b = expect_forward(e, &blind, web4_to, 2, "a spoofed ACK of an unknown flow");
	r = backend_spec(&blind, web4_to[b], PKT_ACK, addr);
	r.ack = 987654321;	/* what the backend's own socket on that 4-tuple expects */
	expect_reply(e, &r, VIP4, "the backend's answer for another connection");
	ASSERT_EQ(env_flow_table(e, &blind), 2, "not confirmed: still half-open");

	b = expect_forward(e, &ack, web4_to, 2, "a client segment of an unknown flow");
	ASSERT_EQ(env_flow_state(e, &ack), TS_TCP_MIDSTREAM, "picked up mid-stream");
	r = backend_spec(&ack, web4_to[b], PKT_ACK, addr);
	r.ack = 123456 + len;	/* the backend acknowledges the segment */
	expect_reply(e, &r, VIP4, "the backend's ACK");
	ASSERT_EQ(env_flow_table(e, &ack), 1, "confirmed: in flows");
	ASSERT_EQ(env_flow_state(e, &ack), TS_TCP_ESTABLISHED, "established");
	set_web_weights(e, "web4", b == 1, b == 0);
	expect_forward(e, &ack, &web4_to[b], 1, "it keeps its backend");
	rst = client_spec(false, 43000, PKT_RST, 123456 + len);
	expect_forward(e, &rst, &web4_to[b], 1, "the client's RST");
	ASSERT_EQ(env_flow_state(e, &ack), TS_TCP_CLOSED, "in the window: closed");
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A direct connection's SYN, SYN-ACK, request and answer: each passes
 * untouched. */
static void direct_exchange(struct ts_env *e, const struct pkt_spec *syn,
			    const struct pkt_spec *synack, const struct pkt_spec *request,
			    const struct pkt_spec *answer)
{
	const struct {
		const struct pkt_spec *s;
		const char *what;
	} seq[] = {
		{ syn, "the client's SYN to the backend itself" },
		{ synack, "the backend's SYN-ACK" },
		{ request, "the client's request" },
		{ answer, "the backend's answer" },
	};
	struct pkt in;

	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		ASSERT_EQ(pkt_build(&in, seq[i].s), 0, "pkt_build");
		expect_untouched(e, &in, TC_ACT_OK, seq[i].what);
	}
}

/*
 * Attack 4 and invariant 5: a client's direct connection to a backend's own
 * address:port passes both ways untouched, also past that backend's drain
 * deadline; the ICMP errors about it too.
 */
static void direct_connection(struct ts_env *e, bool v6)
{
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	struct pkt_spec syn = { .src = v6 ? CLIENT6 : CLIENT4, .dst = be, .sport = 44000,
				.dport = 8008, .flags = PKT_SYN, .seq = 1, .mss = true };
	struct pkt_spec data = syn, synack, reply;
	struct ts_err err;

	config_web(e, v6, 1, 1);
	data.flags = PKT_ACK | PKT_PSH;
	data.payload = "GET /metrics";
	synack = (struct pkt_spec){ .src = be, .dst = syn.src, .sport = 8008, .dport = 44000,
				    .flags = PKT_SYN | PKT_ACK, .seq = 5, .ack = 2 };
	reply = synack;
	reply.flags = PKT_ACK | PKT_PSH;
	reply.payload = "metrics";
	for (int round = 0; round < 2; round++) {
		test_context("%s", round ? "past the drain deadline" : "serving");
		direct_exchange(e, &syn, &synack, &data, &reply);
		ASSERT_EQ(ts_backend_drain(&e->maps, web_service(v6), "v1", 1000000ULL, &err), 0,
			  err.msg);
		sleep_ms(30);
	}
	test_context(NULL);
}

/* A client's direct connection from sport to v1's own address (v1 is
 * 198.18.2.11 / 2001:2:2::11 :8008): its SYN, and the exchange after it. */
static struct pkt_spec direct_syn(bool v6, __u16 sport)
{
	struct pkt_spec syn = client_spec(v6, sport, PKT_SYN, 900000);

	syn.dst = v6 ? "2001:2:2::11" : "198.18.2.11";
	syn.ack = 0;
	return syn;
}

static void direct_exchange_from(struct ts_env *e, const struct pkt_spec *dsyn)
{
	struct pkt_spec synack = { .src = dsyn->dst, .dst = dsyn->src, .sport = 8008,
				   .dport = dsyn->sport, .flags = PKT_SYN | PKT_ACK, .seq = 5,
				   .ack = 900001, .mss = true };
	struct pkt_spec ack = *dsyn, reply = synack;

	ack.flags = PKT_ACK | PKT_PSH;
	ack.seq = 900001;
	ack.ack = 6;
	ack.mss = false;
	ack.payload = "GET /metrics";
	reply.flags = PKT_ACK | PKT_PSH;
	reply.seq = 6;
	reply.ack = 900001 + 12;
	reply.mss = false;
	reply.payload = "metrics";
	direct_exchange(e, dsyn, &synack, &ack, &reply);
}

static void test_v4_direct_connection(void **state)
{
	direct_connection(env_of(state), false);
}

static void test_v6_direct_connection(void **state)
{
	direct_connection(env_of(state), true);
}

/*
 * Invariant 5 on a reused 4-tuple: the client's connection through the VIP
 * ends (FINs both ways), then the same client address:port connects to the
 * backend's own address:port. The ended flow's reverse entry is still in
 * `replies` (the backend's last ACKs need it); the direct connection's
 * packets pass untouched all the same, with the backend still configured or
 * removed meanwhile.
 */
static void direct_after_vip_flow(struct ts_env *e, bool v6, bool removed)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_spec(v6, 44100, PKT_SYN, 7000);
	struct pkt_spec fin = client_spec(v6, 44100, PKT_FIN | PKT_ACK, 7001), r;
	struct pkt_spec dsyn = direct_syn(v6, 44100);
	char addr[PKT_EPSTRLEN];

	test_context("%s, v1 %s", v6 ? "IPv6" : "IPv4", removed ? "removed" : "configured");
	config_web(e, v6, 1, 1);
	set_web_weights(e, web_service(v6), 1, 0);
	handshake(e, &syn, to, 1, "the connection through the VIP");
	expect_forward(e, &fin, to, 1, "the client's FIN");
	r = backend_spec(&syn, to[0], PKT_FIN | PKT_ACK, addr);
	expect_reply(e, &r, v6 ? VIP6 : VIP4, "v1's FIN");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "the connection ended");
	if (removed)
		env_backend_del(e, web_service(v6), "v1");
	direct_exchange_from(e, &dsyn);
	test_context(NULL);
}

static void test_v4_direct_after_vip_flow(void **state)
{
	direct_after_vip_flow(env_of(state), false, false);
}

static void test_v6_direct_after_vip_flow(void **state)
{
	direct_after_vip_flow(env_of(state), true, false);
}

static void test_v4_direct_after_vip_flow_removed(void **state)
{
	direct_after_vip_flow(env_of(state), false, true);
}

static void test_v6_direct_after_vip_flow_removed(void **state)
{
	direct_after_vip_flow(env_of(state), true, true);
}

/*
 * Invariant 5 when the backend never saw its connection through the VIP end:
 * the connection lost its backend (removed, or removed and added again at the
 * same address, or drained past its deadline) and the gateway closed it on
 * the client's side only, so the backend still holds it. The same client
 * address:port then connects to the backend's own address:port; the backend
 * answers that SYN with a challenge ACK for the old connection. It must
 * reach the client untouched (a VIP as its source would be dropped, and the
 * backend asked again at every retransmission): the client's RST to it ends
 * the old connection, and the SYN sent again opens the direct one.
 */
enum orphan { ORPHAN_REMOVED, ORPHAN_READDED, ORPHAN_DRAINED };

static void direct_over_orphan(struct ts_env *e, bool v6, enum orphan how)
{
	static const char *const hows[] = { "removed", "removed and added again",
					    "drained past its deadline" };
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_spec(v6, 44200, PKT_SYN, 7000);
	struct pkt_spec data = client_spec(v6, 44200, PKT_ACK | PKT_PSH, 7001);
	struct pkt_spec dsyn = direct_syn(v6, 44200);
	struct pkt_spec challenge = { .src = dsyn.dst, .dst = syn.src, .sport = 8008,
				      .dport = 44200, .flags = PKT_ACK,
				      .seq = TEST_BACKEND_ISN + 1, .ack = 7001 };
	struct pkt_spec rst = dsyn;
	struct ts_err err = {};
	struct pkt in;

	test_context("%s, v1 %s", v6 ? "IPv6" : "IPv4", hows[how]);
	config_web(e, v6, 1, 1);
	set_web_weights(e, web_service(v6), 1, 0);
	handshake(e, &syn, to, 1, "the connection through the VIP");
	switch (how) {
	case ORPHAN_REMOVED:
		env_backend_del(e, web_service(v6), "v1");
		data.payload = "more";
		expect_reset(e, &data, "the client's data, v1 removed: a RST");
		break;
	case ORPHAN_READDED:
		/* no packet of the old connection since: its flow is not
		 * closed, only its backend's generation tells */
		env_backend_del(e, web_service(v6), "v1");
		env_backend(e, web_service(v6), "v1", to[0], 1);
		break;
	case ORPHAN_DRAINED: {
		struct timespec ts = { .tv_nsec = 30 * 1000000L };

		ASSERT_OK(ts_backend_drain(&e->maps, web_service(v6), "v1", 1, &err), err,
			  "drain v1, deadline now");
		nanosleep(&ts, NULL);
		break;
	}
	}
	ASSERT_EQ(pkt_build(&in, &dsyn), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "the client's SYN to v1 itself");
	ASSERT_EQ(pkt_build(&in, &challenge), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "v1's challenge ACK for the old connection");
	rst.flags = PKT_RST;
	rst.seq = challenge.ack;
	rst.mss = false;
	ASSERT_EQ(pkt_build(&in, &rst), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "the client's RST to it");
	direct_exchange_from(e, &dsyn);
	test_context(NULL);
}

static void test_v4_direct_over_removed(void **state)
{
	direct_over_orphan(env_of(state), false, ORPHAN_REMOVED);
}

static void test_v6_direct_over_removed(void **state)
{
	direct_over_orphan(env_of(state), true, ORPHAN_REMOVED);
}

static void test_v4_direct_over_readded(void **state)
{
	direct_over_orphan(env_of(state), false, ORPHAN_READDED);
}

static void test_v6_direct_over_readded(void **state)
{
	direct_over_orphan(env_of(state), true, ORPHAN_READDED);
}

static void test_v4_direct_over_drained(void **state)
{
	direct_over_orphan(env_of(state), false, ORPHAN_DRAINED);
}

static void test_v6_direct_over_drained(void **state)
{
	direct_over_orphan(env_of(state), true, ORPHAN_DRAINED);
}

/* The gateway's own connection to a backend (the agent's health check,
 * monitoring on the gateway) leaves through egress, unseen: the backend's
 * answers, addressed to the gateway itself, pass untouched. */
static void test_gateway_own_connection(void **state)
{
	struct ts_env *e = env_of(state);
	const struct {
		const char *self, *be;
	} cases[] = { { "198.18.2.1", "198.18.2.11" }, { "2001:2:2::1", "2001:2:2::11" } };

	config_web4(e, 1, 1);
	config_web6(e, 1, 1);
	for (size_t i = 0; i < 2; i++) {
		struct pkt_spec synack = { .src = cases[i].be, .dst = cases[i].self, .sport = 8008,
					   .dport = 39000, .flags = PKT_SYN | PKT_ACK,
					   .seq = 5, .ack = 2, .mss = true };
		struct pkt in;

		ASSERT_EQ(pkt_build(&in, &synack), 0, "pkt_build");
		expect_untouched(e, &in, TC_ACT_OK, "a backend's SYN-ACK to the gateway itself");
		synack.flags = PKT_ACK | PKT_PSH;
		synack.payload = "up";
		ASSERT_EQ(pkt_build(&in, &synack), 0, "pkt_build");
		expect_untouched(e, &in, TC_ACT_OK, "its data to the gateway itself");
	}
}

/* Spoofed packets from a client's address:port to a backend's own
 * address:port mark that 4-tuple's replies as a direct connection's: they
 * must not hide the replies of the client's later connection through the
 * VIP on the same 4-tuple. */
static void test_forged_direct_mark(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec spoof = { .src = CLIENT4, .dst = "198.18.2.11", .sport = 45500,
				  .dport = 8008, .flags = PKT_SYN, .seq = 1 };
	struct pkt_spec syn = client_spec(false, 45500, PKT_SYN, 7000), data;
	char addr[PKT_EPSTRLEN];
	struct pkt in;

	config_web4(e, 1, 0);
	ASSERT_EQ(pkt_build(&in, &spoof), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "a spoofed SYN to v1's own address:port");
	spoof.flags = PKT_ACK;
	ASSERT_EQ(pkt_build(&in, &spoof), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "and an ACK, after the handshake below");
	handshake(e, &syn, web4_to, 1, "the client's connection through the VIP");
	expect_untouched(e, &in, TC_ACT_OK, "a spoofed ACK to v1's own address:port again");
	data = backend_spec(&syn, BE4_1, PKT_ACK | PKT_PSH, addr);
	data.payload = "the answer";
	expect_reply(e, &data, VIP4, "v1's data reaches the client from the VIP");
}

/*
 * Attack 4, forged replies: a packet from a backend's address:port that
 * arrives from the clients' side is never relabelled as the VIP, whether it
 * matches a flow or not. From the backends' side, a reply of a flow another
 * gateway pinned (ECMP) is.
 */
static void forged_replies(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_spec(v6, 45000, PKT_SYN, 7000);
	struct pkt_spec other = client_spec(v6, 45001, PKT_SYN, 7000);
	struct pkt_spec r, stray;
	char addr[PKT_EPSTRLEN];
	__u64 spoof;
	struct pkt in;
	int b;

	config_web(e, v6, 1, 1);
	b = handshake(e, &syn, to, 2, "a connection");
	spoof = env_counter(e, TS_CNT_SPOOF_REJECTED);
	test_dev_force = test_ifindex(TEST_DEV_CLIENT);
	r = backend_spec(&syn, to[b], PKT_ACK | PKT_PSH, addr);
	r.payload = "forged";
	ASSERT_EQ(pkt_build(&in, &r), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "a forged reply of the flow, from the client side");
	stray = r;
	stray.dst = v6 ? "2001:2:1::99" : "198.18.1.99";
	stray.dport = 1234;
	ASSERT_EQ(pkt_build(&in, &stray), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "a forged reply to anyone, from the client side");
	test_dev_force = 0;
	ASSERT_EQ(env_counter(e, TS_CNT_SPOOF_REJECTED) - spoof, 2, "spoof_rejected counter");
	expect_reply(e, &r, v6 ? VIP6 : VIP4, "the real reply, from the backends' side");

	/* the reverse entry evicted (LRU): the next reply restores it */
	{
		struct ts_flow_key rkey = {};
		struct pkt rp;
		struct pkt_view v;

		ASSERT_EQ(pkt_build(&rp, &r), 0, "pkt_build");
		ASSERT_TRUE(pkt_view(&rp, &v), "pkt_view");
		memcpy(rkey.saddr, rp.data + v.l3_off + (v6 ? 8 : 12), v.alen);
		memcpy(rkey.daddr, rp.data + v.l3_off + (v6 ? 24 : 16), v.alen);
		memcpy(&rkey.sport, rp.data + v.l4_off, 2);
		memcpy(&rkey.dport, rp.data + v.l4_off + 2, 2);
		rkey.proto = IPPROTO_TCP;
		rkey.family = v6 ? TS_AF_INET6 : TS_AF_INET;
		ASSERT_EQ(bpf_map_delete_elem(e->maps.replies, &rkey), 0, "the reverse entry");
		expect_reply(e, &r, v6 ? VIP6 : VIP4, "a reply after its reverse entry was lost");
		{
			struct ts_reply_state st;

			ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rkey, &st), 0,
				  "the reverse entry is back");
		}
	}

	/* ECMP: a flow this gateway never saw; its replies come through here */
	r = backend_spec(&other, to[0], PKT_ACK, addr);
	expect_reply(e, &r, v6 ? VIP6 : VIP4, "another gateway's flow: rewritten statelessly");
}

static void test_v4_forged_replies(void **state)
{
	forged_replies(env_of(state), false);
}

static void test_v6_forged_replies(void **state)
{
	forged_replies(env_of(state), true);
}

/* A backend connecting to its own VIP is given another backend (its own
 * would answer itself, not through the gateway), the same on every gateway;
 * with no other backend, the SYN is dropped and counted. */
static void test_backend_to_its_own_vip(void **state)
{
	struct ts_env *e = env_of(state);
	__u64 hairpin;

	config_web4(e, 9, 1);
	for (__u16 i = 0; i < 50; i++) {
		struct pkt_spec syn = client_spec(false, (__u16)(46000 + i), PKT_SYN, 7000);

		syn.src = "198.18.2.11";
		test_context("port %u", syn.sport);
		expect_forward(e, &syn, &web4_to[1], 1, "v1 connecting to its VIP gets v2");
	}
	test_context(NULL);
	/* v1 holds 90 % of the table: 45 of 50 picks, sd 2.1; 4 sd: 36.5..50 */
	hairpin = env_counter(e, TS_CNT_HAIRPIN);
	ASSERT_GE(hairpin, 37, "hairpin_repicked counter");
	ASSERT_LE(hairpin, 50, "hairpin_repicked counter");

	set_web_weights(e, "web4", 1, 0);
	{
		struct pkt_spec syn = client_spec(false, 46100, PKT_SYN, 7000);
		struct pkt in, out;
		__u64 none = env_counter(e, TS_CNT_NO_BACKEND);

		syn.src = "198.18.2.11";
		ASSERT_EQ(env_send(e, &syn, &in, &out), TC_ACT_SHOT,
			  "v1 alone: its own SYN to the VIP is dropped");
		ASSERT_EQ(env_counter(e, TS_CNT_NO_BACKEND) - none, 1, "no_backend counter");
	}
}

/*
 * A flood of a million spoofed SYNs, ACKs, RSTs and FINs from random sources
 * into a 1024-flow table: every established flow stays in flows, on its
 * backend, also those whose backend drains.
 */
static void test_flood_leaves_established_flows(void **state)
{
	struct ts_env *e = fixture_env(state, 1, TEST_SEED, 1024);
	static const __u8 kinds[] = { PKT_SYN, PKT_ACK, PKT_RST, PKT_FIN | PKT_ACK };
	struct pkt_spec est[40];
	int backend[40];
	char src[16];
	__u32 x = 12345;

	config_web4(e, 1, 1);
	for (int i = 0; i < 40; i++) {
		struct pkt_spec syn = client_spec(false, (__u16)(30000 + i), PKT_SYN, 7000);

		est[i] = handshake_ack_spec(&syn);
		backend[i] = handshake(e, &syn, web4_to, 2, "an established flow");
	}
	set_web_weights(e, "web4", 0, 1);
	for (int i = 0; i < 1000000; i++) {
		struct pkt_spec s = {
			.src = src,
			.dst = VIP4_ADDR,
			.dport = 8008,
			.flags = kinds[i % 4],
		};
		struct pkt in, out;

		x = x * 1103515245U + 12345U;
		s.sport = (__u16)(1024 + (x >> 8) % 60000);
		s.seq = x * 2654435761U;
		s.ack = x ^ 0x5bd1e995U;
		snprintf(src, sizeof(src), "198.19.%u.%u", (x >> 16) % 256, 1 + (x >> 24) % 250);
		ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
		env_run(e, &in, &out);
	}
	for (int i = 0; i < 40; i++) {
		test_context("established flow %d", i);
		ASSERT_EQ(env_flow_table(e, &est[i]), 1, "still in flows");
		expect_forward(e, &est[i], &web4_to[backend[i]], 1, "still on its backend");
	}
	test_context(NULL);
}

int run_security_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_v4_blind_close_then_syn),
		TEST(test_v6_blind_close_then_syn),
		TEST(test_connection_end),
		TEST(test_blind_ack_does_not_confirm),
		TEST(test_reused_tuple_confirmed_again),
		TEST(test_synack_again_after_confirmed),
		TEST(test_spoofed_packets_do_not_prepin),
		TEST(test_midstream_confirmed_by_backend),
		TEST(test_v4_direct_connection),
		TEST(test_v6_direct_connection),
		TEST(test_forged_direct_mark),
		TEST(test_v4_direct_after_vip_flow),
		TEST(test_v6_direct_after_vip_flow),
		TEST(test_v4_direct_after_vip_flow_removed),
		TEST(test_v6_direct_after_vip_flow_removed),
		TEST(test_v4_direct_over_removed),
		TEST(test_v6_direct_over_removed),
		TEST(test_v4_direct_over_readded),
		TEST(test_v6_direct_over_readded),
		TEST(test_v4_direct_over_drained),
		TEST(test_v6_direct_over_drained),
		TEST(test_gateway_own_connection),
		TEST(test_v4_forged_replies),
		TEST(test_v6_forged_replies),
		TEST(test_backend_to_its_own_vip),
		TEST(test_flood_leaves_established_flows),
	};

	return cmocka_run_group_tests_name("security (invariants 5, 8)", tests, NULL, NULL);
}
