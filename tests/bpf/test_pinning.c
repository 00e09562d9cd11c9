// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Flow pinning (invariant 2) and what happens when there is no pin or no
 * backend to follow: flow-table misses, services without weight, removed
 * backends (DESIGN.md, data plane).
 */
#include <string.h>

#include <bpf/bpf.h>

#include "ts_test.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };
static const char *const web6_to[] = { BE6_1, BE6_2 };

static struct pkt_spec client_pkt(bool v6, __u16 sport, __u8 flags)
{
	return (struct pkt_spec){
		.src = v6 ? CLIENT6 : CLIENT4,
		.dst = v6 ? VIP6_ADDR : VIP4_ADDR,
		.sport = sport,
		.dport = 8008,
		.flags = flags,
		.seq = 7000,
		.mss = flags == PKT_SYN,
	};
}

/* The weights that give backend `to` (0: v1, 1: v2) all new flows. */
static void all_weight_to(struct ts_env *e, bool v6, int to)
{
	set_web_weights(e, web_service(v6), to == 0, to == 1);
}

/*
 * Invariant 2: a pinned flow keeps its backend when the weights move all new
 * flows away from it (its weight 0: draining); new flows follow the weights.
 */
static void pinned_flow_survives_weight_change(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_pkt(v6, 43000, PKT_SYN);
	struct pkt_spec ack = client_pkt(v6, 43000, PKT_ACK);
	struct pkt_spec data = client_pkt(v6, 43000, PKT_PSH | PKT_ACK);
	struct pkt_spec reply = { .dst = syn.src, .dport = syn.sport, .flags = PKT_ACK };
	__u64 before[TS_CNT_MAX], after[TS_CNT_MAX];
	char addr[PKT_EPSTRLEN];
	int b;

	config_web(e, v6, 1, 1);
	env_counters(e, before);
	b = expect_forward(e, &syn, to, 2, "SYN of the pinned flow");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_SYN_SEEN, "state after the SYN");
	backend_syn_ack(e, &syn, to[b], "the backend's SYN-ACK");

	all_weight_to(e, v6, !b);
	ack = handshake_ack_spec(&syn);
	expect_forward(e, &ack, &to[b], 1, "ACK after the weight change follows the pin");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "state after the ACK");
	data.payload = "GET / HTTP/1.1\r\n\r\n";
	expect_forward(e, &data, &to[b], 1, "data after the weight change follows the pin");
	expect_forward(e, &syn, &to[b], 1, "retransmitted SYN follows the pin");
	reply = spec_with_endpoint(&reply, false, to[b], addr);
	expect_reply(e, &reply, v6 ? VIP6 : VIP4, "reply of the pinned flow");

	for (__u16 i = 0; i < 20; i++) {
		struct pkt_spec other = client_pkt(v6, (__u16)(43100 + i), PKT_SYN);

		test_context("new flow from port %u", other.sport);
		expect_forward(e, &other, &to[!b], 1, "a new flow follows the new weights");
	}
	test_context(NULL);

	/* and back: the first flow still does not move */
	all_weight_to(e, v6, b);
	expect_forward(e, &data, &to[b], 1, "data after the weights return");
	expect_forward(e, &ack, &to[b], 1, "ACK after the weights return");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], 21, "new_flows counter");
	ASSERT_EQ(after[TS_CNT_NON_SYN_MISS] - before[TS_CNT_NON_SYN_MISS], 0,
		  "non_syn_miss counter");
	ASSERT_EQ(env_flow_count(e), 21, "flows pinned");
}

static void test_v4_pinned_flow_survives_weight_change(void **state)
{
	pinned_flow_survives_weight_change(env_of(state), false);
}

static void test_v6_pinned_flow_survives_weight_change(void **state)
{
	pinned_flow_survives_weight_change(env_of(state), true);
}

/*
 * Invariant 2, "until the flow ends": the client's RST or FIN is still sent to
 * the pinned backend; a SYN on the same 5-tuple after it is a new connection,
 * given a backend by the current weights.
 */
static void test_syn_after_close_picks_again(void **state)
{
	struct ts_env *e = env_of(state);
	const struct {
		const char	*desc;
		__u8		close;
		__u8		state;
	} closes[] = {
		{ "RST", PKT_RST, TS_TCP_CLOSED },
		{ "RST|ACK", PKT_RST | PKT_ACK, TS_TCP_CLOSED },
		{ "FIN|ACK", PKT_FIN | PKT_ACK, TS_TCP_CLOSING },
	};

	config_web4(e, 1, 1);
	for (size_t i = 0; i < sizeof(closes) / sizeof(closes[0]); i++) {
		struct pkt_spec syn = client_pkt(false, (__u16)(44000 + i), PKT_SYN);
		struct pkt_spec ack = client_pkt(false, syn.sport, PKT_ACK);
		struct pkt_spec close = client_pkt(false, syn.sport, closes[i].close);
		int b;

		test_context("closed by %s", closes[i].desc);
		set_web_weights(e, "web4", 1, 1);
		b = expect_forward(e, &syn, web4_to, 2, "SYN");
		expect_forward(e, &ack, &web4_to[b], 1, "ACK");
		all_weight_to(e, false, !b);
		expect_forward(e, &close, &web4_to[b], 1, "the close goes to the pinned backend");
		ASSERT_EQ(env_flow_state(e, &syn), closes[i].state, "state after the close");
		expect_forward(e, &syn, &web4_to[!b], 1, "a SYN after the close picks again");
		ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_SYN_SEEN, "state after the new SYN");
		expect_forward(e, &ack, &web4_to[!b], 1, "and its ACK follows the new pin");
	}
	test_context(NULL);
}

