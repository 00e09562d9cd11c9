// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * microbench: where tcpshift's time goes, measured with BPF_PROG_TEST_RUN on
 * the real program and through libtcpshift only (no map layout is read here,
 * so this survives data plane changes).
 *
 *   packets   ns per packet (kernel-reported duration, repeat >= 1M, median
 *             of 5 runs, the cases interleaved run by run) for the empty
 *             program, a packet to no service, an established flow's ACK, a
 *             new flow's SYN, a reply, IPv4 and IPv6; and "parse + one
 *             primitive" programs that split that time into its parts
 *   weights   ts_weights_set (and the bare Maglev build, and the CLI) against
 *             table size and number of backends
 *   flows     `tcpshift flows` dump time and map memory at 100k and 1M
 *             pinned flows (pinned by the real program, through the real maps)
 *   conn      (alone) ns of each of the seven segments of a whole connection
 *             through the XDP program with --handshakes xdp (bench_conn)
 *
 * Measuring a rewriting program with `repeat`: the kernel runs the same skb
 * again and again, so after the first run an established ACK has the
 * backend's address as destination and would measure "no service" from then
 * on, and a SYN is a new flow only once. Every such case therefore runs
 * behind a wrapper (prims.bpf.c: wrap4/wrap6) that restores the headers from
 * a template, optionally gives the packet a fresh client 5-tuple, and
 * tail-calls the real program; the same wrapper tail-calling the empty
 * program is the baseline subtracted. A second method, single-shot runs
 * (repeat 1, a fresh packet copy each time, median of many, minus the empty
 * program measured the same way), cross-checks the first.
 *
 * Output: OUT/microbench.json and OUT/microbench.md (OUT: --out, default
 * build/bench). Needs root. Uses its own pin directories
 * /sys/fs/bpf/tcpshift-bench-<pid>-<n>, removed at exit and on signals.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <linux/if_ether.h>

#include "libtcpshift.h"
#include "pkt.h"
#include "empty.skel.h"
#include "prims.skel.h"

#define BENCH_BPFFS	"/sys/fs/bpf"
#define BENCH_DEV	"tsbench0"	/* packets arrive on it: net_setup */
#define MAX_ENVS	8
#define VIP4		"198.18.100.1"
#define VIP6		"2001:2:100::1"
#define CLIENT4		"198.18.1.10"
#define CLIENT6		"2001:2:1::10"
#define NOSVC4		"198.18.3.3"
#define NOSVC6		"2001:2:3::3"
#define VPORT		8008
#define TUPLE_PORTS	64000	/* as in prims.bpf.c */
#define SEED		0x5eed1234U

/* ---- options ---------------------------------------------------------------- */

static struct {
	const char	*out_dir;
	const char	*tcpshift;
	__u32		repeat;
	int		runs;
	int		shots;		/* single-shot samples per case */
	int		weight_iters;
	bool		quick;
	__u32		services;	/* scale: services configured */
	bool		do_packets, do_weights, do_flows, do_scale, do_conn;
	bool		repeat_set;
} opt = {
	.out_dir = "build/bench",
	.repeat = 1000000,
	.runs = 5,
	.shots = 20000,
	.weight_iters = 25,
	.services = 1,
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- time and statistics --------------------------------------------------------- */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double *s;
	double m;

	if (n <= 0)
		return 0;
	s = malloc(sizeof(*s) * (size_t)n);
	if (!s)
		die("out of memory");
	memcpy(s, v, sizeof(*s) * (size_t)n);
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
	free(s);
	return m;
}

static double vmin(const double *v, int n)
{
	double m = n ? v[0] : 0;

	for (int i = 1; i < n; i++)
		m = v[i] < m ? v[i] : m;
	return m;
}

static double vmax(const double *v, int n)
{
	double m = n ? v[0] : 0;

	for (int i = 1; i < n; i++)
		m = v[i] > m ? v[i] : m;
	return m;
}

static json_object *jarray_of(const double *v, int n, int decimals)
{
	json_object *a = json_object_new_array();
	double scale = decimals == 0 ? 1 : decimals == 1 ? 10 : decimals == 2 ? 100 : 1000;

	for (int i = 0; i < n; i++)
		json_object_array_add(a, json_object_new_double((double)(long long)(v[i] * scale +
										  0.5) /
								 scale));
	return a;
}

static json_object *jnum(double v, int decimals)
{
	double scale = decimals == 0 ? 1 : decimals == 1 ? 10 : decimals == 2 ? 100 : 1000;
	double r = (double)(long long)(v * scale + (v < 0 ? -0.5 : 0.5)) / scale;

	if (decimals == 0)
		return json_object_new_int64((long long)r);
	return json_object_new_double(r);
}

/* ---- pin directories (ours only, removed on exit and signals) ------------------------ */

static char made_dirs[MAX_ENVS][128];

static void remove_dir_contents(const char *dir)
{
	char path[512];
	struct dirent *d;
	DIR *dh = opendir(dir);

	if (!dh)
		return;
	while ((d = readdir(dh))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		unlink(path);
	}
	closedir(dh);
}

static void cleanup_dirs(void)
{
	for (int i = 0; i < MAX_ENVS; i++) {
		if (!made_dirs[i][0])
			continue;
		remove_dir_contents(made_dirs[i]);
		rmdir(made_dirs[i]);
		made_dirs[i][0] = '\0';
	}
}

static void on_signal(int sig)
{
	/* not async-signal-safe (opendir), but we are exiting anyway and
	 * leaving pins behind would be worse */
	cleanup_dirs();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("microbench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cleanup_dirs();
	exit(1);
}

/* ---- the real program, loaded with its maps in our own pin directory ----------------- */

struct env {
	char			pin_dir[128];
	struct tcpshift_bpf	*skel;
	int			prog_fd;
	int			xdp_fd;		/* the XDP program (load --mode xdp) */
	struct ts_maps		maps;
	bool			maps_open;
	int			slot;
	__u32			max_flows;
};

static int env_seq;
static __u32 bench_ifindex;

static void env_close(struct env *e)
{
	if (e->maps_open)
		ts_maps_close(&e->maps);
	e->maps_open = false;
	if (e->skel)
		ts_bpf_destroy(e->skel);
	e->skel = NULL;
	if (e->slot >= 0) {
		remove_dir_contents(e->pin_dir);
		rmdir(e->pin_dir);
		made_dirs[e->slot][0] = '\0';
	}
	e->slot = -1;
}

/* An environment loaded with o (its pin_dir set here). */
static void env_open_opts(struct env *e, const struct ts_load_opts *lo)
{
	struct ts_load_opts o = *lo;
	struct ts_err err = {};
	bool target;

	memset(e, 0, sizeof(*e));
	e->slot = -1;
	e->max_flows = o.max_flows;
	snprintf(e->pin_dir, sizeof(e->pin_dir), "%s/tcpshift-bench-%d-%d", BENCH_BPFFS,
		 (int)getpid(), env_seq++);
	for (int i = 0; i < MAX_ENVS; i++) {
		if (!made_dirs[i][0]) {
			e->slot = i;
			break;
		}
	}
	if (e->slot < 0)
		die("too many environments open");
	if (mkdir(e->pin_dir, 0700))
		die("cannot create %s: %s", e->pin_dir, strerror(errno));
	snprintf(made_dirs[e->slot], sizeof(made_dirs[e->slot]), "%s", e->pin_dir);
	o.pin_dir = e->pin_dir;
	e->skel = ts_bpf_open_load(&o, &err);
	if (!e->skel)
		die("ts_bpf_open_load(%s, max_flows %u): %s", e->pin_dir, o.max_flows, err.msg);
	e->prog_fd = ts_bpf_prog_fd(e->skel);
	e->xdp_fd = ts_bpf_xdp_prog_fd(e->skel);
	if (e->prog_fd < 0 || e->xdp_fd < 0)
		die("ts_bpf_prog_fd: %d, ts_bpf_xdp_prog_fd: %d", e->prog_fd, e->xdp_fd);
	/* the bench device is the XDP program's, as `load --mode xdp` makes it */
	if (ts_bpf_xdp_dev_add(e->skel, (int)bench_ifindex, false, &target, &err))
		die("%s", err.msg);
	if (!target)
		die("%s takes no XDP redirects (its peer has no GRO)", BENCH_DEV);
	if (ts_maps_open(&e->maps, e->pin_dir, &err))
		die("ts_maps_open(%s): %s", e->pin_dir, err.msg);
	e->maps_open = true;
}

static void env_open_fib(struct env *e, __u32 max_flows, bool fib)
{
	struct ts_load_opts o = { .max_flows = max_flows, .seed = SEED, .seed_set = true,
				  .forward_fib = fib };

	env_open_opts(e, &o);
}

static void env_open(struct env *e, __u32 max_flows)
{
	env_open_fib(e, max_flows, false);
}

static struct ts_endpoint endpoint(const char *s)
{
	struct ts_endpoint ep;
	struct ts_err err = {};

	if (ts_parse_endpoint(s, &ep, &err))
		die("%s: %s", s, err.msg);
	return ep;
}

static int service_add(struct env *e, const char *name, const char *vip, __u32 m,
		       struct ts_err *err)
{
	struct ts_endpoint ep = endpoint(vip);

	return ts_service_add(&e->maps, name, &ep, m, err);
}

static int backend_add(struct env *e, const char *svc, const char *name, const char *addr,
		       __u32 w, struct ts_err *err)
{
	struct ts_endpoint ep = endpoint(addr);

	return ts_backend_add(&e->maps, svc, name, &ep, w, err);
}

static void must(int r, const struct ts_err *err, const char *what)
{
	if (r)
		die("%s: %s", what, err->msg);
}

/* web4 and web6, backends v1 and v2 of weights w1, w2 (the deployment of DESIGN.md). */
static void config_web(struct env *e, __u32 w1, __u32 w2)
{
	struct ts_err err = {};

	must(service_add(e, "web4", VIP4 ":8008", TS_DEFAULT_TABLE_SIZE, &err), &err,
	     "service web4");
	must(backend_add(e, "web4", "v1", "198.18.2.11:8008", w1, &err), &err, "backend v1");
	must(backend_add(e, "web4", "v2", "198.18.2.12:8008", w2, &err), &err, "backend v2");
	must(service_add(e, "web6", "[" VIP6 "]:8008", TS_DEFAULT_TABLE_SIZE, &err), &err,
	     "service web6");
	must(backend_add(e, "web6", "v1", "[2001:2:2::11]:8008", w1, &err), &err, "backend v1");
	must(backend_add(e, "web6", "v2", "[2001:2:2::12]:8008", w2, &err), &err, "backend v2");
	/* committed, as the commands that make it leave it: the lock let go,
	 * TS_SETTINGS_F_CHANGING clear (the data plane's copies of backends'
	 * entries stand only then: include/tcpshift.h, ts_flow_entry) */
	ts_maps_unlock(&e->maps);
}

static __u64 counter(struct env *e, enum ts_counter c)
{
	__u64 all[TS_CNT_MAX];
	struct ts_err err = {};

	must(ts_counters_read(&e->maps, all, &err), &err, "ts_counters_read");
	return all[c];
}

static void add_pending(const struct ts_flow_key *k, const struct ts_flow *f, void *ctx)
{
	(void)k;
	if (f->flags & TS_FLOW_F_COUNTED)
		*(__u64 *)ctx += (__s32)f->packets;
}

/* What waits in established flows' entries to be added to their backends'
 * counters (tcpshift.h, TS_PENDING_MAX): the packets of the flows' and the
 * replies' entries, and the replies' bytes. */
static void pending(struct env *e, __u64 *packets, __u64 *reply_bytes)
{
	enum { CHUNK = 4096 };
	static struct ts_flow_key k[CHUNK];
	static struct ts_reply_state r[CHUNK];
	__u32 batch, n;
	void *in = NULL;
	int rc;

	*packets = *reply_bytes = 0;
	rc = ts_flow_map_foreach(e->maps.flows, add_pending, packets);
	if (rc)
		die("flows: %s", strerror(-rc));
	do {	/* (a million replies: a chunk per call) */
		n = CHUNK;
		rc = bpf_map_lookup_batch(e->maps.replies, in, &batch, k, r, &n, NULL) ? -errno : 0;
		if (rc && rc != -ENOENT)
			die("replies: %s", strerror(-rc));
		in = &batch;
		for (__u32 i = 0; i < n; i++) {
			*packets += (__s32)r[i].packets;
			*reply_bytes += (__s32)r[i].bytes;
		}
	} while (!rc);
}

/* Packets counted over every backend of every service, those waiting in
 * their flows' entries included. */
static __u64 backend_packets(struct env *e)
{
	struct ts_config cfg = {};
	struct ts_err err = {};
	__u64 total, bytes;

	pending(e, &total, &bytes);

	must(ts_config_read(&e->maps, &cfg, &err), &err, "ts_config_read");
	for (size_t i = 0; i < cfg.nservices; i++) {
		for (size_t j = 0; j < cfg.services[i].nbackends; j++) {
			struct ts_backend_stats st = {};

			if (!ts_backend_stats_read(&e->maps, cfg.services[i].backends[j].id, &st,
						   &err))
				total += st.packets;
		}
	}
	ts_config_free(&cfg);
	return total;
}

static void count_cb(const struct ts_flow_key *k, const struct ts_flow *f, void *ctx)
{
	(*(__u64 *)ctx)++;
}

/* Flows pinned in every flow table (established and half-open). */
static __u64 pinned_flows(struct env *e)
{
	__u64 n = 0;
	int r = ts_flows_foreach(&e->maps, count_cb, &n);

	if (r)
		die("ts_flows_foreach: %s", strerror(-r));
	return n;
}

/* ---- packets ------------------------------------------------------------------------ */

enum tmpl {
	T_SYN,		/* client -> VIP SYN */
	T_ACK,		/* client -> VIP ACK */
	T_REPLY,	/* backend v1 -> client ACK */
	T_SYNACK,	/* backend v1 -> client SYN-ACK, acknowledged by T_ACK */
	T_SYNACK2,	/* the same from v2 */
	T_NOSVC,	/* client -> an address that is no service, ACK */
	T_UDP,		/* client -> VIP, UDP */
	T_TO_BACKEND,	/* client -> backend v1 ACK: what plain forwarding carries */
	T_MAX,
};

static void build(struct pkt *p, int fam, enum tmpl t, __u16 cport)
{
	const char *client = fam == 4 ? CLIENT4 : CLIENT6;
	const char *vip = fam == 4 ? VIP4 : VIP6;
	const char *v1 = fam == 4 ? "198.18.2.11" : "2001:2:2::11";
	struct pkt_spec s = {
		.src = client,
		.dst = vip,
		.sport = cport,
		.dport = VPORT,
		.flags = PKT_ACK,
		.seq = 1001,
		.ack = 2002,
	};

	switch (t) {
	case T_SYN:
		s.flags = PKT_SYN;
		s.mss = true;
		s.ack = 0;
		break;
	case T_ACK:
		break;
	case T_SYNACK:
	case T_SYNACK2:
		s.flags = PKT_SYN | PKT_ACK;
		s.mss = true;
		s.seq = 2001;
		s.ack = 1002;
		if (t == T_SYNACK2)
			v1 = fam == 4 ? "198.18.2.12" : "2001:2:2::12";
		/* fall through */
	case T_REPLY:
		s.src = v1;
		s.dst = client;
		s.sport = VPORT;
		s.dport = cport;
		break;
	case T_NOSVC:
		s.dst = fam == 4 ? NOSVC4 : NOSVC6;
		s.dport = 80;
		break;
	case T_UDP:
		s.proto = IPPROTO_UDP;
		break;
	case T_TO_BACKEND:
		s.dst = v1;
		break;
	default:
		break;
	}
	if (pkt_build(p, &s))
		die("pkt_build");
}

/* Client i of the tuple space, as prims.bpf.c's patch_tuple writes it. */
static void patch_tuple(struct pkt *p, int fam, bool dst, __u32 i)
{
	__u32 hi = i / TUPLE_PORTS, port = 1024 + i % TUPLE_PORTS;
	__u8 *h = p->data + ETH_HLEN;
	__u8 *a = fam == 4 ? h + (dst ? 18 : 14) : h + (dst ? 38 : 22);
	__u8 *pp = fam == 4 ? h + (dst ? 22 : 20) : h + (dst ? 42 : 40);

	a[0] = (__u8)(64 + (hi >> 8));
	a[1] = (__u8)hi;
	pp[0] = (__u8)(port >> 8);
	pp[1] = (__u8)port;
}

/* An IPv4 client -> VIP template sent to vip instead, its checksums redone. */
static void spread_to(struct pkt *p, const char *vip)
{
	__u8 *h = p->data + ETH_HLEN;
	__u16 *w = (__u16 *)(h + 16);
	__u16 old[2] = { w[0], w[1] };
	__u8 *check[2] = { h + 10, h + 36 };

	inet_pton(AF_INET, vip, h + 16);
	for (int c = 0; c < 2; c++)
		for (int j = 0; j < 2; j++) {
			__u32 sum = (__u16)~*(__u16 *)check[c] + (__u16)~old[j] + w[j];

			sum = (sum & 0xffff) + (sum >> 16);
			sum = (sum & 0xffff) + (sum >> 16);
			*(__u16 *)check[c] = (__u16)~sum;
		}
}

struct run {
	__u32	dur;		/* kernel-reported ns per run */
	double	wall;		/* wall ns per run, syscall included */
	int	retval;
};

/*
 * Packets arrive on one device of a network namespace of our own, through
 * which the backends are routed: the program's reverse-path check of replies
 * (doc/DESIGN.md, "Replies") sees a gateway, as in the bpf tests.
 */

static void net_setup(void)
{
	static const char *const cmds[] = {
		"ip link set lo up",
		"sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1",
		/* pkt_build's destination MAC: the frames are PACKET_HOST */
		"ip link add " BENCH_DEV " address 02:00:00:00:00:01 type veth peer name tsbench1",
		"ip link set tsbench1 up",
		/* the peer takes XDP-redirected frames, as on a gateway in xdp mode */
		"ethtool -K tsbench1 gro on",
		"ip link set " BENCH_DEV " up",
		"ip addr add 198.18.2.1/24 dev " BENCH_DEV,
		"ip -6 addr add 2001:2:2::1/64 dev " BENCH_DEV " nodad",
		"ip route add default dev " BENCH_DEV,
		"ip -6 route add default dev " BENCH_DEV,
		/* resolved neighbours: the XDP program forwards at once (a FIB
		 * answer without one sends the packet on to tc) */
		"ip neigh add " CLIENT4 " lladdr 02:00:00:00:00:10 dev " BENCH_DEV " nud permanent",
		"ip neigh add " CLIENT6 " lladdr 02:00:00:00:00:10 dev " BENCH_DEV " nud permanent",
		"ip neigh add 198.18.2.11 lladdr 02:00:00:00:00:11 dev " BENCH_DEV " nud permanent",
		"ip neigh add 2001:2:2::11 lladdr 02:00:00:00:00:11 dev " BENCH_DEV " nud permanent",
		/* the wrapper's rotating clients (198.18.64.0/18, 2001:2:1::4000/115)
		 * behind a router with a resolved neighbour: XDP forwards what
		 * goes to them (scale's and conn's replies) */
		"ip neigh add 198.18.2.254 lladdr 02:00:00:00:00:10 dev " BENCH_DEV " nud permanent",
		"ip neigh add 2001:2:2::fe lladdr 02:00:00:00:00:10 dev " BENCH_DEV " nud permanent",
		"ip route add 198.18.64.0/18 via 198.18.2.254 dev " BENCH_DEV,
		"ip -6 route add 2001:2:1::4000/115 via 2001:2:2::fe dev " BENCH_DEV,
		/* the scale section's other services' backends (config_scale) */
		"ip neigh add 198.18.4.1 lladdr 02:00:00:00:00:12 dev " BENCH_DEV " nud permanent",
		"ip neigh add 198.18.4.2 lladdr 02:00:00:00:00:12 dev " BENCH_DEV " nud permanent",
		"ip neigh add 198.18.5.1 lladdr 02:00:00:00:00:12 dev " BENCH_DEV " nud permanent",
		"ip neigh add 198.18.5.2 lladdr 02:00:00:00:00:12 dev " BENCH_DEV " nud permanent",
	};

	if (unshare(CLONE_NEWNET))
		die("cannot create a network namespace: %s", strerror(errno));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (system(cmds[i]))
			die("'%s' failed", cmds[i]);
	bench_ifindex = if_nametoindex(BENCH_DEV);
	if (!bench_ifindex)
		die("no %s", BENCH_DEV);
}

static struct run test_run_ctx(int fd, const struct pkt *in, __u32 repeat, bool xdp)
{
	struct pkt out;
	struct __sk_buff ctx = { .ifindex = bench_ifindex, .ingress_ifindex = bench_ifindex };
	/* data_end: the frame's length, or the kernel runs an empty frame */
	struct xdp_md xctx = { .data_end = in->len, .ingress_ifindex = bench_ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in->data, .data_size_in = in->len,
		    .data_out = out.data, .data_size_out = sizeof(out.data), .repeat = repeat,
		    .ctx_in = xdp ? (void *)&xctx : (void *)&ctx,
		    .ctx_size_in = xdp ? sizeof(xctx) : sizeof(ctx));
	struct run r;
	double t0 = now_ns();

	if (bpf_prog_test_run_opts(fd, &o))
		die("BPF_PROG_TEST_RUN (prog fd %d, repeat %u): %s", fd, repeat, strerror(errno));
	r.wall = (now_ns() - t0) / repeat;
	r.dur = o.duration;
	r.retval = (int)o.retval;
	return r;
}

static struct run test_run(int fd, const struct pkt *in, __u32 repeat)
{
	return test_run_ctx(fd, in, repeat, false);
}

/* The instruments: empty program, wrappers, primitives. */
static struct bench_empty *empty_skel;
static struct bench_prims *prims;
static int empty_fd, empty_xdp_fd;

static void jump_to_map(int map_fd, int prog_fd)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(map_fd, &zero, &prog_fd, BPF_ANY))
		die("cannot put program %d in the wrapper's jump table: %s", prog_fd,
		    strerror(errno));
}

