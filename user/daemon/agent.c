// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tcpshift agent: the long-running helper of an instance. It runs the
 * services' health checks and serves Prometheus metrics. It keeps no state
 * of its own that matters (invariant 7): a backend's health is stored with
 * the backend, the agent only counts the run of results against it, so a
 * killed or restarted agent changes no flow and no weight, and resumes from
 * the stored health without flapping. The data plane never depends on it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <curl/curl.h>

#include "daemon.h"
#include "etcd_source.h"
#include "history.h"
#include "print.h"
#include "prom.h"

static const char help[] =
	"Usage: tcpshift agent [--metrics ADDR:PORT [--metrics-max-backends N]]\n"
	"                      [--config etcd://HOST:PORT/KEY [--status-key KEY]]\n"
	"\n"
	"Run in the foreground until SIGTERM or SIGINT: the health checks of every\n"
	"service that has them ('tcpshift health'), and, with --metrics, Prometheus\n"
	"metrics at http://ADDR:PORT/metrics (per backend, labels service, backend,\n"
	"addr: connection attempts, handshakes, refusals, SYN retransmits, resets,\n"
	"closes, open connections, bytes each way, handshake-time histogram, weight and\n"
	"effective weight, health; the global counters; table and flow-table fill),\n"
	"and a read-only live status page at http://ADDR:PORT/ (its JSON at\n"
	"/api/status): what 'tcpshift top' shows, with charts of each backend's new\n"
	"connections per second over the last three minutes.\n"
	"One line on stderr for each health transition. SIGHUP reads the configuration\n"
	"again (it is also read whenever a change is committed). Under systemd\n"
	"(Type=notify) it reports readiness once it serves, and pings WatchdogSec=.\n"
	"Exit 0 on SIGTERM or SIGINT; 1 when the instance is unloaded under it; 2 when\n"
	"an option is wrong; 4 when the metrics address is in use (the unit retries).\n"
	"\n"
	"A health check is a TCP connect() to the backend within its timeout: refused,\n"
	"unreachable (no route, a broadcast or multicast address) or timed out is a\n"
	"failed check. The metrics endpoint holds at most 64 connections, 8 per client\n"
	"address, each closed after 5 s without progress, and logs none of them.\n"
	"Per-backend series are served while the instance has at most N backends\n"
	"(--metrics-max-backends, 4096 by default); above, /metrics has the totals\n"
	"(tcpshift_services, tcpshift_backends, tcpshift_metrics_backends_omitted,\n"
	"events, flow tables) and /metrics?service=NAME (repeated, up to 16) the\n"
	"series of those services' backends, at any size.\n"
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
	"  --metrics-max-backends N\n"
	"                        per-backend series up to N backends in all (4096;\n"
	"                        0: only on request, ?service=NAME)\n"
	"  --config URL          etcd://HOST[:PORT][,HOST[:PORT]...]/KEY (port 2379 by\n"
	"                        default; several endpoints of one etcd cluster)\n"
	"  --status-key KEY      after each document, write there (same etcd) which\n"
	"                        revision is in force here: {\"node\", \"revision\",\n"
	"                        \"latest_revision\", \"state\", \"error\", \"time\"}\n"
	"\n"
	"Examples:\n"
	"  tcpshift agent --metrics 127.0.0.1:9470\n"
	"  curl 'http://127.0.0.1:9470/metrics?service=web&service=api'\n"
	"  tcpshift agent --config etcd://10.0.0.5:2379/tcpshift/site \\\n"
	"      --status-key /tcpshift/status/$(hostname)\n"
	"  etcdctl put /tcpshift/site \"$(tcpshift export)\"\n"
	"  tcpshift -n gw agent\n";


struct agent;