/*
 * A RST takes its source MAC from the client frame's destination: a frame of
 * the flow sent to a broadcast or multicast MAC must not be answered, or the
 * RST would leave with a group source MAC (IEEE 802 forbids it; switches may
 * learn or flood it). Nothing leaves (no redirect) and the frame is not
 * rewritten.
 */
static void group_destination_not_reset(struct ts_env *e, const struct pkt_spec *ack)
{
	static const __u8 broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const __u8 multicast6[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };
	static const __u8 multicast4[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0x01 };
	const __u8 *const macs[] = { broadcast, multicast6, multicast4 };

	for (size_t i = 0; i < 3; i++) {
		struct pkt_spec s = *ack;
		struct pkt in, out;
		int verdict;

		test_context("to group MAC %02x:%02x:...:%02x", macs[i][0], macs[i][1],
			     macs[i][5]);
		s.eth_dst = macs[i];
		verdict = env_send(e, &s, &in, &out);
		ASSERT_NEQ(verdict, TC_ACT_REDIRECT, "verdict (no RST answers a group address)");
		ASSERT_PKT_EQ(&out, &in, "frame unchanged (no group source MAC)");
	}
	test_context(NULL);
}

/*
 * DESIGN.md: a removed backend's pinned flows are dropped and counted, never
 * moved to another backend; the other backend's flows are not disturbed.
 */
static void removed_backend_drops_pinned_flows(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec pinned[2];
	bool have[2] = { false, false };
	__u64 before[TS_CNT_MAX], after[TS_CNT_MAX];
	struct pkt in;

	config_web(e, v6, 1, 1);
	/* one flow pinned to each backend */
	for (__u16 port = 45000; port < 45064 && !(have[0] && have[1]); port++) {
		struct pkt_spec syn = client_pkt(v6, port, PKT_SYN);
		int b = expect_forward(e, &syn, to, 2, "SYN");

		if (!have[b])
			pinned[b] = client_pkt(v6, port, PKT_ACK);
		have[b] = true;
	}
	ASSERT_TRUE(have[0] && have[1], "64 SYNs with weights 1/1 reached both backends");
	for (int b = 0; b < 2; b++)
		expect_forward(e, &pinned[b], &to[b], 1, "ACK before the removal");

	env_counters(e, before);
	env_backend_del(e, web_service(v6), "v1");
	/* closed, never moved to v2: a RST back to the client */
	pinned[0].ack = 0x11223344;
	expect_reset(e, &pinned[0], "ACK of a flow pinned to the removed v1");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_REMOVED_BACKEND] - before[TS_CNT_REMOVED_BACKEND], 1,
		  "removed_backend counter after one packet");

	pinned[0].flags = PKT_PSH | PKT_ACK;
	pinned[0].payload = "more data";
	expect_reset(e, &pinned[0], "data of the flow pinned to the removed v1");
	pinned[0].flags = PKT_RST;
	pinned[0].payload = NULL;
	ASSERT_EQ(pkt_build(&in, &pinned[0]), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_SHOT, "a RST of the flow pinned to the removed v1");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_REMOVED_BACKEND] - before[TS_CNT_REMOVED_BACKEND], 3,
		  "removed_backend counter after three packets");
	ASSERT_EQ(after[TS_CNT_NO_BACKEND] - before[TS_CNT_NO_BACKEND], 0, "no_backend counter");
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], 0,
		  "new_flows counter: the dropped flow was not pinned again");

	/* A SYN on that 5-tuple opens a new connection (bpf/tcpshift.bpf.c):
	 * picked afresh, from the backends that remain. */
	pinned[0].flags = PKT_SYN;
	pinned[0].payload = NULL;
	expect_forward(e, &pinned[0], &to[1], 1, "a new SYN on the dropped flow's 5-tuple");
	pinned[0].flags = PKT_ACK;
	expect_forward(e, &pinned[0], &to[1], 1, "and its ACK follows the new pin");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_REMOVED_BACKEND] - before[TS_CNT_REMOVED_BACKEND], 3,
		  "removed_backend counter after the new connection");
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], 1,
		  "new_flows counter after the new connection");

	expect_forward(e, &pinned[1], &to[1], 1, "the flow pinned to v2 is not disturbed");
	for (__u16 i = 0; i < 16; i++) {
		struct pkt_spec syn = client_pkt(v6, (__u16)(45100 + i), PKT_SYN);

		test_context("new flow from port %u", syn.sport);
		expect_forward(e, &syn, &to[1], 1, "a new flow goes to the remaining backend");
	}
	test_context(NULL);
}

