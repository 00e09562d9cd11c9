// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Hands off everything else (invariant 5): packets not to a service and not a
 * reply of a pinned flow come out byte for byte as they went in, with
 * TC_ACT_OK; malformed, truncated and fragmented packets likewise, and are
 * counted. None of them creates a flow or is accounted to a backend.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>

#include "ts_test.h"

#define IP_MF		0x2000	/* frag_off flags: net/ip.h, not in UAPI */
#define IP6_MF		0x0001	/* fragment header M bit (RFC 8200) */
#define NO_COUNTER	(-1)

/* {description, input packet (built, then broken by mangle), expected verdict,
 * expected counter}; the expected output is always the input. */
struct passthrough_fixture {
	const char	*desc;
	struct pkt_spec	in;
	void		(*mangle)(struct pkt *p);
	int		verdict;
	int		counter;	/* enum ts_counter that counts it, or NO_COUNTER */
	/* Shorter than its IP header: recent kernels refuse such a frame in
	 * BPF_PROG_TEST_RUN (EINVAL), so the case is skipped there. */
	bool		short_l3;
};

/* ---- ways to break a packet ------------------------------------------------------- */

static void set_len(struct pkt *p, __u32 len)
{
	p->len = len;
}

static void eth_only(struct pkt *p)
{
	set_len(p, ETH_HLEN);
}

static void cut_ip4_header(struct pkt *p)
{
	set_len(p, ETH_HLEN + sizeof(struct iphdr) - 8);
}

static void cut_tcp_header_v4(struct pkt *p)
{
	struct iphdr *ip = pkt_ip4(p);

	ip->tot_len = htons(sizeof(struct iphdr) + 10);
	set_len(p, ETH_HLEN + ntohs(ip->tot_len));
	pkt_fix_ip_csum(p);
}

static void ihl_4(struct pkt *p)
{
	pkt_ip4(p)->ihl = 4;
	pkt_fix_ip_csum(p);
}

static void ihl_beyond_tot_len(struct pkt *p)
{
	pkt_ip4(p)->ihl = 15; /* 60 bytes, tot_len is 44 */
	pkt_fix_ip_csum(p);
}

static void tot_len_beyond_packet(struct pkt *p)
{
	struct iphdr *ip = pkt_ip4(p);

	ip->tot_len = htons(ntohs(ip->tot_len) + 1);
	pkt_fix_ip_csum(p);
}

static void ip_version_5(struct pkt *p)
{
	pkt_ip4(p)->version = 5;
	pkt_fix_ip_csum(p);
}

static void doff_4(struct pkt *p)
{
	pkt_tcp(p)->doff = 4;
	pkt_fix_csums(p);
}

static void doff_15(struct pkt *p)
{
	pkt_tcp(p)->doff = 15; /* 60 bytes: beyond the segment */
	pkt_fix_csums(p);
}

/* A SYN with MSS (doff 6) loses its option bytes, IP lengths adjusted. */
static void cut_tcp_options(struct pkt *p)
{
	struct iphdr *ip = pkt_ip4(p);
	struct ipv6hdr *ip6 = pkt_ip6(p);

	if (ip) {
		ip->tot_len = htons(ntohs(ip->tot_len) - 4);
		pkt_fix_ip_csum(p);
	} else {
		ip6->payload_len = htons(ntohs(ip6->payload_len) - 4);
	}
	set_len(p, p->len - 4);
}

static void cut_ip6_header(struct pkt *p)
{
	set_len(p, ETH_HLEN + sizeof(struct ipv6hdr) - 10);
}

static void cut_tcp_header_v6(struct pkt *p)
{
	pkt_ip6(p)->payload_len = htons(10);
	set_len(p, ETH_HLEN + sizeof(struct ipv6hdr) + 10);
}

static void payload_len_beyond_packet(struct pkt *p)
{
	struct ipv6hdr *ip6 = pkt_ip6(p);

	ip6->payload_len = htons(ntohs(ip6->payload_len) + 1);
}

