// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift agent: the long-running helper of an instance. It runs the
 * services' health checks and serves Prometheus metrics. It keeps no state
 * of its own that matters (invariant 7): a backend's health is stored with
 * the backend, the agent only counts the run of results against it, so a
 * killed or restarted agent changes no flow and no weight, and resumes from
 * the stored health without flapping. The data plane never depends on it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <curl/curl.h>

#include "daemon.h"
#include "etcd_source.h"
#include "prom.h"

static const char help[] =
	"Usage: tcpshift agent [--metrics ADDR:PORT] [--config etcd://HOST:PORT/KEY\n"
	"                      [--status-key KEY]]\n"
	"\n"
	"Run in the foreground until SIGTERM or SIGINT: the health checks of every\n"
	"service that has them ('tcpshift health'), and, with --metrics, Prometheus\n"
	"metrics at http://ADDR:PORT/metrics (per backend, labels service, backend,\n"
	"addr: connection attempts, handshakes, refusals, SYN retransmits, resets,\n"
	"closes, open connections, bytes each way, handshake-time histogram, weight and\n"
	"effective weight, health; the global counters; table and flow-table fill).\n"
	"One line on stderr for each health transition. Exit 0 on SIGTERM or SIGINT;\n"
	"1 when the instance is unloaded under it; 2 when an option is wrong or the\n"
	"metrics address is in use.\n"
	"\n"
	"With --config, the configuration is made equal to the JSON document stored at\n"
	"KEY in etcd (what 'tcpshift export' prints) whenever it changes, as 'tcpshift\n"
	"import' does: services and backends not in it are removed; each service changes\n"
	"in one atomic table switch. It reads the key at start and then watches it\n"
	"(etcd's v3 JSON gateway, plain HTTP), so every gateway watching one key\n"
	"switches within a moment of an 'etcdctl put'. A bad document is refused with\n"
	"its reason on stderr and the one in force stays; etcd unreachable, the\n"
	"configuration in force stays and the agent retries (100 ms doubling to 2 s,\n"
	"on each endpoint in turn). A missing key changes nothing until it is written.\n"
	"What etcd, or any host on the path, sends is bounded before it is parsed: an\n"
	"answer or watch message over 2 MiB is refused as it arrives (a document holds\n"
	"at most 1.5 MiB, etcd's own limit); JSON nested over 16 deep, or with more\n"
	"arrays, objects or values than a valid answer or document has, is refused\n"
	"unparsed; a range read must finish, and a watch be set up and each message\n"
	"arrive whole, within 10 s. Each refusal is logged once and counted.\n"
	"Changes made by hand are kept until the next document (or the agent's restart).\n"
	"\n"
	"A backend's health is stored in the maps: killing or restarting the agent\n"
	"changes no flow and no weight, and a restarted agent resumes from the stored\n"
	"health. Run one agent per instance (the systemd unit tcpshift-agent.service).\n"
	"\n"
	"  --metrics ADDR:PORT   serve metrics there (127.0.0.1:9470, [::1]:9470)\n"
	"  --config URL          etcd://HOST[:PORT][,HOST[:PORT]...]/KEY (port 2379 by\n"
	"                        default; several endpoints of one etcd cluster)\n"
	"  --status-key KEY      after each document, write there (same etcd) which\n"
	"                        revision is in force here: {\"node\", \"revision\",\n"
	"                        \"latest_revision\", \"state\", \"error\", \"time\"}\n"
	"\n"
	"Examples:\n"
	"  tcpshift agent --metrics 127.0.0.1:9470\n"
	"  tcpshift agent --config etcd://10.0.0.5:2379/tcpshift/site \\\n"
	"      --status-key /tcpshift/status/$(hostname)\n"
	"  etcdctl put /tcpshift/site \"$(tcpshift export)\"\n"
	"  tcpshift -n gw agent\n";

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* One backend's checks. */
struct check {
	char			service[TS_NAME_LEN];
	char			backend[TS_NAME_LEN];
	__u32			id, generation;
	struct ts_health_track	track;
	__u64			due_ms;		/* next check starts */
	__u64			deadline_ms;	/* of the connect in progress */
	int			fd;		/* connect in progress, or -1 */
	bool			seen;		/* still configured */
};


struct agent {
	struct ts_maps		m;
	pthread_mutex_t		lock;	/* the maps' lock is one per process */
	struct check		checks[TS_MAX_BACKENDS];
	size_t			nchecks;
	bool			failed;	/* the instance went away */
	__u64			swept_ns;	/* the last local sweep */
	bool			sweep_failed;	/* and it failed (logged once) */
	struct etcd_source	*source;	/* --config, or NULL */
};