/* One backend's checks. */
struct check {
	struct agent		*agent;
	char			service[TS_NAME_LEN];
	char			backend[TS_NAME_LEN];
	__u32			id, generation;
	struct ts_health_check	hc;		/* its service's settings */
	struct sockaddr_storage	addr;
	socklen_t		addr_len;
	struct ts_health_track	track;
	__u64			started_ms;	/* the last check's start; 0: none yet */
	__u64			due_ms;		/* next check starts */
	__u64			deadline_ms;	/* of the connect in progress */
	int			fd;		/* connect in progress, or -1 */
	bool			seen;		/* still configured */
};

/*
 * The agent's threads each have their own ts_maps (their own lock descriptor,
 * so that their flock()s are independent): the loop's (health checks, the
 * sweep, the configuration in force), the metrics endpoint's and the etcd
 * source's. Only the loop changes checks.
 */
struct agent {
	struct ts_loop		*loop;
	struct ts_maps		m;
	__u64			generation;	/* of the configuration the checks follow */
	__u32			nids;		/* 1 + its highest backend id */
	bool			have_config;
	unsigned int		config_misses;	/* reads a change overlapped, in a row */
	struct check		**checks;	/* nchecks of TS_MAX_BACKENDS */
	size_t			nchecks;
	struct ts_timer		*checks_timer, *config_timer, *sweep_timer, *history_timer;
	bool			socket_failed;	/* socket() failed: logged once */
	bool			sweep_failed;	/* the local sweep failed: logged once */
	struct {
		struct ts_maps		m;
		pthread_mutex_t		lock;	/* the endpoint may answer in parallel */
		struct ts_metrics_server httpd;
	} scrape;
	struct {
		struct ts_maps		m;	/* the etcd source's thread's */
	} etcd;
	struct etcd_source	*source;	/* --config, or NULL */
	struct ts_history	history;	/* the status page's rates (--metrics) */
	bool			history_failed;	/* a sample failed: logged once */
	__u32			metrics_max_backends;	/* per-backend series up to */
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

static __u32 max_entries(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) ? 0 : info.max_entries;
}

/* The services q asks for, in cfg: *missing names one that does not exist. */
static int config_read_selected(const struct ts_maps *m, const struct ts_metrics_query *q,
				struct ts_config *cfg, const char **missing, struct ts_err *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->services = calloc(q->nservices, sizeof(*cfg->services));
	if (!cfg->services)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	for (size_t i = 0; i < q->nservices; i++) {
		struct ts_config one;
		bool dup = false;

		for (size_t j = 0; j < cfg->nservices; j++)
			dup |= !strcmp(cfg->services[j].svc.name, q->services[i]);
		if (dup)
			continue;
		if (ts_config_read_service(m, q->services[i], &one, err))
			return -1;
		if (!one.nservices) {
			*missing = q->services[i];
			return 0;
		}
		cfg->services[cfg->nservices++] = one.services[0];
		free(one.services);
	}
	return 0;
}

/*
 * On the endpoint's thread, with its own maps. The numbers of services and
 * backends are counted without the lock (a change may be under way: they are
 * a gauge's); per-backend series are read only for the services asked for,
 * or for all while there are at most max_backends, so that a scrape at
 * 65,536 services holds the lock for no walk of them. Then, under the shared
 * lock (a change waits for that much, never for the flow tables), the
 * configuration and the per-backend counters of those, and the tables' fill
 * without the lock.
 */