static void jump_to(int prog_fd)
{
	jump_to_map(bpf_map__fd(prims->maps.jmp), prog_fd);
}

/* The wrapper of family fam with template p; tuples: mod 0 = the template's. */
static int wrap_setup(int fam, const struct pkt *p, __u32 mod, __u32 base, bool dst)
{
	memcpy(prims->bss->tmpl_eth, p->data, sizeof(prims->bss->tmpl_eth));
	if (fam == 4)
		memcpy(prims->bss->tmpl4, p->data + ETH_HLEN, sizeof(prims->bss->tmpl4));
	else
		memcpy(prims->bss->tmpl6, p->data + ETH_HLEN, sizeof(prims->bss->tmpl6));
	prims->bss->tuple_mod = mod;
	prims->bss->tuple_base = base;
	prims->bss->patch_dst = dst;
	prims->bss->counter = 0;
	prims->bss->vip_mod = 0;
	return bpf_program__fd(fam == 4 ? prims->progs.wrap4 : prims->progs.wrap6);
}


/* Pin flows base..base+n-1 of family fam through the real program with a
 * handshake (SYN, the SYN-ACK of v1 and of v2 — one of them is the pinned
 * backend's — then the ACK that confirms the flow), in chunks small enough
 * that the half-open table never evicts. */
static void pin_flows(struct env *e, int fam, __u32 base, __u32 n)
{
	const __u32 chunk = 16384;
	struct pkt syn, synack, synack2, ack;
	int fd;

	build(&syn, fam, T_SYN, 40000);
	build(&synack, fam, T_SYNACK, 40000);
	build(&synack2, fam, T_SYNACK2, 40000);
	build(&ack, fam, T_ACK, 40000);
	jump_to(e->prog_fd);
	for (__u32 done = 0; done < n; done += chunk) {
		__u32 c = n - done < chunk ? n - done : chunk;

		fd = wrap_setup(fam, &syn, c, base + done, false);
		test_run(fd, &syn, c);
		fd = wrap_setup(fam, &synack, c, base + done, true);
		test_run(fd, &synack, c);
		fd = wrap_setup(fam, &synack2, c, base + done, true);
		test_run(fd, &synack2, c);
		fd = wrap_setup(fam, &ack, c, base + done, false);
		test_run(fd, &ack, c);
	}
}

/* One measured case: a program run on a packet, `runs` times. */
struct pcase {
	const char	*name;		/* case */
	const char	*key;		/* short id for JSON */
	int		fam;
	const char	*mode;		/* direct | wrapped */
	struct env	*env;		/* NULL: runs the empty program or a primitive */
	int		target_fd;	/* wrapped: program tail-called */
	int		prog_fd;	/* direct: program run */
	struct pkt	pkt;
	__u32		mod, base;
	__u32		vip_mod, vip_stride;	/* the wrapper's (prims.bpf.c) */
	bool		same_flows;	/* base is not advanced run by run */
	bool		dst;
	bool		fresh_env;	/* a new env each run (new-flow SYNs) */
	__u32		fresh_max_flows;
	double		dur[16];
	double		wall[16];
	int		retval;
	const char	*check;		/* what was checked, and the result */
	char		check_buf[160];
	bool		valid;
	const struct pcase *baseline;	/* subtracted for "over empty" */
	const char	*note;
};

/* load --mode xdp: the XDP program behind wrap4_xdp/wrap6_xdp */
static bool is_xdp_case(const struct pcase *c)
{
	return !strcmp(c->mode, "wrapped-xdp");
}

static void case_run(struct pcase *c, int run)
{
	struct run r;
	int fd = c->prog_fd;

	if (!strcmp(c->mode, "wrapped") || is_xdp_case(c)) {
		fd = wrap_setup(c->fam, &c->pkt, c->mod,
				c->base + (c->same_flows ? 0 : (__u32)run * opt.repeat), c->dst);
		prims->bss->vip_mod = c->vip_mod;
		prims->bss->vip_stride = c->vip_stride;
		if (is_xdp_case(c)) {
			jump_to_map(bpf_map__fd(prims->maps.jmp_xdp), c->target_fd);
			fd = bpf_program__fd(c->fam == 4 ? prims->progs.wrap4_xdp
							 : prims->progs.wrap6_xdp);
		} else {
			jump_to(c->target_fd);
		}
	}
	r = test_run_ctx(fd, &c->pkt, opt.repeat, is_xdp_case(c));
	c->dur[run] = r.dur;
	c->wall[run] = r.wall;
	c->retval = r.retval;
}

/* ---- output helpers ---------------------------------------------------------------- */

static FILE *md;
static json_object *jroot;

static void md_open(void)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/microbench.md", opt.out_dir);
	md = fopen(path, "w");
	if (!md)
		die("cannot write %s: %s", path, strerror(errno));
}