static void test_v4_removed_backend_drops_pinned_flows(void **state)
{
	removed_backend_drops_pinned_flows(env_of(state), false);
}

static void test_v6_removed_backend_drops_pinned_flows(void **state)
{
	removed_backend_drops_pinned_flows(env_of(state), true);
}

/*
 * DESIGN.md: a non-SYN packet with no pinned flow (eviction, restart) is
 * routed by the current table and counted; it is then pinned where it went.
 */
static void non_syn_miss_uses_current_table(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec m1 = client_pkt(v6, 46001, PKT_ACK);
	struct pkt_spec m2 = client_pkt(v6, 46002, PKT_PSH | PKT_ACK);
	struct pkt_spec m3 = client_pkt(v6, 46003, PKT_SYN | PKT_ACK);
	__u64 before[TS_CNT_MAX], after[TS_CNT_MAX];

	config_web(e, v6, 1, 0);
	env_counters(e, before);
	expect_forward(e, &m1, &to[0], 1, "ACK of an unknown flow, weights 1/0");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_NON_SYN_MISS] - before[TS_CNT_NON_SYN_MISS], 1,
		  "non_syn_miss counter after the miss");
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], 0,
		  "new_flows counter (not a SYN)");
	ASSERT_EQ(env_flow_state(e, &m1), TS_TCP_MIDSTREAM, "the missed flow is pinned mid-stream");

	expect_forward(e, &m1, &to[0], 1, "next packet of that flow");
	ASSERT_EQ(env_counter(e, TS_CNT_NON_SYN_MISS) - before[TS_CNT_NON_SYN_MISS], 1,
		  "non_syn_miss counter: the next packet found the pin");

	set_web_weights(e, web_service(v6), 0, 1);
	m2.payload = "data of a flow we never saw";
	expect_forward(e, &m2, &to[1], 1, "data of another unknown flow, weights 0/1");
	expect_forward(e, &m1, &to[0], 1, "the flow pinned by the first miss stays");
	ASSERT_EQ(env_counter(e, TS_CNT_NON_SYN_MISS) - before[TS_CNT_NON_SYN_MISS], 2,
		  "non_syn_miss counter after the second miss");

	/* a SYN|ACK is not a new flow either */
	expect_forward(e, &m3, &to[1], 1, "SYN|ACK of an unknown flow, weights 0/1");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_NON_SYN_MISS] - before[TS_CNT_NON_SYN_MISS], 3,
		  "non_syn_miss counter after a SYN|ACK miss");
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], 0,
		  "new_flows counter after three misses");
	ASSERT_EQ(env_flow_state(e, &m3), TS_TCP_MIDSTREAM, "the SYN|ACK miss is pinned mid-stream");
}

static void test_v4_non_syn_miss_uses_current_table(void **state)
{
	non_syn_miss_uses_current_table(env_of(state), false);
}

static void test_v6_non_syn_miss_uses_current_table(void **state)
{
	non_syn_miss_uses_current_table(env_of(state), true);
}

/*
 * A close that misses the flow table: a RST is forwarded by the table and not
 * pinned (it ends its flow); a FIN is pinned mid-stream, held apart until the
 * backend answers. Either way a later SYN on that 5-tuple is a new connection
 * and follows the current weights.
 */
static void test_close_on_a_miss_is_not_a_stale_pin(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec rst = client_pkt(false, 46101, PKT_RST);
	struct pkt_spec fin = client_pkt(false, 46102, PKT_FIN | PKT_ACK);
	struct pkt_spec syn_rst = client_pkt(false, 46101, PKT_SYN);
	struct pkt_spec syn_fin = client_pkt(false, 46102, PKT_SYN);
	struct ts_flow flow;

	config_web4(e, 1, 0);
	expect_forward(e, &rst, &web4_to[0], 1, "RST of an unknown flow, weights 1/0");
	ASSERT_NEQ(env_flow_lookup(e, &rst, &flow), 0, "the RST left no flow entry");
	expect_forward(e, &fin, &web4_to[0], 1, "FIN of an unknown flow, weights 1/0");
	ASSERT_EQ(env_flow_state(e, &fin), TS_TCP_MIDSTREAM, "the FIN miss is pinned mid-stream");
	ASSERT_EQ(env_flow_table(e, &fin), 2, "... in half_open");

	set_web_weights(e, "web4", 0, 1);
	expect_forward(e, &syn_rst, &web4_to[1], 1, "SYN after the RST, weights 0/1");
	expect_forward(e, &syn_fin, &web4_to[1], 1, "SYN after the FIN, weights 0/1");
}