static char *metrics_collect(void *cls, const struct ts_metrics_query *q, unsigned int *code,
			     size_t *len)
{
	struct agent *a = cls;
	struct ts_maps *m = &a->scrape.m;
	struct ts_source_metrics source;
	struct ts_metrics in = {};
	struct ts_settings settings;
	struct ts_config cfg = {};
	char object[64];
	struct ts_err err;
	char *text = NULL;
	const char *missing = NULL;
	size_t ns = 0, nb = 0;
	__u32 key_flow = sizeof(struct ts_flow_key);
	bool read = false;

	ts_count_entries(m->services, sizeof(struct ts_endpoint_key), &in.services);
	ts_count_entries(m->backend_addrs, sizeof(struct ts_endpoint_key), &in.backends);
	pthread_mutex_lock(&a->scrape.lock);
	if (ts_maps_lock_shared(m, &err))
		goto out;
	if (q->nservices) {
		if (config_read_selected(m, q, &cfg, &missing, &err) || missing)
			goto out;
	} else if (in.backends <= a->metrics_max_backends && ts_config_read(m, &cfg, &err)) {
		goto out;
	}
	for (size_t i = 0; i < cfg.nservices; i++)
		nb += cfg.services[i].nbackends;
	/* grown past the bound since the count: none of them after all */
	if (!q->nservices && nb > a->metrics_max_backends) {
		ts_config_free(&cfg);
		nb = 0;
	}
	in.backends_omitted = in.backends > nb ? in.backends - nb : 0;
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
		if (ts_table_shares(m, s, in.slots[i], &err))
			goto out;
		for (size_t j = 0; j < s->nbackends; j++)
			if (ts_backend_stats_read(m, s->backends[j].id, &in.stats[i][j], &err))
				goto out;
	}
	if (ts_counters_read(m, in.counters, &err) || ts_settings_read(m, &settings, &err))
		goto out;
	read = true;
out:
	ts_maps_unlock(m);
	if (read) {
		ts_count_entries(m->flows, key_flow, &in.flows);
		ts_count_entries(m->half_open, key_flow, &in.half_open);
		in.flows_max = max_entries(m->flows);
		in.half_open_max = max_entries(m->half_open);
		if (a->source) {
			etcd_source_metrics(a->source, &source);
			in.source = &source;
		}
		in.version = ts_version();
		in.layout = settings.abi_version;
		in.mode = ts_settings_mode(&settings);
		ts_object_version(&settings, &m->owner, object, sizeof(object));
		in.object_version = object;
		text = ts_metrics_render(&in, len);
	}
	pthread_mutex_unlock(&a->scrape.lock);
	if (missing) {
		*code = 404;	/* Not Found */
		if (asprintf(&text, "tcpshift: no service %s here: 'tcpshift service list' "
			     "names them\n", missing) < 0)
			text = NULL;
		else
			*len = strlen(text);
	}
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

/*
 * GET /api/status, on the endpoint's thread: the live view (configuration,
 * per-backend counters, shares, rollouts: no flow-table walk), with the rates
 * and history of the loop's samples.
 */
struct status_ctx {
	const struct ts_history	*history;
	__u64			since;
};

static void status_history(const struct ts_live_service *s, const struct ts_live_backend *b,
			   void *data)
{
	const struct status_ctx *c = data;

	ts_history_print(c->history, b->b, c->since);
}

static char *status_collect(void *cls, __u64 since, size_t *len)
{
	struct agent *a = cls;
	struct status_ctx ctx = { &a->history, since };
	struct ts_live live;
	struct ts_err err;
	char *text = NULL;
	FILE *out;

	pthread_mutex_lock(&a->scrape.lock);
	if (ts_live_read(&a->scrape.m, &live, &err)) {
		pthread_mutex_unlock(&a->scrape.lock);
		return NULL;
	}
	out = open_memstream(&text, len);
	if (out) {
		pthread_mutex_lock(&a->history.lock);
		ts_history_rates(&a->history, &live);
		print_start(out, true, 0);
		print_open_object(NULL);
		ts_live_print(&live, NULL, status_history, &ctx);
		print_open_object("history");
		print_u64(PRINT_JSON, "seq", NULL, a->history.seq);
		print_u64(PRINT_JSON, "interval_s", NULL, TS_HISTORY_INTERVAL_NS / 1000000000ULL);
		print_u64(PRINT_JSON, "samples", NULL, TS_HISTORY_SAMPLES);
		print_close_object();
		print_close_object();
		pthread_mutex_unlock(&a->history.lock);
		if (print_end() | fclose(out)) {
			free(text);
			text = NULL;
		}
	}
	pthread_mutex_unlock(&a->scrape.lock);
	ts_live_free(&live);
	return text;
}