static json_object *machine_json(void)
{
	json_object *m = json_object_new_object();
	struct utsname u;
	char line[256], cpu[256] = "?";
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && colon) {
			snprintf(cpu, sizeof(cpu), "%s", colon + 2);
			cpu[strcspn(cpu, "\n")] = '\0';
			break;
		}
	}
	if (f)
		fclose(f);
	uname(&u);
	json_object_object_add(m, "nproc", json_object_new_int((int)sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_object_add(m, "kernel", json_object_new_string(u.release));
	json_object_object_add(m, "cpu", json_object_new_string(cpu));
	fprintf(md, "Machine: %ld CPUs (%s), kernel %s. ", sysconf(_SC_NPROCESSORS_ONLN), cpu,
		u.release);
	return m;
}

/* ---- the packet cases ------------------------------------------------------------- */

#define MAX_CASES 96
static struct pcase cases[MAX_CASES];	/* fixed: cases point at each other */
static int ncases;

static struct pcase *add_case(const char *name, const char *key, int fam, const char *mode)
{
	struct pcase *c;

	if (ncases == MAX_CASES)
		die("too many cases");
	c = &cases[ncases++];
	memset(c, 0, sizeof(*c));
	c->name = name;
	c->key = key;
	c->fam = fam;
	c->mode = mode;
	c->valid = true;
	c->check = "";
	return c;
}

/* The primitives: program, packet template, what it measures. */
struct prim {
	const char	*key;
	const char	*what;
	enum tmpl	t;
	int		(*fd)(void);
	bool		insert;		/* needs its own big maps, loaded fresh each run */
};

#define PFD(prog)                                                                               \
	static int fd_##prog(void)                                                              \
	{                                                                                       \
		return bpf_program__fd(prims->progs.prog);                                      \
	}
PFD(p_parse)
PFD(p_svc)
PFD(p_flow)
PFD(p_hash)
PFD(p_ktime)
PFD(p_ktime_coarse)
PFD(p_jiffies)
PFD(p_flow16)
PFD(p_csum_only)
PFD(p_store_helper)
PFD(p_store_direct)
PFD(p_backend)
PFD(p_stats)
PFD(p_table)
PFD(p_rewrite)
PFD(p_rewrite_port)
PFD(p_update)
PFD(p_ringbuf)

static const struct prim prim_list[] = {
	{ "parse", "parse Ethernet/IP/TCP into the 5-tuple key", T_ACK, fd_p_parse },
	{ "svc_hit", "+ services lookup (hash, 20 B key), hit", T_ACK, fd_p_svc },
	{ "svc_miss", "+ services lookup, miss", T_NOSVC, fd_p_svc },
	{ "flow_hit", "+ flows lookup (LRU hash, 40 B key), hit", T_ACK, fd_p_flow },
	{ "flow_miss", "+ flows lookup, miss", T_NOSVC, fd_p_flow },
	{ "flow16_hit", "+ flows lookup with a 16 B IPv4-only key, hit (IPv6: miss)", T_ACK,
	  fd_p_flow16 },
	{ "hash", "+ flow hash (MurmurHash3, 10 words)", T_ACK, fd_p_hash },
	{ "ktime", "+ bpf_ktime_get_ns", T_ACK, fd_p_ktime },
	{ "ktime_coarse", "+ bpf_ktime_get_coarse_ns", T_ACK, fd_p_ktime_coarse },
	{ "jiffies", "+ bpf_jiffies64", T_ACK, fd_p_jiffies },
	{ "backend", "+ backends lookup (array)", T_ACK, fd_p_backend },
	{ "stats", "+ per-CPU backend stats (lookup, 3 adds)", T_ACK, fd_p_stats },
	{ "table", "+ Maglev slot (array of maps: outer + inner lookup)", T_ACK, fd_p_table },
	{ "rewrite", "+ NAT rewrite of the address, checksums (helpers)", T_ACK, fd_p_rewrite },
	{ "csum_only", "+ its checksum helpers alone (l4 + l3 / csum_diff + l4)", T_ACK,
	  fd_p_csum_only },
	{ "store_helper", "+ its bpf_skb_store_bytes alone", T_ACK, fd_p_store_helper },
	{ "store_direct", "+ the same store as a direct packet write", T_ACK, fd_p_store_direct },
	{ "rewrite_port", "+ NAT rewrite of address and port", T_ACK, fd_p_rewrite_port },
	{ "update", "+ write of an existing flows entry (LRU update)", T_ACK, fd_p_update },
	{ "ringbuf", "+ a sync pin event (ring buffer reserve, 72 B, commit)", T_ACK,
	  fd_p_ringbuf },
};

static const struct {
	const char *key, *what, *map;
} insert_list[] = {
	{ "insert_lru", "+ insert of a new key, LRU hash (common LRU list)", "ins_lru" },
	{ "insert_lru_pcpu", "+ insert of a new key, LRU hash with BPF_F_NO_COMMON_LRU",
	  "ins_lru_pcpu" },
	{ "insert_hash", "+ insert of a new key, plain preallocated hash", "ins_hash" },
};

#define NPRIMS (sizeof(prim_list) / sizeof(prim_list[0]))
#define NINSERTS (sizeof(insert_list) / sizeof(insert_list[0]))

/* The primitives object; insert map number `which` (insert_list) sized for
 * `entries` inserts, the others left tiny. */
static struct bench_prims *prims_load(__u32 entries, int which)
{
	struct bench_prims *p = bench_prims__open();
	int ncpu = libbpf_num_possible_cpus();

	if (!p)
		die("cannot open the primitives object: %s", strerror(errno));
	if (which == 0)
		bpf_map__set_max_entries(p->maps.ins_lru, entries);
	else if (which == 1)	/* a per-CPU LRU gives each CPU max_entries / ncpu */
		bpf_map__set_max_entries(p->maps.ins_lru_pcpu, entries * (__u32)ncpu);
	else if (which == 2)
		bpf_map__set_max_entries(p->maps.ins_hash, entries);
	if (bench_prims__load(p))
		die("cannot load the primitives object: %s", strerror(errno));
	return p;
}

/* Fill the primitives' maps so that their lookups hit: the services key of
 * the VIP, the flow of the ACK template, a table of M slots for id 0. */
static void prims_fill_family(struct bench_prims *p, int fam)
{
	struct {
		__be32 addr[4];
		__be16 port;
		__u8 proto, family;
	} sk = {};
	__u8 sv[48] = {};
	struct ts_flow_key fk = {};
	struct ts_flow fv = { .backend_id = 1, .tcp_state = TS_TCP_ESTABLISHED };
	const __u32 m = TS_DEFAULT_TABLE_SIZE, entries = 2 * (m + 1 + TS_MAX_SERVICE_BACKENDS);
	LIBBPF_OPTS(bpf_map_create_opts, mo, .map_flags = BPF_F_INNER_MAP);
	__u32 zero = 0;
	int tfd;

	inet_pton(fam == 4 ? AF_INET : AF_INET6, fam == 4 ? VIP4 : VIP6, sk.addr);
	sk.port = htons(VPORT);
	sk.proto = IPPROTO_TCP;
	sk.family = fam == 4 ? TS_AF_INET : TS_AF_INET6;
	if (bpf_map_update_elem(bpf_map__fd(p->maps.svc), &sk, sv, BPF_ANY))
		die("primitives: svc update: %s", strerror(errno));
	fk = (struct ts_flow_key){ .proto = IPPROTO_TCP, .family = sk.family };
	inet_pton(fam == 4 ? AF_INET : AF_INET6, fam == 4 ? CLIENT4 : CLIENT6, fk.saddr);
	memcpy(fk.daddr, sk.addr, sizeof(fk.daddr));
	fk.sport = htons(40000);
	fk.dport = htons(VPORT);
	if (bpf_map_update_elem(bpf_map__fd(p->maps.flow), &fk, &fv, BPF_ANY))
		die("primitives: flow update: %s", strerror(errno));
	if (fam == 4) {
		struct {
			__be32 saddr, daddr;
			__be16 sport, dport;
			__u32 proto;
		} k16 = { fk.saddr[0], fk.daddr[0], fk.sport, fk.dport, IPPROTO_TCP };

		if (bpf_map_update_elem(bpf_map__fd(p->maps.flow16), &k16, &fv, BPF_ANY))
			die("primitives: flow16 update: %s", strerror(errno));
	}
	if (fam == 6)
		return;
	tfd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "bench_tbl", 4, 8, entries, &mo);
	if (tfd < 0 || bpf_map_update_elem(bpf_map__fd(p->maps.tables), &zero, &tfd, BPF_ANY))
		die("primitives: table: %s", strerror(errno));
	close(tfd);
}

static void prims_fill(struct bench_prims *p)
{
	__u32 ifindex = bench_ifindex;

	prims_fill_family(p, 4);
	prims_fill_family(p, 6);
	if (bpf_map_update_elem(bpf_map__fd(p->maps.redirect_ports), &ifindex, &ifindex, BPF_ANY))
		die("primitives: redirect_ports update: %s", strerror(errno));
}

/*
 * tcpshift's XDP program on an established flow against plain XDP forwarding,
 * both over the same wrapped empty XDP program, from this one run: the ratio
 * of their rates as programs, and the difference that bench-pps adds to a
 * plain redirect's gateway time (226 ns there: issue "XDP mode", the 0.8x
 * target allows ~55 ns more per packet).
 */
static void print_xdp_vs_plain(struct pcase *const est[2], struct pcase *const plain[2])
{
	fprintf(md, "\n### tcpshift XDP established over plain redirect\n\n"
		    "| family | plain redirect over empty | tcpshift XDP established over empty | "
		    "difference ns | ratio of rates (plain ns / tcpshift ns, wrapped) |\n"
		    "|---|---:|---:|---:|---:|\n");
	for (int f = 0; f < 2; f++) {
		double e = median(est[f]->dur, opt.runs), p = median(plain[f]->dur, opt.runs);
		double b = median(est[f]->baseline->dur, opt.runs);

		fprintf(md, "| IPv%d | %+.0f | %+.0f | %+.0f | %.2f |\n", f ? 6 : 4, p - b, e - b,
			e - p, e > 0 ? p / e : 0);
	}
}

static bool is_packet_case(const struct pcase *c)
{
	return !strcmp(c->mode, "direct") || !strcmp(c->mode, "wrapped") || is_xdp_case(c);
}

static void print_packets_md(void)
{
	fprintf(md, "\n## Per-packet cost (BPF_PROG_TEST_RUN)\n\n");
	fprintf(md, "Kernel-reported ns per run, median of %d runs of repeat %u (cases "
		    "interleaved run by run). *Over empty*: minus the empty program measured "
		    "the same way (directly, or behind the same wrapper).\n\n",
		opt.runs, opt.repeat);
	fprintf(md, "| case | IPv4 ns | IPv4 over empty | IPv6 ns | IPv6 over empty | runs (v4) | "
		    "check |\n|---|---:|---:|---:|---:|---|---|\n");
	for (int i = 0; i < ncases; i++) {
		struct pcase *c4 = &cases[i], *c6 = NULL;
		char runs[128] = "";
		size_t off = 0;

		if (c4->fam != 4 || !is_packet_case(c4))
			continue;
		for (int j = 0; j < ncases; j++)
			if (cases[j].fam == 6 && is_packet_case(&cases[j]) &&
			    !strcmp(cases[j].key, c4->key))
				c6 = &cases[j];
		for (int r = 0; r < opt.runs && off < sizeof(runs) - 8; r++)
			off += (size_t)snprintf(runs + off, sizeof(runs) - off, "%s%.0f",
						r ? " " : "", c4->dur[r]);
		fprintf(md, "| %s | %.0f | ", c4->name, median(c4->dur, opt.runs));
		if (c4->baseline)
			fprintf(md, "%+.0f | ",
				median(c4->dur, opt.runs) - median(c4->baseline->dur, opt.runs));
		else
			fprintf(md, "— | ");
		if (c6) {
			fprintf(md, "%.0f | ", median(c6->dur, opt.runs));
			if (c6->baseline)
				fprintf(md, "%+.0f | ", median(c6->dur, opt.runs) -
							       median(c6->baseline->dur, opt.runs));
			else
				fprintf(md, "— | ");
		} else {
			fprintf(md, "| | ");
		}
		fprintf(md, "%s | %s%s |\n", runs, c4->valid && (!c6 || c6->valid) ? "ok" : "FAILED: ",
			c4->valid && (!c6 || c6->valid) ? "" : (c4->valid ? c6->check : c4->check));
	}
}

static json_object *case_json(const struct pcase *c)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "case", json_object_new_string(c->key));
	json_object_object_add(o, "description", json_object_new_string(c->name));
	json_object_object_add(o, "family", json_object_new_int(c->fam));
	json_object_object_add(o, "mode", json_object_new_string(c->mode));
	json_object_object_add(o, "runs_ns", jarray_of(c->dur, opt.runs, 0));
	json_object_object_add(o, "median_ns", jnum(median(c->dur, opt.runs), 1));
	json_object_object_add(o, "wall_ns_per_packet",
			       jnum(median(c->wall, opt.runs), 2));
	if (c->baseline) {
		json_object_object_add(o, "baseline", json_object_new_string(c->baseline->key));
		json_object_object_add(o, "over_empty_ns",
				       jnum(median(c->dur, opt.runs) -
						    median(c->baseline->dur, opt.runs),
					    1));
	}
	json_object_object_add(o, "check", json_object_new_string(c->check));
	json_object_object_add(o, "valid", json_object_new_boolean(c->valid));
	if (c->note)
		json_object_object_add(o, "note", json_object_new_string(c->note));
	return o;
}

/* Single shots: repeat 1, a fresh copy of the packet per run; the median of
 * many, minus the empty program measured the same way. */
struct shot {
	const char	*key;
	const char	*name;
	int		fam;
	double		*v;
	double		med;
};