/*
 * DESIGN.md: a service with no backend of weight > 0 drops new flows and
 * counts them; pinned flows of draining backends continue (invariant 2).
 */
static void test_no_backend_drops_new_flows(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec pinned = client_pkt(false, 47000, PKT_SYN);
	struct pkt_spec ack = client_pkt(false, 47000, PKT_ACK);
	__u64 before[TS_CNT_MAX], after[TS_CNT_MAX];
	struct pkt in;
	int b;

	/* an IPv6 service without backends, an IPv4 one with both drained */
	env_service(e, "web6", VIP6, TS_DEFAULT_TABLE_SIZE);
	config_web4(e, 1, 1);
	b = expect_forward(e, &pinned, web4_to, 2, "SYN before the drain");
	set_web_weights(e, "web4", 0, 0);

	env_counters(e, before);
	for (__u16 i = 0; i < 4; i++) {
		struct pkt_spec syn = client_pkt(i & 1, (__u16)(47100 + i), PKT_SYN);

		test_context("%s SYN from port %u", i & 1 ? "IPv6" : "IPv4", syn.sport);
		ASSERT_EQ(pkt_build(&in, &syn), 0, "pkt_build");
		expect_untouched(e, &in, TC_ACT_SHOT, "SYN to a service without weight");
	}
	test_context(NULL);
	ack.sport = 47200;
	ASSERT_EQ(pkt_build(&in, &ack), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_SHOT, "ACK of an unknown flow, no weight");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_NO_BACKEND] - before[TS_CNT_NO_BACKEND], 5, "no_backend counter");
	ASSERT_EQ(after[TS_CNT_NON_SYN_MISS] - before[TS_CNT_NON_SYN_MISS], 1,
		  "non_syn_miss counter");
	ASSERT_EQ(after[TS_CNT_NEW_FLOWS] - before[TS_CNT_NEW_FLOWS], 0, "new_flows counter");
	ASSERT_EQ(env_flow_count(e), 1, "flows: only the one pinned before the drain");

	ack.sport = pinned.sport;
	expect_forward(e, &ack, &web4_to[b], 1, "the pinned flow continues while draining");

	env_backend(e, "web6", "v1", BE6_1, 1);
	expect_forward(e, &(struct pkt_spec){ .src = CLIENT6, .dst = VIP6_ADDR, .sport = 47300,
					      .dport = 8008, .flags = PKT_SYN },
		       web6_to, 1, "SYN once the IPv6 service has a backend");
}

/* Service svc as it is in the maps (one service: ts_config_free it). */
static struct ts_service_cfg *service_read(struct ts_env *e, const char *svc,
					   struct ts_config *cfg)
{
	struct ts_err err = {};

	ASSERT_OK(ts_config_read_service(&e->maps, svc, cfg, &err), err, "read the service");
	ASSERT_EQ(cfg->nservices, 1, "the service exists");
	return &cfg->services[0];
}

/* Every backend of svc is a member of both halves of its table: settled. */
static void expect_settled(struct ts_env *e, const char *svc, const char *what)
{
	struct ts_config cfg = {};
	struct ts_service_cfg *s = service_read(e, svc, &cfg);

	for (size_t i = 0; i < s->nbackends; i++) {
		test_context("%s: backend %s", what, s->backends[i].be.name);
		ASSERT_EQ(s->backends[i].be.table_halves, 3, "member of both halves (settled)");
	}
	test_context(NULL);
	ts_config_free(&cfg);
}

static void backend_halves_set(struct ts_env *e, __u32 id, __u32 halves)
{
	struct ts_backend be;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &id, &be), 0, "read the backend");
	be.table_halves = halves;
	ASSERT_EQ(bpf_map_update_elem(e->maps.backends, &id, &be, BPF_EXIST), 0,
		  "write the backend");
}

/*
 * An established flow's packet reads its flow's entry and its backend's, not
 * its service's, when the backend is settled: a member of both halves of the
 * service's table is live whichever half is (bpf/tcpshift.bpf.c,
 * ts_backend_settled). Shown by taking the service's entry away behind the
 * control plane's back: the flow still reaches its backend, while a new
 * flow is no longer balanced. A backend member of one half only (the change
 * that adds or removes it) is judged by the service's live half: without the
 * service's entry its packets are not balanced; with it, forwarded when that
 * half is the live one, closed when it is the other.
 */
