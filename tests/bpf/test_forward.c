// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * load --forward fib (bpf/forward.h): a rewritten packet leaves through
 * TC_ACT_REDIRECT with the MACs of the FIB's answer, its TTL or hop limit
 * one less, every checksum valid, and, for CHECKSUM_COMPLETE skbs, skb->csum
 * still the sum of the packet (IPv6 has no header checksum to cancel the hop
 * limit's change).
 *
 * bpf_fib_lookup must answer, so each test runs in a network namespace of its
 * own, made by test_net_setup like the test's (the two veth devices, their
 * addresses and routes) with permanent neighbours for the client and the
 * backend; the teardown goes back to the test's namespace, and the test's own
 * goes with it. fib mode forwards confirmed flows only: each starts with a
 * handshake, which goes through the stack.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include <arpa/inet.h>
#include <bpf/libbpf.h>

#include "tcpshift.skel.h"
#include "ts_test.h"

static const __u8 *const client_mac = test_client_mac, *const backend_mac = test_backend_mac;

/* The namespace of the other tests, while one of these runs in its own. */
static int test_netns = -1;

static int setup_netns(void **state)
{
	struct ts_fixture *f;

	setup_env(state);
	f = *state;
	if (!f || f->setup_error[0])
		return 0;
	test_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (test_netns < 0 || test_net_setup()) {
		snprintf(f->setup_error, sizeof(f->setup_error),
			 "cannot make a network namespace: %s", strerror(errno));
		return 0;
	}
	if (test_neighbours_add())
		snprintf(f->setup_error, sizeof(f->setup_error), "cannot add the neighbours");
	return 0;
}

static int teardown_netns(void **state)
{
	if (test_netns >= 0) {
		if (setns(test_netns, CLONE_NEWNET))
			fprintf(stderr, "warning: cannot return to the test's network namespace: %s\n",
				strerror(errno));
		close(test_netns);
		test_netns = -1;
	}
	return teardown_env(state);
}

/* The gateway in fib mode. */
static struct ts_env *fib_env(void **state)
{
	env_of(state); /* fails the test with the setup's error, if any */
	return fixture_env_fib(state, 1);
}

static void expect_fib(struct ts_env *e, const struct pkt_spec *s, bool dst, const char *ep,
		       const __u8 *dmac, const char *what)
{
	char msg[160];
	struct pkt in, out;

	snprintf(msg, sizeof(msg), "%s: verdict (redirect to the FIB's device)", what);
	ASSERT_EQ(env_send(e, s, &in, &out), TC_ACT_REDIRECT, msg);
	expect_fib_forwarded(&out, s, dst, ep, dmac, what);
}

static void fib_forward_and_reply(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *const to[] = { v6 ? BE6_1 : BE4_1 };
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 47000, .dport = 8008,
				.flags = PKT_SYN, .mss = true, .seq = 1000 };
	struct pkt_spec data = handshake_ack_spec(&syn);
	struct pkt_spec reply = { .src = be, .dst = client, .sport = 8008, .dport = 47000,
				  .flags = PKT_PSH | PKT_ACK, .seq = TEST_BACKEND_ISN + 1,
				  .payload = "HTTP/1.1 200 OK\r\n" };

	test_context("IPv%d", v6 ? 6 : 4);
	if (v6)
		config_web6(e, 1, 0);
	else
		config_web4(e, 1, 0);
	handshake(e, &syn, to, 1, "handshake (through the stack)");
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "GET / HTTP/1.1\r\n\r\n";
	reply.ack = data.seq + (__u32)strlen(data.payload);
	expect_fib(e, &data, true, to[0], backend_mac, "data to the VIP");
	expect_fib(e, &reply, false, v6 ? VIP6 : VIP4, client_mac, "reply from the backend");
	test_context(NULL);
}

/*
 * load --mode xdp: the XDP program alone forwards a confirmed flow's packets,
 * both ways, to the same bytes as fib mode at tc (checksums computed by the
 * program itself), and counts them as tc does; what it cannot finish (a SYN,
 * a frame to another MAC, a TTL about to expire, a route to a device that is
 * not the instance's) it passes on untouched, counting nothing.
 */
