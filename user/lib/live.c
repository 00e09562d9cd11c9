// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The live view of `tcpshift top` and the agent's status page: see live.h. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/bpf.h>

#include "live.h"
#include "print.h"

bool ts_rollout_running(const struct ts_rollout *r)
{
	return r->pid && (kill((pid_t)r->pid, 0) == 0 || errno == EPERM);
}

static int read_service(struct ts_maps *m, struct ts_live_service *ls, struct ts_err *err)
{
	const struct ts_service_cfg *s = ls->s;
	__u32 slots[TS_MAX_SERVICE_BACKENDS], eff[TS_MAX_SERVICE_BACKENDS];
	struct ts_rollout r = {};

	ls->backends = calloc(s->nbackends ? s->nbackends : 1, sizeof(*ls->backends));
	if (!ls->backends)
		return ts_fail(err, TS_ERR_RUNTIME, "out of memory");
	if (ts_table_shares(m, s, slots, err))
		return -err->status;
	ts_effective_weights(s->backends, s->nbackends, eff);
	for (size_t j = 0; j < s->nbackends; j++) {
		struct ts_live_backend *lb = &ls->backends[j];

		lb->b = &s->backends[j];
		lb->effective = eff[j];
		lb->slots = slots[j];
		if (ts_backend_stats_read(m, lb->b->id, &lb->st, err))
			return -err->status;
	}
	/* a record that does not make sense (a half-written one) is no rollout */
	if (bpf_map_lookup_elem(m->rollouts, &s->svc.id, &r) || !r.pid ||
	    r.nsteps > TS_ROLLOUT_MAX_STEPS || r.step >= r.nsteps)
		return 0;
	ls->has_rollout = true;
	ls->rollout = r;
	ls->rollout_running = ts_rollout_running(&r);
	for (size_t j = 0; j < s->nbackends; j++) {
		if (s->backends[j].id == r.from_id)
			snprintf(ls->rollout_from, TS_NAME_LEN, "%s", s->backends[j].be.name);
		if (s->backends[j].id == r.to_id)
			snprintf(ls->rollout_to, TS_NAME_LEN, "%s", s->backends[j].be.name);
	}
	return 0;
}

int ts_live_read(struct ts_maps *m, struct ts_live *l, struct ts_err *err)
{
	int r;

	memset(l, 0, sizeof(*l));
	r = ts_maps_lock_shared(m, err) ?: ts_config_read(m, &l->cfg, err);
	if (r)
		goto out;
	l->mono_ns = ts_now_ns();
	l->real_s = (__u64)time(NULL);
	l->services = calloc(l->cfg.nservices ? l->cfg.nservices : 1, sizeof(*l->services));
	if (!l->services) {
		r = ts_fail(err, TS_ERR_RUNTIME, "out of memory");
		goto out;
	}
	l->nservices = l->cfg.nservices;
	for (size_t i = 0; i < l->nservices && !r; i++) {
		l->services[i].s = &l->cfg.services[i];
		r = read_service(m, &l->services[i], err);
	}
out:
	ts_maps_unlock(m);
	if (r)
		ts_live_free(l);
	return r;
}

void ts_live_free(struct ts_live *l)
{
	for (size_t i = 0; l->services && i < l->nservices; i++)
		free(l->services[i].backends);
	free(l->services);
	ts_config_free(&l->cfg);
	memset(l, 0, sizeof(*l));
}

static double per_s(__u64 now, __u64 before, double dt_s)
{
	return now > before && dt_s > 0 ? (double)(now - before) / dt_s : 0;
}

void ts_live_rate_of(const struct ts_backend_stats *now, const struct ts_backend_stats *before,
		     double dt_s, struct ts_live_rate *out)
{
	out->new_flows = per_s(now->new_flows, before->new_flows, dt_s);
	out->handshakes = per_s(now->handshakes, before->handshakes, dt_s);
	out->refused = per_s(now->refused, before->refused, dt_s);
	out->timeouts = per_s(now->syn_retransmits, before->syn_retransmits, dt_s);
	out->bytes = per_s(now->bytes, before->bytes, dt_s);
}

void ts_live_rates(struct ts_live *cur, const struct ts_live *prev)
{
	const struct ts_live_backend **by_id = calloc(TS_MAX_BACKENDS, sizeof(*by_id));
	double dt_s = (double)(cur->mono_ns - prev->mono_ns) / 1e9;

	if (!by_id || cur->mono_ns <= prev->mono_ns) {
		free(by_id);
		return;
	}
	for (size_t i = 0; i < prev->nservices; i++)
		for (size_t j = 0; j < prev->services[i].s->nbackends; j++) {
			const struct ts_live_backend *b = &prev->services[i].backends[j];

			if (b->b->id < TS_MAX_BACKENDS)
				by_id[b->b->id] = b;
		}
	for (size_t i = 0; i < cur->nservices; i++)
		for (size_t j = 0; j < cur->services[i].s->nbackends; j++) {
			struct ts_live_backend *b = &cur->services[i].backends[j];
			const struct ts_live_backend *p =
				b->b->id < TS_MAX_BACKENDS ? by_id[b->b->id] : NULL;

			if (!p || p->b->be.generation != b->b->be.generation)
				continue;
			ts_live_rate_of(&b->st, &p->st, dt_s, &b->rate);
			b->has_rate = true;
		}
	free(by_id);
}