static void settled_backend_needs_no_service(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_pkt(v6, 48000, PKT_SYN);
	struct pkt_spec fresh = client_pkt(v6, 48001, PKT_SYN);
	struct pkt_spec data;
	struct ts_config cfg = {};
	struct ts_service_cfg *s;
	struct ts_backend_cfg *pinned;
	__u64 before[TS_CNT_MAX], after[TS_CNT_MAX];
	struct pkt in;
	int b;

	config_web(e, v6, 1, 1);
	expect_settled(e, web_service(v6), "a new service");
	b = handshake(e, &syn, to, 2, "the flow");
	data = handshake_ack_spec(&syn);
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "GET / HTTP/1.1\r\n\r\n";
	s = service_read(e, web_service(v6), &cfg);
	pinned = ts_service_backend(s, b ? "v2" : "v1");
	ASSERT_TRUE(pinned != NULL, "the pinned backend is listed");

	ASSERT_EQ(bpf_map_delete_elem(e->maps.services, &s->key), 0, "take the service away");
	expect_forward(e, &data, &to[b], 1, "the established flow without its service's entry");
	ASSERT_EQ(pkt_build(&in, &fresh), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "a new flow's SYN without the service: not balanced");

	/* a member of the live half only, as a change (holding the lock)
	 * leaves it while it runs: the service decides */
	env_changing(e, true);
	backend_halves_set(e, pinned->id, 1U << (s->svc.table_half & 1));
	ASSERT_EQ(pkt_build(&in, &data), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK,
			 "one half only, no service's entry: not balanced (the service was read)");
	ASSERT_EQ(bpf_map_update_elem(e->maps.services, &s->key, &s->svc, BPF_NOEXIST), 0,
		  "put the service back");
	expect_forward(e, &data, &to[b], 1, "a member of the live half only: forwarded");

	/* ... of the other half only: not live, the flow is closed */
	backend_halves_set(e, pinned->id, 1U << (!s->svc.table_half & 1));
	env_counters(e, before);
	data.ack = 0x11223344;
	expect_reset(e, &data, "a member of the half not live only: closed");
	env_counters(e, after);
	ASSERT_EQ(after[TS_CNT_REMOVED_BACKEND] - before[TS_CNT_REMOVED_BACKEND], 1,
		  "removed_backend counter");
	ts_config_free(&cfg);
}

/*
 * A client on a port below the service's (1000 to 8008) is looked up service
 * first (the port guess of ts_ingress): its established flow keeps its
 * backend all the same, with the weights moved away from it.
 */
static void low_port_client_stays_pinned(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	struct pkt_spec syn = client_pkt(v6, 1000, PKT_SYN);
	struct pkt_spec data;
	__u64 miss;
	int b;

	config_web(e, v6, 1, 1);
	b = handshake(e, &syn, to, 2, "a client on port 1000");
	miss = env_counter(e, TS_CNT_NON_SYN_MISS);
	all_weight_to(e, v6, !b);
	data = handshake_ack_spec(&syn);
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "GET / HTTP/1.1\r\n\r\n";
	expect_forward(e, &data, &to[b], 1, "its data after the weights moved away");
	ASSERT_EQ(env_counter(e, TS_CNT_NON_SYN_MISS), miss, "found in flows, no pickup");
}

static void test_v4_low_port_client_stays_pinned(void **state)
{
	low_port_client_stays_pinned(env_of(state), false);
}

static void test_v6_low_port_client_stays_pinned(void **state)
{
	low_port_client_stays_pinned(env_of(state), true);
}

/* The configuration's epoch: the low 32 bits of settings' generation. */
static __u32 epoch_now(struct ts_env *e)
{
	struct ts_settings st;
	__u32 zero = 0;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &st), 0, "read settings");
	return (__u32)st.generation;
}

/* The epochs of confirmed flow s's entry in flows and of its reply r's
 * reverse entry. */
static void epochs_of(struct ts_env *e, const struct pkt_spec *s, const struct pkt_spec *r,
		      __u32 *flow, __u32 *reply)
{
	struct ts_flow_key fk = env_flow_key(s), rk = env_flow_key(r);
	struct ts_reply_state rs;
	struct ts_flow_entry fe;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &fe), 0, "its flow");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.replies, &rk, &rs), 0, "its reverse entry");
	*flow = fe.epoch;
	*reply = rs.epoch;
}

/* Backend id's entry written behind the control plane's back. */
static void backend_entry_set(struct ts_env *e, __u32 id, __u8 state, __u64 deadline_ns)
{
	struct ts_backend be;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &id, &be), 0, "read the backend");
	be.state = state;
	be.drain_deadline_ns = deadline_ns;
	ASSERT_EQ(bpf_map_update_elem(e->maps.backends, &id, &be, BPF_EXIST), 0,
		  "write the backend");
}

/*
 * An established flow's entry holds its backend's address, which stands for
 * the backend's entry (a cache line fewer per packet) while the
 * configuration's epoch does; its reverse entry records the epoch its backend
 * was found live at (tcpshift.h, ts_flow_entry). Shown by removing the backend
 * behind the control plane's back: neither way sees it until a change is
 * committed or under way, and then the flow is closed at its next packet. A
 * backend with a drain deadline gets no copy that stands, nor does a copy
 * that is not the backend's address; a removal by the control plane closes
 * a flow whose copy stood.
 */