static void ip6_version_4(struct pkt *p)
{
	pkt_ip6(p)->version = 4;
}

static void run_passthrough_fixtures(struct ts_env *e, const struct passthrough_fixture *f,
				      size_t n)
{
	__u64 packets = env_backend_packets(e);
	__u32 flows = env_flow_count(e);

	for (size_t i = 0; i < n; i++) {
		__u64 before[TS_CNT_MAX], after[TS_CNT_MAX];
		struct pkt in;

		test_context("fixture %zu \"%s\"", i, f[i].desc);
		ASSERT_EQ(pkt_build(&in, &f[i].in), 0, "pkt_build");
		if (f[i].mangle)
			f[i].mangle(&in);
		env_counters(e, before);
		if (f[i].short_l3) {
			struct pkt out;
			int verdict, r = env_try_run(e, &in, &out, &verdict);

			if (r == -EINVAL) {
				printf("  skipped \"%s\": the kernel refuses a %u-byte frame in "
				       "BPF_PROG_TEST_RUN (EINVAL)\n", f[i].desc, in.len);
				continue;
			}
		}
		expect_untouched(e, &in, f[i].verdict, "hands off");
		env_counters(e, after);
		for (int c = 0; c < TS_CNT_MAX; c++) {
			char what[96];

			snprintf(what, sizeof(what), "counter %s", ts_counter_name(c));
			ASSERT_EQ(after[c] - before[c], c == f[i].counter, what);
		}
		ASSERT_EQ(env_flow_count(e), flows, "flows pinned");
		ASSERT_EQ(env_backend_packets(e), packets, "packets in backend_stats");
	}
	test_context(NULL);
}

/* The service set-up of every test here, with one flow pinned to v1 each way. */
static void config_pinned(struct ts_env *e)
{
	static const char *const v1_4[] = { BE4_1 }, *const v1_6[] = { BE6_1 };

	config_web4(e, 1, 0);
	config_web6(e, 1, 0);
	expect_forward(e, &(struct pkt_spec){ .src = CLIENT4, .dst = VIP4_ADDR, .sport = 48000,
					      .dport = 8008, .flags = PKT_SYN },
		       v1_4, 1, "SYN of the pinned IPv4 flow");
	expect_forward(e, &(struct pkt_spec){ .src = CLIENT6, .dst = VIP6_ADDR, .sport = 48000,
					      .dport = 8008, .flags = PKT_SYN },
		       v1_6, 1, "SYN of the pinned IPv6 flow");
}

#define SYN4(daddr, port)                                                                     \
	.src = CLIENT4, .sport = 48100, .dst = (daddr), .dport = (port), .flags = PKT_SYN,    \
	.mss = true
#define SYN6(daddr, port)                                                                     \
	.src = CLIENT6, .sport = 48100, .dst = (daddr), .dport = (port), .flags = PKT_SYN,    \
	.mss = true