static void xdp_forward(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *const to[] = { v6 ? BE6_1 : BE4_1 };
	static const __u8 other_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x99 };
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 47100, .dport = 8008,
				.flags = PKT_SYN, .mss = true, .seq = 5000 };
	struct pkt_spec data = handshake_ack_spec(&syn);
	struct pkt_spec reply = { .src = be, .dst = client, .sport = 8008, .dport = 47100,
				  .flags = PKT_PSH | PKT_ACK, .seq = TEST_BACKEND_ISN + 1,
				  .payload = "HTTP/1.1 200 OK\r\n" };
	struct pkt_spec s;
	struct pkt in, out;
	__u64 before;

	test_context("XDP, IPv%d", v6 ? 6 : 4);
	if (v6)
		config_web6(e, 1, 0);
	else
		config_web4(e, 1, 0);
	/* a new flow's SYN is tc's (unless --handshakes xdp) */
	ASSERT_EQ(pkt_build(&in, &syn), 0, "pkt_build");
	if (!test_xdp_handshakes) {
		ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS, "a SYN goes on to tc");
		ASSERT_EQ(pkt_diff(&out, &in), -1, "a SYN passed on untouched");
	}
	handshake(e, &syn, to, 1, "handshake");
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "GET / HTTP/1.1\r\n\r\n";
	reply.ack = data.seq + (__u32)strlen(data.payload);

	/* both ways at XDP, to the bytes fib mode makes at tc */
	for (int dir = 0; dir < 2; dir++) {
		s = dir ? reply : data;
		before = env_backend_packets(e);
		ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
		ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_REDIRECT,
			  dir ? "a reply is redirected at XDP" : "data is redirected at XDP");
		ASSERT_EQ(env_backend_packets(e) - before, 1, "counted once, at XDP");
		expect_fib_forwarded(&out, &s, !dir, dir ? (v6 ? VIP6 : VIP4) : to[0],
				 dir ? client_mac : backend_mac,
				 dir ? "reply at XDP" : "data at XDP");
	}

	/* what XDP leaves to tc, untouched and uncounted */
	s = data;
	s.eth_dst = other_mac;
	before = env_backend_packets(e);
	ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS, "a frame to another MAC goes on");
	ASSERT_EQ(pkt_diff(&out, &in), -1, "untouched");
	s = data;
	s.ttl = 1;
	ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS, "TTL 1 goes on (the stack answers it)");
	ASSERT_EQ(pkt_diff(&out, &in), -1, "untouched");
	ASSERT_EQ(env_backend_packets(e), before, "nothing counted for what XDP passed on");
	test_context(NULL);
}

/* The XDP program's flags for the device of the test named dev. */
static void set_xdp_dev_flags(struct ts_env *e, const char *dev, __u8 flags)
{
	__u32 key = (__u32)test_ifindex(dev);
	struct ts_xdp_dev d;

	ASSERT_EQ(bpf_map__lookup_elem(e->skel->maps.xdp_devs, &key, sizeof(key), &d, sizeof(d),
				       0), 0, "xdp_devs lookup");
	d.flags = flags;
	ASSERT_EQ(ts_bpf_xdp_dev_set(e->skel, &d), 0, "ts_bpf_xdp_dev_set");
}

/*
 * A frame whose TCP checksum is partial (its check field holds only the
 * pseudo-header sum, as a sender on veth with TX checksum offload leaves it)
 * cannot be finished at XDP: updated as a complete checksum and redirected,
 * it would arrive wrong. On a device that can hand over such frames (veth,
 * as the test's) XDP passes it on untouched, counting nothing, both ways;
 * tc finishes it. On a device that cannot (a NIC: the flag cleared) the same
 * bytes are taken for a complete checksum: no check is made there.
 */
