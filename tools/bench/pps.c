// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * pps: one round of make bench-pps or make bench-conn for one method
 * (tools/bench/pps.sh builds the namespaces and sets the method up on the
 * gateway; this measures it).
 *
 *   generator ns           gateway ns                    backend ns (x2)
 *   GEN_DEV ---- veth ---- GW_DEV [method] b1, b2 ---- veth ---- BACKEND_DEV
 *   pps_gen (BPF_PROG_RUN,                               pps_sink: count,
 *   live frames, XDP_TX),                                drop or answer
 *   or AF_PACKET (--relay: on a veth of its own, pps_relay to GEN_DEV)
 *   pps_sink (client side)
 *
 * 1. Attaches pps_sink to the generator's and the backends' devices (and to
 *    the gateway's with --baseline: it drops everything on arrival, and in
 *    phase conn answers as the backend), and pps_fwd to the gateway's devices
 *    with --xdp-forward.
 * 2. Handshakes (not with --baseline): FLOWS SYNs; each backend answers a
 *    SYN-ACK, the client side answers the ACK, all through the gateway. Every
 *    count must come out exactly FLOWS, or the round fails: the method did
 *    not pass them.
 * 3. In this order: phase "established": ACKs of the FLOWS flows, round
 *    robin, the sinks silent; phase "conn": a SYN of a new flow per frame,
 *    and the sinks carry each through a whole connection (seven segments,
 *    pps.bpf.c); every one must complete, or the round fails; phase "syn": a
 *    SYN of a new flow per frame, the sinks silent. Each phase runs WARMUP
 *    seconds, then SECONDS measured.
 *
 * One core (--cpu) does everything: the generator's test_run batches or
 * sends, and the receive processing (NAPI, in softirq) that each raises on
 * that CPU, on the gateway's devices and then on the backends' (and back, in
 * phase conn). Its cost is read as this thread's CPU time plus that of the
 * CPU's ksoftirqd (softirqs past the kernel's budget run there):
 * /proc/PID/schedstat, where softirqs run at bh-enable count for the thread on
 * kernels without IRQ_TIME_ACCOUNTING. The kernel's own test_run time
 * (run_ns; with AF_PACKET the sender's wall time) is printed too. Per phase one
 * line of key=value: the sender that ran, frames sent, frames the gateway's
 * device took in (accepted; phase conn: connections whose SYN arrived),
 * frames of the phase's kind the sinks received (delivered; phase conn:
 * connections completed), wall seconds, cpu_ns, run_ns, in phase conn
 * each segment's count, and with --prog-stats the gateway's programs' own
 * run time and runs per frame delivered (prog_ns, prog_runs: below).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/pkt_sched.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "libtcpshift.h"
#include "pkt.h"
#include "pps.h"
#include "pps.skel.h"

#define MAX_BACKENDS	2
#define HANDSHAKE_BATCH	1024

struct dev {
	char ns[64];
	char name[IF_NAMESIZE];
	int ifindex;
	unsigned char mac[ETH_ALEN];
	int attached;
};

static struct dev gen_dev, gw_dev, be_dev[MAX_BACKENDS];
static struct dev relay_send, relay_dev;	/* --relay: the AF_PACKET sender's veth pair */
static struct dev fwd_devs[4];
static int n_backends, n_fwd;
static struct bench_pps *skel;

/* One line on stderr, then exit: 1 for a failure, 2 for a bad command line. */
static void __attribute__((noreturn, format(printf, 3, 0)))
vquit(int status, const char *hint, const char *fmt, va_list ap)
{
	fprintf(stderr, "pps: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "%s\n", hint);
	exit(status);
}

static void __attribute__((noreturn, format(printf, 1, 2))) die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vquit(1, "", fmt, ap);
}

static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vquit(2, " (pps --help)", fmt, ap);
}

static void enter_ns(const char *ns)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWNET))
		die("entering network namespace %s: %s", ns, strerror(errno));
	close(fd);
}

/* NS:DEV */
static void parse_dev(struct dev *d, const char *arg)
{
	const char *colon = strchr(arg, ':');

	if (!colon || colon == arg || (size_t)(colon - arg) >= sizeof(d->ns) ||
	    memchr(arg, '/', colon - arg) || strlen(colon + 1) >= IF_NAMESIZE || !colon[1])
		usage_error("'%s': expected NETNS:DEVICE (a name under /run/netns)", arg);
	memcpy(d->ns, arg, colon - arg);
	strcpy(d->name, colon + 1);
}

static void resolve(struct dev *d)
{
	struct ifreq ifr = {};
	int s;

	enter_ns(d->ns);
	d->ifindex = if_nametoindex(d->name);
	if (!d->ifindex)
		die("no device %s in %s", d->name, d->ns);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	strcpy(ifr.ifr_name, d->name);
	if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr))
		die("MAC address of %s: %s", d->name, strerror(errno));
	memcpy(d->mac, ifr.ifr_hwaddr.sa_data, ETH_ALEN);
	close(s);
}