static const struct passthrough_fixture not_ours[] = {
	{ "IPv4 SYN to another address", { SYN4("198.18.100.2", 8008) }, NULL, TC_ACT_OK,
	  NO_COUNTER },
	{ "IPv4 SYN to the VIP, another port", { SYN4(VIP4_ADDR, 8009) }, NULL, TC_ACT_OK,
	  NO_COUNTER },
	{ "IPv4 SYN straight to a backend", { SYN4("198.18.2.11", 8008) }, NULL, TC_ACT_OK,
	  NO_COUNTER },
	{ "UDP to the VIP:port",
	  { SYN4(VIP4_ADDR, 8008), .proto = IPPROTO_UDP, .payload = "datagram" }, NULL,
	  TC_ACT_OK, NO_COUNTER },
	{ "ICMP echo to the VIP", { SYN4(VIP4_ADDR, 0), .proto = IPPROTO_ICMP, .payload = "ping" },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "ARP request for the VIP", { SYN4(VIP4_ADDR, 0), .arp = true }, NULL, TC_ACT_OK,
	  NO_COUNTER },
	{ "a VIP SYN under a non-IP ethertype", { SYN4(VIP4_ADDR, 8008), .ethertype = 0x88b5 },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "a bare Ethernet header, non-IP ethertype",
	  { SYN4(VIP4_ADDR, 8008), .ethertype = 0x88b5 }, eth_only, TC_ACT_OK, NO_COUNTER },
	{ "IPv6 SYN to another address", { SYN6("2001:2:100::2", 8008) }, NULL, TC_ACT_OK,
	  NO_COUNTER },
	{ "IPv6 SYN to the VIP, another port", { SYN6(VIP6_ADDR, 80) }, NULL, TC_ACT_OK,
	  NO_COUNTER },
	{ "UDP to the IPv6 VIP:port", { SYN6(VIP6_ADDR, 8008), .proto = IPPROTO_UDP }, NULL,
	  TC_ACT_OK, NO_COUNTER },
	{ "ICMPv6 echo to the VIP", { SYN6(VIP6_ADDR, 0), .proto = IPPROTO_ICMPV6 }, NULL,
	  TC_ACT_OK, NO_COUNTER },
	{ "IPv6 UDP fragment to the VIP (only TCP fragments are counted)",
	  { SYN6(VIP6_ADDR, 8008), .proto = IPPROTO_UDP, .v6_ext = PKT_V6_FRAGMENT,
	    .frag_off = IP6_MF },
	  NULL, TC_ACT_OK, NO_COUNTER },
	/* TCP behind IPv6 extension headers is found and counted, never rewritten */
	{ "IPv6 SYN to another port behind a hop-by-hop header",
	  { SYN6(VIP6_ADDR, 8009), .v6_ext = PKT_V6_HOPOPTS }, NULL, TC_ACT_OK, NO_COUNTER },
	{ "IPv6 SYN to another port behind an authentication header",
	  { SYN6(VIP6_ADDR, 8009), .v6_ext = PKT_V6_AUTH }, NULL, TC_ACT_OK, NO_COUNTER },
	/* packets near a backend endpoint that are not from it (packets from a
	 * backend address:port are replies, pinned here or not: test_nat.c) */
	{ "from v1, another port, to the pinned client",
	  { .src = "198.18.2.11", .sport = 8009, .dst = CLIENT4, .dport = 48000,
	    .flags = PKT_ACK },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "UDP from v1 to the pinned client",
	  { .src = "198.18.2.11", .sport = 8008, .dst = CLIENT4, .dport = 48000,
	    .proto = IPPROTO_UDP },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "from the VIP to the client (already rewritten)",
	  { .src = VIP4_ADDR, .sport = 8008, .dst = CLIENT4, .dport = 48000, .flags = PKT_ACK },
	  NULL, TC_ACT_OK, NO_COUNTER },
};

/*
 * Frames not addressed to this host: BPF_PROG_TEST_RUN gives the frame to
 * eth_type_trans on the device it arrives on (TEST_DEV_MAC), so another
 * unicast MAC makes it PACKET_OTHERHOST, ff:ff:ff:ff:ff:ff PACKET_BROADCAST
 * and another group MAC PACKET_MULTICAST. The stack would not route them;
 * neither do we.
 */
static const __u8 other_host[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x99 };
static const __u8 broadcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
static const __u8 multicast6[6] = { 0x33, 0x33, 0x00, 0x00, 0x00, 0x01 };

#define ACK4_PINNED                                                                           \
	.src = CLIENT4, .sport = 48000, .dst = VIP4_ADDR, .dport = 8008, .flags = PKT_ACK,    \
	.payload = "data"
#define ACK6_PINNED                                                                           \
	.src = CLIENT6, .sport = 48000, .dst = VIP6_ADDR, .dport = 8008, .flags = PKT_ACK,    \
	.payload = "data"

