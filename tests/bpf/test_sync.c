// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Flow sync (doc/DESIGN.md, "Flow sync"): the pin events the data plane puts
 * in its sync_events ring buffer, and what a peer's record may write into the
 * maps (ts_sync_apply), checked against the data plane that then reads them.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <string.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ts_test.h"
#include "sync_proto.h"

static const char *const web4_to[] = { BE4_1, BE4_2 };

/* Tell the data plane that a sync daemon runs (on) or not. */
static void sync_flag(struct ts_env *e, bool on)
{
	struct ts_settings s;
	__u32 zero = 0;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &s), 0, "read settings");
	s.flags = on ? s.flags | TS_SETTINGS_F_SYNC : s.flags & ~TS_SETTINGS_F_SYNC;
	ASSERT_EQ(bpf_map_update_elem(e->maps.settings, &zero, &s, 0), 0, "write settings");
}

#define MAX_EVENTS 16

struct events {
	struct ts_sync_event	ev[MAX_EVENTS];
	size_t			n;
	size_t			total;
};

static int on_event(void *ctx, void *data, size_t size)
{
	struct events *evs = ctx;

	if (size == sizeof(struct ts_sync_event) && evs->n < MAX_EVENTS)
		memcpy(&evs->ev[evs->n++], data, size);
	evs->total++;
	return 0;
}

/* Every event in the ring now (consumed). */
static struct events drain(struct ts_env *e)
{
	struct events evs = {};
	struct ring_buffer *rb = ring_buffer__new(e->maps.sync_events, on_event, &evs, NULL);

	ASSERT_TRUE(rb != NULL, "ring_buffer__new on sync_events");
	ring_buffer__consume(rb);
	ring_buffer__free(rb);
	return evs;
}

static struct ts_flow_key key_of(const struct pkt_spec *s)
{
	struct ts_flow_key k = { .proto = IPPROTO_TCP, .family = TS_AF_INET };

	inet_pton(AF_INET, s->src, k.saddr);
	inet_pton(AF_INET, s->dst, k.daddr);
	k.sport = htons(s->sport);
	k.dport = htons(s->dport);
	return k;
}

/* The client's RST, in its window (it follows the handshake's ACK). */
static struct pkt_spec client_rst(const struct pkt_spec *syn)
{
	struct pkt_spec ack = handshake_ack_spec(syn);

	ack.flags = PKT_RST | PKT_ACK;
	return ack;
}

/* A confirmed flow is one PIN event, its end one END event: the flow's key,
 * its backend and generation; the packets between are none. */
static void test_events_follow_pins(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 45000, PKT_SYN, 1000);
	struct pkt_spec data = handshake_ack_spec(&syn), rst = client_rst(&syn);
	struct ts_flow_key key = key_of(&syn);
	struct ts_flow flow;
	struct events evs;
	int b;

	config_web4(e, 1, 1);
	sync_flag(e, true);
	b = handshake(e, &syn, web4_to, 2, "handshake");
	ASSERT_EQ(env_flow_lookup(e, &syn, &flow), 0, "pinned");
	data.flags = PKT_ACK | PKT_PSH;
	data.payload = "GET /";
	expect_forward(e, &data, &web4_to[b], 1, "data");
	expect_forward(e, &syn, &web4_to[b], 1, "a retransmitted SYN");
	evs = drain(e);
	ASSERT_EQ(evs.total, 1, "events after a handshake and data");
	ASSERT_EQ(evs.ev[0].type, TS_SYNC_PIN, "its type");
	ASSERT_EQ(memcmp(&evs.ev[0].key, &key, sizeof(key)), 0, "its key: client -> VIP");
	ASSERT_EQ(evs.ev[0].backend_id, flow.backend_id, "its backend");
	ASSERT_EQ(evs.ev[0].generation, flow.generation, "its backend's generation");
	ASSERT_GT(evs.ev[0].time_ns, 0, "its time");

	expect_forward(e, &rst, &web4_to[b], 1, "the client's RST");
	evs = drain(e);
	ASSERT_EQ(evs.total, 1, "events after the RST");
	ASSERT_EQ(evs.ev[0].type, TS_SYNC_END, "its type");
	ASSERT_EQ(memcmp(&evs.ev[0].key, &key, sizeof(key)), 0, "its key");
	expect_forward(e, &rst, &web4_to[b], 1, "the RST again");
	ASSERT_EQ(drain(e).total, 0, "an ended flow ends once");
	ASSERT_EQ(env_counter(e, TS_CNT_SYNC_LOST), 0, "sync_lost");
}

