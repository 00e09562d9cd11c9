// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's history of per-backend rates: see history.h. */
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "print.h"

int ts_history_init(struct ts_history *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->lock, NULL);
	h->b = calloc(TS_MAX_BACKENDS, sizeof(*h->b));
	h->scratch_be = calloc(TS_MAX_BACKENDS, sizeof(*h->scratch_be));
	h->scratch_st = calloc(TS_MAX_BACKENDS, sizeof(*h->scratch_st));
	return h->b && h->scratch_be && h->scratch_st ? 0 : -1;
}

void ts_history_free(struct ts_history *h)
{
	free(h->b);
	free(h->scratch_be);
	free(h->scratch_st);
	pthread_mutex_destroy(&h->lock);
	h->b = NULL;
	h->scratch_be = NULL;
	h->scratch_st = NULL;
}

void ts_history_add(struct ts_history *h, __u64 now_ns, const struct ts_backend *all,
		    const struct ts_backend_stats *st, __u32 n)
{
	__u32 end = n > h->nids ? n : h->nids;
	double dt_s;
	size_t slot;

	pthread_mutex_lock(&h->lock);
	dt_s = h->seq && now_ns > h->last_ns ? (double)(now_ns - h->last_ns) / 1e9 : 0;
	h->seq++;
	h->last_ns = now_ns;
	slot = h->seq % TS_HISTORY_SAMPLES;
	for (__u32 id = 0; id < end; id++) {
		struct ts_history_backend *b = &h->b[id];

		/* (an entry never live is not written: the pages of ids never
		 * used stay untouched) */
		if (id >= n || all[id].state != TS_BACKEND_ACTIVE) {
			if (b->live)
				b->live = false;
			continue;
		}
		if (!b->live || b->generation != all[id].generation || !dt_s) {
			/* new here (or the id reused): no rate before a second sample */
			b->live = true;
			b->generation = all[id].generation;
			b->first_seq = h->seq;
			b->has_rate = false;
			memset(&b->rate, 0, sizeof(b->rate));
		} else {
			ts_live_rate_of(&st[id], &b->last, dt_s, &b->rate);
			b->has_rate = true;
		}
		b->new_flows[slot] = (float)b->rate.new_flows;
		b->last = st[id];
	}
	h->nids = n;
	pthread_mutex_unlock(&h->lock);
}

int ts_history_sample(struct ts_history *h, const struct ts_maps *m, __u32 n, struct ts_err *err)
{
	if (ts_backends_read(m, h->scratch_be, n, err))
		return -err->status;
	for (__u32 id = 0; id < n; id++) {
		if (h->scratch_be[id].state != TS_BACKEND_ACTIVE)
			continue;
		if (ts_backend_stats_read(m, id, &h->scratch_st[id], err))
			return -err->status;
	}
	ts_history_add(h, ts_now_ns(), h->scratch_be, h->scratch_st, n);
	return 0;
}

static const struct ts_history_backend *sampled(const struct ts_history *h,
						 const struct ts_backend_cfg *b)
{
	const struct ts_history_backend *hb;

	if (b->id >= TS_MAX_BACKENDS || !h->seq)
		return NULL;
	hb = &h->b[b->id];
	return hb->live && hb->generation == b->be.generation ? hb : NULL;
}

void ts_history_rates(const struct ts_history *h, struct ts_live *l)
{
	for (size_t i = 0; i < l->nservices; i++)
		for (size_t j = 0; j < l->services[i].s->nbackends; j++) {
			struct ts_live_backend *lb = &l->services[i].backends[j];
			const struct ts_history_backend *hb = sampled(h, lb->b);

			if (hb && hb->has_rate) {
				lb->rate = hb->rate;
				lb->has_rate = true;
			}
		}
}

void ts_history_print(const struct ts_history *h, const struct ts_backend_cfg *b, __u64 since)
{
	const struct ts_history_backend *hb = sampled(h, b);
	float v[TS_HISTORY_SAMPLES];
	size_t n = 0;
	__u64 from;

	if (!hb)
		return;
	/* the ring holds the samples after seq - TS_HISTORY_SAMPLES */
	from = since + 1;
	if (from < hb->first_seq)
		from = hb->first_seq;
	if (h->seq >= TS_HISTORY_SAMPLES && from <= h->seq - TS_HISTORY_SAMPLES)
		from = h->seq - TS_HISTORY_SAMPLES + 1;
	for (__u64 s = from; s <= h->seq && n < TS_HISTORY_SAMPLES; s++)
		v[n++] = hb->new_flows[s % TS_HISTORY_SAMPLES];
	print_decimals("new_flows_per_s", v, n, 1);
}