static const struct passthrough_fixture not_to_us[] = {
	{ "IPv4 SYN to the VIP, to another host's MAC",
	  { SYN4(VIP4_ADDR, 8008), .eth_dst = other_host }, NULL, TC_ACT_OK, NO_COUNTER },
	{ "IPv4 SYN to the VIP, broadcast", { SYN4(VIP4_ADDR, 8008), .eth_dst = broadcast }, NULL,
	  TC_ACT_OK, NO_COUNTER },
	{ "IPv6 SYN to the VIP, to another host's MAC",
	  { SYN6(VIP6_ADDR, 8008), .eth_dst = other_host }, NULL, TC_ACT_OK, NO_COUNTER },
	{ "IPv6 SYN to the VIP, multicast", { SYN6(VIP6_ADDR, 8008), .eth_dst = multicast6 },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "IPv4 data of the pinned flow, to another host's MAC",
	  { ACK4_PINNED, .eth_dst = other_host }, NULL, TC_ACT_OK, NO_COUNTER },
	{ "IPv6 data of the pinned flow, multicast", { ACK6_PINNED, .eth_dst = multicast6 },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "reply from v1 to the pinned client, to another host's MAC",
	  { .src = "198.18.2.11", .sport = 8008, .dst = CLIENT4, .dport = 48000,
	    .flags = PKT_ACK, .eth_dst = other_host },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "IPv6 reply from v1, broadcast",
	  { .src = "2001:2:2::11", .sport = 8008, .dst = CLIENT6, .dport = 48000,
	    .flags = PKT_ACK, .eth_dst = broadcast },
	  NULL, TC_ACT_OK, NO_COUNTER },
	{ "malformed, to another host's MAC: not ours, not counted",
	  { SYN4(VIP4_ADDR, 8008), .eth_dst = other_host }, doff_4, TC_ACT_OK, NO_COUNTER },
	{ "IPv4 fragment to the VIP, broadcast: not counted",
	  { SYN4(VIP4_ADDR, 8008), .frag_off = IP_MF, .eth_dst = broadcast }, NULL, TC_ACT_OK,
	  NO_COUNTER },
};

static const struct passthrough_fixture malformed[] = {
	{ "Ethernet header only, IPv4 ethertype", { SYN4(VIP4_ADDR, 8008) }, eth_only, TC_ACT_OK,
	  TS_CNT_MALFORMED, true },
	{ "IPv4 header cut short", { SYN4(VIP4_ADDR, 8008) }, cut_ip4_header, TC_ACT_OK,
	  TS_CNT_MALFORMED, true },
	{ "TCP header cut short", { SYN4(VIP4_ADDR, 8008) }, cut_tcp_header_v4, TC_ACT_OK,
	  TS_CNT_MALFORMED },
	{ "ihl 4", { SYN4(VIP4_ADDR, 8008) }, ihl_4, TC_ACT_OK, TS_CNT_MALFORMED },
	{ "ihl beyond tot_len", { SYN4(VIP4_ADDR, 8008) }, ihl_beyond_tot_len,
	  TC_ACT_OK, TS_CNT_MALFORMED },
	{ "tot_len one byte beyond the packet", { SYN4(VIP4_ADDR, 8008), .payload = "data" },
	  tot_len_beyond_packet, TC_ACT_OK, TS_CNT_MALFORMED },
	{ "IP version 5 under the IPv4 ethertype", { SYN4(VIP4_ADDR, 8008) }, ip_version_5,
	  TC_ACT_OK, TS_CNT_MALFORMED },
	{ "TCP doff 4", { SYN4(VIP4_ADDR, 8008) }, doff_4, TC_ACT_OK, TS_CNT_MALFORMED },
	{ "TCP doff beyond the packet", { SYN4(VIP4_ADDR, 8008) }, doff_15, TC_ACT_OK,
	  TS_CNT_MALFORMED },
	{ "TCP options cut off (doff 6, 20 bytes)", { SYN4(VIP4_ADDR, 8008) }, cut_tcp_options,
	  TC_ACT_OK, TS_CNT_MALFORMED },
	{ "malformed to no service is counted too", { SYN4("198.18.100.2", 8008) }, doff_4,
	  TC_ACT_OK, TS_CNT_MALFORMED },
	{ "IPv6 header cut short", { SYN6(VIP6_ADDR, 8008) }, cut_ip6_header, TC_ACT_OK,
	  TS_CNT_MALFORMED, true },
	{ "IPv6 TCP header cut short", { SYN6(VIP6_ADDR, 8008) }, cut_tcp_header_v6, TC_ACT_OK,
	  TS_CNT_MALFORMED },
	{ "IPv6 payload_len one byte beyond the packet", { SYN6(VIP6_ADDR, 8008) },
	  payload_len_beyond_packet, TC_ACT_OK, TS_CNT_MALFORMED },
	{ "IP version 4 under the IPv6 ethertype", { SYN6(VIP6_ADDR, 8008) }, ip6_version_4,
	  TC_ACT_OK, TS_CNT_MALFORMED },
	{ "IPv6 TCP doff 4", { SYN6(VIP6_ADDR, 8008), .payload = "abcdefgh" }, doff_4,
	  TC_ACT_OK, TS_CNT_MALFORMED },
	{ "IPv6 TCP doff beyond the packet", { SYN6(VIP6_ADDR, 8008) }, doff_15, TC_ACT_OK,
	  TS_CNT_MALFORMED },
	{ "IPv6 TCP options cut off", { SYN6(VIP6_ADDR, 8008) }, cut_tcp_options, TC_ACT_OK,
	  TS_CNT_MALFORMED },
	/* a malformed "reply" is not rewritten either */
	{ "reply from v1 with TCP doff 4",
	  { .src = "198.18.2.11", .sport = 8008, .dst = CLIENT4, .dport = 48000,
	    .flags = PKT_ACK },
	  doff_4, TC_ACT_OK, TS_CNT_MALFORMED },
};