static void bench_single_shots(struct env *e, json_object *jpk)
{
	enum { S_EMPTY, S_NOSVC, S_EST, S_SYN, S_REPLY, S_N };
	static const char *const keys[S_N] = { "empty", "no_service", "established", "syn_new",
					      "reply" };
	static const char *const names[S_N] = { "empty program", "to no service",
					       "established flow (ACK)",
					       "SYN of a new flow (distinct 5-tuple each)",
					       "reply (backend -> client)" };
	json_object *arr = json_object_new_array();
	struct shot s[2][S_N];
	struct pkt p[2][S_N];
	__u64 new_before, new_after;

	new_before = counter(e, TS_CNT_NEW_FLOWS);
	for (int f = 0; f < 2; f++) {
		int fam = f ? 6 : 4;

		build(&p[f][S_EMPTY], fam, T_ACK, 40000);
		build(&p[f][S_NOSVC], fam, T_NOSVC, 40000);
		build(&p[f][S_EST], fam, T_ACK, 40000);
		build(&p[f][S_SYN], fam, T_SYN, 40000);
		build(&p[f][S_REPLY], fam, T_REPLY, 40000);
		for (int k = 0; k < S_N; k++) {
			s[f][k] = (struct shot){ keys[k], names[k], fam,
						 calloc((size_t)opt.shots, sizeof(double)), 0 };
			if (!s[f][k].v)
				die("out of memory");
		}
	}
	/* interleaved: every case once per round */
	for (int i = 0; i < opt.shots; i++) {
		for (int f = 0; f < 2; f++) {
			for (int k = 0; k < S_N; k++) {
				int fd = k == S_EMPTY ? empty_fd : e->prog_fd;

				if (k == S_SYN)	/* tuples 3,000,000 on: unused elsewhere */
					patch_tuple(&p[f][k], f ? 6 : 4, false, 3000000 + (__u32)i);
				s[f][k].v[i] = test_run(fd, &p[f][k], 1).dur;
			}
		}
	}
	new_after = counter(e, TS_CNT_NEW_FLOWS);
	fprintf(md, "\n### Cross-check: single shots\n\n");
	fprintf(md, "%d runs of repeat 1 per case (a fresh copy of the packet each run, so no "
		    "wrapper is needed; the SYN has a distinct 5-tuple every run), interleaved; "
		    "median kernel-reported ns, minus the empty program measured the same way. "
		    "Includes the cache misses of a program that did not just run. New flows "
		    "counted: %llu of %d SYNs.\n\n",
		opt.shots, (unsigned long long)(new_after - new_before), 2 * opt.shots);
	fprintf(md, "| case | IPv4 ns | IPv4 over empty | IPv6 ns | IPv6 over empty |\n"
		    "|---|---:|---:|---:|---:|\n");
	for (int k = 0; k < S_N; k++) {
		for (int f = 0; f < 2; f++)
			s[f][k].med = median(s[f][k].v, opt.shots);
	}
	for (int k = 0; k < S_N; k++) {
		fprintf(md, "| %s | %.0f | %s%+.0f | %.0f | %+.0f |\n", names[k], s[0][k].med,
			"", s[0][k].med - s[0][S_EMPTY].med, s[1][k].med,
			s[1][k].med - s[1][S_EMPTY].med);
		for (int f = 0; f < 2; f++) {
			json_object *o = json_object_new_object();

			json_object_object_add(o, "case", json_object_new_string(keys[k]));
			json_object_object_add(o, "description", json_object_new_string(names[k]));
			json_object_object_add(o, "family", json_object_new_int(f ? 6 : 4));
			json_object_object_add(o, "samples", json_object_new_int(opt.shots));
			json_object_object_add(o, "median_ns", jnum(s[f][k].med, 1));
			json_object_object_add(o, "over_empty_ns",
					       jnum(s[f][k].med - s[f][S_EMPTY].med, 1));
			json_object_array_add(arr, o);
		}
	}
	for (int f = 0; f < 2; f++)
		for (int k = 0; k < S_N; k++)
			free(s[f][k].v);
	json_object_object_add(jpk, "single_shot", arr);
}

static void bench_packets(void)
{
	json_object *jpk = json_object_new_object(), *arr = json_object_new_array();
	struct env main_env, mem_env, full_env, fib_env;
	struct bench_prims *ins = NULL;
	struct pcase *empty[2], *wempty[2], *wrot[2], *wxempty[2], *wxplain[2], *wxest[2];
	struct pcase *prim_cases[2][NPRIMS + NINSERTS];
	const __u32 rot_flows = opt.quick ? 100000 : 1000000;
	__u64 before_pk = 0, before_new = 0;

	/* main: the per-packet cases on one flow of each family */
	env_open(&main_env, TS_DEFAULT_MAX_FLOWS);
	config_web(&main_env, 1, 0);	/* the pinned flows below are on v1, like T_REPLY */
	/* mem: rot_flows established flows per family, all on v1 (the rotating cases) */
	env_open(&mem_env, 2 * rot_flows + rot_flows / 4);
	config_web(&mem_env, 1, 0);
	pin_flows(&mem_env, 4, 0, rot_flows);
	pin_flows(&mem_env, 6, 0, rot_flows);
	/* full: a small flow table, kept full by new SYNs (LRU evicting) */
	env_open(&full_env, 16384);
	config_web(&full_env, 1, 1);
	/* fib: main's flows in --forward fib, the like of XDP's work at tc */
	env_open_fib(&fib_env, TS_DEFAULT_MAX_FLOWS, true);
	config_web(&fib_env, 1, 0);

	for (int f = 0; f < 2; f++) {
		int fam = f ? 6 : 4;
		struct pkt syn, synack, ack, ack2, syn2;
		struct pcase *c;

		/* pin the established flow (port 40000: a handshake, on v1 while
		 * main_env's weights are 1/0) and a half-open one (40001) */
		build(&syn, fam, T_SYN, 40000);
		build(&synack, fam, T_SYNACK, 40000);
		build(&ack, fam, T_ACK, 40000);
		build(&syn2, fam, T_SYN, 40001);
		build(&ack2, fam, T_ACK, 40001);
		test_run(main_env.prog_fd, &syn, 1);
		test_run(main_env.prog_fd, &synack, 1);
		test_run(main_env.prog_fd, &ack, 1);
		test_run(main_env.prog_fd, &syn2, 1);
		test_run(fib_env.prog_fd, &syn, 1);
		test_run(fib_env.prog_fd, &synack, 1);
		test_run(fib_env.prog_fd, &ack, 1);
		{
			__u32 confirmed = 0;

			if (ts_count_entries(main_env.maps.flows, sizeof(struct ts_flow_key),
					     &confirmed) || confirmed != (__u32)f + 1)
				die("the established flow of IPv%d is not confirmed (flows: %u; "
				    "spoof_rejected %llu, promoted %llu, backend_refused %llu)",
				    fam, confirmed,
				    (unsigned long long)counter(&main_env, TS_CNT_SPOOF_REJECTED),
				    (unsigned long long)counter(&main_env, TS_CNT_PROMOTED),
				    (unsigned long long)counter(&main_env, TS_CNT_BACKEND_REFUSED));
		}

		c = empty[f] = add_case("empty program (baseline)", "empty", fam, "direct");
		c->prog_fd = empty_fd;
		build(&c->pkt, fam, T_ACK, 40000);

		c = add_case("not TCP (UDP to the VIP)", "not_tcp", fam, "direct");
		c->prog_fd = main_env.prog_fd;
		c->env = &main_env;
		c->baseline = empty[f];
		build(&c->pkt, fam, T_UDP, 40000);

		c = add_case("to no service (direct)", "no_service_direct", fam, "direct");
		c->prog_fd = main_env.prog_fd;
		c->env = &main_env;
		c->baseline = empty[f];
		build(&c->pkt, fam, T_NOSVC, 40000);

		c = wempty[f] = add_case("wrapper + empty program (wrapped baseline)",
					 "wrapped_empty", fam, "wrapped");
		c->target_fd = empty_fd;
		build(&c->pkt, fam, T_ACK, 40000);

		c = add_case("to no service", "no_service", fam, "wrapped");
		c->target_fd = main_env.prog_fd;
		c->env = &main_env;
		c->baseline = wempty[f];
		build(&c->pkt, fam, T_NOSVC, 40000);

		c = add_case("established flow (ACK of a pinned flow)", "established", fam,
			     "wrapped");
		c->target_fd = main_env.prog_fd;
		c->env = &main_env;
		c->baseline = wempty[f];
		c->pkt = ack;

		c = add_case("SYN of a half-open flow (retransmitted SYN)", "syn_retransmit", fam,
			     "wrapped");
		c->target_fd = main_env.prog_fd;
		c->env = &main_env;
		c->baseline = wempty[f];
		c->pkt = syn2;

		c = add_case("SYN of a new flow (fresh 5-tuple every run)", "syn_new", fam,
			     "wrapped");
		c->fresh_env = true;
		c->fresh_max_flows = 4 * opt.repeat + opt.repeat / 2;
		c->mod = 0xffffffffU;
		c->base = 5000000;
		c->baseline = wempty[f];
		c->pkt = syn;
		c->note = "a new environment (empty tables, sized so that nothing is evicted) "
			  "each run";

		c = add_case("SYN of a new flow, flow tables full (LRU evicting)", "syn_new_full",
			     fam, "wrapped");
		c->target_fd = full_env.prog_fd;
		c->env = &full_env;
		c->mod = 0xffffffffU;
		c->base = 20000000;
		c->baseline = wempty[f];
		c->pkt = syn;
		c->note = "max_flows 16384: every insert evicts";

		c = add_case("reply (backend -> client)", "reply", fam, "wrapped");
		c->target_fd = main_env.prog_fd;
		c->env = &main_env;
		c->baseline = wempty[f];
		build(&c->pkt, fam, T_REPLY, 40000);

		c = add_case("established flow, --forward fib (FIB, redirect)", "fib_established",
			     fam, "wrapped");
		c->target_fd = fib_env.prog_fd;
		c->env = &fib_env;
		c->baseline = wempty[f];
		c->pkt = ack;

		c = add_case("reply, --forward fib", "fib_reply", fam, "wrapped");
		c->target_fd = fib_env.prog_fd;
		c->env = &fib_env;
		c->baseline = wempty[f];
		build(&c->pkt, fam, T_REPLY, 40000);

		/* load --mode xdp: the same flows, at XDP (forwarded by the
		 * FIB and a devmap redirect), over an empty XDP program */
		c = wxempty[f] = add_case("XDP: wrapper + empty XDP program (XDP baseline)",
					  "xdp_wrapped_empty", fam, "wrapped-xdp");
		c->target_fd = empty_xdp_fd;
		c->pkt = ack;

		c = wxest[f] = add_case("XDP: established flow (ACK of a pinned flow)",
					"xdp_established", fam, "wrapped-xdp");
		c->target_fd = main_env.xdp_fd;
		c->env = &main_env;
		c->baseline = wxempty[f];
		c->pkt = ack;

		c = add_case("XDP: reply (backend -> client)", "xdp_reply", fam, "wrapped-xdp");
		c->target_fd = main_env.xdp_fd;
		c->env = &main_env;
		c->baseline = wxempty[f];
		build(&c->pkt, fam, T_REPLY, 40000);

		/* the XDP ceiling: forwarding the same ACK, already addressed to
		 * the backend, without NAT (make bench-pps's xdp-redirect) */
		c = wxplain[f] = add_case("XDP: plain redirect (FIB, TTL, MACs, devmap; no NAT)",
					  "xdp_plain_redirect", fam, "wrapped-xdp");
		c->target_fd = bpf_program__fd(prims->progs.plain_redirect);
		c->baseline = wxempty[f];
		build(&c->pkt, fam, T_TO_BACKEND, 40000);

		c = wrot[f] = add_case("wrapper + empty program, rotating 5-tuples",
				       "wrapped_empty_rotating", fam, "wrapped");
		c->target_fd = empty_fd;
		c->mod = rot_flows;
		c->pkt = ack;

		c = add_case("established, a different one of 1M flows each packet",
			     "established_rotating", fam, "wrapped");
		c->target_fd = mem_env.prog_fd;
		c->env = &mem_env;
		c->mod = rot_flows;
		c->baseline = wrot[f];
		c->pkt = ack;
		c->note = "cache-cold flow lookups, as on a busy gateway";

		c = add_case("reply, to a different one of 1M clients each packet",
			     "reply_rotating", fam, "wrapped");
		c->target_fd = mem_env.prog_fd;
		c->env = &mem_env;
		c->mod = rot_flows;
		c->dst = true;
		c->baseline = wrot[f];
		build(&c->pkt, fam, T_REPLY, 40000);

		/* primitives, over p_parse */
		for (size_t i = 0; i < NPRIMS; i++) {
			c = prim_cases[f][i] = add_case(prim_list[i].what, prim_list[i].key, fam,
							"primitive");
			c->prog_fd = prim_list[i].fd();
			c->baseline = i ? prim_cases[f][0] : empty[f];
			build(&c->pkt, fam, prim_list[i].t, 40000);
		}
		for (size_t i = 0; i < NINSERTS; i++) {
			c = prim_cases[f][NPRIMS + i] =
				add_case(insert_list[i].what, insert_list[i].key, fam, "insert");
			c->baseline = prim_cases[f][0];
			build(&c->pkt, fam, T_ACK, 40000);
		}
	}

	/* the full table: fill it past its size first */
	{
		struct pkt syn;
		int fd;

		build(&syn, 4, T_SYN, 40000);
		jump_to(full_env.prog_fd);
		fd = wrap_setup(4, &syn, 0xffffffffU, 10000000, false);
		test_run(fd, &syn, 3 * 16384);
	}

	prims_fill(prims);

	/* checks before measuring: each case once */
	for (int i = 0; i < ncases; i++) {
		struct pcase *c = &cases[i];

		if (is_xdp_case(c) && (c->env || c == wxplain[c->fam == 6])) {
			/* forwarded at XDP: redirected, not passed on to tc */
			wrap_setup(c->fam, &c->pkt, 0, 0, c->dst);
			jump_to_map(bpf_map__fd(prims->maps.jmp_xdp), c->target_fd);
			c->retval = test_run_ctx(bpf_program__fd(c->fam == 4 ? prims->progs.wrap4_xdp
									    : prims->progs.wrap6_xdp),
						 &c->pkt, 1, true).retval;
			if (c->retval != XDP_REDIRECT) {
				c->valid = false;
				snprintf(c->check_buf, sizeof(c->check_buf),
					 "XDP verdict %d, want XDP_REDIRECT", c->retval);
				c->check = c->check_buf;
			}
			continue;
		}
		if (strcmp(c->mode, "wrapped") || !c->env)
			continue;
		jump_to(c->target_fd);
		c->retval = test_run(wrap_setup(c->fam, &c->pkt, 0, 0, c->dst), &c->pkt, 1).retval;
		/* fib mode forwards by redirect (TC_ACT_REDIRECT, 7) */
		if (c->retval != (c->env == &fib_env ? 7 : 0)) {
			c->valid = false;
			snprintf(c->check_buf, sizeof(c->check_buf), "verdict %d, want %s",
				 c->retval, c->env == &fib_env ? "TC_ACT_REDIRECT" : "TC_ACT_OK");
			c->check = c->check_buf;
		}
	}

	fprintf(stderr, "  packets: %d cases x %d runs of %u\n", ncases, opt.runs, opt.repeat);
	for (int run = 0; run < opt.runs; run++) {
		for (int i = 0; i < ncases; i++) {
			struct pcase *c = &cases[i];

			if (!strcmp(c->mode, "insert")) {
				/* fresh big maps every run: inserts never evict */
				size_t k = 0;

				while (k < NINSERTS && strcmp(insert_list[k].key, c->key))
					k++;
				if (ins)
					bench_prims__destroy(ins);
				ins = prims_load(opt.repeat + opt.repeat / 2, (int)k);
				c->prog_fd = bpf_program__fd(
					k == 0 ? ins->progs.p_ins_lru
					       : k == 1 ? ins->progs.p_ins_lru_pcpu : ins->progs.p_ins_hash);
				case_run(c, run);
				if (c->retval) {
					c->valid = false;
					c->check = "insert failed";
				}
				continue;
			}
			if (c->fresh_env) {
				struct env fresh;
				__u64 n;

				env_open(&fresh, c->fresh_max_flows);
				config_web(&fresh, 1, 1);
				c->target_fd = fresh.prog_fd;
				before_new = counter(&fresh, TS_CNT_NEW_FLOWS);
				case_run(c, run);
				if (counter(&fresh, TS_CNT_NEW_FLOWS) - before_new != opt.repeat) {
					c->valid = false;
					c->check = "not every SYN was a new flow";
				}
				if (run == 0) {
					n = pinned_flows(&fresh);
					snprintf(c->check_buf, sizeof(c->check_buf),
						 "%llu new flows per run, %llu pinned after it "
						 "(nothing evicted: %s)",
						 (unsigned long long)opt.repeat,
						 (unsigned long long)n,
						 n >= opt.repeat + 2 ? "yes" : "NO");
					if (c->valid)
						c->check = c->check_buf;
				}
				env_close(&fresh);
				continue;
			}
			if (c->env)
				before_pk = backend_packets(c->env);
			if (c->env)
				before_new = counter(c->env, TS_CNT_NEW_FLOWS);
			case_run(c, run);
			if (!c->env || !c->valid)
				continue;
			/* what the run must have done, by the library's counters */
			if (!strcmp(c->key, "established") || !strcmp(c->key, "reply") ||
			    !strcmp(c->key, "xdp_established") || !strcmp(c->key, "xdp_reply") ||
			    !strcmp(c->key, "fib_established") || !strcmp(c->key, "fib_reply") ||
			    !strcmp(c->key, "syn_retransmit") ||
			    !strcmp(c->key, "established_rotating") ||
			    !strcmp(c->key, "reply_rotating")) {
				__u64 d = backend_packets(c->env) - before_pk;

				if (d != opt.repeat) {
					c->valid = false;
					snprintf(c->check_buf, sizeof(c->check_buf),
						 "backend packets +%llu, want +%u",
						 (unsigned long long)d, opt.repeat);
					c->check = c->check_buf;
				} else {
					c->check = "backend packets counted once per run";
				}
			} else if (!strcmp(c->key, "syn_new_full")) {
				__u64 d = counter(c->env, TS_CNT_NEW_FLOWS) - before_new;

				c->valid = d == opt.repeat;
				c->check = c->valid ? "a new flow every run"
						    : "not every SYN was a new flow";
			} else if (!strcmp(c->key, "no_service") ||
				   !strcmp(c->key, "no_service_direct") ||
				   !strcmp(c->key, "not_tcp")) {
				c->valid = backend_packets(c->env) == before_pk &&
					   c->retval == 0;
				c->check = c->valid ? "untouched, nothing counted"
						    : "counted or not TC_ACT_OK";
			}
		}
		fprintf(stderr, "  packets: run %d/%d done\n", run + 1, opt.runs);
	}
	if (ins)
		bench_prims__destroy(ins);
	ins = NULL;

	/* the table of the real program's cases */
	print_packets_md();
	print_xdp_vs_plain(wxest, wxplain);
	fprintf(md, "\nWrapped cases run behind `wrap4`/`wrap6` (tools/bench/prims.bpf.c), which "
		    "restore the IP and TCP headers from a template before every run and "
		    "tail-call the real program; their baseline is the same wrapper "
		    "tail-calling the empty program. *Rotating* cases give each run a "
		    "different one of %u pinned flows (cache-cold lookups).\n",
		rot_flows);

	/* the breakdown */
	fprintf(md, "\n## Where the time goes: parse + one primitive\n\n"
		    "Programs in tools/bench/prims.bpf.c on maps of the same shapes as "
		    "tcpshift's; each adds one primitive to the parser. ns over the parser "
		    "alone (the parser: over the empty program). Median of %d runs of repeat "
		    "%u; inserts run on fresh maps each run (nothing evicted).\n\n"
		    "| primitive | IPv4 ns over parse | IPv6 ns over parse |\n|---|---:|---:|\n",
		opt.runs, opt.repeat);
	for (size_t i = 0; i < NPRIMS + NINSERTS; i++) {
		struct pcase *a = prim_cases[0][i], *b = prim_cases[1][i];
		double da = median(a->dur, opt.runs) - median(a->baseline->dur, opt.runs);
		double db = median(b->dur, opt.runs) - median(b->baseline->dur, opt.runs);

		fprintf(md, "| %s | %+.0f | %+.0f |\n", a->name, da, db);
	}

	for (int i = 0; i < ncases; i++)
		json_object_array_add(arr, case_json(&cases[i]));
	json_object_object_add(jpk, "repeat", json_object_new_int64(opt.repeat));
	json_object_object_add(jpk, "runs", json_object_new_int(opt.runs));
	json_object_object_add(jpk, "cases", arr);
	bench_single_shots(&main_env, jpk);
	json_object_object_add(jroot, "packets", jpk);
	env_close(&full_env);
	env_close(&fib_env);
	env_close(&mem_env);
	env_close(&main_env);
}