static void xdp_partial_csum(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? "2001:2:2::11" : "198.18.2.11";
	const char *const to[] = { v6 ? BE6_1 : BE4_1 };
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 47300, .dport = 8008,
				.flags = PKT_SYN, .mss = true, .seq = 7000 };
	struct pkt_spec data = handshake_ack_spec(&syn);
	struct pkt_spec reply = { .src = be, .dst = client, .sport = 8008, .dport = 47300,
				  .flags = PKT_PSH | PKT_ACK, .seq = TEST_BACKEND_ISN + 1,
				  .payload = "HTTP/1.1 200 OK\r\n" };
	const char *devs[] = { TEST_DEV_CLIENT, TEST_DEV_BACKEND };
	struct pkt in, out;
	__u64 before;

	/* on xdp_forward's web4 and web6 */
	test_context("XDP, partial checksums, IPv%d", v6 ? 6 : 4);
	handshake(e, &syn, to, 1, "handshake (at tc)");
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "GET / HTTP/1.1\r\n\r\n";
	reply.ack = data.seq + (__u32)strlen(data.payload);
	for (int dir = 0; dir < 2; dir++) {
		ASSERT_EQ(pkt_build(&in, dir ? &reply : &data), 0, "pkt_build");
		pkt_partial_csum(&in);
		before = env_backend_packets(e);
		ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS,
			  dir ? "a reply with a partial checksum goes on to tc"
			      : "data with a partial checksum goes on to tc");
		ASSERT_EQ(pkt_diff(&out, &in), -1, "passed on untouched");
		ASSERT_EQ(env_backend_packets(e), before, "nothing counted at XDP");
		/* a NIC's device: not checked, the frame is XDP's */
		set_xdp_dev_flags(e, devs[dir], 0);
		ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_REDIRECT,
			  "the same frame from a NIC: taken as complete, redirected");
		set_xdp_dev_flags(e, devs[dir], TS_XDP_DEV_F_PARTIAL_CSUM);
	}
	test_context(NULL);
}

/*
 * The next-hop cache (forward.h): a packet longer than any the cached route
 * took asks the FIB again, which checks the MTU (over it: passed on, for the
 * stack's ICMP error); a neighbour's new MAC is used within
 * TS_NEXTHOP_TTL_NS.
 */
static void xdp_nexthop_cache(struct ts_env *e)
{
	const char *const to[] = { BE4_1 };
	static const __u8 new_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x12 };
	struct pkt_spec syn = { .src = CLIENT4, .dst = VIP4_ADDR, .sport = 47200, .dport = 8008,
				.flags = PKT_SYN, .mss = true, .seq = 9000 };
	struct pkt_spec data = handshake_ack_spec(&syn);
	char big[251];
	struct pkt in, out;

	test_context("XDP next hops");
	handshake(e, &syn, to, 1, "handshake (at tc)");
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "small";
	ASSERT_EQ(pkt_build(&in, &data), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_REDIRECT, "a small packet: routed, cached");
	ASSERT_EQ(system("ip link set " TEST_DEV_BACKEND " mtu 280"), 0, "mtu 280");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	data.payload = big;
	ASSERT_EQ(pkt_build(&in, &data), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS,
		  "290 bytes over a 280-byte route: passed on (the stack answers it)");
	ASSERT_EQ(system("ip link set " TEST_DEV_BACKEND " mtu 1500"), 0, "mtu 1500");
	ASSERT_EQ(system("ip neigh replace 198.18.2.11 lladdr 02:00:00:00:00:12 dev "
			 TEST_DEV_BACKEND " nud permanent"), 0, "new neighbour MAC");
	usleep(1200 * 1000); /* > TS_NEXTHOP_TTL_NS */
	data.payload = "small";
	ASSERT_EQ(pkt_build(&in, &data), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_REDIRECT, "routed again");
	ASSERT_EQ(memcmp(out.data, new_mac, ETH_ALEN), 0,
		  "the neighbour's new MAC, a second later");
	test_context(NULL);
}

/* Run s through the XDP program alone: it must forward it (as fib mode
 * would: expect_fib_forwarded) to ep, the destination (dst) or source. */