/* to a service, behind IPv6 extension headers: counted, never rewritten */
static const struct passthrough_fixture v6_ext[] = {
	{ "IPv6 SYN to the VIP behind a hop-by-hop header",
	  { SYN6(VIP6_ADDR, 8008), .v6_ext = PKT_V6_HOPOPTS }, NULL, TC_ACT_OK, TS_CNT_V6_EXT },
	/* AH's length counts 4-byte words (RFC 4302), the others' 8-byte units:
	 * each header's length by its own type, not by the next one's */
	{ "IPv6 SYN to the VIP behind an authentication header",
	  { SYN6(VIP6_ADDR, 8008), .v6_ext = PKT_V6_AUTH }, NULL, TC_ACT_OK, TS_CNT_V6_EXT },
	{ "IPv6 SYN to the VIP behind hop-by-hop (16 bytes), then AH",
	  { SYN6(VIP6_ADDR, 8008), .v6_ext = PKT_V6_HOPOPTS_AUTH }, NULL, TC_ACT_OK,
	  TS_CNT_V6_EXT },
	{ "IPv6 data of the pinned flow behind AH (never rewritten)",
	  { .src = CLIENT6, .sport = 48000, .dst = VIP6_ADDR, .dport = 8008, .flags = PKT_ACK,
	    .v6_ext = PKT_V6_AUTH, .payload = "authenticated" },
	  NULL, TC_ACT_OK, TS_CNT_V6_EXT },
};