/* Every second on the loop: a sample of every backend's counters. */
static void history_sample(struct ts_loop *l, void *data)
{
	struct agent *a = data;
	struct ts_err err;
	int r = ts_history_sample(&a->history, &a->m, a->nids, &err);

	if (r && !a->history_failed)
		agent_log("the status page's history: %s", err.msg);
	a->history_failed = r != 0;
}

/* ---- health checks ------------------------------------------------------------ */

static void checks_schedule(struct agent *a);

static struct check *check_find(struct agent *a, __u32 id, __u32 generation)
{
	for (size_t i = 0; i < a->nchecks; i++)
		if (a->checks[i]->id == id && a->checks[i]->generation == generation)
			return a->checks[i];
	return NULL;
}

static void check_stop(struct agent *a, struct check *c)
{
	struct linger abort_close = { .l_onoff = 1, .l_linger = 0 };

	if (c->fd >= 0) {
		ts_loop_unwatch(a->loop, c->fd);
		/* a RST, no TIME_WAIT on the gateway */
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
		close(c->fd);
	}
	c->fd = -1;
	c->deadline_ms = 0;
}

/* The checks as configured now: new backends start from their stored health. */
static void checks_sync(struct agent *a, const struct ts_config *cfg)
{
	__u64 now = now_ms();
	size_t k = 0;

	for (size_t i = 0; i < a->nchecks; i++)
		a->checks[i]->seen = false;
	for (size_t i = 0; i < cfg->nservices; i++) {
		const struct ts_service_cfg *s = &cfg->services[i];

		if (s->svc.health.check != TS_CHECK_TCP)
			continue;
		for (size_t j = 0; j < s->nbackends; j++) {
			const struct ts_backend_cfg *b = &s->backends[j];
			struct check *c = check_find(a, b->id, b->be.generation);

			if (!c && a->nchecks < TS_MAX_BACKENDS &&
			    (c = calloc(1, sizeof(*c)))) {
				a->checks[a->nchecks++] = c;
				c->agent = a;
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
			c->hc = s->svc.health;
			/* The settings in force rule the check in flight and
			 * the next one: a timeout raised while a connect waits
			 * gives it the time, and a failure reports the time it
			 * was given. */
			if (c->started_ms) {
				c->due_ms = c->started_ms + c->hc.interval_ms;
				if (c->fd >= 0)
					c->deadline_ms = c->started_ms + c->hc.timeout_ms;
			}
			c->addr_len = ts_sockaddr_of(b->be.family, b->be.addr, b->be.port,
						     &c->addr);
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
		struct check *c = a->checks[i];

		if (c->seen) {
			a->checks[k++] = c;
			continue;
		}
		check_stop(a, c);
		free(c);
	}
	a->nchecks = k;
}

/* A finished check: the state machine, and a transition stored through the
 * change pipeline (effective weights switch with it). */
static void check_result(struct agent *a, struct check *c, bool ok, const char *why)
{
	struct ts_err err;
	__u8 before = c->track.health;

	check_stop(a, c);
	if (!ts_health_step(&c->track, ok, c->hc.rise, c->hc.fall))
		return;
	if (ts_backend_health_set(&a->m, c->service, c->backend, c->track.health,
				  (__u64)time(NULL), &err)) {
		agent_log("service %s backend %s: cannot store health %s: %s", c->service,
			  c->backend, c->track.health == TS_HEALTH_DOWN ? "down" : "up", err.msg);
		c->track.health = before;	/* tried again at the next result */
	} else if (c->track.health == TS_HEALTH_DOWN) {
		agent_log("service %s backend %s: DOWN after %u failed checks (%s): effective "
			  "weight 0",
			  c->service, c->backend, c->hc.fall, why);
	} else {
		agent_log("service %s backend %s: UP after %u good checks: its weight is back",
			  c->service, c->backend, c->hc.rise);
	}
	ts_maps_unlock(&a->m);
}

/* A connect that finished (events: what epoll or poll reported for it). */
static void check_judge(struct agent *a, struct check *c, __u32 events)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr)
		check_result(a, c, false, strerror(soerr));
	else if (events & (EPOLLERR | EPOLLHUP) || !(events & EPOLLOUT))
		check_result(a, c, false, "connection closed");
	else
		check_result(a, c, true, "");
}