static void copy_stands_until_a_change(struct ts_env *e, bool v6)
{
	const char *const *to = v6 ? web6_to : web4_to;
	const char *vip = v6 ? VIP6 : VIP4;
	struct pkt_spec syn[5], data[5], reply[5];
	char addr[5][PKT_EPSTRLEN];
	__u32 v1, fe, re, now;
	struct pkt in;

	config_web(e, v6, 1, 0);
	v1 = env_backend_id(e, web_service(v6), "v1");
	for (int i = 0; i < 5; i++) {
		syn[i] = client_pkt(v6, (__u16)(46000 + i), PKT_SYN);
		handshake(e, &syn[i], to, 1, "a connection to v1");
		data[i] = handshake_ack_spec(&syn[i]);
		data[i].flags = PKT_PSH | PKT_ACK;
		data[i].payload = "GET / HTTP/1.1\r\n\r\n";
		reply[i] = backend_spec(&syn[i], to[0], PKT_PSH | PKT_ACK, addr[i]);
		reply[i].payload = "HTTP/1.1 200 OK\r\n\r\n";
	}
	now = epoch_now(e);
	ASSERT_TRUE(now != 0, "an epoch (no change under way)");
	for (int i = 0; i < 2; i++) {
		expect_forward(e, &data[i], to, 1, "data: the backend's entry read");
		expect_reply(e, &reply[i], vip, "a reply: the backend's entry read");
		epochs_of(e, &syn[i], &reply[i], &fe, &re);
		ASSERT_EQ(fe, now, "the flow's copy stands from now on");
		ASSERT_EQ(re, now, "... and its reverse entry's epoch");
	}

	/* removed, with no change of the control plane's */
	backend_entry_set(e, v1, TS_BACKEND_REMOVED, 0);
	expect_forward(e, &data[0], to, 1, "the copy stands: the backend's entry is not read");
	expect_reply(e, &reply[0], vip, "nor by its reply");
	/* a change committed: the entries are read again */
	env_changing(e, false);
	data[0].ack = 0x11223344;
	expect_reset(e, &data[0], "after a commit: the backend is gone, the flow closed");
	ASSERT_EQ(pkt_build(&in, &reply[0]), 0, "pkt_build");
	expect_untouched(e, &in, TC_ACT_OK, "... and its reply no longer ours");

	/* a change under way: the same */
	backend_entry_set(e, v1, TS_BACKEND_ACTIVE, 0);
	expect_forward(e, &data[1], to, 1, "v1 back: its entry read, the copy made to stand");
	epochs_of(e, &syn[1], &reply[1], &fe, &re);
	ASSERT_EQ(fe, epoch_now(e), "at the new epoch");
	backend_entry_set(e, v1, TS_BACKEND_REMOVED, 0);
	expect_forward(e, &data[1], to, 1, "the copy stands again");
	env_changing(e, true);
	data[1].ack = 0x11223344;
	expect_reset(e, &data[1], "a change under way: the backend's entry read, the flow closed");
	env_changing(e, false);

	/* a drain deadline (an hour away): the entry is read at every packet */
	backend_entry_set(e, v1, TS_BACKEND_ACTIVE, ts_now_ns() + 3600ULL * 1000000000ULL);
	env_changing(e, false);
	expect_forward(e, &data[2], to, 1, "data to a draining backend");
	expect_reply(e, &reply[2], vip, "its reply");
	epochs_of(e, &syn[2], &reply[2], &fe, &re);
	ASSERT_TRUE(fe != epoch_now(e), "no copy stands for a backend with a deadline");
	ASSERT_TRUE(re != epoch_now(e), "nor a reverse entry's epoch");
	backend_entry_set(e, v1, TS_BACKEND_ACTIVE, 0);
	env_changing(e, false);

	/* a copy that is not the backend's address (as a peer's pin might
	 * carry) is never made to stand: the packet goes to the backend */
	{
		struct ts_flow_key fk = env_flow_key(&syn[3]);
		struct ts_flow_entry f;

		ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "flow 3");
		f.backend_addr[3] ^= htonl(1);
		ASSERT_EQ(bpf_map_update_elem(e->maps.flows, &fk, &f, BPF_EXIST), 0,
			  "another address in its copy");
		expect_forward(e, &data[3], to, 1, "to v1 all the same");
		ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &fk, &f), 0, "flow 3");
		ASSERT_TRUE(f.epoch != epoch_now(e), "that copy does not stand");
	}

	/* the control plane's removal closes a flow whose copy stood */
	expect_forward(e, &data[4], to, 1, "data of a fifth flow");
	epochs_of(e, &syn[4], &reply[4], &fe, &re);
	ASSERT_EQ(fe, epoch_now(e), "its copy stands");
	env_backend_del(e, web_service(v6), "v1");
	data[4].ack = 0x11223344;
	expect_reset(e, &data[4], "v1 removed by the control plane: the flow closed");
}

