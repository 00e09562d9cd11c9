// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The bpf test harness: load and unload the object, configure it, run packets. */
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#include "tcpshift.skel.h"
#include "ts_test.h"

/* ---- context of failures ------------------------------------------------------ */

static char context[256];

void test_context(const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!fmt) {
		context[0] = '\0';
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(context, sizeof(context) - 2, fmt, ap);
	va_end(ap);
	if (n > 0)
		strcat(context, ": ");
}

const char *test_context_str(void)
{
	return context;
}

/* ---- pin directories ---------------------------------------------------------- */

/* Pin directories this process made and has not yet removed: a signal
 * handler removes them if the run is interrupted (the maps go when the
 * process does, the pins would not). */
static char made_dirs[TEST_MAX_ENVS][96];

static void remove_pins(const char *dir, bool warn)
{
	struct ts_map_layout layout[TS_MAX_PINNED_MAPS];
	char path[512];
	struct dirent *d;
	size_t n = 0;
	DIR *dh;

	if (ts_map_layouts(layout, &n, NULL))
		n = 0;
	/* a migration test that failed half-way leaves its staging directory */
	ts_migration_clean(dir);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, layout[i].name);
		unlink(path);
	}
	/* Whatever else is left in our own directory: a pin the object does
	 * not define would survive `tcpshift unload`, so say so. */
	dh = opendir(dir);
	if (!dh)
		return;
	while ((d = readdir(dh))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (warn)
			fprintf(stderr, "warning: %s/%s is not a map of the BPF object\n", dir,
				d->d_name);
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		unlink(path);
	}
	closedir(dh);
}

/* Every pin the object makes (ts_map_layouts: ts_pin_name lists only the
 * maps ts_maps opens), read before any signal can come. */
static struct ts_map_layout pins[TS_MAX_PINNED_MAPS];
static size_t npins;

static void on_signal(int sig)
{
	for (int i = 0; i < TEST_MAX_ENVS; i++) {
		if (!made_dirs[i][0])
			continue;
		/* unlink and rmdir only: async-signal-safe */
		for (size_t j = 0; j < npins; j++) {
			char path[512];
			size_t n = strlen(made_dirs[i]), m = strlen(pins[j].name);

			if (n + m + 2 > sizeof(path))
				continue;
			memcpy(path, made_dirs[i], n);
			path[n] = '/';
			memcpy(path + n + 1, pins[j].name, m + 1);
			unlink(path);
		}
		rmdir(made_dirs[i]);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void track_dir(const char *dir, bool add)
{
	static bool handlers;

	if (!handlers) {
		if (ts_map_layouts(pins, &npins, NULL))
			npins = 0;
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGHUP, on_signal);
		handlers = true;
	}
	for (int i = 0; i < TEST_MAX_ENVS; i++) {
		if (add && !made_dirs[i][0]) {
			snprintf(made_dirs[i], sizeof(made_dirs[i]), "%s", dir);
			return;
		}
		if (!add && !strcmp(made_dirs[i], dir)) {
			made_dirs[i][0] = '\0';
			return;
		}
	}
}

int env_xdp_devices(struct ts_env *e, char *why, size_t len)
{
	static const char *const devs[] = { TEST_DEV_CLIENT, TEST_DEV_BACKEND };
	struct ts_err err = {};

	bool target;

	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++) {
		if (ts_bpf_xdp_dev_add(e->skel, test_ifindex(devs[i]), false, &target, &err)) {
			snprintf(why, len, "%s", err.msg);
			return -1;
		}
		if (!target) {
			snprintf(why, len, "%s takes no XDP redirects (its peer has no GRO)",
				 devs[i]);
			return -1;
		}
	}
	return 0;
}

/* handshakes: load --handshakes xdp (in any run: the XDP program is there to
 * be run), or -1: as the run's mode (test_xdp_handshakes), except fib mode's */