/* ---- scale: the same packets with N services configured ------------------------------ */

/*
 * make bench-scale's in-kernel figures (tools/bench/scale.sh): N services of
 * two backends each, VIPs 198.19.0.0 and up (port VPORT), the measured one
 * (web4, VIP4) added last, then an established flow's ACK and a new flow's
 * SYN through the tc program and through the XDP program, as in "packets".
 * The measured VIP is the same packet after packet: this is the lookup in a
 * table of N entries with the service's entry in cache. The *_spread cases
 * go to another service each packet, as scale.sh's real packets spread over
 * all N (spread_pin); the *_reply_spread cases are those flows' backends'
 * replies, each from another service's backend (every one checked to be
 * rewritten and counted). XDP passes every SYN on to tc (doc/DESIGN.md, "XDP"):
 * xdp_syn is the XDP program's part, and a SYN's cost in xdp mode is it plus
 * tc_syn. One line on stdout per case: "scale services=N case=KEY
 * ns=MEDIAN_OVER_BASELINE valid=0|1".
 */
static void config_scale(struct env *e, __u32 services)
{
	struct ts_err err = {};
	struct ts_settings st;
	struct ts_doc doc = {};
	struct ts_plan plan = {};
	double t0 = now_ns();
	size_t len = 0;
	char *text = NULL;
	FILE *f;

	/* the others in one document, imported as an operator would (their
	 * tables sized by their backends); a backend address:port serves one
	 * service: 2 x 2 addresses x 32768 ports */
	must(ts_settings_read(&e->maps, &st, &err), &err, "settings");
	f = open_memstream(&text, &len);
	if (!f)
		die("out of memory");
	fprintf(f, "{\"tcpshift\":1,\"seed\":%u,\"services\":[", st.seed);
	for (__u32 i = 0; i + 1 < services; i++)
		fprintf(f, "%s{\"name\":\"s%u\",\"vip\":\"198.19.%u.%u:%u\",\"backends\":["
			"{\"name\":\"v1\",\"addr\":\"198.18.4.%u:%u\",\"weight\":1},"
			"{\"name\":\"v2\",\"addr\":\"198.18.5.%u:%u\",\"weight\":1}]}",
			i ? "," : "", i, i >> 8 & 255, i & 255, VPORT, 1 + i / 32768,
			1024 + i % 32768, 1 + i / 32768, 1024 + i % 32768);
	fprintf(f, "]}");
	if (fclose(f))
		die("out of memory");
	must(ts_doc_parse(text, len, &doc, &err), &err, "the services' document");
	must(ts_doc_import(&e->maps, &doc, false, &plan, &err), &err, "import");
	ts_plan_free(&plan);
	ts_doc_free(&doc);
	free(text);
	/* the measured service: v1 only, as T_SYNACK's sender */
	must(service_add(e, "web4", VIP4 ":8008", TS_DEFAULT_TABLE_SIZE, &err), &err, "web4");
	must(backend_add(e, "web4", "v1", "198.18.2.11:8008", 1, &err), &err, "web4 v1");
	must(backend_add(e, "web4", "v2", "198.18.2.12:8008", 0, &err), &err, "web4 v2");
	ts_maps_unlock(&e->maps);	/* committed (config_web) */
	fprintf(stderr, "  scale: %u services configured in %.1f s\n", services,
		(now_ns() - t0) / 1e9);
}

/*
 * The spread cases: SPREAD_FLOWS established flows, client i's to a service
 * of its own (as make bench-scale's real packets, spread over all N), the
 * ACKs round robin: each packet finds another service's entries, cold where
 * N is large. With one service (N = 1: web4 alone) every flow is web4's.
 * The flows, on their service's v1, and their reverse entries are written
 * into the maps as a confirmed handshake leaves them (a handshake per flow
 * would need each service's own SYN-ACK).
 */
#define SPREAD_FLOWS	4096U
#define SPREAD_BASE	3000000U	/* client tuples of their own */

/* the spread flows' backends, each once (spread_pin) */
static __u32 spread_ids[SPREAD_FLOWS], nspread_ids;

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* Bytes the spread flows' backends sent, as their counters say, and those
 * waiting in the reverse entries to be added to them (tcpshift.h,
 * TS_PENDING_MAX). */
static __u64 spread_from_backend(struct env *e)
{
	struct ts_err err = {};
	__u64 packets, total;

	pending(e, &packets, &total);
	for (__u32 i = 0; i < nspread_ids; i++) {
		struct ts_backend_stats st;

		must(ts_backend_stats_read(&e->maps, spread_ids[i], &st, &err), &err,
		     "backend stats");
		total += st.bytes_from_backend;
	}
	return total;
}

static __u32 spread_vips(__u32 services)
{
	return services <= 1 ? 0 : services - 1 < SPREAD_FLOWS ? services - 1 : SPREAD_FLOWS;
}

static void spread_pin(struct env *e, __u32 services)
{
	__u32 vips = spread_vips(services), stride = vips ? (services - 1) / vips : 0;
	struct ts_config cfg = {};
	struct ts_err err = {};
	__u64 now = ts_now_ns();

	must(ts_config_read(&e->maps, &cfg, &err), &err, "ts_config_read");
	for (__u32 i = 0; i < SPREAD_FLOWS; i++) {
		__u32 t = SPREAD_BASE + i, hi = t / TUPLE_PORTS, v = vips ? i % vips * stride : 0;
		struct ts_flow_key k = { .proto = IPPROTO_TCP, .family = TS_AF_INET,
					 .dport = htons(VPORT) };
		struct ts_flow_entry fe = { .flow = { .tcp_state = TS_TCP_ESTABLISHED,
						      .flags = TS_FLOW_F_COUNTED,
						      .created_ns = now, .last_seen_ns = now,
						      .client_end = 1002 } };
		struct ts_flow *f = &fe.flow;
		struct ts_flow_key rk = { .proto = IPPROTO_TCP, .family = TS_AF_INET };
		struct ts_reply_state r = { .ifindex = bench_ifindex, .backend_ack = 2002,
					    .counted_ns = now };
		struct ts_service_cfg *sc;
		struct ts_backend_cfg *b;
		char name[32];
		__u8 *a;

		snprintf(name, sizeof(name), vips ? "s%u" : "web4", v);
		sc = ts_config_service(&cfg, name);
		if (!sc || !sc->nbackends)
			die("scale: service %s not found", name);
		inet_pton(AF_INET, CLIENT4, k.saddr);
		a = (__u8 *)k.saddr;
		a[2] = (__u8)(64 + (hi >> 8));
		a[3] = (__u8)hi;
		k.sport = htons((__u16)(1024 + t % TUPLE_PORTS));
		if (vips) {
			inet_pton(AF_INET, "198.19.0.0", k.daddr);
			((__u8 *)k.daddr)[2] = (__u8)(v >> 8);
			((__u8 *)k.daddr)[3] = (__u8)v;
		} else {
			inet_pton(AF_INET, VIP4, k.daddr);
		}
		for (b = sc->backends; b < sc->backends + sc->nbackends; b++)
			if (!strcmp(b->be.name, "v1"))
				break;
		if (b == sc->backends + sc->nbackends)
			die("scale: service %s has no v1", name);
		f->backend_id = b->id;
		f->generation = b->be.generation;
		f->service_id = sc->svc.id;
		/* as the confirmation writes it: with its backend's address */
		memcpy(fe.backend_addr, b->be.addr, sizeof(fe.backend_addr));
		fe.backend_port = b->be.port;
		if (bpf_map_update_elem(e->maps.flows, &k, &fe, BPF_ANY))
			die("scale: flows update: %s", strerror(errno));
		/* its reverse entry, as the confirmation writes it: v1's
		 * replies (T_REPLY's acknowledgment number) to the client */
		memcpy(r.vip, k.daddr, sizeof(r.vip));
		r.vport = k.dport;
		r.backend_id = b->id;
		memcpy(rk.saddr, b->be.addr, sizeof(rk.saddr));
		memcpy(rk.daddr, k.saddr, sizeof(rk.daddr));
		rk.sport = b->be.port;
		rk.dport = k.sport;
		if (bpf_map_update_elem(e->maps.replies, &rk, &r, BPF_ANY))
			die("scale: replies update: %s", strerror(errno));
		spread_ids[i] = b->id;
	}
	qsort(spread_ids, SPREAD_FLOWS, sizeof(*spread_ids), cmp_u32);
	nspread_ids = 0;
	for (__u32 i = 0; i < SPREAD_FLOWS; i++)
		if (!i || spread_ids[i] != spread_ids[i - 1])
			spread_ids[nspread_ids++] = spread_ids[i];
	ts_config_free(&cfg);
}