/* Without a sync daemon the data plane writes no event. */
static void test_no_events_without_sync(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 45100, PKT_SYN, 1000);
	struct pkt_spec rst = client_rst(&syn);
	int b;

	config_web4(e, 1, 1);
	b = handshake(e, &syn, web4_to, 2, "handshake");
	expect_forward(e, &rst, &web4_to[b], 1, "the client's RST");
	ASSERT_EQ(drain(e).total, 0, "events");
	ASSERT_EQ(env_counter(e, TS_CNT_SYNC_LOST), 0, "sync_lost");
}

/* ECMP: the SYN-ACK went through another gateway; the client's ACK makes the
 * flow established, half-open here, and so at the peers (PIN_HALF_OPEN). */
static void test_half_open_pin_event(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 45200, PKT_SYN, 1000);
	struct pkt_spec ack = handshake_ack_spec(&syn);
	struct events evs;
	int b;

	config_web4(e, 1, 1);
	sync_flag(e, true);
	b = expect_forward(e, &syn, web4_to, 2, "SYN");
	ASSERT_EQ(drain(e).total, 0, "events after a SYN");
	expect_forward(e, &ack, &web4_to[b], 1, "the client's ACK, its SYN-ACK not seen here");
	ASSERT_EQ(env_flow_table(e, &syn), 2, "the flow stays half-open");
	evs = drain(e);
	ASSERT_EQ(evs.total, 1, "events");
	ASSERT_EQ(evs.ev[0].type, TS_SYNC_PIN_HALF_OPEN, "its type");
}

/* The data plane never waits for sync: a full ring drops the event, counts
 * it, and the packet goes on as always. */
static void test_full_ring_counts_lost(void **state)
{
	struct ts_env *e = env_of(state);
	const __u32 most = TS_SYNC_RING_BYTES / (sizeof(struct ts_sync_event) + 8) / 2 + 16;
	__u32 i;

	config_web4(e, 1, 1);
	sync_flag(e, true);
	for (i = 0; i < most && !env_counter(e, TS_CNT_SYNC_LOST); i++) {
		struct pkt_spec syn = client_spec(false, 45300, PKT_SYN, 1000 + i * 100);
		struct pkt_spec rst = client_rst(&syn);
		int b;

		if (i % 1000 == 0)
			test_context("handshake %u", i);
		b = handshake(e, &syn, web4_to, 2, "handshake");
		expect_forward(e, &rst, &web4_to[b], 1, "the client's RST");
	}
	test_context(NULL);
	ASSERT_GT(env_counter(e, TS_CNT_SYNC_LOST), 0, "sync_lost once the ring is full");
	ASSERT_LT(i, most, "the ring filled after ~4 MiB of events");
	ASSERT_GE(drain(e).total, 50000, "events kept in the ring");
}

/* ---- a peer's records ------------------------------------------------------ */

static struct ts_sync_record record(const struct pkt_spec *s, const char *backend, __u8 type)
{
	struct ts_sync_record r = { .family = TS_AF_INET, .type = type };
	char addr[PKT_EPSTRLEN];
	__u16 port;

	ASSERT_EQ(pkt_split_endpoint(backend, addr, &port), 0, backend);
	inet_pton(AF_INET, s->src, r.client);
	inet_pton(AF_INET, s->dst, r.vip);
	inet_pton(AF_INET, addr, r.backend);
	r.client_port = htons(s->sport);
	r.vip_port = htons(s->dport);
	r.backend_port = htons(port);
	r.client_end = htonl(s->seq + 1);
	return r;
}