static void expect_xdp(struct ts_env *e, const struct pkt_spec *s, bool dst, const char *ep,
		       const char *what)
{
	struct pkt in, out;

	ASSERT_EQ(pkt_build(&in, s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_REDIRECT, what);
	expect_fib_forwarded(&out, s, dst, ep, dst ? backend_mac : client_mac, what);
}

/* Run s through the XDP program alone: it must pass it on untouched. */
static void expect_xdp_pass(struct ts_env *e, const struct pkt_spec *s, const char *what)
{
	struct pkt in, out;

	ASSERT_EQ(pkt_build(&in, s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS, what);
	ASSERT_EQ(pkt_diff(&out, &in), -1, what);
}

/* Run the calling thread on cpu alone (BPF_PROG_TEST_RUN runs the program
 * there); false when there is no such CPU. */
static bool run_on_cpu(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return !sched_setaffinity(0, sizeof(set), &set);
}

/* A confirmed flow from client port sport to VIP address vip (port 8008),
 * on backend "to" (ep), and its data segment. */
static struct pkt_spec confirmed_flow(struct ts_env *e, const char *vip, __u16 sport,
				      const char *to, const char *what)
{
	const char *const ep[] = { to };
	struct pkt_spec syn = { .src = strchr(vip, ':') ? CLIENT6 : CLIENT4, .dst = vip,
				.sport = sport, .dport = 8008, .flags = PKT_SYN, .mss = true,
				.seq = 20000u + sport };
	struct pkt_spec data = handshake_ack_spec(&syn);

	handshake(e, &syn, ep, 1, what);
	data.flags = PKT_PSH | PKT_ACK;
	data.payload = "data";
	return data;
}

/* s through the XDP program alone: redirected to backend ep, whose MAC is dmac. */
static void expect_xdp_to(struct ts_env *e, const struct pkt_spec *s, const char *ep,
			  const __u8 *dmac, const char *what)
{
	struct pkt in, out;

	ASSERT_EQ(pkt_build(&in, s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_REDIRECT, what);
	expect_fib_forwarded(&out, s, true, ep, dmac, what);
}

/*
 * The per-CPU route cache (route_cache, in front of nexthops: forward.h)
 * serves no stale answer. Each CPU's copy of a next hop expires with the
 * answer it copied: a neighbour's new MAC reaches packets on every CPU within
 * TS_NEXTHOP_TTL_NS, not only on the CPU that asked the FIB again. A backend
 * removed and added again at another address (its id reused) is routed to
 * that address, never by its old route. A destination whose key shares a slot
 * with another's never gets the other's next hop.
 */
static void xdp_route_cache(struct ts_env *e)
{
	static const __u8 mac11[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x11 };
	static const __u8 mac12[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x12 };
	static const __u8 mac13[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x13 };
	static const __u8 mac_a[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x21 };
	static const __u8 mac_b[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x22 };
	struct ts_nexthop_key ka = { .family = TS_AF_INET }, kb;
	struct pkt_spec data, data2, data_a, data_b;
	char cmd[256], ep_a[64], ep_b[64], addr_a[48] = "", addr_b[48] = "";
	int ncpu = libbpf_num_possible_cpus();
	cpu_set_t all;

	test_context("XDP route cache");
	ASSERT_EQ(sched_getaffinity(0, sizeof(all), &all), 0, "sched_getaffinity");
	/* v2 of web4 (198.18.2.12), routed by no other test of this group */
	set_web_weights(e, "web4", 0, 1);
	ASSERT_EQ(system("ip neigh replace 198.18.2.12 lladdr 02:00:00:00:00:11 dev "
			 TEST_DEV_BACKEND " nud permanent"), 0, "neighbour");
	data = confirmed_flow(e, VIP4_ADDR, 47500, BE4_2, "handshake to v2");

	/* every CPU's copy, after a neighbour's change */
	if (ncpu >= 2 && CPU_ISSET(0, &all) && CPU_ISSET(1, &all)) {
		for (int cpu = 0; cpu < 2; cpu++) {
			ASSERT_TRUE(run_on_cpu(cpu), "run on the CPU");
			expect_xdp_to(e, &data, BE4_2, mac11, "the route learnt on each CPU");
		}
		ASSERT_EQ(system("ip neigh replace 198.18.2.12 lladdr 02:00:00:00:00:12 dev "
				 TEST_DEV_BACKEND " nud permanent"), 0, "new neighbour MAC");
		usleep(1200 * 1000); /* > TS_NEXTHOP_TTL_NS */
		ASSERT_TRUE(run_on_cpu(1), "run on CPU 1");
		expect_xdp_to(e, &data, BE4_2, mac12, "CPU 1 asks the FIB again: the new MAC");
		ASSERT_TRUE(run_on_cpu(0), "run on CPU 0");
		expect_xdp_to(e, &data, BE4_2, mac12,
			      "CPU 0's copy expired with its answer: the new MAC there too");
		ASSERT_EQ(sched_setaffinity(0, sizeof(all), &all), 0, "sched_setaffinity");
	} else {
		print_message("    (one CPU: the per-CPU part is skipped)\n");
	}

	/* web6's backends moved to two addresses whose keys share a slot: the
	 * first two of 2001:2:2::1:0/112 (the backends' device) that do */
	ka.family = TS_AF_INET6;
	ka.ifindex = (__u32)test_ifindex(TEST_DEV_CLIENT);
	inet_pton(AF_INET6, "2001:2:2::", ka.daddr);
	kb = ka;
	{
		static __u32 first[1U << TS_ROUTE_CACHE_BITS];	/* host order; 0: none */

		memset(first, 0, sizeof(first));
		for (__u32 a = 0x10001u; a < 0x1ffffu && !addr_b[0]; a++) {
			__u32 slot;

			ka.daddr[3] = htonl(a);
			slot = ts_nexthop_slot(&ka);
			if (!first[slot]) {
				first[slot] = a;
				continue;
			}
			kb.daddr[3] = htonl(first[slot]);
			inet_ntop(AF_INET6, kb.daddr, addr_a, sizeof(addr_a));
			inet_ntop(AF_INET6, ka.daddr, addr_b, sizeof(addr_b));
		}
	}
	ASSERT_TRUE(addr_b[0], "two addresses of 2001:2:2::1:0/112 share a slot");

	snprintf(cmd, sizeof(cmd), "ip neigh replace %s lladdr 02:00:00:00:00:21 dev "
		 TEST_DEV_BACKEND " nud permanent", addr_a);
	ASSERT_EQ(system(cmd), 0, "neighbour a");
	snprintf(cmd, sizeof(cmd), "ip neigh replace %s lladdr 02:00:00:00:00:22 dev "
		 TEST_DEV_BACKEND " nud permanent", addr_b);
	ASSERT_EQ(system(cmd), 0, "neighbour b");
	snprintf(ep_a, sizeof(ep_a), "[%s]:8008", addr_a);
	snprintf(ep_b, sizeof(ep_b), "[%s]:8008", addr_b);
	env_backend_del(e, "web6", "v1");
	env_backend_del(e, "web6", "v2");
	env_backend(e, "web6", "v1", ep_a, 1);
	env_backend(e, "web6", "v2", ep_b, 0);
	data_a = confirmed_flow(e, VIP6_ADDR, 47502, ep_a, "handshake to a");
	expect_xdp_to(e, &data_a, ep_a, mac_a, "a: its own route");
	set_web_weights(e, "web6", 0, 1);
	data_b = confirmed_flow(e, VIP6_ADDR, 47503, ep_b, "handshake to b");
	expect_xdp_to(e, &data_b, ep_b, mac_b, "b, in a's slot: its own route, not a's");
	expect_xdp_to(e, &data_a, ep_a, mac_a, "a again, in b's slot: its own route");

	/* v2 removed, and added again at another address */
	ASSERT_EQ(system("ip neigh replace 198.18.2.13 lladdr 02:00:00:00:00:13 dev "
			 TEST_DEV_BACKEND " nud permanent"), 0, "neighbour of the new address");
	env_backend_del(e, "web4", "v2");
	env_backend(e, "web4", "v2", "198.18.2.13:8008", 1);
	data2 = confirmed_flow(e, VIP4_ADDR, 47501, "198.18.2.13:8008", "handshake to v2 again");
	expect_xdp_to(e, &data2, "198.18.2.13:8008", mac13,
		      "the re-added backend: its new address's route");
	expect_xdp_pass(e, &data, "the removed backend's flow goes on to tc (its reset)");
	set_web_weights(e, "web4", 1, 0);	/* as xdp_nexthop_cache expects it */

	test_context(NULL);
}

/*
 * The XDP program's device check (xdp_dev_slots, xdp_devs): a frame is this
 * host's only on a device of the instance, to that device's own MAC. A device
 * whose ifindex shares a slot with one of the instance's is not taken for it:
 * until it is the instance's too, its frames go on untouched; once it is, it
 * is found in xdp_devs with its own MAC, and the slot's device stays in its
 * slot.
 */
static void xdp_device_slots(struct ts_env *e)
{
	static const __u8 other_mac[ETH_ALEN] = { 0x02, 0, 0, 0, 0, 0x05 };
	int client = test_ifindex(TEST_DEV_CLIENT), other = client + TS_XDP_DEV_SLOTS;
	struct pkt_spec data, s;
	struct ts_err err = {};
	bool target = false;
	char cmd[200];

	test_context("XDP device slots");
	data = confirmed_flow(e, VIP4_ADDR, 47510, BE4_1, "handshake to v1");
	snprintf(cmd, sizeof(cmd), "ip link add tsslot0 index %d address 02:00:00:00:00:05 type "
		 "veth peer name tsslot1 && ip link set tsslot1 up && ip link set tsslot0 up",
		 other);
	ASSERT_EQ(system(cmd), 0, "a device in the client device's slot");
	test_dev_force = other;
	expect_xdp_pass(e, &data, "on a device not the instance's, in the slot of one that is: "
			"passed on");
	ASSERT_EQ(ts_bpf_xdp_dev_add(e->skel, other, false, &target, &err), 0,
		  "ts_bpf_xdp_dev_add of the device in another's slot");
	expect_xdp_pass(e, &data, "to the slot's device's MAC, not its own: passed on");
	s = data;
	s.eth_dst = other_mac;
	expect_xdp_to(e, &s, BE4_1, test_backend_mac, "to its own MAC: forwarded (xdp_devs)");
	test_dev_force = 0;
	expect_xdp_to(e, &data, BE4_1, test_backend_mac,
		      "on the client device: forwarded (still in its slot)");
	ASSERT_EQ(system("ip link del tsslot0"), 0, "ip link del");
	test_context(NULL);
}

/*
 * load --mode xdp --handshakes xdp: the XDP program alone carries a whole
 * connection — the SYN picked and pinned, the backend's SYN-ACK, the client's
 * ACK that confirms it, data, FINs both ways — with the canary signals
 * counted as at tc (an attempt, a handshake, an opened and a closed
 * connection). Without the option the SYN goes on to tc untouched. A SYN
 * that cannot lead to a connection (viable.h: TTL 1, a bad checksum) and an
 * ACK that does not acknowledge the SYN-ACK as the gateway saw it (an
 * off-path sender's) confirm nothing: the first goes to tc untouched, the
 * second to the pinned backend, the flow still half-open.
 */
static void xdp_whole_connection(struct ts_env *e, bool v6)
{
	const char *client = v6 ? CLIENT6 : CLIENT4, *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *vipep = v6 ? VIP6 : VIP4;
	const char *const to[] = { v6 ? BE6_1 : BE4_1 };
	struct pkt_spec syn = { .src = client, .dst = vip, .sport = 47400, .dport = 8008,
				.flags = PKT_SYN, .mss = true, .seq = 11000 };
	struct pkt_spec ack = handshake_ack_spec(&syn), s;
	struct ts_backend_stats st0, st;
	char addr[PKT_EPSTRLEN];
	struct ts_flow flow;
	__u64 promoted = env_counter(e, TS_CNT_PROMOTED);
	struct pkt in, out;

	test_context("XDP handshakes, IPv%d", v6 ? 6 : 4);
	st0 = env_backend_stats(e, web_service(v6), "v1");

	/* what cannot lead to a connection is tc's */
	s = syn;
	s.ttl = 1;
	expect_xdp_pass(e, &s, "a SYN with TTL 1 goes on to tc, untouched");
	ASSERT_EQ(pkt_build(&in, &syn), 0, "pkt_build");
	in.data[in.len - 1] ^= 0xff; /* the MSS option's last byte: a bad checksum */
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS, "a SYN with a bad checksum goes to tc");
	ASSERT_EQ(pkt_diff(&out, &in), -1, "a SYN with a bad checksum: untouched");
	ASSERT_EQ(env_flow_lookup(e, &syn, &flow), -1, "neither is pinned");

	expect_xdp(e, &syn, true, to[0], "the SYN, picked and forwarded at XDP");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_SYN_SEEN, "pinned half-open at XDP");
	s = backend_syn_ack_spec(&syn, to[0], addr);
	expect_xdp(e, &s, false, vipep, "the backend's SYN-ACK, from the VIP at XDP");

	/* an ACK of another sequence number: no confirmation */
	s = ack;
	s.ack += 1000;
	expect_xdp(e, &s, true, to[0], "a blind ACK goes to the pinned backend");
	ASSERT_EQ(env_counter(e, TS_CNT_PROMOTED), promoted, "a blind ACK confirms nothing");

	expect_xdp(e, &ack, true, to[0], "the client's ACK, at XDP");
	ASSERT_EQ(env_counter(e, TS_CNT_PROMOTED), promoted + 1, "the ACK confirms the flow");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_ESTABLISHED, "confirmed at XDP");

	s = ack;
	s.flags = PKT_FIN | PKT_ACK;
	expect_xdp(e, &s, true, to[0], "the client's FIN, at XDP");
	s = backend_spec(&syn, to[0], PKT_FIN | PKT_ACK, addr);
	s.ack = ack.seq + 1;
	expect_xdp(e, &s, false, vipep, "the backend's FIN, at XDP");
	ASSERT_EQ(env_flow_state(e, &syn), TS_TCP_CLOSED, "closed by FINs both ways");

	st = env_backend_stats(e, web_service(v6), "v1");
	ASSERT_EQ(st.new_flows - st0.new_flows, 1, "one attempt counted");
	ASSERT_EQ(st.handshakes - st0.handshakes, 1, "one handshake counted");
	ASSERT_EQ(st.opened - st0.opened, 1, "one connection opened");
	ASSERT_EQ(st.closed - st0.closed, 1, "and closed");
	ASSERT_EQ(st.ended - st0.ended, 1, "and ended");
	test_context(NULL);
}