static void bench_scale(void)
{
	struct pcase *wempty, *wxempty, *wrot, *wxrot, *wrrot, *wxrrot, *treply, *xreply, *c;
	struct pkt syn, synack, ack, spread, spread_syn, spread_reply;
	__u64 from_backend;
	struct env e;
	__u32 confirmed = 0;

	env_open(&e, 2 * opt.runs * opt.repeat + opt.repeat + SPREAD_FLOWS);
	config_scale(&e, opt.services);
	build(&syn, 4, T_SYN, 40000);
	build(&synack, 4, T_SYNACK, 40000);
	build(&ack, 4, T_ACK, 40000);
	test_run(e.prog_fd, &syn, 1);
	test_run(e.prog_fd, &synack, 1);
	test_run(e.prog_fd, &ack, 1);
	if (ts_count_entries(e.maps.flows, sizeof(struct ts_flow_key), &confirmed) ||
	    confirmed != 1)
		die("scale: the established flow is not confirmed (flows: %u)", confirmed);

	c = wempty = add_case("wrapper + empty program", "wrapped_empty", 4, "wrapped");
	c->target_fd = empty_fd;
	c->pkt = ack;
	c = wxempty = add_case("wrapper + empty XDP program", "xdp_wrapped_empty", 4,
			       "wrapped-xdp");
	c->target_fd = empty_xdp_fd;
	c->pkt = ack;
	c = add_case("tc: established flow", "tc_established", 4, "wrapped");
	c->target_fd = e.prog_fd;
	c->baseline = wempty;
	c->pkt = ack;
	c = add_case("tc: SYN of a new flow", "tc_syn", 4, "wrapped");
	c->target_fd = e.prog_fd;
	c->baseline = wempty;
	c->mod = 0xffffffffU;
	c->base = 5000000;
	c->pkt = syn;
	c = add_case("xdp: established flow", "xdp_established", 4, "wrapped-xdp");
	c->target_fd = e.xdp_fd;
	c->baseline = wxempty;
	c->pkt = ack;
	c = add_case("xdp: SYN (passed on to tc)", "xdp_syn", 4, "wrapped-xdp");
	c->target_fd = e.xdp_fd;
	c->baseline = wxempty;
	c->mod = 0xffffffffU;
	c->base = 500000000;
	c->pkt = syn;

	/* the spread cases: the same over SPREAD_FLOWS flows of as many services */
	spread_pin(&e, opt.services);
	build(&spread, 4, T_ACK, 40000);
	if (spread_vips(opt.services))
		spread_to(&spread, "198.19.0.0");
	c = wrot = add_case("wrapper + empty program, spread", "wrapped_empty_spread", 4,
			    "wrapped");
	c->target_fd = empty_fd;
	c->pkt = spread;
	c = wxrot = add_case("wrapper + empty XDP program, spread", "xdp_wrapped_empty_spread",
			     4, "wrapped-xdp");
	c->target_fd = empty_xdp_fd;
	c->pkt = spread;
	c = add_case("tc: established, another service's flow each packet",
		     "tc_established_spread", 4, "wrapped");
	c->target_fd = e.prog_fd;
	c->baseline = wrot;
	c->pkt = spread;
	c = add_case("xdp: established, another service's flow each packet",
		     "xdp_established_spread", 4, "wrapped-xdp");
	c->target_fd = e.xdp_fd;
	c->baseline = wxrot;
	c->pkt = spread;
	/* and their backends' replies, each packet from another service's v1 */
	build(&spread_reply, 4, T_REPLY, 40000);
	c = wrrot = add_case("wrapper + empty program, replies spread", "wrapped_empty_reply_spread",
			     4, "wrapped");
	c->target_fd = empty_fd;
	c = wxrrot = add_case("wrapper + empty XDP program, replies spread",
			      "xdp_wrapped_empty_reply_spread", 4, "wrapped-xdp");
	c->target_fd = empty_xdp_fd;
	c = treply = add_case("tc: reply, another service's flow each packet", "tc_reply_spread", 4,
			      "wrapped");
	c->target_fd = e.prog_fd;
	c->baseline = wrrot;
	c = xreply = add_case("xdp: reply, another service's flow each packet", "xdp_reply_spread",
			      4, "wrapped-xdp");
	c->target_fd = e.xdp_fd;
	c->baseline = wxrrot;
	for (int i = ncases - 4; i < ncases; i++) {
		cases[i].pkt = spread_reply;
		cases[i].dst = true;
	}
	for (int i = ncases - 8; i < ncases; i++) {
		cases[i].mod = SPREAD_FLOWS;
		cases[i].base = SPREAD_BASE;
		cases[i].same_flows = true;
		cases[i].vip_mod = spread_vips(opt.services);
		cases[i].vip_stride = cases[i].vip_mod ? (opt.services - 1) / cases[i].vip_mod : 0;
	}
	/* new flows, each SYN to another service (a fresh client each) */
	build(&spread_syn, 4, T_SYN, 40000);
	if (spread_vips(opt.services))
		spread_to(&spread_syn, "198.19.0.0");
	c = add_case("tc: SYN of a new flow, to another service each packet", "tc_syn_spread", 4,
		     "wrapped");
	c->target_fd = e.prog_fd;
	c->baseline = wrot;
	c->mod = 0xffffffffU;
	c->base = 9000000;
	c->pkt = spread_syn;
	c->vip_mod = spread_vips(opt.services);
	c->vip_stride = c->vip_mod ? (opt.services - 1) / c->vip_mod : 0;
	/* A SYN to every backend first, so that the case measures the SYNs
	 * of a running gateway (layout 7 also made a backend's counters at
	 * its first packet, an insert of ~10 us here). */
	jump_to(e.prog_fd);
	wrap_setup(4, &spread_syn, 0xffffffffU, 8000000, false);
	prims->bss->vip_mod = c->vip_mod;
	prims->bss->vip_stride = c->vip_stride;
	test_run(bpf_program__fd(prims->progs.wrap4), &spread_syn,
		 4 * (c->vip_mod ? c->vip_mod * c->vip_stride : 1));

	for (int run = 0; run < opt.runs; run++)
		for (int i = 0; i < ncases; i++) {
			bool reply = &cases[i] == treply || &cases[i] == xreply;

			from_backend = reply ? spread_from_backend(&e) : 0;
			case_run(&cases[i], run);
			/* every reply rewritten and counted as its backend's; at
			 * XDP, but for those whose complete checksum looks partial
			 * (one frame in 65,535, gone on to tc: nat.h), allowed
			 * up to one in 1,024 */
			if (reply) {
				__u64 n = (spread_from_backend(&e) - from_backend) / spread_reply.len;

				if (n > opt.repeat || n < opt.repeat - (&cases[i] == xreply ?
									opt.repeat / 1024 : 0))
					cases[i].valid = false;
			}
		}
	for (int i = 0; i < ncases; i++) {
		c = &cases[i];
		if (!c->baseline)
			continue;
		/* the verdict of the last run: what the program did with the
		 * packet (and the replies' counts, above) */
		if (!strncmp(c->key, "xdp_established", 15) || c == xreply)
			c->valid &= c->retval == XDP_REDIRECT;
		else if (!strcmp(c->key, "xdp_syn"))
			c->valid &= c->retval == XDP_PASS;
		else
			c->valid &= c->retval == 0;
		printf("scale services=%u case=%s ns=%.1f valid=%d\n", opt.services, c->key,
		       median(c->dur, opt.runs) - median(c->baseline->dur, opt.runs), c->valid);
	}
	if (counter(&e, TS_CNT_NEW_FLOWS) < (__u64)opt.runs * opt.repeat)
		die("scale: not every SYN was a new flow");
	if (counter(&e, TS_CNT_NON_SYN_MISS))
		die("scale: an established ACK found no pinned flow");
	fflush(stdout);
	env_close(&e);
}

/* ---- conn: a whole connection at XDP, segment by segment ------------------------------ */

/*
 * The gateway's cost of each of the seven segments of a whole connection in
 * `load --mode xdp --handshakes xdp` (make bench-conn's connection: SYN,
 * SYN-ACK, the client's ACK with a 64-byte request, a 128-byte response, the
 * client's FIN, the backend's FIN-ACK, the client's last ACK), through the
 * real XDP program. A run is one batch of N connections (N = --repeat, at
 * most a quarter of the default flow table: nothing half-open is evicted), on
 * client tuples of their own: each segment runs N times behind the XDP
 * wrapper, tuple i for connection i, the seven segments one after the other,
 * consecutive connections from different ones of CONN_CLIENTS client
 * addresses (routed through one next hop, as make bench-conn's clients),
 * IPv4 then IPv6, the empty XDP program behind the same wrapper between them
 * as the baseline. One table of flows for all runs, as on a gateway: later
 * runs find closed connections of earlier ones in it. Each run is checked
 * against the library's counters: N SYNs pinned, N handshakes confirmed, N
 * connections closed by FINs both ways (all but a few: below). One line on stdout per case and run,
 * "conn fam=F case=KEY run=R ns=OVER_BASELINE", and the medians:
 * "conn fam=F case=KEY ns=MEDIAN valid=0|1" (case "total": their sum).
 */
#define CONN_SEGS	7
#define CONN_CLIENTS	8192	/* 198.18.64.0/19, 2001:2:1::4000/115 */
#define CONN_REQUEST	"GET /conn HTTP/1.1\r\nHost: bench\r\nUser-Agent: microbench-conn/1\r\n\r\n"
#define CONN_RESPONSE	"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nServer: microbench-conn/1\r\n" \
			"X-Pad: 0123456789012345678901234567890123456789012345678\r\n\r\n"

static const char *const conn_keys[CONN_SEGS] = {
	"syn", "synack", "request", "response", "client_fin", "backend_fin", "last_ack",
};

/* Segment k of the connection of family fam (client port: the template's,
 * the wrapper writes connection i's tuple). */
static void conn_segment(struct pkt *p, int fam, int k)
{
	const char *client = fam == 4 ? CLIENT4 : CLIENT6;
	const char *vip = fam == 4 ? VIP4 : VIP6;
	const char *v1 = fam == 4 ? "198.18.2.11" : "2001:2:2::11";
	__u32 req = sizeof(CONN_REQUEST) - 1, resp = sizeof(CONN_RESPONSE) - 1;
	/* client ISN 1000, backend ISN 2000 */
	struct pkt_spec s = { .src = client, .dst = vip, .sport = 40000, .dport = VPORT };
	bool from_backend = k == 1 || k == 3 || k == 5;

	switch (k) {
	case 0:
		s.flags = PKT_SYN;
		s.mss = true;
		s.seq = 1000;
		break;
	case 1:
		s.flags = PKT_SYN | PKT_ACK;
		s.mss = true;
		s.seq = 2000;
		s.ack = 1001;
		break;
	case 2:
		s.flags = PKT_ACK | PKT_PSH;
		s.seq = 1001;
		s.ack = 2001;
		s.payload = CONN_REQUEST;
		break;
	case 3:
		s.flags = PKT_ACK | PKT_PSH;
		s.seq = 2001;
		s.ack = 1001 + req;
		s.payload = CONN_RESPONSE;
		break;
	case 4:
		s.flags = PKT_FIN | PKT_ACK;
		s.seq = 1001 + req;
		s.ack = 2001 + resp;
		break;
	case 5:
		s.flags = PKT_FIN | PKT_ACK;
		s.seq = 2001 + resp;
		s.ack = 1002 + req;
		break;
	default:
		s.flags = PKT_ACK;
		s.seq = 1002 + req;
		s.ack = 2002 + resp;
		break;
	}
	if (from_backend) {
		s.src = v1;
		s.dst = client;
		s.sport = VPORT;
		s.dport = 40000;
	}
	if (pkt_build(p, &s))
		die("pkt_build");
}

/* The sum of a counter of the backend stats of every backend. */
static void conn_stats(struct env *e, __u64 *handshakes, __u64 *closed)
{
	struct ts_config cfg = {};
	struct ts_err err = {};

	*handshakes = *closed = 0;
	must(ts_config_read(&e->maps, &cfg, &err), &err, "ts_config_read");
	for (size_t i = 0; i < cfg.nservices; i++) {
		for (size_t j = 0; j < cfg.services[i].nbackends; j++) {
			struct ts_backend_stats st = {};

			if (!ts_backend_stats_read(&e->maps, cfg.services[i].backends[j].id, &st,
						   &err)) {
				*handshakes += st.handshakes;
				*closed += st.closed;
			}
		}
	}
	ts_config_free(&cfg);
}