static int env_open_mode(struct ts_env *e, int n, __u32 seed, __u32 max_flows, int forward_fib,
			 int handshakes, char *why, size_t len)
{
	struct ts_load_opts o = {
		.max_flows = max_flows,
		.seed = seed,
		.seed_set = true,
		.forward_fib = forward_fib,
		.mode = test_xdp_mode || handshakes > 0 ? TS_MODE_XDP : TS_MODE_TC,
		/* fib mode's tests are about tc's forwarding: handshakes
		 * through the stack */
		.handshakes = handshakes >= 0 ? handshakes
			      : test_xdp_handshakes && !forward_fib ? TS_HANDSHAKES_XDP
								    : TS_HANDSHAKES_TC,
	};
	struct ts_err err = {};

	memset(e, 0, sizeof(*e));
	e->prog_fd = -1;
	if (n)
		snprintf(e->pin_dir, sizeof(e->pin_dir), "%s/tcpshift-test-%d-%d", TEST_BPFFS,
			 (int)getpid(), n);
	else
		snprintf(e->pin_dir, sizeof(e->pin_dir), "%s/tcpshift-test-%d", TEST_BPFFS,
			 (int)getpid());
	o.pin_dir = e->pin_dir;
	if (mkdir(e->pin_dir, 0700)) {
		if (errno != EEXIST) {
			snprintf(why, len, "cannot create %s: %s", e->pin_dir, strerror(errno));
			return -1;
		}
		/* left by an earlier process with our pid: its maps are not ours */
		remove_pins(e->pin_dir, false);
	}
	e->dir_made = true;
	track_dir(e->pin_dir, true);
	e->skel = ts_bpf_open_load(&o, &err);
	if (!e->skel) {
		snprintf(why, len, "ts_bpf_open_load(%s): %s", e->pin_dir, err.msg);
		goto fail;
	}
	e->prog_fd = ts_bpf_prog_fd(e->skel);
	e->egress_fd = ts_bpf_egress_prog_fd(e->skel);
	e->xdp_fd = ts_bpf_xdp_prog_fd(e->skel);
	if (e->prog_fd < 0 || e->egress_fd < 0) {
		snprintf(why, len, "ts_bpf_prog_fd: %d", e->prog_fd);
		goto fail;
	}
	if (ts_maps_open(&e->maps, e->pin_dir, &err)) {
		snprintf(why, len, "ts_maps_open(%s): %s", e->pin_dir, err.msg);
		goto fail;
	}
	e->maps_open = true;
	if (env_xdp_devices(e, why, len))
		goto fail;
	return 0;
fail:
	env_close(e);
	return -1;
}

int env_open(struct ts_env *e, int n, __u32 seed, __u32 max_flows, char *why, size_t len)
{
	return env_open_mode(e, n, seed, max_flows, 0, -1, why, len);
}

void env_close(struct ts_env *e)
{
	if (e->skel)
		ts_bpf_destroy(e->skel);
	e->skel = NULL;
	e->prog_fd = -1;
	if (e->maps_open)
		ts_maps_close(&e->maps);
	e->maps_open = false;
	if (e->dir_made) {
		remove_pins(e->pin_dir, true);
		if (rmdir(e->pin_dir))
			fprintf(stderr, "warning: cannot remove %s: %s\n", e->pin_dir,
				strerror(errno));
		track_dir(e->pin_dir, false);
	}
	e->dir_made = false;
}

struct ts_env *fixture_env(void **state, int n, __u32 seed, __u32 max_flows)
{
	struct ts_env *e = &((struct ts_fixture *)*state)->env[n];
	char why[600];

	if (env_open(e, n, seed, max_flows, why, sizeof(why)))
		fail_msg("%s", why);
	return e;
}

struct ts_env *fixture_env_fib(void **state, int n)
{
	struct ts_env *e = &((struct ts_fixture *)*state)->env[n];
	char why[600];

	if (env_open_mode(e, n, TEST_SEED, TEST_MAX_FLOWS, 1, -1, why, sizeof(why)))
		fail_msg("%s", why);
	return e;
}

struct ts_env *fixture_env_handshakes(void **state, int n, bool xdp)
{
	struct ts_env *e = &((struct ts_fixture *)*state)->env[n];
	char why[600];

	if (env_open_mode(e, n, TEST_SEED, TEST_MAX_FLOWS, 0,
			  xdp ? TS_HANDSHAKES_XDP : TS_HANDSHAKES_TC, why, sizeof(why)))
		fail_msg("%s", why);
	return e;
}

static int setup_with(void **state, __u32 max_flows)
{
	struct ts_fixture *f = calloc(1, sizeof(*f));

	test_context(NULL);
	if (!f)
		return -1;
	env_open(&f->env[0], 0, TEST_SEED, max_flows, f->setup_error, sizeof(f->setup_error));
	*state = f;
	return 0;
}

int setup_env(void **state)
{
	return setup_with(state, TEST_MAX_FLOWS);
}

int setup_env_large(void **state)
{
	return setup_with(state, TEST_MAX_FLOWS_LARGE);
}

int teardown_env(void **state)
{
	struct ts_fixture *f = *state;

	for (int i = 0; f && i < TEST_MAX_ENVS; i++)
		env_close(&f->env[i]);
	free(f);
	*state = NULL;
	return 0;
}

/* ---- configuration ------------------------------------------------------------ */

static struct ts_endpoint endpoint(const char *s, bool with_port)
{
	struct ts_endpoint ep = {};
	struct ts_err err = {};

	ASSERT_OK(with_port ? ts_parse_endpoint(s, &ep, &err) : ts_parse_address(s, &ep, &err),
		  err, s);
	return ep;
}

void env_service(struct ts_env *e, const char *name, const char *vip, __u32 table_size)
{
	struct ts_endpoint ep = endpoint(vip, true);
	struct ts_err err = {};
	char what[128];

	snprintf(what, sizeof(what), "ts_service_add(%s, %s, %u)", name, vip, table_size);
	ASSERT_OK(ts_service_add(&e->maps, name, &ep, table_size, &err), err, what);
	ts_maps_unlock(&e->maps);	/* one command each: its lock ends with it */
}