static void attach(struct dev *d, struct bpf_program *prog)
{
	int err;

	enter_ns(d->ns);
	err = bpf_xdp_attach(d->ifindex, bpf_program__fd(prog), XDP_FLAGS_DRV_MODE, NULL);
	if (err)
		die("attaching %s to %s in %s (native XDP): %s", bpf_program__name(prog), d->name,
		    d->ns, strerror(-err));
	d->attached = 1;
}

/* At exit, also after an error: the namespace may be gone already. */
static void detach(struct dev *d)
{
	char path[128];
	int fd;

	if (!d->attached)
		return;
	d->attached = 0;
	snprintf(path, sizeof(path), "/run/netns/%s", d->ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && !setns(fd, CLONE_NEWNET))
		bpf_xdp_detach(d->ifindex, XDP_FLAGS_DRV_MODE, NULL);
	if (fd >= 0)
		close(fd);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- counters ------------------------------------------------------------------ */

static __u64 sink_count(__u32 place, __u32 kind)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 v[ncpu], sum = 0;
	__u32 key = place * PPS_KINDS + kind;

	if (bpf_map__lookup_elem(skel->maps.sink_counts, &key, sizeof(key), v,
				 sizeof(__u64) * ncpu, 0))
		die("reading the sinks' counters: %s", strerror(errno));
	for (int i = 0; i < ncpu; i++)
		sum += v[i];
	return sum;
}

static __u64 backends_count(__u32 kind)
{
	return sink_count(PPS_PLACE_B1, kind) + sink_count(PPS_PLACE_B2, kind);
}

/* Frames the device took in (rx_packets; 32-bit counters, compared by difference). */
static __u32 dev_rx_packets(const struct dev *d)
{
	struct ifaddrs *ifa, *i;
	__u32 v = 0;

	enter_ns(d->ns);
	if (getifaddrs(&ifa))
		die("getifaddrs in %s: %s", d->ns, strerror(errno));
	for (i = ifa; i; i = i->ifa_next)
		if (i->ifa_addr && i->ifa_addr->sa_family == AF_PACKET && i->ifa_data &&
		    !strcmp(i->ifa_name, d->name))
			v = ((struct rtnl_link_stats *)i->ifa_data)->rx_packets;
	freeifaddrs(ifa);
	return v;
}

/* ---- CPU time ---------------------------------------------------------------------- */

/* The CPU's ksoftirqd: softirqs left over by the generator's own bh-enable
 * (past the kernel's budget) run there. */
static pid_t ksoftirqd(int cpu)
{
	char want[32], path[300], comm[32];
	struct dirent *e;
	pid_t pid = 0;
	DIR *d;
	FILE *f;

	snprintf(want, sizeof(want), "ksoftirqd/%d", cpu);
	d = opendir("/proc");
	if (!d)
		die("/proc: %s", strerror(errno));
	while (!pid && (e = readdir(d))) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(comm, sizeof(comm), f) && !strcmp(strtok(comm, "\n"), want))
			pid = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return pid;
}

static __u64 schedstat_ns(const char *path)
{
	unsigned long long ns;
	FILE *f = fopen(path, "r");

	if (!f || fscanf(f, "%llu", &ns) != 1)
		die("%s: %s", path, strerror(errno));
	fclose(f);
	return ns;
}

/* CPU time of this thread (the generator, and every softirq it runs: the
 * gateway's and the backends' receive processing; this kernel has no
 * IRQ_TIME_ACCOUNTING, pps.sh checks) and of its CPU's ksoftirqd. */
static __u64 cpu_ns(pid_t softirqd)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/schedstat", softirqd);
	return schedstat_ns("/proc/thread-self/schedstat") + schedstat_ns(path);
}

/* ---- the gateway's programs' own run time (--prog-stats) -------------------------------- */

/*
 * The BPF programs attached to the devices of the gateway's namespace (XDP in
 * any mode, and the cls_bpf filters of both clsact hooks: where tc attaches
 * them, and libbpf's bpf_tc_attach; tcx, which this build's libbpf and kernel
 * headers predate, is not asked), pps's own (pps_sink in the baseline,
 * pps_fwd) left out. Found where they are attached, not by name: another
 * instance's programs elsewhere on this machine (the same names, other
 * namespaces, other tests) are never counted, and a method's program of
 * another name is. The kernel adds up each program's run time and runs while
 * the statistics are on (BPF_ENABLE_STATS: for as long as pps holds the fd,
 * so nothing stays on if it dies); a tail call's time is its caller's. The
 * switch is global and costs every program on the machine two clock reads
 * per run while on.
 */
#define MAX_GW_PROGS	32

static struct gw_prog {
	__u32 id;
	int fd;
	char name[BPF_OBJ_NAME_LEN];
	char at[128];	/* where it is attached: "c123/xdp,b1/xdp" */
} gw_progs[MAX_GW_PROGS];
static int n_gw_progs, prog_stats;

struct prog_totals {
	__u64 run_ns, runs;
};