static void bench_conn(void)
{
	struct ts_load_opts o = { .max_flows = TS_DEFAULT_MAX_FLOWS, .seed = SEED,
				  .seed_set = true, .mode = TS_MODE_XDP,
				  .handshakes = TS_HANDSHAKES_XDP };
	struct pcase *base[2], *seg[2][CONN_SEGS];
	struct env e;
	bool valid = true;

	if (opt.repeat > TS_DEFAULT_MAX_FLOWS / 4)
		die("conn: --repeat %u is more connections per run than half_open holds (%u)",
		    opt.repeat, TS_DEFAULT_MAX_FLOWS / 4);
	/* (its clients behind net_setup's router: XDP forwards the backend's
	 * segments) */
	prims->bss->tuple_addrs = CONN_CLIENTS;
	env_open_opts(&e, &o);
	config_web(&e, 1, 0);	/* v1 answers: the backend of every connection */
	for (int f = 0; f < 2; f++) {
		int fam = f ? 6 : 4;
		struct pcase *c;

		c = base[f] = add_case("wrapper + empty XDP program", "xdp_wrapped_empty", fam,
				       "wrapped-xdp");
		c->target_fd = empty_xdp_fd;
		c->mod = opt.repeat;
		conn_segment(&c->pkt, fam, 0);
		for (int k = 0; k < CONN_SEGS; k++) {
			c = seg[f][k] = add_case(conn_keys[k], conn_keys[k], fam, "wrapped-xdp");
			c->target_fd = e.xdp_fd;
			c->env = &e;
			c->baseline = base[f];
			c->mod = opt.repeat;
			c->dst = k == 1 || k == 3 || k == 5;
			conn_segment(&c->pkt, fam, k);
		}
	}
	for (int run = 0; run < opt.runs; run++) {
		for (int f = 0; f < 2; f++) {
			__u64 new0 = counter(&e, TS_CNT_NEW_FLOWS), hs0, closed0, hs1, closed1;
			int fam = f ? 6 : 4;

			conn_stats(&e, &hs0, &closed0);
			case_run(base[f], run);
			for (int k = 0; k < CONN_SEGS; k++) {
				case_run(seg[f][k], run);
				if (seg[f][k]->retval != XDP_REDIRECT)
					seg[f][k]->valid = false;
			}
			conn_stats(&e, &hs1, &closed1);
			/* a complete checksum that looks partial (bpf/nat.h: 1 in 65,535
			 * segments on a veth) sends its segment on to tc, which a test
			 * run does not have: that connection stops there */
			if (opt.repeat - (counter(&e, TS_CNT_NEW_FLOWS) - new0) > opt.repeat / 2000 ||
			    opt.repeat - (hs1 - hs0) > opt.repeat / 2000 ||
			    opt.repeat - (closed1 - closed0) > opt.repeat / 2000) {
				fprintf(stderr, "conn: IPv%d run %d: %llu new flows, %llu handshakes, "
					"%llu closed, want %u each\n", fam, run,
					(unsigned long long)(counter(&e, TS_CNT_NEW_FLOWS) - new0),
					(unsigned long long)(hs1 - hs0),
					(unsigned long long)(closed1 - closed0), opt.repeat);
				valid = false;
			}
			for (int k = 0; k < CONN_SEGS; k++)
				printf("conn fam=%d case=%s run=%d ns=%.1f\n", fam, conn_keys[k], run,
				       seg[f][k]->dur[run] - base[f]->dur[run]);
		}
		fflush(stdout);
	}
	for (int f = 0; f < 2; f++) {
		double total = 0;

		for (int k = 0; k < CONN_SEGS; k++) {
			struct pcase *c = seg[f][k];
			double ns = median(c->dur, opt.runs) - median(base[f]->dur, opt.runs);

			total += ns;
			printf("conn fam=%d case=%s ns=%.1f valid=%d\n", f ? 6 : 4, c->key, ns,
			       valid && c->valid);
			valid = valid && c->valid;
		}
		printf("conn fam=%d case=total ns=%.1f valid=%d\n", f ? 6 : 4, total, valid);
	}
	fflush(stdout);
	prims->bss->tuple_addrs = 0;
	env_close(&e);
	if (!valid)
		die("conn: a segment was not forwarded at XDP, or a connection did not complete");
}

/* ---- child processes (the CLI) ------------------------------------------------------ */

struct proc_result {
	double	wall_ns;
	long	maxrss_kb;
	double	cpu_s;
	int	status;
};

static struct proc_result run_cli(char **argv, const char *out_path)
{
	struct proc_result r = {};
	struct rusage ru;
	double t0 = now_ns();
	int status;
	pid_t pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (!pid) {
		int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, 1);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		die("wait4: %s", strerror(errno));
	r.wall_ns = now_ns() - t0;
	r.maxrss_kb = ru.ru_maxrss;
	r.cpu_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
		  ru.ru_stime.tv_usec / 1e6;
	r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return r;
}

/* ---- weight changes --------------------------------------------------------------- */

static __u32 mix32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

static json_object *stats_json(const double *v, int n, double scale, int decimals)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "median", jnum(median(v, n) / scale, decimals));
	json_object_object_add(o, "min", jnum(vmin(v, n) / scale, decimals));
	json_object_object_add(o, "max", jnum(vmax(v, n) / scale, decimals));
	json_object_object_add(o, "n", json_object_new_int(n));
	return o;
}

static void bench_weights(void)
{
	static const __u32 sizes[] = { 16381, 65537 };
	static const int counts[] = { 2, 64, 256, 1024 };
	json_object *arr = json_object_new_array();
	const int iters = opt.weight_iters, cli_iters = opt.quick ? 5 : 10;

	fprintf(md, "\n## Weight change\n\n"
		    "One service with N backends and a table of M slots; every change gives "
		    "every backend a new weight (1-100, alternating between two sets). "
		    "`ts_weights_set`: the library call behind `tcpshift weight` (reads the "
		    "configuration, builds the table into the idle half, one services update "
		    "switches halves). *Maglev build*: `ts_maglev_build` alone, the table work. "
		    "*CLI*: the whole `tcpshift weight` process. Median (min-max) of %d "
		    "(CLI: %d).\n\n"
		    "| M | backends | Maglev build ms | ts_weights_set ms | CLI `tcpshift weight` ms |\n"
		    "|---:|---:|---:|---:|---:|\n",
		iters, cli_iters);
	for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++) {
			__u32 m = sizes[si];
			int n = counts[ci], have = 0;
			char (*names)[TS_NAME_LEN] = calloc((size_t)n, TS_NAME_LEN);
			__u32 *w[2] = { calloc((size_t)n, 4), calloc((size_t)n, 4) };
			struct ts_maglev_backend *mb = calloc((size_t)n, sizeof(*mb));
			__u32 *table = calloc(m, sizeof(*table));
			double *t_set = calloc((size_t)iters, sizeof(double));
			double *t_mag = calloc((size_t)iters, sizeof(double));
			double *t_cli = calloc((size_t)cli_iters, sizeof(double));
			json_object *o = json_object_new_object();
			char refused[600] = "";
			struct ts_err err = {};
			struct env e;

			if (!names || !w[0] || !w[1] || !mb || !table || !t_set || !t_mag || !t_cli)
				die("out of memory");
			env_open(&e, 4096);
			must(service_add(&e, "w", "198.18.100.1:8008", m, &err), &err, "service add");
			for (int i = 0; i < n; i++) {
				char addr[64];

				snprintf(names[i], TS_NAME_LEN, "b%04d", i);
				snprintf(addr, sizeof(addr), "198.18.%d.%d:8008", 8 + i / 250,
					 1 + i % 250);
				if (backend_add(&e, "w", names[i], addr, 1, &err)) {
					snprintf(refused, sizeof(refused),
						 "backend %d refused: %s", i + 1, err.msg);
					break;
				}
				have++;
			}
			json_object_object_add(o, "table_size", json_object_new_int64(m));
			json_object_object_add(o, "backends", json_object_new_int(n));
			if (refused[0]) {
				json_object_object_add(o, "refused", json_object_new_string(refused));
				fprintf(md, "| %u | %d | refused: %s | | |\n", m, n, refused);
				fprintf(stderr, "  weights: M=%u N=%d: %s\n", m, n, refused);
				goto next;
			}
			for (int i = 0; i < n; i++) {
				w[0][i] = 1 + mix32((__u32)i) % 100;
				w[1][i] = 1 + mix32((__u32)i + 7777) % 100;
				mb[i].name = names[i];
			}
			for (int it = -2; it < iters; it++) {
				const __u32 *ws = w[(it + 2) & 1];
				double t0;

				for (int i = 0; i < n; i++)
					mb[i].weight = ws[i];
				t0 = now_ns();
				if (ts_maglev_build(mb, (size_t)n, m, table))
					die("ts_maglev_build failed");
				if (it >= 0)
					t_mag[it] = now_ns() - t0;
				t0 = now_ns();
				must(ts_weights_set(&e.maps, "w", names, ws, (size_t)n, &err), &err,
				     "ts_weights_set");
				if (it >= 0)
					t_set[it] = now_ns() - t0;
			}
			/* our maps hold the pin directory's lock (taken by the first
			 * change, kept until closed): the CLI would wait for it */
			ts_maps_close(&e.maps);
			e.maps_open = false;
			for (int it = 0; it < cli_iters; it++) {
				char **argv = calloc((size_t)n + 8, sizeof(char *));
				char (*assign)[48] = calloc((size_t)n, 48);
				struct proc_result r;
				int a = 0;

				if (!argv || !assign)
					die("out of memory");
				argv[a++] = (char *)opt.tcpshift;
				argv[a++] = "--pin-dir";
				argv[a++] = e.pin_dir;
				argv[a++] = "weight";
				argv[a++] = "w";
				for (int i = 0; i < n; i++) {
					snprintf(assign[i], 48, "%s=%u", names[i], w[it & 1][i]);
					argv[a++] = assign[i];
				}
				r = run_cli(argv, "/dev/null");
				if (r.status)
					die("%s weight exited %d", opt.tcpshift, r.status);
				t_cli[it] = r.wall_ns;
				free(argv);
				free(assign);
			}
			fprintf(md, "| %u | %d | %.3f (%.3f-%.3f) | %.3f (%.3f-%.3f) | %.2f "
				    "(%.2f-%.2f) |\n",
				m, n, median(t_mag, iters) / 1e6, vmin(t_mag, iters) / 1e6,
				vmax(t_mag, iters) / 1e6, median(t_set, iters) / 1e6,
				vmin(t_set, iters) / 1e6, vmax(t_set, iters) / 1e6,
				median(t_cli, cli_iters) / 1e6, vmin(t_cli, cli_iters) / 1e6,
				vmax(t_cli, cli_iters) / 1e6);
			json_object_object_add(o, "maglev_build_ms", stats_json(t_mag, iters, 1e6, 3));
			json_object_object_add(o, "weights_set_ms", stats_json(t_set, iters, 1e6, 3));
			json_object_object_add(o, "cli_ms", stats_json(t_cli, cli_iters, 1e6, 2));
			fprintf(stderr, "  weights: M=%u N=%d: set %.3f ms\n", m, n,
				median(t_set, iters) / 1e6);
next:
			json_object_array_add(arr, o);
			env_close(&e);
			free(names);
			free(w[0]);
			free(w[1]);
			free(mb);
			free(table);
			free(t_set);
			free(t_mag);
			free(t_cli);
		}
	}
	json_object_object_add(jroot, "weights", arr);
}

/* ---- flows: dump time and map memory ------------------------------------------------ */

struct map_mem {
	char	name[64];
	__u32	type;
	__u32	max_entries;
	__u32	key_size;
	__u32	value_size;
	__u64	memlock;
};

/* Every map pinned in dir, with the kernel's memlock figure (fdinfo). */
static int maps_memory(const char *dir, struct map_mem *out, int max)
{
	struct dirent *d;
	DIR *dh = opendir(dir);
	int n = 0;

	if (!dh)
		die("cannot read %s: %s", dir, strerror(errno));
	while ((d = readdir(dh)) && n < max) {
		struct bpf_map_info info = {};
		__u32 len = sizeof(info);
		char path[512], line[256];
		FILE *f;
		int fd;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		fd = bpf_obj_get(path);
		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
			close(fd);
			continue;
		}
		memset(&out[n], 0, sizeof(out[n]));
		snprintf(out[n].name, sizeof(out[n].name), "%.63s", d->d_name);
		out[n].type = info.type;
		out[n].max_entries = info.max_entries;
		out[n].key_size = info.key_size;
		out[n].value_size = info.value_size;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			if (!strncmp(line, "memlock:", 8))
				out[n].memlock = strtoull(line + 8, NULL, 10);
		if (f)
			fclose(f);
		close(fd);
		n++;
	}
	closedir(dh);
	return n;
}

static const char *map_type_name(__u32 t)
{
	const char *s = libbpf_bpf_map_type_str((enum bpf_map_type)t);

	return s ? s : "?";
}

static int cmp_mem(const void *a, const void *b)
{
	return strcmp(((const struct map_mem *)a)->name, ((const struct map_mem *)b)->name);
}