void env_backend(struct ts_env *e, const char *service, const char *name, const char *addr,
		 __u32 weight)
{
	struct ts_endpoint ep = endpoint(addr, true);
	struct ts_err err = {};
	char what[160];

	snprintf(what, sizeof(what), "ts_backend_add(%s, %s, %s, %u)", service, name, addr,
		 weight);
	ASSERT_OK(ts_backend_add(&e->maps, service, name, &ep, weight, &err), err, what);
	ts_maps_unlock(&e->maps);	/* one command each: its lock ends with it */
}

void env_backend_del(struct ts_env *e, const char *service, const char *name)
{
	struct ts_err err = {};
	char what[128];

	snprintf(what, sizeof(what), "ts_backend_del(%s, %s)", service, name);
	ASSERT_OK(ts_backend_del(&e->maps, service, name, &err), err, what);
	ts_maps_unlock(&e->maps);	/* one command each: its lock ends with it */
}

__u32 env_backend_id(struct ts_env *e, const char *service, const char *name)
{
	struct ts_config cfg = {};
	struct ts_err err = {};
	struct ts_backend_cfg *b;
	__u32 id = TS_NO_BACKEND;

	ASSERT_OK(ts_config_read(&e->maps, &cfg, &err), err, "ts_config_read");
	b = ts_config_service(&cfg, service)
		    ? ts_service_backend(ts_config_service(&cfg, service), name)
		    : NULL;
	ASSERT_TRUE(b != NULL, name);
	if (b)
		id = b->id;
	ts_config_free(&cfg);
	return id;
}

struct ts_backend_stats env_backend_stats(struct ts_env *e, const char *service, const char *name)
{
	struct ts_backend_stats st = {};
	struct ts_config cfg = {};
	const struct ts_service_cfg *s;
	struct ts_err err = {};
	bool found = false;

	ASSERT_OK(ts_config_read(&e->maps, &cfg, &err), err, "ts_config_read");
	s = ts_config_service(&cfg, service);
	ASSERT_TRUE(s != NULL, service);
	for (size_t i = 0; s && i < s->nbackends; i++)
		if (!strcmp(s->backends[i].be.name, name)) {
			ASSERT_OK(ts_backend_stats_read(&e->maps, s->backends[i].id, &st, &err),
				  err, "ts_backend_stats_read");
			found = true;
		}
	ts_config_free(&cfg);
	ASSERT_TRUE(found, name);
	return st;
}

void env_weights(struct ts_env *e, const char *service, size_t n, const char *const *names,
		 const __u32 *weights)
{
	char (*list)[TS_NAME_LEN] = calloc(n, TS_NAME_LEN);
	struct ts_err err = {};
	char what[128];
	int r;

	ASSERT_TRUE(list != NULL, "calloc");
	for (size_t i = 0; i < n; i++)
		snprintf(list[i], TS_NAME_LEN, "%s", names[i]);
	snprintf(what, sizeof(what), "ts_weights_set(%s, %zu weights)", service, n);
	r = ts_weights_set(&e->maps, service, list, weights, n, &err);
	ts_maps_unlock(&e->maps);	/* one command each: its lock ends with it */
	free(list);
	ASSERT_OK(r, err, what);
}

void config_web4(struct ts_env *e, __u32 w1, __u32 w2)
{
	env_service(e, "web4", VIP4, TS_DEFAULT_TABLE_SIZE);
	env_backend(e, "web4", "v1", BE4_1, w1);
	env_backend(e, "web4", "v2", BE4_2, w2);
}

void config_web6(struct ts_env *e, __u32 w1, __u32 w2)
{
	env_service(e, "web6", VIP6, TS_DEFAULT_TABLE_SIZE);
	env_backend(e, "web6", "v1", BE6_1, w1);
	env_backend(e, "web6", "v2", BE6_2, w2);
}

void set_web_weights(struct ts_env *e, const char *service, __u32 w1, __u32 w2)
{
	static const char *const names[] = { "v1", "v2" };

	env_weights(e, service, 2, names, (const __u32[]){ w1, w2 });
}

/* ---- running packets ----------------------------------------------------------- */

int test_dev_force;

int test_ifindex(const char *dev)
{
	return (int)if_nametoindex(dev);
}

