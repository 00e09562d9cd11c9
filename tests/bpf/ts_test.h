/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The bpf test layer: the real BPF object, loaded with its maps pinned in a
 * test's own directory, configured through libtcpshift, run on crafted
 * packets with BPF_PROG_TEST_RUN.
 *
 * Checks are ASSERT_*(got, want, "what") on top of cmocka: a failed check
 * prints what was checked (and the fixture being run), then fails the test;
 * the test's teardown still unloads and unpins.
 */
#ifndef TS_TEST_H
#define TS_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>
#include <linux/pkt_cls.h> /* TC_ACT_OK, TC_ACT_SHOT */

#include "libtcpshift.h"
#include "pkt.h"

/* ---- checks ---------------------------------------------------------------- */

/* Name the fixture being run: printed before every failed check until reset
 * (setup resets it). */
void test_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *test_context_str(void);

#define ASSERT_CMP_(got, want, op, optext, what)                                                \
	do {                                                                                    \
		long long got_ = (long long)(got), want_ = (long long)(want);                   \
		if (!(got_ op want_))                                                           \
			fail_msg("%s%s: got %lld, want %s%lld", test_context_str(), (what),     \
				 got_, optext, want_);                                          \
	} while (0)

#define ASSERT_EQ(got, want, what)	ASSERT_CMP_(got, want, ==, "", what)
#define ASSERT_NEQ(got, want, what)	ASSERT_CMP_(got, want, !=, "anything but ", what)
#define ASSERT_LT(got, want, what)	ASSERT_CMP_(got, want, <, "< ", what)
#define ASSERT_LE(got, want, what)	ASSERT_CMP_(got, want, <=, "<= ", what)
#define ASSERT_GT(got, want, what)	ASSERT_CMP_(got, want, >, "> ", what)
#define ASSERT_GE(got, want, what)	ASSERT_CMP_(got, want, >=, ">= ", what)