static void bench_flows(void)
{
	static const __u32 targets[] = { 100000, 1000000 };
	static const __u32 max_flows[] = { 131072, 1048576 };
	json_object *arr = json_object_new_array();
	struct map_mem mem[2][32];
	int nmem[2] = { 0, 0 };
	__u64 total[2] = { 0, 0 }, pinned[2] = { 0, 0 };
	int levels = opt.quick ? 1 : 2;

	fprintf(md, "\n## Flow table: dump time and map memory\n\n"
		    "Flows pinned by the real program (SYN, then ACK, behind the wrapper), "
		    "IPv4, through the real maps. Memory: the kernel's `memlock` of every "
		    "pinned map (/proc/PID/fdinfo). Dump: `tcpshift flows` to /dev/null, "
		    "median (min-max) of the runs shown.\n\n"
		    "| pinned flows | --max-flows | all maps MiB | `flows -j` s | `flows` (table) s | "
		    "`flows -j` max RSS MiB | dump µs/flow |\n|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int l = 0; l < levels; l++) {
		__u32 n = targets[l];
		int dumps = n >= 1000000 ? 3 : 5;
		double tj[8], tt[8];
		long rss = 0;
		json_object *o = json_object_new_object(), *jm = json_object_new_array();
		struct env e;
		char *argv_j[] = { (char *)opt.tcpshift, "--pin-dir", NULL, "-j", "flows", NULL };
		char *argv_t[] = { (char *)opt.tcpshift, "--pin-dir", NULL, "flows", NULL };
		double t0;

		env_open(&e, max_flows[l]);
		argv_j[2] = argv_t[2] = e.pin_dir;
		config_web(&e, 1, 1);
		t0 = now_ns();
		pin_flows(&e, 4, 0, n);
		fprintf(stderr, "  flows: %u pinned in %.1f s\n", n, (now_ns() - t0) / 1e9);
		pinned[l] = pinned_flows(&e);
		nmem[l] = maps_memory(e.pin_dir, mem[l], 32);
		qsort(mem[l], (size_t)nmem[l], sizeof(mem[l][0]), cmp_mem);
		for (int i = 0; i < nmem[l]; i++) {
			json_object *mo = json_object_new_object();

			total[l] += mem[l][i].memlock;
			json_object_object_add(mo, "name", json_object_new_string(mem[l][i].name));
			json_object_object_add(mo, "type",
					       json_object_new_string(map_type_name(mem[l][i].type)));
			json_object_object_add(mo, "max_entries",
					       json_object_new_int64(mem[l][i].max_entries));
			json_object_object_add(mo, "key_size",
					       json_object_new_int64(mem[l][i].key_size));
			json_object_object_add(mo, "value_size",
					       json_object_new_int64(mem[l][i].value_size));
			json_object_object_add(mo, "memlock",
					       json_object_new_int64((int64_t)mem[l][i].memlock));
			json_object_array_add(jm, mo);
		}
		for (int i = 0; i < dumps; i++) {
			struct proc_result r = run_cli(argv_j, "/dev/null");

			if (r.status)
				die("%s -j flows exited %d", opt.tcpshift, r.status);
			tj[i] = r.wall_ns;
			rss = r.maxrss_kb > rss ? r.maxrss_kb : rss;
			r = run_cli(argv_t, "/dev/null");
			if (r.status)
				die("%s flows exited %d", opt.tcpshift, r.status);
			tt[i] = r.wall_ns;
		}
		fprintf(md, "| %llu | %u | %.1f | %.2f (%.2f-%.2f) | %.2f (%.2f-%.2f) | %.0f | %.2f |\n",
			(unsigned long long)pinned[l], max_flows[l], total[l] / 1048576.0,
			median(tj, dumps) / 1e9, vmin(tj, dumps) / 1e9, vmax(tj, dumps) / 1e9,
			median(tt, dumps) / 1e9, vmin(tt, dumps) / 1e9, vmax(tt, dumps) / 1e9,
			rss / 1024.0, median(tj, dumps) / 1e3 / (double)pinned[l]);
		json_object_object_add(o, "target_flows", json_object_new_int64(n));
		json_object_object_add(o, "pinned_flows", json_object_new_int64((int64_t)pinned[l]));
		json_object_object_add(o, "max_flows", json_object_new_int64(max_flows[l]));
		json_object_object_add(o, "map_memory_bytes", json_object_new_int64((int64_t)total[l]));
		json_object_object_add(o, "maps", jm);
		json_object_object_add(o, "dump_json_s", stats_json(tj, dumps, 1e9, 3));
		json_object_object_add(o, "dump_table_s", stats_json(tt, dumps, 1e9, 3));
		json_object_object_add(o, "dump_json_max_rss_kb", json_object_new_int64(rss));
		json_object_array_add(arr, o);
		env_close(&e);
	}
	json_object_object_add(jroot, "flows", arr);
	/* per-flow memory: the maps that grew with --max-flows */
	fprintf(md, "\nMaps (memlock bytes) at each size; the ones that grow with --max-flows "
		    "make the per-flow cost:\n\n| map | type | key+value B |");
	for (int l = 0; l < levels; l++)
		fprintf(md, " max_entries @%u | memlock @%u |", max_flows[l], max_flows[l]);
	fprintf(md, "\n|---|---|---:|");
	for (int l = 0; l < levels; l++)
		fprintf(md, "---:|---:|");
	fprintf(md, "\n");
	for (int i = 0; i < nmem[0]; i++) {
		fprintf(md, "| %s | %s | %u |", mem[0][i].name, map_type_name(mem[0][i].type),
			mem[0][i].key_size + mem[0][i].value_size);
		for (int l = 0; l < levels; l++)
			fprintf(md, " %u | %llu |", i < nmem[l] ? mem[l][i].max_entries : 0,
				(unsigned long long)(i < nmem[l] ? mem[l][i].memlock : 0));
		fprintf(md, "\n");
	}
	if (levels == 2) {
		__u64 grown = 0;
		json_object *pf = json_object_new_object();
		double per_slot, per_pinned;

		for (int i = 0; i < nmem[1] && i < nmem[0]; i++)
			if (mem[1][i].memlock != mem[0][i].memlock)
				grown += mem[1][i].memlock;
		per_slot = (double)(total[1] - total[0]) / (double)(max_flows[1] - max_flows[0]);
		per_pinned = (double)grown / (double)pinned[1];
		fprintf(md, "\n**Map memory per flow:** %.1f B per unit of --max-flows "
			    "(memlock difference / max-flows difference); %.1f B per pinned flow "
			    "at %llu pinned flows in --max-flows %u (memlock of the maps that grow "
			    "with --max-flows / pinned flows).\n",
			per_slot, per_pinned, (unsigned long long)pinned[1], max_flows[1]);
		json_object_object_add(pf, "bytes_per_max_flows_unit", jnum(per_slot, 1));
		json_object_object_add(pf, "bytes_per_pinned_flow", jnum(per_pinned, 1));
		json_object_object_add(pf, "pinned_flows", json_object_new_int64((int64_t)pinned[1]));
		json_object_object_add(jroot, "memory_per_flow", pf);
	}
}

static void write_json(const char *path)
{
	FILE *jf = fopen(path, "w");

	if (!jf)
		die("cannot write %s: %s", path, strerror(errno));
	fputs(json_object_to_json_string_ext(jroot, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_NOSLASHESCAPE),
	      jf);
	fputc('\n', jf);
	fclose(jf);
	fflush(md);
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: microbench [--out DIR] [--tcpshift PATH] [--repeat N] [--runs N]\n"
		"                  [--shots N] [--quick] [packets] [weights] [flows]\n"
		"       microbench [--repeat N] [--runs N] --services N scale\n"
		"       microbench [--repeat N] [--runs N] conn\n"
		"\n"
		"Per-packet cost of tcpshift's tc program under BPF_PROG_TEST_RUN, weight\n"
		"change time, flow dump time and map memory. Without a section name, all three.\n"
		"Writes DIR/microbench.json and DIR/microbench.md (default build/bench).\n"
		"\n"
		"  --repeat N   BPF_PROG_TEST_RUN repeat per run (default 1000000)\n"
		"  --runs N     runs per case, the median is reported (default 5, at most 15)\n"
		"  --shots N    single-shot samples per case (default 20000)\n"
		"  --quick      small and fast, for trying it out (not for the record)\n"
		"  --services N scale: N services configured; prints one line per case on\n"
		"               stdout and writes no files (make bench-scale)\n"
		"  conn         each of the 7 segments of a whole connection through the XDP\n"
		"               program with --handshakes xdp, N = --repeat (default 20000)\n"
		"               connections per run; one line per case on stdout, no files\n"
		"  --tcpshift PATH   the CLI (default: ../tcpshift next to this binary)\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, NULL, 'o' },
		{ "tcpshift", required_argument, NULL, 't' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "runs", required_argument, NULL, 'n' },
		{ "shots", required_argument, NULL, 's' },
		{ "quick", no_argument, NULL, 'q' },
		{ "services", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	char self[PATH_MAX], path[PATH_MAX + 32], tcpshift_path[PATH_MAX + 32];
	cpu_set_t cpus;
	bool failed = false;
	int c, cpu;
	double t0 = now_ns();

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'o':
			opt.out_dir = optarg;
			break;
		case 't':
			opt.tcpshift = optarg;
			break;
		case 'r':
			opt.repeat = (__u32)strtoul(optarg, NULL, 10);
			opt.repeat_set = true;
			break;
		case 'n':
			opt.runs = atoi(optarg);
			break;
		case 's':
			opt.shots = atoi(optarg);
			break;
		case 'q':
			opt.quick = true;
			opt.repeat = 100000;
			opt.runs = 3;
			opt.shots = 2000;
			opt.weight_iters = 7;
			break;
		case 'S':
			opt.services = (__u32)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (opt.repeat < 1 || opt.runs < 1 || opt.runs > 15 || opt.shots < 1 ||
	    opt.services < 1 || opt.services > 65536) {
		usage(stderr);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		if (!strcmp(argv[i], "packets"))
			opt.do_packets = true;
		else if (!strcmp(argv[i], "weights"))
			opt.do_weights = true;
		else if (!strcmp(argv[i], "flows"))
			opt.do_flows = true;
		else if (!strcmp(argv[i], "scale"))
			opt.do_scale = true;
		else if (!strcmp(argv[i], "conn"))
			opt.do_conn = true;
		else {
			usage(stderr);
			return 2;
		}
	}
	if ((opt.do_scale || opt.do_conn) &&
	    (opt.do_packets || opt.do_weights || opt.do_flows || (opt.do_scale && opt.do_conn))) {
		usage(stderr);
		return 2;
	}
	/* conn: a batch of connections per run, within half_open */
	if (opt.do_conn && !opt.repeat_set)
		opt.repeat = 20000;
	if (!opt.do_packets && !opt.do_weights && !opt.do_flows && !opt.do_scale && !opt.do_conn)
		opt.do_packets = opt.do_weights = opt.do_flows = true;
	if (geteuid())
		die("must run as root (BPF programs and maps)");
	net_setup();
	if (!opt.tcpshift) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n < 0)
			die("readlink /proc/self/exe: %s", strerror(errno));
		self[n] = '\0';
		*strrchr(self, '/') = '\0';
		snprintf(tcpshift_path, sizeof(tcpshift_path), "%s/../tcpshift", self);
		opt.tcpshift = tcpshift_path;
	}
	if (access(opt.tcpshift, X_OK))
		die("%s: %s (build it with make, or give --tcpshift)", opt.tcpshift, strerror(errno));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGSEGV, on_signal);
	signal(SIGABRT, on_signal);
	atexit(cleanup_dirs);
	mkdir(opt.out_dir, 0755);

	/* one CPU: no migration between runs, per-CPU maps on one CPU */
	cpu = sched_getcpu();
	CPU_ZERO(&cpus);
	CPU_SET(cpu < 0 ? 0 : cpu, &cpus);
	sched_setaffinity(0, sizeof(cpus), &cpus);

	empty_skel = bench_empty__open_and_load();
	if (!empty_skel)
		die("cannot load the empty program: %s", strerror(errno));
	empty_fd = bpf_program__fd(empty_skel->progs.empty);
	empty_xdp_fd = bpf_program__fd(empty_skel->progs.empty_xdp);
	prims = prims_load(0, -1);

	if (opt.do_scale || opt.do_conn) {
		if (opt.do_scale)
			bench_scale();
		else
			bench_conn();
		bench_prims__destroy(prims);
		bench_empty__destroy(empty_skel);
		return 0;
	}
	jroot = json_object_new_object();
	md_open();
	fprintf(md, "# tcpshift microbenchmark\n\n");
	json_object_object_add(jroot, "machine", machine_json());
	fprintf(md, "Pinned to CPU %d. `make microbench` (tools/bench/microbench.c).\n", cpu);
	json_object_object_add(jroot, "cpu_pinned", json_object_new_int(cpu));
	json_object_object_add(jroot, "quick", json_object_new_boolean(opt.quick));
	/* the files are written after every section: a failure later keeps
	 * what was measured */
	snprintf(path, sizeof(path), "%s/microbench.json", opt.out_dir);
	if (opt.do_packets) {
		bench_packets();
		write_json(path);
	}
	if (opt.do_weights) {
		bench_weights();
		write_json(path);
	}
	if (opt.do_flows)
		bench_flows();
	json_object_object_add(jroot, "elapsed_s", jnum((now_ns() - t0) / 1e9, 1));
	write_json(path);
	fclose(md);
	json_object_put(jroot);
	bench_prims__destroy(prims);
	bench_empty__destroy(empty_skel);
	fprintf(stderr, "  wrote %s/microbench.md and %s (%.0f s)\n", opt.out_dir, path,
		(now_ns() - t0) / 1e9);
	/* a case that did not do what its name says measured something else:
	 * the run fails, its figures written all the same */
	for (int i = 0; i < ncases; i++)
		if (is_packet_case(&cases[i]) && !cases[i].valid) {
			fprintf(stderr, "microbench: %s (IPv%d) failed its check: %s\n",
				cases[i].name, cases[i].fam, cases[i].check);
			failed = true;
		}
	return failed;
}