int test_net_setup(void)
{
	static const char *const cmds[] = {
		"ip link set lo up",
		"sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
		/* no dummy module on every kernel: veth pairs with the peer up */
		/* the builder's destination MAC: frames to it are PACKET_HOST */
		"ip link add " TEST_DEV_CLIENT " address " TEST_DEV_MAC " type veth peer name "
		"tsclient1",
		"ip link add " TEST_DEV_BACKEND " address " TEST_DEV_MAC " type veth peer name "
		"tsbackend1",
		"ip link set tsclient1 up",
		"ip link set tsbackend1 up",
		/* the peers take XDP-redirected frames, as on a gateway in xdp mode */
		"ethtool -K tsclient1 gro on",
		"ethtool -K tsbackend1 gro on",
		"ip link set " TEST_DEV_CLIENT " up",
		"ip link set " TEST_DEV_BACKEND " up",
		"ip addr add 198.18.1.1/24 dev " TEST_DEV_CLIENT,
		"ip addr add 198.18.2.1/24 dev " TEST_DEV_BACKEND,
		"ip -6 addr add 2001:2:1::1/64 dev " TEST_DEV_CLIENT " nodad",
		"ip -6 addr add 2001:2:2::1/64 dev " TEST_DEV_BACKEND " nodad",
		"ip route add default dev " TEST_DEV_CLIENT,
		"ip -6 route add default dev " TEST_DEV_CLIENT,
	};

	if (unshare(CLONE_NEWNET)) {
		fprintf(stderr, "test_bpf: cannot create a network namespace: %s\n",
			strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (system(cmds[i])) {
			fprintf(stderr, "test_bpf: '%s' failed\n", cmds[i]);
			return -1;
		}
	return 0;
}

const __u8 test_client_mac[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x10 };
const __u8 test_backend_mac[ETH_ALEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x11 };

int test_neighbours_add(void)
{
	static const char *const cmds[] = {
		"ip neigh replace " CLIENT4 " lladdr 02:00:00:00:00:10 dev " TEST_DEV_CLIENT
		" nud permanent",
		"ip neigh replace " CLIENT6 " lladdr 02:00:00:00:00:10 dev " TEST_DEV_CLIENT
		" nud permanent",
		"ip neigh replace 198.18.2.11 lladdr 02:00:00:00:00:11 dev " TEST_DEV_BACKEND
		" nud permanent",
		"ip neigh replace 198.18.2.12 lladdr 02:00:00:00:00:11 dev " TEST_DEV_BACKEND
		" nud permanent",
		"ip neigh replace 2001:2:2::11 lladdr 02:00:00:00:00:11 dev " TEST_DEV_BACKEND
		" nud permanent",
		"ip neigh replace 2001:2:2::12 lladdr 02:00:00:00:00:11 dev " TEST_DEV_BACKEND
		" nud permanent",
	};

	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (system(cmds[i])) {
			fprintf(stderr, "test_bpf: '%s' failed\n", cmds[i]);
			return -1;
		}
	return 0;
}

/* The device a packet arrives on: the backends' if it comes from one. */
static int run_ifindex(const struct pkt *in)
{
	struct pkt_view v;
	const __u8 *src;

	if (test_dev_force)
		return test_dev_force;
	if (!pkt_view(in, &v))
		return test_ifindex(TEST_DEV_CLIENT);
	src = in->data + v.l3_off + (v.family == 4 ? 12 : 8);
	if (v.family == 4 ? src[0] == 198 && src[1] == 18 && src[2] == 2
			  : !memcmp(src, "\x20\x01\x00\x02\x00\x02\x00\x00", 8))
		return test_ifindex(TEST_DEV_BACKEND);
	return test_ifindex(TEST_DEV_CLIENT);
}

static int run_prog(int prog_fd, __u32 flags, const struct pkt *in, struct pkt *out,
		    int *verdict)
{
	struct __sk_buff ctx = {};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in->data, .data_size_in = in->len,
		    .data_out = out->data, .data_size_out = sizeof(out->data), .repeat = 1,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .flags = flags);

	ctx.ifindex = (__u32)run_ifindex(in);
	ctx.ingress_ifindex = ctx.ifindex;
	memset(out, 0, sizeof(*out));
	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return -errno;
	out->len = opts.data_size_out;
	*verdict = (int)opts.retval;
	return 0;
}

bool test_xdp_mode;
bool test_xdp_handshakes;

static int run_xdp(int prog_fd, const struct pkt *in, struct pkt *out, int *verdict)
{
	/* data_end: the frame's length, or the kernel runs an empty frame */
	struct xdp_md ctx = { .data_end = in->len, .ingress_ifindex = (__u32)run_ifindex(in) };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = in->data, .data_size_in = in->len,
		    .data_out = out->data, .data_size_out = sizeof(out->data), .repeat = 1,
		    .ctx_in = &ctx, .ctx_size_in = sizeof(ctx));

	memset(out, 0, sizeof(*out));
	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return -errno;
	out->len = opts.data_size_out;
	*verdict = (int)opts.retval;
	return 0;
}

int env_run_xdp(struct ts_env *e, const struct pkt *in, struct pkt *out)
{
	int verdict = -1, r = run_xdp(e->xdp_fd, in, out, &verdict);

	if (r)
		fail_msg("%sbpf_prog_test_run_opts(xdp): %s", test_context_str(), strerror(-r));
	return verdict;
}

/*
 * A frame XDP forwarded (--handshakes xdp) as tc in stack mode hands it to
 * the stack: the MACs as they came and the TTL or hop limit not yet
 * decremented, the IPv4 header checksum updated for that as a router would
 * (RFC 1624: it verifies after exactly when it did before). Then every test
 * judges XDP's flow logic as tc's; test_forward.c checks the forwarding.
 */