/*
 * With --handshakes xdp, a backend's answer to the gateway itself (a local
 * client's socket: bpf/local.h) goes on to tc untouched even when a
 * half-open pin names its 4-tuple (here a pickup of a packet with the
 * gateway's own address as source): XDP finishes a packet only along a route
 * the FIB gave it, and the FIB gives none to the gateway's own address. The
 * XDP program relies on that instead of looking the answer up in local_flows.
 */
static void xdp_answer_to_gateway_itself(struct ts_env *e, bool v6)
{
	const char *self = v6 ? "2001:2:1::1" : "198.18.1.1";
	const char *vip = v6 ? VIP6_ADDR : VIP4_ADDR;
	const char *be = v6 ? BE6_1 : BE4_1;
	struct pkt_spec pickup = { .src = self, .dst = vip, .sport = 47410, .dport = 8008,
				   .flags = PKT_ACK, .seq = 21000, .ack = 5 };
	struct pkt_spec s;
	char addr[PKT_EPSTRLEN];
	struct pkt in, out;

	test_context("an answer to the gateway itself at XDP, IPv%d", v6 ? 6 : 4);
	ASSERT_EQ(pkt_build(&in, &pickup), 0, "pkt_build");
	env_run(e, &in, &out);
	ASSERT_EQ(env_flow_table(e, &pickup), 2, "the pickup is pinned half-open");
	s = backend_spec(&pickup, be, PKT_SYN | PKT_ACK, addr);
	s.seq = 9000;
	s.ack = pickup.seq;
	s.mss = true;
	ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS,
		  "a SYN-ACK to the gateway's own address goes on to tc");
	ASSERT_EQ(pkt_diff(&out, &in), -1, "untouched");
	s.flags = PKT_ACK | PKT_PSH;
	s.mss = false;
	s.seq++;
	s.payload = "up";
	ASSERT_EQ(pkt_build(&in, &s), 0, "pkt_build");
	ASSERT_EQ(env_run_xdp(e, &in, &out), XDP_PASS, "its data goes on to tc");
	ASSERT_EQ(pkt_diff(&out, &in), -1, "untouched");
	test_context(NULL);
}