static void test_v4_copy_stands_until_a_change(void **state)
{
	copy_stands_until_a_change(env_of(state), false);
}

static void test_v6_copy_stands_until_a_change(void **state)
{
	copy_stands_until_a_change(env_of(state), true);
}

static void test_v4_settled_backend_needs_no_service(void **state)
{
	settled_backend_needs_no_service(env_of(state), false);
}

static void test_v6_settled_backend_needs_no_service(void **state)
{
	settled_backend_needs_no_service(env_of(state), true);
}

/*
 * Every change leaves the service's backends settled (user/lib/table.c): a
 * new service's, a backend added by a change (made a member of the other
 * half after the commit), the backends of a weight change, of a drain and of
 * a removal.
 */
static void test_changes_leave_backends_settled(void **state)
{
	struct ts_env *e = env_of(state);
	const char *names[] = { "v1", "v2" };
	const __u32 w[] = { 3, 1 };
	struct ts_err err = {};

	config_web4(e, 1, 1);
	expect_settled(e, "web4", "a new service");
	env_backend(e, "web4", "v3", "198.18.2.13:8008", 1);
	expect_settled(e, "web4", "after a backend's addition");
	env_weights(e, "web4", 2, names, w);
	expect_settled(e, "web4", "after a weight change");
	ASSERT_OK(ts_backend_drain(&e->maps, "web4", "v3", 60ULL * 1000000000, &err), err,
		  "drain v3");
	expect_settled(e, "web4", "after a drain");
	env_backend_del(e, "web4", "v1");
	expect_settled(e, "web4", "after a removal");
}

/*
 * `service del` unsettles the service's backends before its delete: a
 * command killed after the delete leaves backends that need the service's
 * entry (settled_backend_needs_no_service: then not balanced), never
 * settled ones, whose flows would be served without a service.
 */
static void test_service_del_unsettles_first(void **state)
{
	struct ts_env *e = env_of(state);
	struct ts_config cfg = {};
	struct ts_service_cfg *s;
	struct ts_err err = {};

	config_web4(e, 1, 1);
	s = service_read(e, "web4", &cfg);
	ASSERT_OK(ts_service_del(&e->maps, "web4", &err), err, "service del");
	for (size_t i = 0; i < s->nbackends; i++) {
		struct ts_backend be;

		test_context("backend %s", s->backends[i].be.name);
		ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &s->backends[i].id, &be), 0,
			  "read the backend");
		ASSERT_EQ(be.table_halves, 1U << (s->svc.table_half & 1),
			  "a member of the half that was live only");
		ASSERT_NEQ(be.state, TS_BACKEND_ACTIVE, "marked removed");
	}
	test_context(NULL);
	ts_config_free(&cfg);
}

/* Is port marked as a VIP's in vip_ports? */
static bool vip_port_marked(struct ts_env *e, __u16 port)
{
	__u32 w = port >> 6;
	__u64 bits;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.vip_ports, &w, &bits), 0, "read vip_ports");
	return (bits >> (port & 63)) & 1;
}

/*
 * A service's port is marked in vip_ports when it is added, and stays marked
 * after it is deleted; no other port is. The data plane trusts the mark: a
 * SYN to the VIP whose port's mark is cleared (by hand) is to no VIP.
 */
static void test_vip_ports_marked(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = { .src = CLIENT4, .dst = VIP4_ADDR, .sport = 44001, .dport = 8008,
				.flags = PKT_SYN, .seq = 7000, .mss = true };
	static const char *const to[] = { BE4_1 };
	struct ts_err err = {};
	struct pkt in, out;
	__u32 w = 8008 >> 6;
	__u64 bits;

	ASSERT_TRUE(!vip_port_marked(e, 8008), "no port marked before a service");
	config_web4(e, 1, 0);
	ASSERT_TRUE(vip_port_marked(e, 8008), "the service's port marked");
	ASSERT_TRUE(!vip_port_marked(e, 8009), "the next port not");
	ASSERT_TRUE(!vip_port_marked(e, 44001), "a client's port not");
	expect_forward(e, &syn, to, 1, "a SYN to the VIP, balanced");

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.vip_ports, &w, &bits), 0, "read vip_ports");
	bits &= ~(1ULL << (8008 & 63));
	ASSERT_EQ(bpf_map_update_elem(e->maps.vip_ports, &w, &bits, BPF_EXIST), 0,
		  "clear the mark");
	syn.sport = 44002;
	env_send(e, &syn, &in, &out);
	ASSERT_EQ(pkt_diff(&out, &in), -1, "without its port's mark, the VIP's SYN goes on untouched");

	ASSERT_OK(ts_vip_port_set(e->maps.vip_ports, htons(8008), &err), err, "mark it again");
	ASSERT_OK(ts_service_del(&e->maps, "web4", &err), err, "service del");
	ASSERT_TRUE(vip_port_marked(e, 8008), "still marked after the delete");
}