static __u32 prog_id_of(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		die("reading a program's information: %s", strerror(errno));
	return info.id;
}

static int pps_own_prog(__u32 id)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, skel->obj)
		if (prog_id_of(bpf_program__fd(prog)) == id)
			return 1;
	return 0;
}

/* Program id, attached at DEV/HOOK: counted once, however many places hold it. */
static void gw_prog_add(__u32 id, const char *dev, const char *hook)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	struct gw_prog *p;
	size_t used;
	int i;

	if (!id || pps_own_prog(id))
		return;
	for (i = 0; i < n_gw_progs && gw_progs[i].id != id; i++)
		;
	p = &gw_progs[i];
	if (i == n_gw_progs) {
		if (n_gw_progs == MAX_GW_PROGS)
			die("more than %d programs on the gateway's devices", MAX_GW_PROGS);
		p->fd = bpf_prog_get_fd_by_id(id);
		if (p->fd < 0)
			die("program %u at %s/%s: %s", id, dev, hook, strerror(errno));
		if (bpf_obj_get_info_by_fd(p->fd, &info, &len))
			die("program %u at %s/%s: %s", id, dev, hook, strerror(errno));
		p->id = id;
		snprintf(p->name, sizeof(p->name), "%s", info.name);
		n_gw_progs++;
	}
	used = strlen(p->at);
	snprintf(p->at + used, sizeof(p->at) - used, "%s%s/%s", used ? "," : "", dev, hook);
}

struct gw_hook {
	const char	*dev;
	const char	*hook;
};

static void gw_filter_add(__u32 prog_id, void *arg)
{
	const struct gw_hook *at = arg;

	gw_prog_add(prog_id, at->dev, at->hook);
}

/* The cls_bpf filters of one clsact hook (PARENT) of IFINDEX. */
static void gw_tc_progs(int ifindex, const char *dev, __u32 parent, const char *hook)
{
	struct gw_hook at = { .dev = dev, .hook = hook };
	int err = ts_tc_filters(ifindex, parent, gw_filter_add, &at);

	if (err)
		die("tc filters of %s %s: %s", dev, hook, strerror(-err));
}

/* Every device of the gateway's namespace: the generator's side and the
 * backends' (the only devices there besides lo, whose programs count too). */
static void gw_progs_find(void)
{
	struct if_nameindex *ifs, *i;

	enter_ns(gw_dev.ns);
	ifs = if_nameindex();
	if (!ifs)
		die("devices of %s: %s", gw_dev.ns, strerror(errno));
	for (i = ifs; i->if_index; i++) {
		LIBBPF_OPTS(bpf_xdp_query_opts, x);
		int err = bpf_xdp_query((int)i->if_index, 0, &x);

		if (err)
			die("XDP programs of %s: %s", i->if_name, strerror(-err));
		gw_prog_add(x.drv_prog_id, i->if_name, "xdp");
		gw_prog_add(x.skb_prog_id, i->if_name, "xdp_generic");
		gw_prog_add(x.hw_prog_id, i->if_name, "xdp_offload");
		gw_tc_progs((int)i->if_index, i->if_name, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS),
			    "tc_ingress");
		gw_tc_progs((int)i->if_index, i->if_name, TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS),
			    "tc_egress");
	}
	if_freenameindex(ifs);
	for (int p = 0; p < n_gw_progs; p++)
		printf("gateway_prog id=%u name=%s at=%s\n", gw_progs[p].id, gw_progs[p].name,
		       gw_progs[p].at);
	fflush(stdout);
}

/* Each program's run time and runs so far (t[n_gw_progs]), and their sum. */
static struct prog_totals gw_progs_read(struct prog_totals *t)
{
	struct prog_totals sum = {};

	for (int p = 0; p < n_gw_progs; p++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (bpf_obj_get_info_by_fd(gw_progs[p].fd, &info, &len))
			die("run time of program %u: %s", gw_progs[p].id, strerror(errno));
		t[p] = (struct prog_totals){ info.run_time_ns, info.run_cnt };
		sum.run_ns += info.run_time_ns;
		sum.runs += info.run_cnt;
	}
	return sum;
}

/* ---- the generator ------------------------------------------------------------------ */

static unsigned char frame[PPS_FRAME_LEN];
static int sender_fallback = 1;	/* --sender auto (default): AF_PACKET where live frames are refused */

/* The template of every frame: pps_gen_frame writes the addresses, ports,
 * sequence numbers, flags and checksums. */
static void build_frame(void)
{
	struct pkt_spec spec = { .src = "198.18.128.1", .dst = "198.18.100.1", .sport = 1024,
				 .dport = 80, .flags = PKT_ACK, .eth_dst = gw_dev.mac };
	struct pkt p;

	if (pkt_build(&p, &spec) || p.len != PPS_FRAME_LEN)
		die("building the frame template");
	memcpy(p.data + ETH_ALEN, gen_dev.mac, ETH_ALEN);	/* the source MAC */
	memcpy(frame, p.data, PPS_FRAME_LEN);
	memcpy(skel->bss->tmpl, frame, PPS_FRAME_LEN);
}