static void test_xdp_whole_connections(void **state)
{
	struct ts_env *e;
	struct pkt_spec syn = { .src = CLIENT4, .dst = VIP4_ADDR, .sport = 47401, .dport = 8008,
				.flags = PKT_SYN, .mss = true, .seq = 12000 };
	char why[600];

	env_of(state); /* fails the test with the setup's error, if any */
	/* without the option: a SYN is tc's */
	e = fixture_env_handshakes(state, 1, false);
	if (env_xdp_devices(e, why, sizeof(why)))
		fail_msg("%s", why);
	config_web4(e, 1, 0);
	expect_xdp_pass(e, &syn, "without --handshakes xdp a SYN goes on to tc");
	env_close(e);

	e = fixture_env_handshakes(state, 1, true);
	if (env_xdp_devices(e, why, sizeof(why)))
		fail_msg("%s", why);
	config_web4(e, 1, 0);
	config_web6(e, 1, 0);
	xdp_whole_connection(e, false);
	xdp_whole_connection(e, true);
	xdp_answer_to_gateway_itself(e, false);
	xdp_answer_to_gateway_itself(e, true);
}

static void test_fib_forward(void **state)
{
	struct ts_env *e = fib_env(state);

	fib_forward_and_reply(e, false);
	fib_forward_and_reply(e, true);
}