static void on_check_socket(struct ts_loop *l, int fd, __u32 events, void *data)
{
	struct check *c = data;
	struct agent *a = c->agent;

	check_judge(a, c, events);
	checks_schedule(a);
}

static bool out_of_descriptors(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* Start c's connect. A connect that fails at once (no route, a broadcast or
 * multicast address) is a failed check; a gateway short of descriptors or
 * memory is no news about the backend: that check is skipped. */
static void check_start(struct agent *a, struct check *c, __u64 now)
{
	struct ts_err err;
	int r;

	c->started_ms = now;
	c->due_ms = now + c->hc.interval_ms;
	c->deadline_ms = now + c->hc.timeout_ms;
	c->fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		if (!a->socket_failed)
			agent_log("cannot open a socket for health checks: %s: checks are skipped "
				  "until one opens (raise LimitNOFILE=?)",
				  strerror(errno));
		a->socket_failed = true;
		return;
	}
	if (a->socket_failed)
		agent_log("health checks run again");
	a->socket_failed = false;
	/* The answers come to the gateway itself: the data plane leaves them
	 * alone (doc/DESIGN.md, "Replies"). */
	r = connect(c->fd, (struct sockaddr *)&c->addr, c->addr_len);
	if (r && errno != EINPROGRESS) {
		int e = errno;

		if (out_of_descriptors(e)) {
			check_stop(a, c);
			return;
		}
		check_result(a, c, false, strerror(e));
		return;
	}
	if (!r) {
		check_result(a, c, true, "");
		return;
	}
	if (ts_loop_watch(a->loop, c->fd, EPOLLOUT, on_check_socket, c, &err)) {
		agent_log("%s", err.msg);
		check_stop(a, c);
	}
}

/*
 * Start the checks that are due and end those past their deadline, then arm
 * the timer for the next of either. A connect past its deadline is judged by
 * what it did before being called a timeout: when the loop was held up (a
 * lock, a slow etcd document), an answer that came in time still counts.
 */
static void checks_run(struct ts_loop *l, void *data)
{
	struct agent *a = data;

	for (size_t i = 0; i < a->nchecks; i++) {
		struct check *c = a->checks[i];
		__u64 now = now_ms();

		if (c->fd >= 0 && now >= c->deadline_ms) {
			struct pollfd p = { .fd = c->fd, .events = POLLOUT };

			char why[64];

			if (poll(&p, 1, 0) > 0) {
				check_judge(a, c, (__u32)p.revents);
			} else {
				snprintf(why, sizeof(why), "no answer within %u ms", c->hc.timeout_ms);
				check_result(a, c, false, why);
			}
		}
		if (c->fd < 0 && now >= c->due_ms)
			check_start(a, c, now);
	}
	checks_schedule(a);
}

static void checks_schedule(struct agent *a)
{
	__u64 next = 0;

	for (size_t i = 0; i < a->nchecks; i++) {
		const struct check *c = a->checks[i];
		__u64 t = c->fd >= 0 ? c->deadline_ms : c->due_ms;

		if (!next || t < next)
			next = t;
	}
	if (next)
		ts_timer_at(a->checks_timer, next * 1000000);
	else
		ts_timer_disarm(a->checks_timer);
}

/* ---- the configuration in force --------------------------------------------------- */

/*
 * Read the configuration and follow it. Without the lock (at 65,536 services
 * the read takes seconds, and a change would wait for all of it): a read that
 * a change overlapped is dropped and made again at the next look
 * (config_watch, 100 ms later). Only after CONFIG_MISSES of them in a row,
 * changes closer together than a read, is it read under the shared lock.
 */
#define CONFIG_MISSES	10