static const struct passthrough_fixture fragments[] = {
	{ "IPv4 first fragment (MF) to the VIP",
	  { SYN4(VIP4_ADDR, 8008), .frag_off = IP_MF, .payload = "first" }, NULL, TC_ACT_OK,
	  TS_CNT_FRAGMENT },
	{ "IPv4 middle fragment (MF, offset 185)",
	  { SYN4(VIP4_ADDR, 8008), .frag_off = IP_MF | 185 }, NULL, TC_ACT_OK, TS_CNT_FRAGMENT },
	{ "IPv4 last fragment (offset 185)", { SYN4(VIP4_ADDR, 8008), .frag_off = 185 }, NULL,
	  TC_ACT_OK, TS_CNT_FRAGMENT },
	{ "IPv4 fragment of the pinned flow",
	  { .src = CLIENT4, .sport = 48000, .dst = VIP4_ADDR, .dport = 8008, .flags = PKT_ACK,
	    .frag_off = IP_MF, .payload = "pinned but fragmented" },
	  NULL, TC_ACT_OK, TS_CNT_FRAGMENT },
	{ "IPv6 first fragment (M) to the VIP",
	  { SYN6(VIP6_ADDR, 8008), .v6_ext = PKT_V6_FRAGMENT, .frag_off = IP6_MF }, NULL,
	  TC_ACT_OK, TS_CNT_FRAGMENT },
	{ "IPv6 last fragment (offset 185) to the VIP",
	  { SYN6(VIP6_ADDR, 8008), .v6_ext = PKT_V6_FRAGMENT, .frag_off = 185 << 3 }, NULL,
	  TC_ACT_OK, TS_CNT_FRAGMENT },
	{ "IPv6 fragment of the pinned flow",
	  { .src = CLIENT6, .sport = 48000, .dst = VIP6_ADDR, .dport = 8008, .flags = PKT_ACK,
	    .v6_ext = PKT_V6_FRAGMENT, .frag_off = IP6_MF, .payload = "pinned" },
	  NULL, TC_ACT_OK, TS_CNT_FRAGMENT },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Invariant 5: not to a service and not a reply of a pinned flow. */
static void test_not_for_a_service_untouched(void **state)
{
	struct ts_env *e = env_of(state);

	config_pinned(e);
	run_passthrough_fixtures(e, not_ours, N(not_ours));
	run_passthrough_fixtures(e, v6_ext, N(v6_ext));
}

/* Invariant 5: frames not addressed to this host (pkt_type not PACKET_HOST)
 * are passed untouched, pin nothing, count nothing, even to a VIP or of a
 * pinned flow; the same packets to the host's MAC are ours. */
static void test_not_to_this_host_untouched(void **state)
{
	static const char *const v1_4[] = { BE4_1 }, *const v1_6[] = { BE6_1 };
	struct ts_env *e = env_of(state);

	config_pinned(e);
	run_passthrough_fixtures(e, not_to_us, N(not_to_us));
	expect_forward(e, &(struct pkt_spec){ ACK4_PINNED }, v1_4, 1,
		       "the IPv4 data to the host's MAC");
	expect_forward(e, &(struct pkt_spec){ ACK6_PINNED }, v1_6, 1,
		       "the IPv6 data to the host's MAC");
}

/* Invariant 5: malformed or truncated: passed untouched and counted. */
static void test_malformed_untouched_and_counted(void **state)
{
	struct ts_env *e = env_of(state);

	config_pinned(e);
	run_passthrough_fixtures(e, malformed, N(malformed));
}

/* Invariant 5: IP fragments to a service: passed untouched and counted. */
static void test_fragments_untouched_and_counted(void **state)
{
	struct ts_env *e = env_of(state);

	config_pinned(e);
	run_passthrough_fixtures(e, fragments, N(fragments));
}

/* Invariant 5 with no configuration at all: nothing is ours. */
static void test_nothing_configured_untouched(void **state)
{
	struct ts_env *e = env_of(state);

	run_passthrough_fixtures(e, not_ours, N(not_ours));
	run_passthrough_fixtures(e, &(struct passthrough_fixture){
		"SYN to the would-be VIP", { SYN4(VIP4_ADDR, 8008) }, NULL, TC_ACT_OK,
		NO_COUNTER }, 1);
}

int run_handsoff_tests(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_not_for_a_service_untouched),
		TEST(test_not_to_this_host_untouched),
		TEST(test_malformed_untouched_and_counted),
		TEST(test_fragments_untouched_and_counted),
		TEST(test_nothing_configured_untouched),
	};

	return cmocka_run_group_tests_name("handsoff (invariant 5)", tests, NULL, NULL);
}