static int as_stack_forward(const struct pkt *in, struct pkt *out)
{
	struct iphdr *ip = pkt_ip4(out);

	if (out->len != in->len || pkt_ip_csum_ok(out) != pkt_ip_csum_ok(in)) {
		pkt_dump("in", in, -1);
		pkt_dump("after XDP", out, -1);
		fail_msg("%sXDP forwarded a frame of another length, or its IPv4 header "
			 "checksum verifies no longer (or now)", test_context_str());
	}
	memcpy(out->data, in->data, 2 * ETH_ALEN);
	if (ip) {
		/* the TTL is the high byte of the word ttl:protocol */
		__u32 sum = (__u16)~ntohs(ip->check) + (__u16)~(ip->ttl << 8 | ip->protocol);

		ip->ttl++;
		sum += (__u16)(ip->ttl << 8 | ip->protocol);
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		ip->check = htons((__u16)~sum);
	} else {
		pkt_ip6(out)->hop_limit++;
	}
	return TC_ACT_OK;
}

int env_try_run(struct ts_env *e, const struct pkt *in, struct pkt *out, int *verdict)
{
	int r;

	if (!test_xdp_mode)
		return run_prog(e->prog_fd, e->run_flags, in, out, verdict);
	r = run_xdp(e->xdp_fd, in, out, verdict);
	if (r)
		return r;
	switch (*verdict) {
	case XDP_PASS:
		if (out->len != in->len || memcmp(out->data, in->data, in->len)) {
			pkt_dump("in", in, -1);
			pkt_dump("after XDP", out, -1);
			fail_msg("%sthe XDP program passed on a packet it changed", test_context_str());
		}
		return run_prog(e->prog_fd, e->run_flags, in, out, verdict);
	case XDP_REDIRECT:
	case XDP_TX:
		*verdict = TC_ACT_REDIRECT;
		if (e->skel->rodata->xdp_handshakes)
			*verdict = as_stack_forward(in, out);
		return 0;
	case XDP_DROP:
		*verdict = TC_ACT_SHOT;
		return 0;
	default:
		fail_msg("%sXDP verdict %d", test_context_str(), *verdict);
		return -EINVAL;
	}
}

int env_run_egress(struct ts_env *e, const struct pkt *in, struct pkt *out)
{
	int verdict = -1, r = run_prog(e->egress_fd, e->run_flags, in, out, &verdict);

	if (r)
		fail_msg("%sbpf_prog_test_run_opts(egress): %s", test_context_str(), strerror(-r));
	return verdict;
}

int env_run(struct ts_env *e, const struct pkt *in, struct pkt *out)
{
	int verdict = -1, r = env_try_run(e, in, out, &verdict);

	if (r == -EBADMSG && (e->run_flags & BPF_F_TEST_SKB_CHECKSUM_COMPLETE)) {
		pkt_dump("in", in, -1);
		fail_msg("%sCHECKSUM_COMPLETE: skb->csum after the program is not the sum of the "
			 "packet (the stack would see a bad checksum, \"hw csum failure\")",
			 test_context_str());
	}
	if (r)
		fail_msg("%sbpf_prog_test_run_opts: %s", test_context_str(), strerror(-r));
	return verdict;
}

bool env_csum_complete(struct ts_env *e)
{
	struct pkt_spec arp = { .src = CLIENT4, .dst = VIP4_ADDR, .arp = true };
	struct pkt in, out;
	int verdict, r;

	ASSERT_EQ(pkt_build(&in, &arp), 0, "pkt_build");
	e->run_flags |= BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
	r = env_try_run(e, &in, &out, &verdict);
	if (r == -EINVAL) {
		e->run_flags &= ~BPF_F_TEST_SKB_CHECKSUM_COMPLETE;
		printf("  skipped: this kernel cannot run CHECKSUM_COMPLETE skbs in "
		       "BPF_PROG_TEST_RUN (BPF_F_TEST_SKB_CHECKSUM_COMPLETE, Linux 6.11)\n");
		return false;
	}
	ASSERT_EQ(r, 0, "BPF_PROG_TEST_RUN of an ARP request as CHECKSUM_COMPLETE");
	return true;
}

int env_send(struct ts_env *e, const struct pkt_spec *s, struct pkt *in, struct pkt *out)
{
	ASSERT_EQ(pkt_build(in, s), 0, "pkt_build");
	return env_run(e, in, out);
}

/* settings as a change of the control plane leaves them: under way (on:
 * TS_SETTINGS_F_CHANGING set), or committed (the generation moved, then the
 * flag cleared, as ts_maps_unlock does). */
void env_changing(struct ts_env *e, bool on)
{
	struct ts_settings s;
	__u32 zero = 0;

	ASSERT_EQ(bpf_map_lookup_elem(e->maps.settings, &zero, &s), 0, "read settings");
	if (on) {
		s.flags |= TS_SETTINGS_F_CHANGING;
	} else {
		s.generation++;
		s.flags &= ~TS_SETTINGS_F_CHANGING;
	}
	ASSERT_EQ(bpf_map_update_elem(e->maps.settings, &zero, &s, BPF_EXIST), 0,
		  "write settings");
}