static __u64 now_ms(void)
{
	return ts_now_ns() / 1000000;
}

static void agent_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ts_vlog("agent", fmt, ap);
	va_end(ap);
}

/* ---- metrics ------------------------------------------------------------------ */

static char *metrics_collect(void *cls, size_t *len)
{
	struct agent *a = cls;
	struct ts_source_metrics source;
	struct ts_metrics in = {};
	struct ts_config cfg = {};
	struct ts_err err;
	char *text = NULL;
	size_t ns = 0;
	__u32 key_flow = sizeof(struct ts_flow_key);
	struct bpf_map_info info;
	__u32 info_len;

	pthread_mutex_lock(&a->lock);
	if (ts_maps_lock_shared(&a->m, &err) || ts_config_read(&a->m, &cfg, &err))
		goto out;
	ns = cfg.nservices;
	in.cfg = &cfg;
	in.stats = calloc(ns ? ns : 1, sizeof(*in.stats));
	in.effective = calloc(ns ? ns : 1, sizeof(*in.effective));
	in.slots = calloc(ns ? ns : 1, sizeof(*in.slots));
	if (!in.stats || !in.effective || !in.slots)
		goto out;
	for (size_t i = 0; i < ns; i++) {
		struct ts_service_cfg *s = &cfg.services[i];
		size_t n = s->nbackends ? s->nbackends : 1;

		in.stats[i] = calloc(n, sizeof(**in.stats));
		in.effective[i] = calloc(n, sizeof(**in.effective));
		in.slots[i] = calloc(n, sizeof(**in.slots));
		if (!in.stats[i] || !in.effective[i] || !in.slots[i])
			goto out;
		ts_effective_weights(s->backends, s->nbackends, in.effective[i]);
		if (ts_table_shares(&a->m, s, in.slots[i], &err))
			goto out;
		for (size_t j = 0; j < s->nbackends; j++)
			if (ts_backend_stats_read(&a->m, s->backends[j].id, &in.stats[i][j], &err))
				goto out;
	}
	if (ts_counters_read(&a->m, in.counters, &err))
		goto out;
	ts_count_entries(a->m.flows, key_flow, &in.flows);
	ts_count_entries(a->m.half_open, key_flow, &in.half_open);
	info_len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(a->m.flows, &info, &info_len))
		in.flows_max = info.max_entries;
	info_len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (!bpf_obj_get_info_by_fd(a->m.half_open, &info, &info_len))
		in.half_open_max = info.max_entries;
	if (a->source) {
		etcd_source_metrics(a->source, &source);
		in.source = &source;
	}
	text = ts_metrics_render(&in, len);
out:
	ts_maps_unlock(&a->m);
	pthread_mutex_unlock(&a->lock);
	for (size_t i = 0; i < ns && in.stats; i++) {
		free(in.stats[i]);
		if (in.effective)
			free(in.effective[i]);
		if (in.slots)
			free(in.slots[i]);
	}
	free(in.stats);
	free(in.effective);
	free(in.slots);
	ts_config_free(&cfg);
	return text;
}


/* ---- health checks ------------------------------------------------------------ */

static struct check *check_find(struct agent *a, __u32 id, __u32 generation)
{
	for (size_t i = 0; i < a->nchecks; i++)
		if (a->checks[i].id == id && a->checks[i].generation == generation)
			return &a->checks[i];
	return NULL;
}

static void check_stop(struct check *c)
{
	struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd >= 0) {
		/* a RST, no TIME_WAIT on the gateway */
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
		close(c->fd);
	}
	c->fd = -1;
	c->deadline_ms = 0;
}

