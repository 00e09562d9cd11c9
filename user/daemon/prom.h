/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The Prometheus text exposition format, written in one place (prom.c) for
 * the agent's and sync's metrics. */
#ifndef TCPSHIFT_PROM_H
#define TCPSHIFT_PROM_H

#include <stdio.h>

#include "libtcpshift.h"

/* ---- the writer: one document in memory --------------------------------------------- */

struct prom {
	FILE	*f;
	char	*buf;
	size_t	len;
};

struct prom_label {
	const char	*key;
	const char	*value;	/* escaped as the format wants */
};

int prom_begin(struct prom *p);
/* The # HELP and # TYPE lines of a metric. */
void prom_family(struct prom *p, const char *name, const char *type, const char *help);
/* One sample: name{labels} value, the value formatted by fmt. */
void prom_sample(struct prom *p, const char *name, const struct prom_label *labels,
		 size_t nlabels, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The document (malloc()ed, *len bytes), or NULL. */
char *prom_end(struct prom *p, size_t *len);

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

/*
 * Per-backend series of a scrape: those of every backend while the instance
 * has at most --metrics-max-backends (TS_METRICS_MAX_BACKENDS by default), of
 * none above (262,144 backends' would be ~1 GiB of text); /metrics?service=NAME,
 * repeated up to TS_METRICS_MAX_SELECTED times (daemon.h), asks for those
 * services' alone at any size.
 */
#define TS_METRICS_MAX_BACKENDS	4096

/* What the agent read, for one scrape: cfg holds the services whose
 * per-backend series the answer has (all, the ones asked for, or none);
 * stats, effective and slots: [service][backend], in cfg's order. */
struct ts_metrics {
	const struct ts_config		*cfg;
	/* the instance's, counted: the totals, and the backends not in cfg */
	__u32				services, backends, backends_omitted;
	struct ts_backend_stats		**stats;
	__u32				**effective;
	__u32				**slots;
	__u64				counters[TS_CNT_MAX];
	__u32				flows, flows_max, half_open, half_open_max;
	const struct ts_source_metrics	*source;	/* NULL: no --config */
	/* tcpshift_build_info: this build's version, the running object's
	 * ("" when it tells none), the instance's layout and mode */
	const char			*version, *object_version, *mode;
	__u32				layout;
};

/* The Prometheus text exposition (malloc()ed, *len bytes), or NULL. Pure. */
char *ts_metrics_render(const struct ts_metrics *in, size_t *len);

#endif /* TCPSHIFT_PROM_H */