void env_counters(struct ts_env *e, __u64 c[TS_CNT_MAX])
{
	struct ts_err err = {};

	ASSERT_OK(ts_counters_read(&e->maps, c, &err), err, "ts_counters_read");
}

__u64 env_counter(struct ts_env *e, enum ts_counter c)
{
	__u64 all[TS_CNT_MAX];

	env_counters(e, all);
	return all[c];
}

/* Pinned flows: established (flows) and half-open (half_open). */
__u32 env_flow_count(struct ts_env *e)
{
	__u32 n = 0, h = 0;

	ASSERT_EQ(ts_count_entries(e->maps.flows, sizeof(struct ts_flow_key), &n), 0,
		  "ts_count_entries(flows)");
	ASSERT_EQ(ts_count_entries(e->maps.half_open, sizeof(struct ts_flow_key), &h), 0,
		  "ts_count_entries(half_open)");
	return n + h;
}

/* The 5-tuple key of s as the data plane builds it: client -> VIP for a
 * client's packet (flows), backend -> client for a reply (replies). */
struct ts_flow_key env_flow_key(const struct pkt_spec *s)
{
	struct ts_flow_key key = {};
	int family = strchr(s->src, ':') ? AF_INET6 : AF_INET;

	ASSERT_EQ(inet_pton(family, s->src, key.saddr), 1, "client address");
	ASSERT_EQ(inet_pton(family, s->dst, key.daddr), 1, "VIP address");
	key.sport = htons(s->sport);
	key.dport = htons(s->dport);
	key.proto = IPPROTO_TCP;
	key.family = family == AF_INET6 ? TS_AF_INET6 : TS_AF_INET;
	return key;
}

/* Which table holds the flow: 1 flows, 2 half_open, 0 none. */
int env_flow_table(struct ts_env *e, const struct pkt_spec *s)
{
	struct ts_flow_key key = env_flow_key(s);
	struct ts_flow_entry flow;

	if (!bpf_map_lookup_elem(e->maps.flows, &key, &flow))
		return 1;
	return bpf_map_lookup_elem(e->maps.half_open, &key, &flow) ? 0 : 2;
}

/* The packets of established flows not yet added to their backends'
 * counters: what waits in flows' and replies' entries (tcpshift.h,
 * TS_PENDING_MAX). */
static void add_pending(const struct ts_flow_key *key, const struct ts_flow *f, void *n)
{
	(void)key;
	if (f->flags & TS_FLOW_F_COUNTED)
		*(__u64 *)n += (__s32)f->packets;
}

__u64 env_pending_packets(struct ts_env *e)
{
	struct ts_flow_key key, prev;
	struct ts_reply_state r;
	__u64 n = 0;
	bool first = true;

	ASSERT_EQ(ts_flow_map_foreach(e->maps.flows, add_pending, &n), 0, "read flows");
	while (!bpf_map_get_next_key(e->maps.replies, first ? NULL : &prev, &key)) {
		first = false;
		prev = key;
		if (!bpf_map_lookup_elem(e->maps.replies, &key, &r))
			n += (__s32)r.packets;
	}
	return n;
}

__u64 env_backend_packets(struct ts_env *e)
{
	struct ts_config cfg = {};
	struct ts_err err = {};
	__u64 total = 0;

	ASSERT_OK(ts_config_read(&e->maps, &cfg, &err), err, "ts_config_read");
	for (size_t i = 0; i < cfg.nservices; i++) {
		for (size_t j = 0; j < cfg.services[i].nbackends; j++) {
			struct ts_backend_stats st = {};
			int r = ts_backend_stats_read(&e->maps, cfg.services[i].backends[j].id, &st,
						      &err);

			if (r) {
				ts_config_free(&cfg);
				ASSERT_OK(r, err, "ts_backend_stats_read");
			}
			total += st.packets;
		}
	}
	ts_config_free(&cfg);
	return total + env_pending_packets(e);
}

int env_flow_lookup(struct ts_env *e, const struct pkt_spec *s, struct ts_flow *flow)
{
	struct ts_flow_key key = env_flow_key(s);
	struct ts_flow_entry fe;

	/* the data plane looks in flows first, then half_open */
	if (!bpf_map_lookup_elem(e->maps.flows, &key, &fe)) {
		*flow = fe.flow;
		return 0;
	}
	return bpf_map_lookup_elem(e->maps.half_open, &key, flow) ? -1 : 0;
}

struct pkt_spec spec_with_endpoint(const struct pkt_spec *s, bool dst, const char *ep,
				   char addr[PKT_EPSTRLEN])
{
	struct pkt_spec r = *s;
	__u16 port;

	ASSERT_EQ(pkt_split_endpoint(ep, addr, &port), 0, ep);
	if (dst) {
		r.dst = addr;
		r.dport = port;
	} else {
		r.src = addr;
		r.sport = port;
	}
	return r;
}