static void settings_flag(struct ts_env *e, __u32 flag, bool on)
{
	struct ts_settings st;
	__u32 zero = 0;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &st), 0, "read settings");
	st.flags = on ? st.flags | flag : st.flags & ~flag;
	ASSERT_EQ(bpf_map_update_elem(e->maps.settings, &zero, &st, BPF_EXIST), 0,
		  "write settings");
}

static __u32 backend_halves(struct ts_env *e, __u32 id)
{
	struct ts_backend be;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.backends, &id, &be), 0, "read the backend");
	return be.table_halves;
}

/*
 * `load` over an earlier build's pins settles the backends that build left a
 * member of the live half only (ts_backends_settle), so that their flows take
 * the short path from then on; not while a killed change may have left a
 * member of the other half only (TS_SETTINGS_F_CHANGING), nor a removed one.
 */
static void test_load_settles_earlier_builds_backends(void **state)
{
	struct ts_env *e = env_of(state);
	struct ts_config cfg = {};
	struct ts_service_cfg *s;
	__u32 live, v1, v2;

	config_web4(e, 1, 1);
	s = service_read(e, "web4", &cfg);
	live = 1U << (s->svc.table_half & 1);
	v1 = ts_service_backend(s, "v1")->id;
	v2 = ts_service_backend(s, "v2")->id;
	ts_config_free(&cfg);
	/* as an earlier build's service add and backend add leave them */
	backend_halves_set(e, v1, live);
	backend_halves_set(e, v2, live);

	settings_flag(e, TS_SETTINGS_F_CHANGING, true);
	ts_backends_settle(&e->maps);
	ASSERT_EQ(backend_halves(e, v1), live, "a change was killed: nothing settled");
	settings_flag(e, TS_SETTINGS_F_CHANGING, false);

	env_backend_del(e, "web4", "v2");	/* v2: REMOVED; the other half is live */
	s = service_read(e, "web4", &cfg);
	live = 1U << (s->svc.table_half & 1);
	ts_config_free(&cfg);
	backend_halves_set(e, v1, live);
	backend_halves_set(e, v2, live);
	ts_backends_settle(&e->maps);
	ASSERT_EQ(backend_halves(e, v1), 3, "the live half's member, settled");
	ASSERT_EQ(backend_halves(e, v2), live, "a removed backend is left as it was");
}

/* The RST of a flow whose backend was removed never answers a frame sent to a
 * group MAC (see group_destination_not_reset). */
static void test_group_destination_never_reset(void **state)
{
	struct ts_env *e = env_of(state);

	for (int v6 = 0; v6 < 2; v6++) {
		struct pkt_spec syn = client_pkt(v6, 46000, PKT_SYN);
		struct pkt_spec ack = client_pkt(v6, 46000, PKT_ACK);

		config_web(e, v6, 1, 0);
		expect_forward(e, &syn, v6 ? web6_to : web4_to, 1, "SYN pinned to v1");
		env_backend_del(e, web_service(v6), "v1");
		ack.ack = 0x11223344;
		group_destination_not_reset(e, &ack);
		expect_reset(e, &ack, "the same ACK to the gateway's MAC is answered with a RST");
	}
}

int run_pinning_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_v4_pinned_flow_survives_weight_change),
		TEST(test_v6_pinned_flow_survives_weight_change),
		TEST(test_syn_after_close_picks_again),
		TEST(test_v4_removed_backend_drops_pinned_flows),
		TEST(test_v6_removed_backend_drops_pinned_flows),
		TEST(test_group_destination_never_reset),
		TEST(test_v4_non_syn_miss_uses_current_table),
		TEST(test_v6_non_syn_miss_uses_current_table),
		TEST(test_close_on_a_miss_is_not_a_stale_pin),
		TEST(test_no_backend_drops_new_flows),
		TEST(test_v4_low_port_client_stays_pinned),
		TEST(test_v6_low_port_client_stays_pinned),
		TEST(test_v4_settled_backend_needs_no_service),
		TEST(test_v6_settled_backend_needs_no_service),
		TEST(test_v4_copy_stands_until_a_change),
		TEST(test_v6_copy_stands_until_a_change),
		TEST(test_changes_leave_backends_settled),
		TEST(test_service_del_unsettles_first),
		TEST(test_vip_ports_marked),
		TEST(test_load_settles_earlier_builds_backends),
	};

	return cmocka_run_group_tests_name("pinning (invariant 2, DESIGN data plane)", tests,
					   NULL, NULL);
}
