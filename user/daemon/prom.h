/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The Prometheus text exposition format, written in one place (prom.c) for
 * the agent's and sync's metrics. */
#ifndef TCPSHIFT_PROM_H
#define TCPSHIFT_PROM_H

#include "libtcpshift.h"

/* The agent's configuration source (--config etcd://…), as metrics. */
struct ts_source_metrics {
	bool	up;			/* watching the key now */
	__s64	revision;		/* etcd revision of the document in force (0: none) */
	__s64	latest_revision;	/* of the key's latest value seen (or its deletion) */
	__u64	applied;		/* documents applied */
	__u64	rejected;		/* documents refused: invalid, or failed to apply */
	__u64	errors;			/* failed requests to etcd, lost watches */
	__u64	applied_time_s;		/* Unix time of the last document applied */
};

/* ---- prom.c: the agent's metrics in Prometheus text ----------------------- */

/* What the agent read, for one scrape. stats, effective and
 * slots: [service][backend], in cfg's order. */
struct ts_metrics {
	const struct ts_config		*cfg;
	struct ts_backend_stats		**stats;
	__u32				**effective;
	__u32				**slots;
	__u64				counters[TS_CNT_MAX];
	__u32				flows, flows_max, half_open, half_open_max;
	const struct ts_source_metrics	*source;	/* NULL: no --config */
};

/* The Prometheus text exposition (malloc()ed, *len bytes), or NULL. Pure. */
char *ts_metrics_render(const struct ts_metrics *in, size_t *len);

#endif /* TCPSHIFT_PROM_H */