/* out is in with one endpoint rewritten to ep: compare with the packet built
 * for that, ignoring the checksum fields, which must verify on their own. */
static long rewritten_diff(const struct pkt_spec *s, bool dst, const char *ep,
			   const struct pkt *out, struct pkt *want)
{
	char addr[PKT_EPSTRLEN];
	struct pkt_spec w = spec_with_endpoint(s, dst, ep, addr);

	ASSERT_EQ(pkt_build(want, &w), 0, "pkt_build(expected)");
	return pkt_diff_ignoring_csums(out, want);
}

static void expect_csums(const struct pkt *out, const char *what)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: IPv4 header checksum verifies", what);
	ASSERT_TRUE(pkt_ip_csum_ok(out), msg);
	snprintf(msg, sizeof(msg), "%s: TCP checksum verifies over the pseudo-header", what);
	ASSERT_TRUE(pkt_l4_csum_ok(out), msg);
}

void expect_fib_forwarded(const struct pkt *out, const struct pkt_spec *s, bool dst,
			  const char *ep, const __u8 *dmac, const char *what)
{
	char addr[PKT_EPSTRLEN], msg[160];
	struct pkt_spec w = spec_with_endpoint(s, dst, ep, addr);
	struct pkt want;
	struct iphdr *ip;
	long at;

	ASSERT_EQ(pkt_build(&want, &w), 0, "pkt_build(expected)");
	memcpy(want.data, dmac, ETH_ALEN);
	/* every test device has TEST_DEV_MAC, the egress one included */
	memcpy(want.data + ETH_ALEN, TEST_DEV_MAC_BYTES, ETH_ALEN);
	ip = pkt_ip4(&want);
	if (ip)
		ip->ttl--;
	else
		pkt_ip6(&want)->hop_limit--;
	at = pkt_diff_ignoring_csums(out, &want);
	if (at >= 0) {
		pkt_dump("got", out, at);
		pkt_dump("want", &want, at);
		fail_msg("%s%s: byte %ld differs", test_context_str(), what, at);
	}
	snprintf(msg, sizeof(msg), "%s: IPv4 header checksum verifies", what);
	ASSERT_TRUE(pkt_ip_csum_ok(out), msg);
	snprintf(msg, sizeof(msg), "%s: TCP checksum verifies", what);
	ASSERT_TRUE(pkt_l4_csum_ok(out), msg);
}

int expect_forward(struct ts_env *e, const struct pkt_spec *s, const char *const *to, size_t n,
		   const char *what)
{
	char got[PKT_EPSTRLEN], msg[160];
	struct pkt in, out, want;
	long at = 0;
	size_t i;

	snprintf(msg, sizeof(msg), "%s: verdict", what);
	ASSERT_EQ(env_send(e, s, &in, &out), TC_ACT_OK, msg);
	pkt_endpoint(&out, true, got);
	for (i = 0; i < n; i++)
		if (!strcmp(got, to[i]))
			break;
	if (i == n) {
		pkt_dump("in", &in, -1);
		pkt_dump("out", &out, -1);
		fail_msg("%s%s: destination %s is none of the backends (first: %s)",
			 test_context_str(), what, got, n ? to[0] : "-");
	}
	at = rewritten_diff(s, true, to[i], &out, &want);
	if (at >= 0) {
		pkt_dump("got", &out, at);
		pkt_dump("want", &want, at);
		fail_msg("%s%s: only the destination may change, byte %ld differs",
			 test_context_str(), what, at);
	}
	expect_csums(&out, what);
	return (int)i;
}

/*
 * s (a client packet with ACK) is answered with a RST to the client: the same
 * frame with Ethernet, IP and port pairs swapped, flags RST, seq = s's ack, out
 * of the interface it came in on (TC_ACT_REDIRECT), checksums valid.
 */
void expect_reset(struct ts_env *e, const struct pkt_spec *s, const char *what)
{
	struct pkt_spec rst = *s;
	struct pkt in, out, want;
	__u8 mac[6];
	char msg[160];
	long at;

	snprintf(msg, sizeof(msg), "%s: verdict (redirect: a RST back to the client)", what);
	ASSERT_EQ(env_send(e, s, &in, &out), TC_ACT_REDIRECT, msg);
	rst.src = s->dst;
	rst.dst = s->src;
	rst.sport = s->dport;
	rst.dport = s->sport;
	rst.flags = PKT_RST;
	rst.seq = s->ack;
	ASSERT_EQ(pkt_build(&want, &rst), 0, "pkt_build");
	memcpy(mac, want.data, 6);
	memmove(want.data, want.data + 6, 6);
	memcpy(want.data + 6, mac, 6);
	at = pkt_diff_ignoring_csums(&out, &want);
	if (at >= 0) {
		pkt_dump("got", &out, at);
		pkt_dump("want", &want, at);
		fail_msg("%s%s: want a RST from %s:%u to %s:%u with seq %u, byte %ld differs",
			 test_context_str(), what, s->dst, s->dport, s->src, s->sport, s->ack,
			 at);
	}
	expect_csums(&out, what);
}