/* The IPv6 hop limit decrement keeps a CHECKSUM_COMPLETE skb->csum
 * in step (bpf_csum_update); IPv4 along, which its header checksum covers. */
static void test_fib_forward_checksum_complete(void **state)
{
	struct ts_env *e = fib_env(state);

	if (!env_csum_complete(e))
		return;
	fib_forward_and_reply(e, false);
	fib_forward_and_reply(e, true);
}

static void test_xdp_forward(void **state)
{
	struct ts_env *e = env_of(state);
	char why[600];

	/* the devices of this test's own namespace */
	if (env_xdp_devices(e, why, sizeof(why)))
		fail_msg("%s", why);
	xdp_forward(e, false);
	xdp_forward(e, true);
	xdp_partial_csum(e, false);
	xdp_partial_csum(e, true);
	xdp_route_cache(e); /* before the IPv6 addresses go with a 280-byte MTU */
	xdp_device_slots(e);
	xdp_nexthop_cache(e); /* on xdp_forward's web4 */
}

int run_forward_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_xdp_forward, setup_netns, teardown_netns),
		cmocka_unit_test_setup_teardown(test_xdp_whole_connections, setup_netns, teardown_netns),
		cmocka_unit_test_setup_teardown(test_fib_forward, setup_netns, teardown_netns),
		cmocka_unit_test_setup_teardown(test_fib_forward_checksum_complete, setup_netns,
						teardown_netns),
	};

	return cmocka_run_group_tests_name("forward (--forward fib)", tests, NULL, NULL);
}