/* The checks as configured now: new backends start from their stored health. */
static int checks_sync(struct agent *a, struct ts_config *cfg)
{
	__u64 now = now_ms();
	size_t k = 0;

	for (size_t i = 0; i < a->nchecks; i++)
		a->checks[i].seen = false;
	for (size_t i = 0; i < cfg->nservices; i++) {
		struct ts_service_cfg *s = &cfg->services[i];

		if (s->svc.health.check != TS_CHECK_TCP)
			continue;
		for (size_t j = 0; j < s->nbackends; j++) {
			struct ts_backend_cfg *b = &s->backends[j];
			struct check *c = check_find(a, b->id, b->be.generation);

			if (!c && a->nchecks < TS_MAX_BACKENDS) {
				c = &a->checks[a->nchecks++];
				memset(c, 0, sizeof(*c));
				c->id = b->id;
				c->generation = b->be.generation;
				c->fd = -1;
				/* spread the first checks over an interval */
				c->due_ms = now + (b->id * 37U) % s->svc.health.interval_ms;
				c->track.health = b->be.health;
			}
			if (!c)
				continue;
			c->seen = true;
			snprintf(c->service, sizeof(c->service), "%s", s->svc.name);
			snprintf(c->backend, sizeof(c->backend), "%s", b->be.name);
			/* the stored state rules (an operator's --check none, a
			 * second agent): the run counts against it */
			if (c->track.health != b->be.health) {
				c->track.health = b->be.health;
				c->track.count = 0;
			}
		}
	}
	for (size_t i = 0; i < a->nchecks; i++) {
		if (a->checks[i].seen) {
			a->checks[k++] = a->checks[i];
			continue;
		}
		check_stop(&a->checks[i]);
	}
	a->nchecks = k;
	return 0;
}

static bool check_start(struct check *c, const struct ts_backend *be,
			const struct ts_health_check *hc, __u64 now)
{
	struct sockaddr_storage ss = {};
	socklen_t sl;

	sl = ts_sockaddr_of(be->family, be->addr, be->port, &ss);
	c->due_ms = now + hc->interval_ms;
	c->deadline_ms = now + hc->timeout_ms;
	c->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return false;
	/* The answers come to the gateway itself: the data plane leaves them
	 * alone (doc/DESIGN.md, "Replies"). */
	/* a connect that fails at once (refused, unreachable) leaves its
	 * error in SO_ERROR, read when poll() reports the socket */
	connect(c->fd, (struct sockaddr *)&ss, sl);
	return true;
}

/* A finished check: the state machine, and a transition stored through the
 * change pipeline (effective weights switch with it). */
static void check_result(struct agent *a, struct check *c, bool ok, const char *why,
			 const struct ts_health_check *hc)
{
	struct ts_err err;
	__u8 before = c->track.health;

	check_stop(c);
	if (!ts_health_step(&c->track, ok, hc->rise, hc->fall))
		return;
	pthread_mutex_lock(&a->lock);
	if (ts_backend_health_set(&a->m, c->service, c->backend, c->track.health,
				  (__u64)time(NULL), &err)) {
		agent_log("service %s backend %s: cannot store health %s: %s", c->service,
		      c->backend, c->track.health == TS_HEALTH_DOWN ? "down" : "up", err.msg);
		c->track.health = before;	/* tried again at the next result */
	} else if (c->track.health == TS_HEALTH_DOWN) {
		agent_log("service %s backend %s: DOWN after %u failed checks (%s): effective "
		      "weight 0",
		      c->service, c->backend, hc->fall, why);
	} else {
		agent_log("service %s backend %s: UP after %u good checks: its weight is back",
		      c->service, c->backend, hc->rise);
	}
	ts_maps_unlock(&a->m);
	pthread_mutex_unlock(&a->lock);
}

/* One round: read the configuration, start the checks that are due, finish
 * those that completed or timed out. Waits at most 100 ms. */
static void checks_round(struct agent *a)
{
	struct pollfd pfd[TS_MAX_BACKENDS];
	struct check *pc[TS_MAX_BACKENDS];
	struct ts_config cfg;
	struct ts_err err;
	size_t np = 0;
	__u64 now;
	int r;

	pthread_mutex_lock(&a->lock);
	r = ts_maps_lock_shared(&a->m, &err);
	/* no lock: the pin directory is gone or holds another instance now
	 * (unload, a new load): this agent's instance is no more */
	a->failed |= r != 0;
	r = r ?: ts_config_read(&a->m, &cfg, &err);
	ts_maps_unlock(&a->m);
	pthread_mutex_unlock(&a->lock);
	if (r) {
		agent_log("%s", err.msg);
		usleep(100000);
		return;
	}
	checks_sync(a, &cfg);
	now = now_ms();
	for (size_t i = 0; i < a->nchecks; i++) {
		struct check *c = &a->checks[i];
		struct ts_service_cfg *s = ts_config_service(&cfg, c->service);
		struct ts_backend_cfg *b = s ? ts_service_backend(s, c->backend) : NULL;

		if (!b)
			continue;
		if (c->fd < 0 && now >= c->due_ms &&
		    !check_start(c, &b->be, &s->svc.health, now)) {
			check_result(a, c, false, "cannot open a socket", &s->svc.health);
			continue;
		}
		if (c->fd >= 0 && now >= c->deadline_ms) {
			check_result(a, c, false, "timed out", &s->svc.health);
			continue;
		}
		if (c->fd >= 0 && np < TS_MAX_BACKENDS) {
			pfd[np] = (struct pollfd){ .fd = c->fd, .events = POLLOUT };
			pc[np++] = c;
		}
	}
	if (poll(pfd, np, 100) > 0) {
		for (size_t i = 0; i < np; i++) {
			struct check *c = pc[i];
			struct ts_service_cfg *s = ts_config_service(&cfg, c->service);
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (!pfd[i].revents || !s)
				continue;
			getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
			check_result(a, c, soerr == 0, soerr ? strerror(soerr) : "",
				     &s->svc.health);
		}
	} else if (!np) {
		/* nothing in flight: poll returned at once or after 100 ms */
	}
	ts_config_free(&cfg);
}