#define ASSERT_TRUE(cond, what)                                                                 \
	do {                                                                                    \
		if (!(cond))                                                                    \
			fail_msg("%s%s: got false, want true (%s)", test_context_str(),         \
				 (what), #cond);                                                \
	} while (0)

#define ASSERT_STREQ(got, want, what)                                                           \
	do {                                                                                    \
		const char *got_ = (got), *want_ = (want);                                      \
		if (strcmp(got_, want_))                                                        \
			fail_msg("%s%s: got \"%s\", want \"%s\"", test_context_str(),           \
				 (what), got_, want_);                                          \
	} while (0)

/* A libtcpshift call returned 0; else print its error message. */
#define ASSERT_OK(r, err, what)                                                                 \
	do {                                                                                    \
		int r_ = (r);                                                                   \
		if (r_)                                                                         \
			fail_msg("%s%s: returned %d: %s", test_context_str(), (what), r_,       \
				 (err).msg);                                                    \
	} while (0)

/* Two packets are byte for byte equal; else dump both, marking the first difference. */
#define ASSERT_PKT_EQ(got, want, what)                                                          \
	do {                                                                                    \
		long at_ = pkt_diff((got), (want));                                             \
		if (at_ >= 0) {                                                                 \
			pkt_dump("got", (got), at_);                                            \
			pkt_dump("want", (want), at_);                                          \
			fail_msg("%s%s: packets differ at byte %ld", test_context_str(),        \
				 (what), at_);                                                  \
		}                                                                               \
	} while (0)

/* ---- the loaded program ---------------------------------------------------- */

#define TEST_BPFFS		"/sys/fs/bpf"
#define TEST_SEED		0x5eed1234U
#define TEST_MAX_FLOWS		4096
#define TEST_MAX_FLOWS_LARGE	65536
#define TEST_MAX_ENVS		3

struct ts_env {
	char			pin_dir[96];
	struct tcpshift_bpf	*skel;
	int			prog_fd;	/* tc ingress */
	int			egress_fd;	/* tc egress */
	int			xdp_fd;		/* XDP (load --mode xdp) */
	struct ts_maps		maps;
	bool			maps_open;
	bool			dir_made;
	__u32			run_flags;	/* BPF_PROG_TEST_RUN flags of every run */
};

/* A test's state: env[0] is opened by the setup, the others by the test;
 * the teardown closes every one that is open. A setup that cannot load
 * leaves its reason here and the test fails with it: cmocka 1.1 does not
 * count a failed setup in its "[  FAILED  ] N test(s)" line. */
struct ts_fixture {
	struct ts_env	env[TEST_MAX_ENVS];
	char		setup_error[600];
};

/* Load the object with its maps pinned in TEST_BPFFS/tcpshift-test-<pid>[-<n>].
 * Returns 0, or -1 with why filled in (and everything undone). */
int env_open(struct ts_env *e, int n, __u32 seed, __u32 max_flows, char *why, size_t len);
/* Unload, close the maps, remove every pin and the directory. */
void env_close(struct ts_env *e);
/* env_open that fails the test. */
struct ts_env *fixture_env(void **state, int n, __u32 seed, __u32 max_flows);
/* fixture_env (TEST_SEED, TEST_MAX_FLOWS) loaded with --forward fib. */
struct ts_env *fixture_env_fib(void **state, int n);
/* fixture_env (TEST_SEED, TEST_MAX_FLOWS) loaded with --mode xdp and
 * --handshakes xdp (xdp) or tc, whatever the run's mode. */
struct ts_env *fixture_env_handshakes(void **state, int n, bool xdp);

int setup_env(void **state);		/* env[0]: TEST_SEED, TEST_MAX_FLOWS */
int setup_env_large(void **state);	/* env[0]: TEST_SEED, TEST_MAX_FLOWS_LARGE */
int teardown_env(void **state);

#define TEST(f)		cmocka_unit_test_setup_teardown(f, setup_env, teardown_env)
#define TEST_LARGE(f)	cmocka_unit_test_setup_teardown(f, setup_env_large, teardown_env)

static inline struct ts_env *env_of(void **state)
{
	struct ts_fixture *f = *state;

	if (f->setup_error[0])
		fail_msg("setup: %s", f->setup_error);
	return &f->env[0];
}

/* ---- configuration through libtcpshift (failing the test on error) ---------- */

void env_service(struct ts_env *e, const char *name, const char *vip, __u32 table_size);
/* The canary counters and traffic of backend name of service (asserted found). */
/* The id of service's backend `name`. */
__u32 env_backend_id(struct ts_env *e, const char *service, const char *name);
struct ts_backend_stats env_backend_stats(struct ts_env *e, const char *service, const char *name);
struct ts_flow_key env_flow_key(const struct pkt_spec *s);
void env_backend(struct ts_env *e, const char *service, const char *name, const char *addr,
		 __u32 weight);
void env_backend_del(struct ts_env *e, const char *service, const char *name);
void env_weights(struct ts_env *e, const char *service, size_t n, const char *const *names,
		 const __u32 *weights);

/* The deployment of DESIGN.md: one service, backends v1 and v2. */
#define VIP4		"198.18.100.1:8008"
#define BE4_1		"198.18.2.11:8008"
#define BE4_2		"198.18.2.12:8008"
#define VIP6		"[2001:2:100::1]:8008"
#define BE6_1		"[2001:2:2::11]:8008"
#define BE6_2		"[2001:2:2::12]:8008"
#define CLIENT4		"198.18.1.10"
#define CLIENT6		"2001:2:1::10"
#define VIP4_ADDR	"198.18.100.1"
#define VIP6_ADDR	"2001:2:100::1"

/* Service web4 = VIP4 -> v1 BE4_1 (w1), v2 BE4_2 (w2); web6 likewise. */
void config_web4(struct ts_env *e, __u32 w1, __u32 w2);
void config_web6(struct ts_env *e, __u32 w1, __u32 w2);
/* web4 or web6, by family. */
void config_web(struct ts_env *e, bool v6, __u32 w1, __u32 w2);
const char *web_service(bool v6);
/* Set the weights of v1 and v2 of a web service in one change. */
void set_web_weights(struct ts_env *e, const char *service, __u32 w1, __u32 w2);

/* ---- running packets -------------------------------------------------------- */

/*
 * The test's own network namespace (test_net_setup, once, by main): packets
 * arrive on one of two veth devices, as on a gateway — TEST_DEV_BACKEND,
 * where 198.18.2.0/24 and 2001:2:2::/64 (the backends) are routed, or
 * TEST_DEV_CLIENT, the default route. env_run takes the device of the
 * packet's source address unless test_dev_force names one (0: by source).
 */
#define TEST_DEV_CLIENT		"tsclient0"
#define TEST_DEV_BACKEND	"tsbackend0"
/* Their MAC address, pkt_build's default destination: BPF_PROG_TEST_RUN runs
 * eth_type_trans on the device, which makes a frame to another unicast MAC
 * PACKET_OTHERHOST, to a group MAC PACKET_BROADCAST or PACKET_MULTICAST. */
#define TEST_DEV_MAC		"02:00:00:00:00:01"
int test_net_setup(void);
extern int test_dev_force;
/*
 * test_bpf --xdp: every packet meets the XDP program first, as on a gateway
 * in --mode xdp. What it passes on must be the packet as it came (else the
 * run fails), and then goes through the tc program, whose verdict env_run
 * returns; an XDP redirect or XDP_TX reads as TC_ACT_REDIRECT, XDP_DROP as
 * TC_ACT_SHOT. Both test devices are the instance's (xdp_devs, xdp_tx).
 */
extern bool test_xdp_mode;
/*
 * test_bpf --xdp-handshakes: --xdp, the object loaded with --handshakes xdp,
 * and permanent neighbours for CLIENT4/6 and the backends' addresses
 * (test_neighbours_add: test_client_mac, test_backend_mac), so that XDP
 * finishes what it can. A frame XDP forwards reads as tc's verdict in the
 * object's forwarding mode: in stack mode TC_ACT_OK, with the MACs and TTL
 * (hop limit) as they came in.
 */
extern bool test_xdp_handshakes;
extern const __u8 test_client_mac[6], test_backend_mac[6];
#define TEST_DEV_MAC_BYTES	"\x02\x00\x00\x00\x00\x01"	/* TEST_DEV_MAC */
int test_neighbours_add(void);
/* out is s forwarded by the FIB (fib mode, XDP): one endpoint rewritten to ep
 * (the destination, forward; else the source), TTL or hop limit one less,
 * Ethernet source the gateway's and destination dmac, checksums valid. */
void expect_fib_forwarded(const struct pkt *out, const struct pkt_spec *s, bool dst,
			  const char *ep, const __u8 *dmac, const char *what);
int test_ifindex(const char *dev);

/*
 * From now on run every packet as a CHECKSUM_COMPLETE skb: skb->csum is set to
 * the sum of the packet from its IP header on, and the run fails (EBADMSG,
 * which env_run reports) if after the program skb->csum is not the sum of the
 * packet as it left. Returns false, having printed why, when the kernel cannot
 * (BPF_F_TEST_SKB_CHECKSUM_COMPLETE came with Linux 6.11): skip the test.
 */
bool env_csum_complete(struct ts_env *e);
/* Run in through the program; returns its verdict, out holds the packet after it. */
int env_run(struct ts_env *e, const struct pkt *in, struct pkt *out);
/* The test devices are the XDP program's, as `load --mode xdp` makes them
 * (env_open does it; again after a change of network namespace). */
int env_xdp_devices(struct ts_env *e, char *why, size_t len);
/* Run in through the XDP program alone; returns its verdict. */
int env_run_xdp(struct ts_env *e, const struct pkt *in, struct pkt *out);
/* Run in through the egress program. */
int env_run_egress(struct ts_env *e, const struct pkt *in, struct pkt *out);
/* The same, returning 0 or -errno from BPF_PROG_TEST_RUN instead of failing. */
int env_try_run(struct ts_env *e, const struct pkt *in, struct pkt *out, int *verdict);
/* Build s and run it. */
int env_send(struct ts_env *e, const struct pkt_spec *s, struct pkt *in, struct pkt *out);
void env_changing(struct ts_env *e, bool on);
void env_counters(struct ts_env *e, __u64 c[TS_CNT_MAX]);
__u64 env_counter(struct ts_env *e, enum ts_counter c);
__u32 env_flow_count(struct ts_env *e);
int env_flow_table(struct ts_env *e, const struct pkt_spec *s);
/* Packets counted for every backend of every service: in backend_stats, and
 * waiting in established flows' entries (env_pending_packets). */
__u64 env_backend_packets(struct ts_env *e);
__u64 env_pending_packets(struct ts_env *e);
/* The TCP state of the pinned flow of key s (the test fails if none). */
__u8 env_flow_state(struct ts_env *e, const struct pkt_spec *s);
/* The pinned flow of key s (client -> VIP): 0 and *flow, or -1 if none. */
int env_flow_lookup(struct ts_env *e, const struct pkt_spec *s, struct ts_flow *flow);

/*
 * s is forwarded: TC_ACT_OK, and the output is s with its destination replaced
 * by one of to[0..n), every other byte unchanged, IP and TCP checksums valid.
 * Returns the index of that backend in to[].
 */
int expect_forward(struct ts_env *e, const struct pkt_spec *s, const char *const *to, size_t n,
		   const char *what);
/* s (backend -> client) is a reply: TC_ACT_OK, source replaced by vip, checksums valid. */
void expect_reply(struct ts_env *e, const struct pkt_spec *s, const char *vip, const char *what);
void expect_reset(struct ts_env *e, const struct pkt_spec *s, const char *what);
#ifndef BPF_F_TEST_SKB_CHECKSUM_COMPLETE
#define BPF_F_TEST_SKB_CHECKSUM_COMPLETE	(1U << 2)	/* linux/bpf.h, Linux 6.11 */
#endif
#ifndef TC_ACT_REDIRECT
#define TC_ACT_REDIRECT	7	/* linux/pkt_cls.h */
#endif
/* p comes out byte for byte unchanged, with verdict. */
void expect_untouched(struct ts_env *e, const struct pkt *p, int verdict, const char *what);

/* The spec s with its destination (dst) or source replaced by endpoint ep. */
struct pkt_spec spec_with_endpoint(const struct pkt_spec *s, bool dst, const char *ep,
				   char addr[PKT_EPSTRLEN]);

/*
 * A TCP handshake through the program: the client's SYN (forwarded to one of
 * to[0..n)), the backend's SYN-ACK (seq TEST_BACKEND_ISN, rewritten to come
 * from the VIP) and the client's ACK acknowledging it, after which the flow
 * is confirmed (in flows). Returns the index of the backend in to[].
 */
#define TEST_BACKEND_ISN	0x40000000U
int handshake(struct ts_env *e, const struct pkt_spec *syn, const char *const *to, size_t n,
	      const char *what);
/* A packet from backend "addr:port" to the client of s (seq TEST_BACKEND_ISN
 * + 1, acknowledging s's SYN). */
struct pkt_spec backend_spec(const struct pkt_spec *s, const char *backend, __u8 flags,
			     char addr[PKT_EPSTRLEN]);
/* The backend's SYN-ACK answering syn, from backend "addr:port". */
struct pkt_spec backend_syn_ack_spec(const struct pkt_spec *syn, const char *backend,
				     char addr[PKT_EPSTRLEN]);
void backend_syn_ack(struct ts_env *e, const struct pkt_spec *syn, const char *backend,
		     const char *what);
/* A client's segment to the web VIP (port 8008), acknowledging
 * TEST_BACKEND_ISN + 1; a SYN carries an MSS option. */
struct pkt_spec client_spec(bool v6, __u16 sport, __u8 flags, __u32 seq);
/* The client's ACK that completes the handshake of syn. */
struct pkt_spec handshake_ack_spec(const struct pkt_spec *syn);

/* ---- groups ------------------------------------------------------------------ */

int run_pkt_tests(void);
int run_nat_tests(void);
int run_pinning_tests(void);
int run_handsoff_tests(void);
int run_split_tests(void);
int run_robust_tests(void);
int run_pick_tests(void);
int run_icmp_tests(void);
int run_security_tests(void);
int run_canary_tests(void);
int run_spoofing_tests(void);
int run_forward_tests(void);
int run_sync_tests(void);
int run_offpath_tests(void);
int run_migrate_tests(void);

#endif /* TS_TEST_H */