/* ---- order ---------------------------------------------------------------------- */

static const char *const sort_names[TS_LIVE_SORT_MAX] = {
	[TS_LIVE_SORT_NAME] = "name",	[TS_LIVE_SORT_NEW] = "new/s",
	[TS_LIVE_SORT_OPEN] = "open",	[TS_LIVE_SORT_SHARE] = "share",
	[TS_LIVE_SORT_P99] = "p99",
};

const char *ts_live_sort_name(enum ts_live_sort s)
{
	return s < TS_LIVE_SORT_MAX ? sort_names[s] : "?";
}

static enum ts_live_sort sort_key;

static int cmp_u64_desc(__u64 a, __u64 b)
{
	return a > b ? -1 : a < b;
}

static int cmp_backend(const void *pa, const void *pb)
{
	const struct ts_live_backend *a = pa, *b = pb;
	int c = 0;

	switch (sort_key) {
	case TS_LIVE_SORT_NEW:
		c = a->rate.new_flows > b->rate.new_flows ? -1 : a->rate.new_flows < b->rate.new_flows;
		break;
	case TS_LIVE_SORT_OPEN:
		c = cmp_u64_desc(ts_backend_open(&a->st), ts_backend_open(&b->st));
		break;
	case TS_LIVE_SORT_SHARE:
		c = cmp_u64_desc(a->slots, b->slots);
		break;
	case TS_LIVE_SORT_P99:
		c = cmp_u64_desc(ts_handshake_quantile(&a->st, 0.99),
				 ts_handshake_quantile(&b->st, 0.99));
		break;
	default:
		break;
	}
	return c ?: strcmp(a->b->be.name, b->b->be.name);
}

void ts_live_sort(struct ts_live *l, enum ts_live_sort s)
{
	/* qsort has no context argument: the key is set for the call (the view
	 * is sorted by one thread at a time, as print.c writes) */
	sort_key = s;
	for (size_t i = 0; i < l->nservices; i++)
		qsort(l->services[i].backends, l->services[i].s->nbackends,
		      sizeof(*l->services[i].backends), cmp_backend);
}

/* ---- output --------------------------------------------------------------------- */

/* A handshake time quantile: seconds in JSON (null: none yet, "+Inf": over the
 * histogram's last bound), and as text "-", "12ms", ">4s". */
static void print_quantile(const char *key, __u64 ns)
{
	char text[24];

	if (!ns) {
		print_null(key);
		snprintf(text, sizeof(text), "-");
	} else if (ns == UINT64_MAX) {
		print_string(PRINT_JSON, key, NULL, "+Inf");
		snprintf(text, sizeof(text), ">%.0fs",
			 ts_handshake_bucket_le(TS_HANDSHAKE_BUCKETS - 2) / 1e9);
	} else {
		print_decimal(PRINT_JSON, key, NULL, ns / 1e9, 6);
		if (ns < 1000000)
			snprintf(text, sizeof(text), "%.0fus", ns / 1e3);
		else
			snprintf(text, sizeof(text), "%.0fms", ns / 1e6);
	}
	print_text(" %6s", text);
}

/* Bytes per second as text: 512, 12.3K, 4.5M, 1.2G. */
static void print_bytes_rate(double v)
{
	static const char unit[] = " KMGTP";
	int u = 0;

	while (v >= 1000 && u < 5) {
		v /= 1000;
		u++;
	}
	if (u)
		print_text(" %7.1f%c", v, unit[u]);
	else
		print_text(" %8.0f", v);
}

static void print_rate(const struct ts_live_backend *b)
{
	if (!b->has_rate) {
		print_null("rate");
		print_text(" %8s %7s %7s %8s", "-", "-", "-", "-");
		return;
	}
	print_open_object("rate");
	print_decimal(PRINT_ANY, "new_flows", " %8.1f", b->rate.new_flows, 2);
	print_decimal(PRINT_JSON, "handshakes", NULL, b->rate.handshakes, 2);
	print_decimal(PRINT_ANY, "refused", " %7.1f", b->rate.refused, 2);
	print_decimal(PRINT_ANY, "timeouts", " %7.1f", b->rate.timeouts, 2);
	print_decimal(PRINT_JSON, "bytes", NULL, b->rate.bytes, 0);
	print_bytes_rate(b->rate.bytes);
	print_close_object();
}