static void config_read(struct agent *a)
{
	struct ts_config cfg;
	struct ts_err err;
	__u64 generation;
	int r;

	r = ts_config_read_quiet(&a->m, &cfg, &generation, &err);
	if (r == -EAGAIN && ++a->config_misses < CONFIG_MISSES)
		return;
	if (r == -EAGAIN) {
		r = ts_config_generation(&a->m, &generation, &err) ?:
		    ts_maps_lock_shared(&a->m, &err);
		r = r ?: ts_config_read(&a->m, &cfg, &err);
		ts_maps_unlock(&a->m);
	}
	a->config_misses = 0;
	if (r) {
		agent_log("%s", err.msg);
		if (ts_maps_check_instance(&a->m, &err))
			ts_loop_stop(a->loop, TS_ERR_RUNTIME);
		return;
	}
	a->generation = generation;
	a->have_config = true;
	a->nids = 0;
	for (size_t i = 0; i < cfg.nservices; i++)
		for (size_t j = 0; j < cfg.services[i].nbackends; j++)
			if (cfg.services[i].backends[j].id >= a->nids)
				a->nids = cfg.services[i].backends[j].id + 1;
	checks_sync(a, &cfg);
	ts_config_free(&cfg);
	checks_run(a->loop, a);
}

/* Every 100 ms: one lookup of the generation, the configuration read only
 * when a change was committed; and the instance still there. */
static void config_watch(struct ts_loop *l, void *data)
{
	struct agent *a = data;
	struct ts_err err;
	__u64 generation;

	if (ts_maps_check_instance(&a->m, &err)) {
		agent_log("%s", err.msg);
		ts_loop_stop(l, TS_ERR_RUNTIME);
		return;
	}
	if (ts_config_generation(&a->m, &generation, &err)) {
		agent_log("%s", err.msg);
		return;
	}
	if (!a->have_config || generation != a->generation)
		config_read(a);
}

static void reload(struct ts_loop *l, void *data)
{
	agent_log("SIGHUP: reading the configuration again");
	config_read(data);
}

/* Every second, the local connections' sweep (doc/DESIGN.md, "Local
 * clients"): those of a drain past its deadline close within a second of it,
 * and those of a backend whose removal was not followed by its sweep (the
 * command killed) too. Nothing to do when not loaded with --cgroup. */
static void sweep(struct ts_loop *l, void *data)
{
	struct agent *a = data;
	struct ts_err err;
	int r = ts_local_sweep(&a->m, &err);

	if (r && !a->sweep_failed)
		agent_log("%s", err.msg);
	a->sweep_failed = r != 0;
}

/* ---- the command ---------------------------------------------------------------- */

static void agent_free(struct agent *a)
{
	ts_metrics_stop(&a->scrape.httpd);
	etcd_source_stop(a->source);
	for (size_t i = 0; i < a->nchecks; i++) {
		check_stop(a, a->checks[i]);
		free(a->checks[i]);
	}
	ts_timer_free(a->checks_timer);
	ts_timer_free(a->config_timer);
	ts_timer_free(a->sweep_timer);
	ts_timer_free(a->history_timer);
	ts_loop_free(a->loop);
	ts_maps_close(&a->m);
	ts_maps_close(&a->scrape.m);
	ts_maps_close(&a->etcd.m);
	pthread_mutex_destroy(&a->scrape.lock);
	ts_history_free(&a->history);
	free(a->checks);
	free(a);
}