void expect_reply(struct ts_env *e, const struct pkt_spec *s, const char *vip, const char *what)
{
	struct pkt in, out, want;
	char msg[160];
	long at;

	snprintf(msg, sizeof(msg), "%s: verdict", what);
	ASSERT_EQ(env_send(e, s, &in, &out), TC_ACT_OK, msg);
	at = rewritten_diff(s, false, vip, &out, &want);
	if (at >= 0) {
		pkt_dump("got", &out, at);
		pkt_dump("want", &want, at);
		fail_msg("%s%s: the source must become %s and nothing else change, "
			 "byte %ld differs", test_context_str(), what, vip, at);
	}
	expect_csums(&out, what);
}

void expect_untouched(struct ts_env *e, const struct pkt *p, int verdict, const char *what)
{
	struct pkt out;
	char msg[160];

	snprintf(msg, sizeof(msg), "%s: verdict", what);
	ASSERT_EQ(env_run(e, p, &out), verdict, msg);
	snprintf(msg, sizeof(msg), "%s: packet unchanged", what);
	ASSERT_PKT_EQ(&out, p, msg);
}

/* The endpoint "addr:port" text of a spec's destination (dst) or source. */
static const char *spec_endpoint(const struct pkt_spec *s, bool dst, char buf[PKT_EPSTRLEN])
{
	const char *addr = dst ? s->dst : s->src;

	snprintf(buf, PKT_EPSTRLEN, strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr,
		 dst ? s->dport : s->sport);
	return buf;
}

struct pkt_spec backend_spec(const struct pkt_spec *s, const char *backend, __u8 flags,
			     char addr[PKT_EPSTRLEN])
{
	struct pkt_spec r = {
		.dst = s->src,
		.dport = s->sport,
		.flags = flags,
		.seq = TEST_BACKEND_ISN + 1,
		.ack = s->seq + 1,
	};

	return spec_with_endpoint(&r, false, backend, addr);
}

struct pkt_spec backend_syn_ack_spec(const struct pkt_spec *syn, const char *backend,
				     char addr[PKT_EPSTRLEN])
{
	struct pkt_spec r = backend_spec(syn, backend, PKT_SYN | PKT_ACK, addr);

	r.seq = TEST_BACKEND_ISN;
	r.mss = true;
	return r;
}

void backend_syn_ack(struct ts_env *e, const struct pkt_spec *syn, const char *backend,
		     const char *what)
{
	char addr[PKT_EPSTRLEN], vip[PKT_EPSTRLEN];
	struct pkt_spec r = backend_syn_ack_spec(syn, backend, addr);

	expect_reply(e, &r, spec_endpoint(syn, true, vip), what);
}

struct pkt_spec handshake_ack_spec(const struct pkt_spec *syn)
{
	struct pkt_spec a = *syn;

	a.flags = PKT_ACK;
	a.mss = false;
	a.seq = syn->seq + 1;
	a.ack = TEST_BACKEND_ISN + 1;
	return a;
}

int handshake(struct ts_env *e, const struct pkt_spec *syn, const char *const *to, size_t n,
	      const char *what)
{
	struct pkt_spec ack = handshake_ack_spec(syn);
	char msg[160];
	int b;

	snprintf(msg, sizeof(msg), "%s: SYN", what);
	b = expect_forward(e, syn, to, n, msg);
	snprintf(msg, sizeof(msg), "%s: the backend's SYN-ACK", what);
	backend_syn_ack(e, syn, to[b], msg);
	snprintf(msg, sizeof(msg), "%s: the client's ACK", what);
	expect_forward(e, &ack, &to[b], 1, msg);
	snprintf(msg, sizeof(msg), "%s: confirmed, in flows", what);
	ASSERT_EQ(env_flow_table(e, syn), 1, msg);
	return b;
}

const char *web_service(bool v6)
{
	return v6 ? "web6" : "web4";
}

void config_web(struct ts_env *e, bool v6, __u32 w1, __u32 w2)
{
	if (v6)
		config_web6(e, w1, w2);
	else
		config_web4(e, w1, w2);
}

__u8 env_flow_state(struct ts_env *e, const struct pkt_spec *s)
{
	struct ts_flow flow;

	ASSERT_EQ(env_flow_lookup(e, s, &flow), 0, "the flow is pinned");
	return flow.tcp_state;
}

struct pkt_spec client_spec(bool v6, __u16 sport, __u8 flags, __u32 seq)
{
	return (struct pkt_spec){
		.src = v6 ? CLIENT6 : CLIENT4,
		.dst = v6 ? VIP6_ADDR : VIP4_ADDR,
		.sport = sport,
		.dport = 8008,
		.flags = flags,
		.seq = seq,
		.ack = TEST_BACKEND_ISN + 1,
		.mss = flags == PKT_SYN,
	};
}