static enum ts_sync_outcome apply(struct ts_env *e, const struct pkt_spec *s, const char *backend,
				  __u8 type)
{
	struct ts_sync_record r = record(s, backend, type);

	return ts_sync_apply(&e->maps, NULL, &r, ts_now_ns());
}

/* A peer's pin is written by the backend's address and honoured by the data
 * plane whatever the weights; its replies get their reverse entry from the
 * first one; a peer's end closes it (a SYN then picks afresh). */
static void test_peer_pin_followed(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46000, PKT_SYN, 5000);
	struct pkt_spec data = client_spec(false, 46000, PKT_ACK | PKT_PSH, 5001), reply;
	char addr[PKT_EPSTRLEN];
	struct ts_flow flow;

	config_web4(e, 0, 1);
	ASSERT_EQ(apply(e, &syn, BE4_1, TS_SYNC_PIN), TS_SYNC_PINNED, "a peer's pin to v1");
	ASSERT_EQ(env_flow_table(e, &syn), 1, "in flows");
	ASSERT_EQ(env_flow_lookup(e, &syn, &flow), 0, "pinned");
	ASSERT_TRUE(flow.flags & TS_FLOW_F_SYNCED, "marked as a peer's");
	ASSERT_EQ(flow.tcp_state, TS_TCP_ESTABLISHED, "established");
	ASSERT_EQ(apply(e, &syn, BE4_1, TS_SYNC_PIN), TS_SYNC_SAME, "the same pin again");
	data.payload = "more";
	expect_forward(e, &data, &web4_to[0], 1, "its data goes to v1 (weight 0: only the pin)");
	{
		/* with v1's address, which the data plane found to be v1's: the
		 * copy stands for v1's entry from then on (tcpshift.h) */
		struct ts_flow_key k = env_flow_key(&syn);
		struct ts_settings st;
		struct ts_flow_entry fe;
		__u32 zero = 0;

		ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &k, &fe), 0, "its entry");
		ASSERT_EQ(fe.backend_addr[0], htonl(0xc612020b), "v1's address (198.18.2.11)");
		ASSERT_EQ(fe.backend_port, htons(8008), "v1's port");
		ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &st), 0, "settings");
		ASSERT_EQ(fe.epoch, (__u32)st.generation, "the copy stands");
	}
	reply = backend_spec(&data, BE4_1, PKT_ACK | PKT_PSH, addr);
	expect_reply(e, &reply, VIP4, "v1's reply is rewritten");
	expect_reply(e, &reply, VIP4, "and the next, through its reverse entry");
	ASSERT_EQ(env_counter(e, TS_CNT_NON_SYN_MISS), 0, "no miss");

	ASSERT_EQ(apply(e, &syn, BE4_1, TS_SYNC_END), TS_SYNC_ENDED, "the peer's end");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "closed");
	ASSERT_EQ(apply(e, &syn, BE4_1, TS_SYNC_END), TS_SYNC_NOTHING, "ended once");
	expect_forward(e, &syn, &web4_to[1], 1, "a SYN after the end picks afresh (v2)");
	ASSERT_EQ(apply(e, &syn, BE4_2, TS_SYNC_END), TS_SYNC_NOTHING,
		  "the new connection is ours: a peer's end leaves it");
}

/* Our own pins: a peer's pin never moves one, a peer's end never closes one. */
static void test_peer_never_moves_ours(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46100, PKT_SYN, 7000);
	struct ts_flow before, after;
	int b;

	config_web4(e, 1, 1);
	b = handshake(e, &syn, web4_to, 2, "our handshake");
	ASSERT_EQ(env_flow_lookup(e, &syn, &before), 0, "pinned");
	ASSERT_EQ(apply(e, &syn, web4_to[!b], TS_SYNC_PIN), TS_SYNC_KEPT_LOCAL,
		  "a peer's pin to the other backend");
	ASSERT_EQ(apply(e, &syn, web4_to[!b], TS_SYNC_PIN_HALF_OPEN), TS_SYNC_KEPT_LOCAL,
		  "a peer's half-open pin to the other backend");
	ASSERT_EQ(apply(e, &syn, web4_to[b], TS_SYNC_END), TS_SYNC_NOTHING, "a peer's end");
	ASSERT_EQ(env_flow_lookup(e, &syn, &after), 0, "still pinned");
	ASSERT_EQ(memcmp(&before, &after, sizeof(before)), 0, "our pin, unchanged");
	ASSERT_EQ(env_flow_table(e, &syn), 1, "in flows");
}