/* Every second, the local connections' sweep (doc/DESIGN.md, "Local
 * clients"): those of a drain past its deadline close within a second of it,
 * and those of a backend whose removal was not followed by its sweep (the
 * command killed) too. Nothing to do when not loaded with --cgroup. */
static void sweep_round(struct agent *a)
{
	struct ts_err err;
	__u64 now = ts_now_ns();
	int r;

	if (now - a->swept_ns < 1000000000ULL)
		return;
	a->swept_ns = now;
	r = ts_local_sweep(&a->m, &err);
	if (r && !a->sweep_failed)
		agent_log("%s", err.msg);
	a->sweep_failed = r != 0;
}

int cmd_agent(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *metrics = NULL, *config = NULL, *status_key = NULL;
	const struct cli_opt opts[] = {
		{ "metrics", 0, CLI_STRING, &metrics, .metavar = "ADDR:PORT" },
		{ "config", 0, CLI_STRING, &config, .metavar = "URL" },
		{ "status-key", 0, CLI_STRING, &status_key, .metavar = "KEY" },
		CLI_OPT_HELP,
		{},
	};
	struct ts_metrics_server httpd = { .collect = metrics_collect };
	struct sigaction sa = { .sa_handler = on_signal };
	struct ts_etcd_url url;
	struct agent *a;
	struct ts_err err;
	int r, lfd = -1;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	/* Everything given is checked before anything starts. */
	if (status_key && !config)
		return cli_usage(argv[0], "--status-key needs --config: the key is written to "
				 "that etcd");
	if (config && ts_etcd_url_parse(config, &url, &err))
		return cli_report(&err);
	if (status_key && ts_etcd_key_check(status_key, "--status-key", &err))
		return cli_report(&err);
	if (status_key && !strcmp(status_key, url.key))
		return cli_usage(argv[0], "--status-key %s is the configuration key: give "
				 "another key, e.g. /tcpshift/status/NODE", status_key);
	a = calloc(1, sizeof(*a));
	if (!a) {
		fprintf(stderr, "tcpshift: out of memory\n");
		return 1;
	}
	pthread_mutex_init(&a->lock, NULL);
	if (metrics) {
		lfd = ts_metrics_listen(metrics, &err);
		if (lfd < 0) {
			free(a);
			return cli_report(&err);
		}
	}
	r = cli_open_maps(ctx, &a->m);
	if (r) {
		if (lfd >= 0)
			close(lfd);
		free(a);
		return r;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (lfd >= 0) {
		httpd.cls = a;
		if (ts_metrics_serve(&httpd, lfd)) {
			fprintf(stderr, "tcpshift: cannot start the metrics server on %s\n",
				metrics);
			close(lfd);
			ts_maps_close(&a->m);
			free(a);
			return 1;
		}
		agent_log("serving metrics at http://%s/metrics", metrics);
	}
	agent_log("started (pin directory %s)", a->m.pin_dir);
	if (config) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (etcd_source_start(&a->source, &url, status_key, &a->m, &a->lock, &err)) {
			agent_log("%s", err.msg);
			a->failed = true;
		}
	}
	while (!stopping && !a->failed) {
		checks_round(a);
		sweep_round(a);
	}
	ts_metrics_stop(&httpd);
	etcd_source_stop(a->source);
	if (config)
		curl_global_cleanup();
	for (size_t i = 0; i < a->nchecks; i++)
		check_stop(&a->checks[i]);
	agent_log(a->failed ? "stopped: the instance is gone" : "stopped");
	ts_maps_close(&a->m);
	pthread_mutex_destroy(&a->lock);
	r = a->failed ? 1 : 0;
	free(a);
	return r;
}