/*
 * Where the kernel refuses live frames (EPERM, as some sandboxes do), the
 * same frames (pps_gen_frame, the code pps_gen runs) are written here and sent
 * on an AF_PACKET socket (PACKET_QDISC_BYPASS), in batches of sendmmsg. With
 * --relay SEND:RELAY (a veth pair in the generator's namespace) the socket is
 * on SEND and pps_relay on RELAY redirects each frame to the generator's
 * device: the gateway receives XDP frames, as from pps_gen, and veth's copy of
 * an skb into an XDP frame is made on the generator's side (without --relay,
 * on the gateway's device whenever it has an XDP program: in the baseline and
 * the XDP methods, not the tc ones). The same CPU (veth hands each frame to
 * its peer, whose receive processing runs in this thread's softirq at the
 * bh-enable of each send); the sender's cost is more than pps_gen's, and the
 * baseline round subtracts it as it does pps_gen's.
 */
#define PACKET_BATCH 64

static int packet_fd = -1;

static const char *sender_name(void)
{
	return packet_fd < 0 ? "live" : relay_send.ifindex ? "af_packet_relay" : "af_packet";
}

static void packet_open(void)
{
	const struct dev *d = relay_send.ifindex ? &relay_send : &gen_dev;
	/* protocol 0: a socket that only sends (it receives nothing) */
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = d->ifindex };
	int one = 1;

	enter_ns(gen_dev.ns);
	packet_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (packet_fd < 0 || bind(packet_fd, (struct sockaddr *)&sll, sizeof(sll)) ||
	    setsockopt(packet_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
		die("AF_PACKET socket on %s: %s", d->name, strerror(errno));
}

/* Returns the wall ns per frame. */
static __u32 send_packet_frames(__u32 count)
{
	static unsigned char buf[PACKET_BATCH][PPS_FRAME_LEN];
	static struct mmsghdr msg[PACKET_BATCH];
	static struct iovec iov[PACKET_BATCH];
	double t0 = now();

	for (__u32 i = 0; i < PACKET_BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = PPS_FRAME_LEN };
		msg[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	for (__u32 done = 0; done < count;) {
		__u32 b = count - done < PACKET_BATCH ? count - done : PACKET_BATCH;

		for (__u32 i = 0; i < b; i++) {
			memcpy(buf[i], frame, PPS_FRAME_LEN);
			pps_gen_frame(buf[i], &skel->bss->gen, skel->bss->gen.next++);
		}
		for (__u32 sent = 0; sent < b;) {
			int r = sendmmsg(packet_fd, msg + sent, b - sent, 0);

			if (r < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
				die("sendmmsg on %s: %s", gen_dev.name, strerror(errno));
			sent += r > 0 ? (__u32)r : 0;
		}
		done += b;
	}
	return (__u32)((now() - t0) * 1e9 / (count ? count : 1));
}

/* Send COUNT frames (the generator is in its namespace); returns the
 * kernel's ns per frame (the sender's wall ns with AF_PACKET). */
static __u32 send_frames(__u32 count)
{
	struct xdp_md md = { .data_end = PPS_FRAME_LEN, .ingress_ifindex = gen_dev.ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = PPS_FRAME_LEN,
		    .ctx_in = &md, .ctx_size_in = sizeof(md), .repeat = count,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
	int err;

	if (packet_fd >= 0)
		return send_packet_frames(count);
	err = bpf_prog_test_run_opts(bpf_program__fd(skel->progs.pps_gen), &o);
	if (err == -EPERM && sender_fallback) {
		packet_open();
		return send_packet_frames(count);
	}
	if (err)
		die("the generator (BPF_PROG_RUN, live frames): %s", strerror(-err));
	return o.duration;
}

/* ---- the round ------------------------------------------------------------------------ */

static void handshakes(__u32 flows)
{
	__u64 syn0 = backends_count(PPS_KIND_SYN), ack0 = backends_count(PPS_KIND_ACK);
	__u64 sa0 = sink_count(PPS_PLACE_CLIENT, PPS_KIND_SYNACK);
	__u64 syn = 0, sa = 0, ack = 0;
	double t0 = now(), t;
	__u32 done = 0, n;

	skel->bss->reflex = PPS_REFLEX_HANDSHAKE;
	skel->bss->gen.syn = 1;
	skel->bss->gen.flows = 0;
	while (done < flows) {
		n = flows - done < HANDSHAKE_BATCH ? flows - done : HANDSHAKE_BATCH;
		skel->bss->gen.first = done;
		skel->bss->gen.next = 0;
		enter_ns(gen_dev.ns);
		send_frames(n);
		done += n;
		/* every SYN answered and acknowledged, within a second */
		for (t = now(); now() - t < 1.0; usleep(50)) {
			syn = backends_count(PPS_KIND_SYN) - syn0;
			sa = sink_count(PPS_PLACE_CLIENT, PPS_KIND_SYNACK) - sa0;
			ack = backends_count(PPS_KIND_ACK) - ack0;
			if (syn >= done && sa >= done && ack >= done)
				break;
		}
		if (syn != done || sa != done || ack != done)
			die("handshakes: after %u SYNs the backends got %llu SYNs, the clients %llu "
			    "SYN-ACKs, the backends %llu ACKs: the method does not pass them",
			    done, (unsigned long long)syn, (unsigned long long)sa,
			    (unsigned long long)ack);
	}
	skel->bss->reflex = PPS_REFLEX_NONE;
	printf("handshake flows=%u syn=%llu synack=%llu ack=%llu seconds=%.3f\n", flows,
	       (unsigned long long)syn, (unsigned long long)sa, (unsigned long long)ack,
	       now() - t0);
	fflush(stdout);
}

/* Frames that reached their sink in this phase: the backends' (the gateway's
 * device's with --baseline) segments of the phase's kind. */
static __u64 delivered(__u32 kind, int baseline)
{
	return baseline ? sink_count(PPS_PLACE_OTHER, kind) + sink_count(PPS_PLACE_B1, kind) +
				  sink_count(PPS_PLACE_B2, kind)
			: backends_count(kind);
}

/* The seven segments of a connection (pps.bpf.c, PPS_REFLEX_CONN), each
 * counted where it arrives: at the client side or at a backend (in the
 * baseline the gateway's device answers as the backend, for the backends'
 * own addresses: counted as theirs). */
static const struct {
	const char *key;
	int at_client;
	__u32 kind;
} conn_segments[] = {
	{ "syn", 0, PPS_KIND_SYN },	    { "synack", 1, PPS_KIND_SYNACK },
	{ "request", 0, PPS_KIND_DATA },    { "response", 1, PPS_KIND_DATA },
	{ "fin_client", 0, PPS_KIND_FIN },  { "fin_backend", 1, PPS_KIND_FIN },
	{ "last_ack", 0, PPS_KIND_ACK },
};
#define CONN_SEGMENTS	(sizeof(conn_segments) / sizeof(conn_segments[0]))
#define CONN_LAST_ACK	(CONN_SEGMENTS - 1)

static void conn_counts(__u64 *c)
{
	for (size_t i = 0; i < CONN_SEGMENTS; i++)
		c[i] = conn_segments[i].at_client ? sink_count(PPS_PLACE_CLIENT, conn_segments[i].kind)
						  : backends_count(conn_segments[i].kind);
}

/* Every one of the connections opened since the counts c0 completed: each of
 * its seven segments arrived exactly once (within 2 s), or the round fails. */
static void conn_settle(const __u64 *c0, __u64 opened, __u64 *c)
{
	int ok = 0;

	for (double t = now(); !ok && now() - t < 2.0; usleep(100)) {
		conn_counts(c);
		ok = 1;
		for (size_t i = 0; i < CONN_SEGMENTS; i++)
			ok &= c[i] - c0[i] == opened;
	}
	if (ok)
		return;
	fprintf(stderr, "pps: connections: of %llu opened", (unsigned long long)opened);
	for (size_t i = 0; i < CONN_SEGMENTS; i++)
		fprintf(stderr, ", %s %llu", conn_segments[i].key,
			(unsigned long long)(c[i] - c0[i]));
	fprintf(stderr, " arrived (OTHER %llu): the method did not complete them all\n",
		(unsigned long long)sink_count(PPS_PLACE_OTHER, PPS_KIND_OTHER));
	exit(1);
}

/* The phases "established" (ACKs of the flows confirmed by handshakes), "syn"
 * (a SYN of a new flow per frame, nobody answering) and "conn" (a SYN of a
 * new flow per frame, and the sinks carry each through to its close: one
 * figure per connection). */
enum phase_kind { PHASE_ESTABLISHED, PHASE_SYN, PHASE_CONN };

static void phase(enum phase_kind pk, __u32 first, __u32 flows, double warmup, double seconds,
		  int cpu, int baseline)
{
	static const char *const names[] = { "established", "syn", "conn" };
	__u32 kind = pk == PHASE_ESTABLISHED ? PPS_KIND_ACK : PPS_KIND_SYN, chunk = 1 << 12;
	__u64 sent = 0, warm = 0, run_ns = 0, del0, acc0 = 0, cpu0, c0[CONN_SEGMENTS],
	      c[CONN_SEGMENTS], accepted, dlv;
	struct prog_totals p0[MAX_GW_PROGS], p1[MAX_GW_PROGS], sum0, sum1;
	pid_t softirqd = ksoftirqd(cpu);
	double t0, t1;
	__u32 ns;

	if (!softirqd)
		die("no ksoftirqd/%d", cpu);
	skel->bss->gen.syn = pk != PHASE_ESTABLISHED;
	skel->bss->gen.first = first;
	skel->bss->gen.flows = flows;
	skel->bss->gen.next = 0;
	skel->bss->reflex = pk == PHASE_CONN ? PPS_REFLEX_CONN : PPS_REFLEX_NONE;
	conn_counts(c0);
	/* Each BPF_PROG_RUN call sleeps some ms in its setup and teardown (off
	 * the CPU, so not in the figures): calls of ~0.2 s each, sized in the
	 * warm-up from the kernel's ns per frame. */
	enter_ns(gen_dev.ns);
	for (t0 = now(); now() - t0 < warmup;) {
		ns = send_frames(chunk);
		warm += chunk;
		chunk = ns ? 200000000 / ns : chunk * 2;
		chunk = chunk < 4096 ? 4096 : chunk > (1u << 24) ? 1u << 24 : chunk;
	}
	if (pk == PHASE_CONN) {
		conn_settle(c0, warm, c);
		del0 = c[CONN_LAST_ACK];
		acc0 = c[0];
	} else {
		del0 = delivered(kind, baseline);
		acc0 = dev_rx_packets(&gw_dev);
	}
	enter_ns(gen_dev.ns);
	sum0 = gw_progs_read(p0);
	cpu0 = cpu_ns(softirqd);
	for (t0 = now(); now() - t0 < seconds; sent += chunk)
		run_ns += (__u64)send_frames(chunk) * chunk;
	t1 = now();
	cpu0 = cpu_ns(softirqd) - cpu0;
	sum1 = gw_progs_read(p1);
	if (pk == PHASE_CONN) {
		/* accepted: connections whose SYN arrived; delivered: completed */
		conn_settle(c0, warm + sent, c);
		accepted = c[0] - acc0;
		dlv = c[CONN_LAST_ACK] - del0;
	} else {
		accepted = (__u32)(dev_rx_packets(&gw_dev) - (__u32)acc0);
		dlv = delivered(kind, baseline) - del0;
	}
	skel->bss->reflex = PPS_REFLEX_NONE;
	printf("phase=%s sender=%s sent=%llu accepted=%llu delivered=%llu seconds=%.4f cpu_ns=%llu "
	       "run_ns=%llu",
	       names[pk], sender_name(), (unsigned long long)sent, (unsigned long long)accepted,
	       (unsigned long long)dlv, t1 - t0, (unsigned long long)cpu0,
	       (unsigned long long)run_ns);
	if (pk == PHASE_CONN)
		for (size_t i = 0; i < CONN_SEGMENTS; i++)
			printf(" %s=%llu", conn_segments[i].key, (unsigned long long)(c[i] - c0[i]));
	/* the gateway's programs, per packet delivered (no program: 0 ns, 0 runs) */
	if (prog_stats && dlv)
		printf(" prog_ns=%.1f prog_runs=%.3f", (double)(sum1.run_ns - sum0.run_ns) / dlv,
		       (double)(sum1.runs - sum0.runs) / dlv);
	printf("\n");
	for (int p = 0; prog_stats && p < n_gw_progs; p++)
		printf("gateway_prog phase=%s id=%u name=%s runs=%llu run_ns=%llu\n", names[pk],
		       gw_progs[p].id, gw_progs[p].name,
		       (unsigned long long)(p1[p].runs - p0[p].runs),
		       (unsigned long long)(p1[p].run_ns - p0[p].run_ns));
	fflush(stdout);
}

static void cleanup(void)
{
	detach(&gen_dev);
	detach(&relay_dev);
	for (int i = 0; i < n_backends; i++)
		detach(&be_dev[i]);
	for (int i = 0; i < n_fwd; i++)
		detach(&fwd_devs[i]);
	detach(&gw_dev);
	bench_pps__destroy(skel);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pps --gen NS:DEV --gw NS:DEV --backend NS:DEV:ADDR --backend NS:DEV:ADDR\n"
		"           [--vip ADDR:PORT | --direct] [--xdp-forward DEV --xdp-forward DEV ...]\n"
		"           [--baseline] [--flows N] [--seconds S] [--warmup S] [--cpu C]\n"
		"           [--phases established,syn,conn] [--vips N] [--sender auto|live]\n"
		"           [--relay SEND_DEV:RELAY_DEV] [--prog-stats]\n"
		"       pps --probe-live   exit 0 when the kernel runs programs with live frames,\n"
		"                          77 when it refuses them\n"
		"One round of make bench-pps or bench-conn (tools/bench/pps.sh). --vips N: the\n"
		"flows go to N consecutive VIPs from --vip's address on, picked by a hash of the\n"
		"flow (make bench-scale, tools/bench/scale.sh). --sender auto (default): live\n"
		"frames, or an AF_PACKET socket where the kernel refuses them; live: fail\n"
		"there; --relay: that socket on SEND_DEV, a veth whose peer RELAY_DEV (both\n"
		"in the generator's namespace) redirects each frame to the generator's\n"
		"device. Each phase's line says which sender ran\n"
		"(sender=live|af_packet|af_packet_relay).\n"
		"Phase conn: whole connections (handshake, request, response, FINs both\n"
		"ways) answered in place by the sinks; delivered = connections completed.\n"
		"--prog-stats: the run time and runs of the BPF programs attached to the\n"
		"gateway's namespace's devices (XDP, tc; not pps's own), from the kernel's\n"
		"statistics (on while pps runs), per packet delivered: prog_ns= and\n"
		"prog_runs= in each phase's line; a line per program (gateway_prog) says\n"
		"where it is attached and, per phase, its runs and run ns.\n");
}

static double parse_seconds(const char *arg, const char *what)
{
	char *end;
	double v = strtod(arg, &end);

	if (end == arg || *end || !(v > 0 && v <= 600))
		usage_error("--%s '%s': expected seconds in (0, 600]", what, arg);
	return v;
}

static int parse_cpu(const char *arg, const char *what)
{
	char *end;
	long v = strtol(arg, &end, 10);

	if (end == arg || *end || v < 0 || v >= CPU_SETSIZE)
		usage_error("--%s '%s': expected a CPU number", what, arg);
	return (int)v;
}

/*
 * --probe-live: can this kernel run a program with BPF_F_TEST_XDP_LIVE_FRAMES
 * at all? A program that only returns XDP_PASS, on one frame. Exit 0 yes, 77
 * when the kernel refuses it (some kernels' builds and sandboxes answer EPERM
 * to root), 1 on another error: the harness sends nothing without it.
 */
static int probe_live(void)
{
	const struct bpf_insn pass[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	unsigned char data[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = data, .data_size_in = sizeof(data),
		    .repeat = 1, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "probe", "GPL", pass, 2, NULL), err;

	if (fd < 0) {
		fprintf(stderr, "pps: cannot load a probe program: %s\n", strerror(-fd));
		return 1;
	}
	err = bpf_prog_test_run_opts(fd, &o);
	close(fd);
	if (err == -EPERM) {
		fprintf(stderr, "pps: this kernel refuses BPF_PROG_RUN with live frames (EPERM), "
				"even for a program that only returns XDP_PASS\n");
		return 77;
	}
	if (err)
		fprintf(stderr, "pps: live frames: %s\n", strerror(-err));
	return err ? 1 : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "gen", 1, 0, 'g' },	  { "gw", 1, 0, 'w' },	    { "backend", 1, 0, 'b' },
		{ "vip", 1, 0, 'v' },	  { "direct", 0, 0, 'd' },  { "xdp-forward", 1, 0, 'x' },
		{ "flows", 1, 0, 'f' },	  { "seconds", 1, 0, 's' }, { "warmup", 1, 0, 'W' },
		{ "cpu", 1, 0, 'C' },	  { "phases", 1, 0, 'p' },  { "baseline", 0, 0, 'B' },
		{ "probe-live", 0, 0, 'P' }, { "help", 0, 0, 'h' }, { "vips", 1, 0, 'V' },
		{ "sender", 1, 0, 'S' }, { "relay", 1, 0, 'R' }, { "prog-stats", 0, 0, 'T' }, {},
	};
	const char *vip = "198.18.100.1:80", *phases = "established,syn";
	__be32 be_addr[MAX_BACKENDS], vip_addr;
	double seconds = 3, warmup = 0.5;
	int c, direct = 0, baseline = 0, cpu = 0, err;
	unsigned long port;
	char *colon, *end, buf[128];
	__u32 flows = 10000, vips = 1;
	cpu_set_t set;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'g': parse_dev(&gen_dev, optarg); break;
		case 'w': parse_dev(&gw_dev, optarg); break;
		case 'b':
			if (n_backends == MAX_BACKENDS)
				usage_error("at most %d backends", MAX_BACKENDS);
			snprintf(buf, sizeof(buf), "%s", optarg);
			colon = strrchr(buf, ':');
			if (!colon || inet_pton(AF_INET, colon + 1, &be_addr[n_backends]) != 1)
				usage_error("--backend '%s': expected NETNS:DEVICE:IPV4", optarg);
			*colon = 0;
			parse_dev(&be_dev[n_backends++], buf);
			break;
		case 'v': vip = optarg; break;
		case 'd': direct = 1; break;
		case 'x':
			if (n_fwd == (int)(sizeof(fwd_devs) / sizeof(fwd_devs[0])))
				usage_error("too many --xdp-forward devices");
			if (strlen(optarg) >= IF_NAMESIZE)
				usage_error("--xdp-forward '%s': not a device name", optarg);
			strcpy(fwd_devs[n_fwd++].name, optarg);
			break;
		case 'f':
			flows = strtoul(optarg, &end, 10);
			if (end == optarg || *end || flows < 2 || flows > 1000000)
				usage_error("--flows '%s': expected 2 to 1000000", optarg);
			break;
		case 's': seconds = parse_seconds(optarg, "seconds"); break;
		case 'W': warmup = parse_seconds(optarg, "warmup"); break;
		case 'C': cpu = parse_cpu(optarg, "cpu"); break;
		case 'B': baseline = 1; break;
		case 'p': phases = optarg; break;
		case 'S':
			if (strcmp(optarg, "live") && strcmp(optarg, "auto"))
				usage_error("--sender '%s': expected live or auto", optarg);
			sender_fallback = !strcmp(optarg, "auto");
			break;
		case 'R':
			snprintf(buf, sizeof(buf), "%s", optarg);
			colon = strchr(buf, ':');
			if (!colon || colon == buf || !colon[1] || strlen(buf) >= 2 * IF_NAMESIZE ||
			    (size_t)(colon - buf) >= IF_NAMESIZE || strlen(colon + 1) >= IF_NAMESIZE)
				usage_error("--relay '%s': expected SEND_DEV:RELAY_DEV", optarg);
			*colon = 0;
			strcpy(relay_send.name, buf);
			strcpy(relay_dev.name, colon + 1);
			break;
		case 'V':
			vips = strtoul(optarg, &end, 10);
			if (end == optarg || *end || vips < 1 || vips > 65536)
				usage_error("--vips '%s': expected 1 to 65536", optarg);
			break;
		case 'T': prog_stats = 1; break;
		case 'P': return probe_live();
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !gen_dev.ns[0] || !gw_dev.ns[0] || n_backends != MAX_BACKENDS) {
		usage(stderr);
		return 2;
	}
	snprintf(buf, sizeof(buf), "%s", phases);
	for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
		if (strcmp(t, "established") && strcmp(t, "syn") && strcmp(t, "conn"))
			usage_error("--phases '%s': expected a list of established, syn, conn",
				    phases);
	snprintf(buf, sizeof(buf), "%s", vip);
	colon = strrchr(buf, ':');
	if (!colon || (*colon = 0, inet_pton(AF_INET, buf, &vip_addr) != 1) ||
	    (port = strtoul(colon + 1, &end, 10), *end || !port || port > 65535))
		usage_error("--vip '%s': expected IPV4:PORT", vip);

	libbpf_set_print(NULL);
	skel = bench_pps__open_and_load();
	if (!skel)
		die("loading pps.bpf.o: %s", strerror(errno));
	atexit(cleanup);
	skel->bss->gen.vip = vip_addr;
	skel->bss->gen.vip_port = htons(port);
	skel->bss->gen.vips = vips;
	skel->bss->gen.direct = direct;
	memcpy(skel->bss->gen.backend_addr, be_addr, sizeof(be_addr));

	resolve(&gen_dev);
	resolve(&gw_dev);
	for (int i = 0; i < n_backends; i++)
		resolve(&be_dev[i]);
	if (relay_send.name[0]) {
		strcpy(relay_send.ns, gen_dev.ns);
		strcpy(relay_dev.ns, gen_dev.ns);
		resolve(&relay_send);
		resolve(&relay_dev);
		skel->bss->relay_to = gen_dev.ifindex;
	}
	for (int i = 0; i < n_fwd; i++) {
		snprintf(fwd_devs[i].ns, sizeof(fwd_devs[i].ns), "%s", gw_dev.ns);
		resolve(&fwd_devs[i]);
		err = bpf_map__update_elem(skel->maps.fwd_ports, &fwd_devs[i].ifindex, sizeof(__u32),
					   &fwd_devs[i].ifindex, sizeof(__u32), 0);
		if (err)
			die("devmap entry for %s: %s", fwd_devs[i].name, strerror(-err));
	}
	build_frame();
	attach(&gen_dev, skel->progs.pps_sink);
	if (relay_dev.name[0])
		attach(&relay_dev, skel->progs.pps_relay);
	for (int i = 0; i < n_backends; i++)
		attach(&be_dev[i], skel->progs.pps_sink);
	for (int i = 0; i < n_fwd; i++)
		attach(&fwd_devs[i], skel->progs.pps_fwd);
	if (baseline)
		attach(&gw_dev, skel->progs.pps_sink);

	/* One core: the generator, and the receive processing of every veth
	 * it feeds, directly or through the gateway (softirqs raised here run
	 * here). */
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		die("pinning to CPU %d: %s", cpu, strerror(errno));

	/* the statistics on from here to pps's exit (the kernel turns them off
	 * when the fd closes) */
	if (prog_stats) {
		int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);

		if (stats_fd < 0)
			die("turning the kernel's BPF run-time statistics on: %s", strerror(errno));
		gw_progs_find();
	}
	if (!baseline)
		handshakes(flows);
	if (strstr(phases, "established"))
		phase(PHASE_ESTABLISHED, 0, flows, warmup, seconds, cpu, baseline);
	/* Connections before the SYN flood, which leaves conntrack's table full
	 * of unanswered entries (new connections then dropped while it evicts);
	 * from flow 2^30 on: 4-tuples the other phases never use. */
	if (strstr(phases, "conn"))
		phase(PHASE_CONN, 1u << 30, 0, warmup, seconds, cpu, baseline);
	if (strstr(phases, "syn"))
		phase(PHASE_SYN, flows, 0, warmup, seconds, cpu, baseline);
	return 0;
}