/* A record names a VIP and a backend of ours, of that service, live: else it
 * writes nothing. */
static void test_peer_pin_must_name_ours(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46200, PKT_SYN, 9000);
	struct pkt_spec other = syn;
	struct ts_sync_record r;

	config_web4(e, 1, 1);
	env_service(e, "db", "198.18.100.2:5432", 101);
	env_backend(e, "db", "d1", "198.18.2.21:5432", 1);
	other.dst = "198.18.100.9";
	ASSERT_EQ(apply(e, &other, BE4_1, TS_SYNC_PIN), TS_SYNC_NO_SERVICE, "an unknown VIP");
	ASSERT_EQ(apply(e, &syn, "198.18.2.99:8008", TS_SYNC_PIN), TS_SYNC_NO_BACKEND,
		  "an unknown backend");
	ASSERT_EQ(apply(e, &syn, "198.18.2.21:5432", TS_SYNC_PIN), TS_SYNC_NO_BACKEND,
		  "another service's backend");
	env_backend_del(e, "web4", "v2");
	ASSERT_EQ(apply(e, &syn, BE4_2, TS_SYNC_PIN), TS_SYNC_NO_BACKEND, "a removed backend");
	r = record(&syn, BE4_1, TS_SYNC_PIN);
	r.family = 5;
	ASSERT_EQ(ts_sync_apply(&e->maps, NULL, &r, 1), TS_SYNC_INVALID, "a bad family");
	r = record(&syn, BE4_1, TS_SYNC_PIN);
	r.client[2] = 1;
	ASSERT_EQ(ts_sync_apply(&e->maps, NULL, &r, 1), TS_SYNC_INVALID, "a bad IPv4 address");
	r = record(&syn, BE4_1, 9);
	ASSERT_EQ(ts_sync_apply(&e->maps, NULL, &r, 1), TS_SYNC_INVALID, "a bad type");
	ASSERT_EQ(env_flow_count(e), 0, "nothing pinned");
}

/* A peer's half-open pin is half-open here: followed by the client's packets,
 * but a SYN picks afresh, as at its origin (no blind pre-pin holds). */
static void test_peer_half_open_pin(void **state)
{
	struct ts_env *e = env_of(state);
	struct pkt_spec syn = client_spec(false, 46300, PKT_SYN, 11000);
	struct pkt_spec data = client_spec(false, 46300, PKT_ACK | PKT_PSH, 11001);

	config_web4(e, 0, 1);
	ASSERT_EQ(apply(e, &syn, BE4_1, TS_SYNC_PIN_HALF_OPEN), TS_SYNC_PINNED, "a half-open pin");
	ASSERT_EQ(env_flow_table(e, &syn), 2, "in half_open");
	data.payload = "x";
	expect_forward(e, &data, &web4_to[0], 1, "its data goes to v1 (weight 0)");
	expect_forward(e, &syn, &web4_to[1], 1, "a SYN picks afresh (v2)");
	ASSERT_EQ(apply(e, &syn, BE4_1, TS_SYNC_PIN_HALF_OPEN), TS_SYNC_KEPT_LOCAL,
		  "our own half-open pin stands");
}

int run_sync_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_events_follow_pins),
		TEST(test_no_events_without_sync),
		TEST(test_half_open_pin_event),
		TEST(test_full_ring_counts_lost),
		TEST(test_peer_pin_followed),
		TEST(test_peer_never_moves_ours),
		TEST(test_peer_pin_must_name_ours),
		TEST(test_peer_half_open_pin),
	};

	return cmocka_run_group_tests_name("sync (doc/DESIGN.md, Flow sync)", tests, NULL, NULL);
}