static void print_backend(const struct ts_live *l, const struct ts_live_service *ls,
			  const struct ts_live_backend *b, ts_live_extra_cb extra, void *ctx)
{
	const struct ts_backend *be = &b->b->be;
	double share = ls->s->svc.table_size ? (double)b->slots / ls->s->svc.table_size : 0;
	char addr[TS_ADDRSTRLEN];
	bool down = be->health == TS_HEALTH_DOWN;

	ts_format_endpoint(be->addr, be->port, be->family, addr, sizeof(addr));
	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "  %-16s", be->name);
	print_string(PRINT_ANY, "addr", " %-22s", addr);
	print_u64(PRINT_ANY, "weight", " %6llu", b->b->weight);
	print_u64(PRINT_ANY, "effective_weight", " %6llu", b->effective);
	print_string(PRINT_ANY, "health", " %-4s", down ? "down" : "up");
	if (be->health_since_s)
		print_u64(PRINT_JSON, "health_since", NULL, be->health_since_s);
	print_decimal(PRINT_JSON, "share", NULL, share, 5);
	print_double(PRINT_FP, NULL, " %6.1f%%", 100 * share);
	print_rate(b);
	print_u64(PRINT_ANY, "open", " %7llu", ts_backend_open(&b->st));
	print_u64(PRINT_JSON, "attempts", NULL, b->st.new_flows);
	print_u64(PRINT_JSON, "handshakes", NULL, b->st.handshakes);
	print_u64(PRINT_JSON, "refused", NULL, b->st.refused);
	print_u64(PRINT_JSON, "timeouts", NULL, b->st.syn_retransmits);
	print_u64(PRINT_JSON, "bytes", NULL, b->st.bytes);
	print_quantile("handshake_p50_s", ts_handshake_quantile(&b->st, 0.5));
	print_quantile("handshake_p99_s", ts_handshake_quantile(&b->st, 0.99));
	if (be->drain_deadline_ns) {
		__u64 left = be->drain_deadline_ns > l->mono_ns ?
			(be->drain_deadline_ns - l->mono_ns + 999999999ULL) / 1000000000ULL : 0;

		print_u64(PRINT_ANY, "drain_deadline_s",
			  left ? "  draining: closed in %llus" : "  drained: closing", left);
	}
	if (extra && print_is_json())
		extra(ls, b, ctx);
	print_text("\n");
	print_close_object();
}

static void print_rollout(const struct ts_live *l, const struct ts_live_service *ls)
{
	const struct ts_rollout *r = &ls->rollout;

	if (!ls->has_rollout) {
		print_null("rollout");
		return;
	}
	print_open_object("rollout");
	print_string(PRINT_ANY, "from", "  rollout %s -> ", ls->rollout_from);
	print_string(PRINT_ANY, "to", "%s:", ls->rollout_to);
	print_u64(PRINT_ANY, "step", " step %llu", r->step + 1);
	print_u64(PRINT_ANY, "steps", "/%llu", r->nsteps);
	print_u64(PRINT_ANY, "percent", " (%llu %% to ", r->percent[r->step]);
	print_string(PRINT_FP, NULL, "%s)", ls->rollout_to);
	print_string(PRINT_ANY, "state", ", %s", ls->rollout_running ? "running" : "interrupted");
	print_u64(PRINT_JSON, "pid", NULL, r->pid);
	if (r->started_ns && r->started_ns <= l->mono_ns)
		print_u64(PRINT_ANY, "running_s", ", started %llus ago",
			  (l->mono_ns - r->started_ns) / 1000000000ULL);
	/* the next gate: TO's failures judged then (a running rollout's) */
	if (ls->rollout_running && r->judged_s && r->started_ns <= l->mono_ns) {
		__u64 at = r->started_ns + (__u64)r->judged_s * 1000000000ULL;

		print_u64(PRINT_ANY, "judged_in_s", ", judged in %llus",
			  at > l->mono_ns ? (at - l->mono_ns + 999999999ULL) / 1000000000ULL : 0);
	}
	print_text("\n");
	print_close_object();
}

void ts_live_print(const struct ts_live *l, const char *only, ts_live_extra_cb extra, void *ctx)
{
	print_u64(PRINT_JSON, "time", NULL, l->real_s);
	print_open_array("services");
	for (size_t i = 0; i < l->nservices; i++) {
		const struct ts_live_service *ls = &l->services[i];
		const struct ts_service_cfg *s = ls->s;
		char vip[TS_ADDRSTRLEN];

		if (only && strcmp(only, s->svc.name))
			continue;
		ts_format_endpoint(s->key.addr, s->key.port, s->key.family, vip, sizeof(vip));
		print_open_object(NULL);
		print_string(PRINT_ANY, "name", "service %s", s->svc.name);
		print_string(PRINT_ANY, "vip", " %s", vip);
		print_u64(PRINT_ANY, "table_size", " (table %llu)\n", s->svc.table_size);
		print_rollout(l, ls);
		print_text("  %-16s %-22s %6s %6s %-4s %7s %8s %7s %7s %8s %7s %6s %6s\n", "BACKEND",
			   "ADDRESS", "WEIGHT", "EFF", "HLTH", "SHARE", "NEW/S", "REFUS/S",
			   "TMOUT/S", "BYTES/S", "OPEN", "P50", "P99");
		print_open_array("backends");
		for (size_t j = 0; j < s->nbackends; j++)
			print_backend(l, ls, &ls->backends[j], extra, ctx);
		print_close_array();
		print_close_object();
	}
	print_close_array();
}
