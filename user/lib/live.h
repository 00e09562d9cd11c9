/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The live view: what `tcpshift top` shows in a terminal and the agent's
 * status page (/api/status) in a browser, read and printed in one place.
 *
 * A view is one read of the configuration, each backend's counters
 * (backend_stats), table shares and the rollouts, under the pin directory's
 * shared lock. Nothing here walks the flow tables: the cost of a read grows
 * with the number of backends, never with the number of flows. Rates come
 * from two reads' counters (ts_live_rates), or from the agent's history.
 */
#ifndef TCPSHIFT_LIVE_H
#define TCPSHIFT_LIVE_H

#include "libtcpshift.h"

/* Per second, between two reads of a backend's counters. */
struct ts_live_rate {
	double	new_flows;	/* connection attempts (SYNs pinned to it) */
	double	handshakes;	/* completed */
	double	refused;	/* its RST to a SYN */
	double	timeouts;	/* SYNs sent again for want of its SYN-ACK */
	double	bytes;		/* both directions */
};

struct ts_live_backend {
	const struct ts_backend_cfg	*b;		/* in the view's cfg */
	__u32				effective;	/* weight the table is built with */
	__u32				slots;		/* of the live table */
	struct ts_backend_stats		st;
	bool				has_rate;	/* rate is known */
	struct ts_live_rate		rate;
};

struct ts_live_service {
	const struct ts_service_cfg	*s;		/* in the view's cfg */
	struct ts_live_backend		*backends;	/* s->nbackends */
	bool				has_rollout;	/* rollout, from, to are set */
	bool				rollout_running; /* its process is alive */
	struct ts_rollout		rollout;
	char				rollout_from[TS_NAME_LEN];
	char				rollout_to[TS_NAME_LEN];
};

struct ts_live {
	__u64			mono_ns;	/* CLOCK_MONOTONIC of the read */
	__u64			real_s;		/* CLOCK_REALTIME seconds of the read */
	struct ts_config	cfg;
	size_t			nservices;	/* cfg.nservices */
	struct ts_live_service	*services;
};

/* Read a view of m (its shared lock taken and let go). */
int ts_live_read(struct ts_maps *m, struct ts_live *l, struct ts_err *err);
void ts_live_free(struct ts_live *l);

/* The rates of one backend over dt_s seconds: counters that went backwards
 * (reset, an id reused) count as 0. Pure. */
void ts_live_rate_of(const struct ts_backend_stats *now, const struct ts_backend_stats *before,
		     double dt_s, struct ts_live_rate *out);
/* Every backend of cur found in prev (same id and generation) gets its rates
 * since prev. */
void ts_live_rates(struct ts_live *cur, const struct ts_live *prev);

/* Is a rollout's recorded process alive (else: interrupted)? */
bool ts_rollout_running(const struct ts_rollout *r);

enum ts_live_sort {
	TS_LIVE_SORT_NAME,	/* as configured: by name */
	TS_LIVE_SORT_NEW,	/* new connections per second, most first */
	TS_LIVE_SORT_OPEN,	/* open connections, most first */
	TS_LIVE_SORT_SHARE,	/* share of the table, most first */
	TS_LIVE_SORT_P99,	/* handshake time's 99th percentile, slowest first */
	TS_LIVE_SORT_MAX,
};

const char *ts_live_sort_name(enum ts_live_sort s);
/* Order each service's backends (a stable order: ties by name). */
void ts_live_sort(struct ts_live *l, enum ts_live_sort s);

/*
 * The members of one view through the output writer (print.h), into the
 * object the caller opened: "time", "services": [{"name", "vip",
 * "table_size", "rollout" (null, or {"from", "to", "step", "steps",
 * "percent", "state", "pid", "running_s"}), "backends": [{"name", "addr",
 * "weight", "effective_weight", "health", "health_since", "share", "open",
 * "attempts", "handshakes", "refused", "timeouts", "bytes",
 * "handshake_p50_s", "handshake_p99_s", "drain_deadline_s", "rate":
 * {"new_flows", "handshakes", "refused", "timeouts", "bytes"} or null}]}].
 * As text, a table per service. only: one service's name, or NULL for all.
 * extra, when given, adds members to each backend's object (JSON only).
 */
typedef void (*ts_live_extra_cb)(const struct ts_live_service *s,
				 const struct ts_live_backend *b, void *ctx);
void ts_live_print(const struct ts_live *l, const char *only, ts_live_extra_cb extra,
		   void *ctx);

#endif /* TCPSHIFT_LIVE_H */
