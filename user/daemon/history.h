/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent's history for its status page: a sample of every backend's
 * counters once a second, taken on the event loop, and a ring of the last
 * TS_HISTORY_SAMPLES new connections per second per backend, read by the
 * HTTP thread. Bounded: TS_MAX_BACKENDS x TS_HISTORY_SAMPLES, allocated once
 * (doc/DESIGN.md, "The status page", says what that costs).
 */
#ifndef TCPSHIFT_HISTORY_H
#define TCPSHIFT_HISTORY_H

#include <pthread.h>
#include "live.h"

#define TS_HISTORY_SAMPLES	180	/* three minutes at one a second */
#define TS_HISTORY_INTERVAL_NS	1000000000ULL

struct ts_history_backend {
	__u32			generation;	/* of the backend id sampled */
	bool			live;		/* sampled at the last sample */
	bool			has_rate;	/* rate: since the sample before */
	__u64			first_seq;	/* its first sample */
	struct ts_backend_stats	last;
	struct ts_live_rate	rate;
	float			new_flows[TS_HISTORY_SAMPLES];	/* per second, by seq */
};

struct ts_history {
	pthread_mutex_t			lock;	/* the loop writes, the HTTP thread reads */
	__u64				seq;	/* samples taken; the last is seq */
	__u64				last_ns;	/* CLOCK_MONOTONIC of the last */
	__u32				nids;	/* ids the last sample covered */
	struct ts_history_backend	*b;	/* TS_MAX_BACKENDS, by backend id */
	/* the loop's own, outside the lock */
	struct ts_backend		*scratch_be;	/* TS_MAX_BACKENDS */
	struct ts_backend_stats		*scratch_st;	/* TS_MAX_BACKENDS */
};

int ts_history_init(struct ts_history *h);
void ts_history_free(struct ts_history *h);
/* Add one sample at now_ns of ids 0..n-1 (the ids above are not in use):
 * all[n] the backends map, st[] the counters of those TS_BACKEND_ACTIVE (by
 * id). Takes the lock. The arrays are allocated for every id the maps hold,
 * but only the pages of ids in use are ever touched. */
void ts_history_add(struct ts_history *h, __u64 now_ns, const struct ts_backend *all,
		    const struct ts_backend_stats *st, __u32 n);
/* Read ids 0..n-1 of the maps and add a sample (the loop's timer). */
int ts_history_sample(struct ts_history *h, const struct ts_maps *m, __u32 n,
		      struct ts_err *err);
/* Under h->lock: the rates of the last sample into the view's backends
 * (those sampled with the same generation). */
void ts_history_rates(const struct ts_history *h, struct ts_live *l);
/* Under h->lock: the history of backend b, when sampled, as JSON members
 * "new_flows_per_s": [oldest .. the sample at h->seq] of the samples after
 * since (all the ring holds when since is older). */
void ts_history_print(const struct ts_history *h, const struct ts_backend_cfg *b, __u64 since);

#endif /* TCPSHIFT_HISTORY_H */