int cmd_agent(struct cli_ctx *ctx, int argc, char **argv)
{
	const char *metrics = NULL, *config = NULL, *status_key = NULL;
	__u32 max_backends = TS_METRICS_MAX_BACKENDS;
	bool max_backends_given = false;
	const struct cli_opt opts[] = {
		{ "metrics", 0, CLI_STRING, &metrics, .metavar = "ADDR:PORT" },
		{ "metrics-max-backends", 0, CLI_U32, &max_backends, &max_backends_given,
		  .metavar = "N", .min = 0, .max = TS_MAX_BACKENDS },
		{ "config", 0, CLI_STRING, &config, .metavar = "URL" },
		{ "status-key", 0, CLI_STRING, &status_key, .metavar = "KEY" },
		CLI_OPT_HELP,
		{},
	};
	struct ts_etcd_url url;
	struct agent *a;
	struct ts_err err;
	char status[160];
	int r, lfd = -1;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	/* Everything given is checked before anything starts. */
	if (max_backends_given && !metrics)
		return cli_usage(argv[0], "--metrics-max-backends needs --metrics: it bounds the "
				 "series served there");
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
	if (!a || !(a->checks = calloc(TS_MAX_BACKENDS, sizeof(*a->checks))) ||
	    (metrics && ts_history_init(&a->history))) {
		if (a)
			ts_history_free(&a->history);
		free(a ? a->checks : NULL);
		free(a);
		fprintf(stderr, "tcpshift: out of memory\n");
		return 1;
	}
	a->metrics_max_backends = max_backends;
	ts_maps_init(&a->m);
	ts_maps_init(&a->scrape.m);
	ts_maps_init(&a->etcd.m);
	pthread_mutex_init(&a->scrape.lock, NULL);
	a->scrape.httpd.collect = metrics_collect;
	a->scrape.httpd.status = status_collect;
	a->scrape.httpd.cls = a;
	/* the loop first: the threads started below inherit its signal mask */
	if (ts_loop_new(&a->loop, "agent", &err) ||
	    ts_loop_timer(a->loop, checks_run, a, &a->checks_timer, &err) ||
	    ts_loop_timer(a->loop, config_watch, a, &a->config_timer, &err) ||
	    ts_loop_timer(a->loop, sweep, a, &a->sweep_timer, &err) ||
	    ts_loop_timer(a->loop, history_sample, a, &a->history_timer, &err)) {
		r = cli_report(&err);
		goto out;
	}
	if (metrics && (lfd = ts_metrics_listen(metrics, &err)) < 0) {
		r = cli_report(&err);
		goto out;
	}
	/* every descriptor the agent needs, opened now: a process short of
	 * descriptors later still checks, scrapes and applies documents */
	r = cli_open_maps(ctx, &a->m) ?: cli_open_maps(ctx, &a->scrape.m);
	r = r ?: config ? cli_open_maps(ctx, &a->etcd.m) : 0;
	if (r)
		goto out;
	if (lfd >= 0) {
		if (ts_metrics_serve(&a->scrape.httpd, lfd)) {
			fprintf(stderr, "tcpshift: cannot start the metrics server on %s\n",
				metrics);
			r = 1;
			goto out;
		}
		lfd = -1;
		agent_log("serving metrics at http://%s/metrics, the status page at http://%s/",
			  metrics, metrics);
	}
	agent_log("started (pin directory %s)", a->m.pin_dir);
	if (config) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (etcd_source_start(&a->source, &url, status_key, &a->etcd.m,
				      &err)) {
			agent_log("%s", err.msg);
			r = 1;
			goto out;
		}
	}
	ts_loop_on_reload(a->loop, reload, a);
	config_read(a);
	ts_timer_arm(a->config_timer, 100000000ULL, 100000000ULL);
	ts_timer_arm(a->sweep_timer, 1000000000ULL, 1000000000ULL);
	if (metrics) {
		history_sample(a->loop, a);
		ts_timer_arm(a->history_timer, TS_HISTORY_INTERVAL_NS, TS_HISTORY_INTERVAL_NS);
	}
	snprintf(status, sizeof(status), "%zu health checks%s%s", a->nchecks,
		 metrics ? ", metrics at " : "", metrics ? metrics : "");
	ts_loop_ready(a->loop, status);
	r = ts_loop_run(a->loop);
	agent_log(r ? "stopped: the instance is gone" : "stopped");
out:
	if (lfd >= 0)
		close(lfd);
	agent_free(a);
	if (config)
		curl_global_cleanup();
	return r;
}
