// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift stats */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift stats [SERVICE]\n"
	"\n"
	"Per backend: weight, share of the Maglev table (the share of new flows it\n"
	"gets), new flows, packets and bytes through the gateway (both directions),\n"
	"flows pinned now, and its health when the service is checked ('tcpshift\n"
	"health'); then its canary signals, counted by the data plane:\n"
	"connection attempts (SYNs pinned to it), SYNs retransmitted before its SYN-ACK\n"
	"(client timeouts), handshakes completed, connections it refused (RST to a\n"
	"SYN), reset after establishment, closed normally, open now, bytes each way,\n"
	"and the median and 99th percentile of its handshake time (SYN forwarded to\n"
	"SYN-ACK seen; upper bounds of histogram buckets). Then the global counters\n"
	"(non-SYN flow-table misses, no-backend drops, malformed packets, flows closed\n"
	"for removed or drained backends...).\n"
	"\n"
	"Examples:\n"
	"  tcpshift stats\n"
	"  tcpshift -j stats tcp-echo\n";

struct pinned_count {
	const struct ts_backend *all;
	__u32 *flows;	/* per backend id */
};

static void count_flow(const struct ts_flow_key *k, const struct ts_flow *f, void *data)
{
	struct pinned_count *pc = data;

	if (f->backend_id < TS_MAX_BACKENDS &&
	    pc->all[f->backend_id].generation == f->generation)
		pc->flows[f->backend_id]++;
}

/* A time in ns as text: "-" for none, "> 1 s" for the last bucket. */
static const char *cli_handshake_time(__u64 ns, char *buf, size_t len)
{
	if (!ns)
		snprintf(buf, len, "-");
	else if (ns == UINT64_MAX)
		snprintf(buf, len, "> %.0f ms", ts_handshake_bucket_le(TS_HANDSHAKE_BUCKETS - 2) / 1e6);
	else if (ns < 1000000)
		snprintf(buf, len, "<= %.0f us", ns / 1e3);
	else
		snprintf(buf, len, "<= %.0f ms", ns / 1e6);
	return buf;
}

static json_object *u64_json(__u64 v)
{
	return json_object_new_int64((int64_t)v);
}

/* The canary signals of a backend (-j): counters, open connections, and the
 * handshake-time histogram as cumulative buckets ({le (s), count}), as
 * Prometheus has them. */
static json_object *canary_json(const struct ts_backend_stats *st)
{
	json_object *c = json_object_new_object(), *h = json_object_new_object();
	json_object *buckets = json_object_new_array();
	__u64 cum = 0;

	json_object_object_add(c, "attempts", u64_json(st->new_flows));
	json_object_object_add(c, "syn_retransmits", u64_json(st->syn_retransmits));
	json_object_object_add(c, "handshakes", u64_json(st->handshakes));
	json_object_object_add(c, "refused", u64_json(st->refused));
	json_object_object_add(c, "reset", u64_json(st->reset));
	json_object_object_add(c, "closed", u64_json(st->closed));
	json_object_object_add(c, "open", u64_json(ts_backend_open(st)));
	json_object_object_add(c, "bytes_to_backend", u64_json(st->bytes_to_backend));
	json_object_object_add(c, "bytes_from_backend", u64_json(st->bytes_from_backend));
	for (__u32 i = 0; i < TS_HANDSHAKE_BUCKETS; i++) {
		json_object *b = json_object_new_object();
		__u64 le = ts_handshake_bucket_le(i);

		cum += st->handshake_hist[i];
		json_object_object_add(b, "le", le == UINT64_MAX ? json_object_new_string("+Inf")
								 : json_object_new_double(le / 1e9));
		json_object_object_add(b, "count", u64_json(cum));
		json_object_array_add(buckets, b);
	}
	json_object_object_add(h, "count", u64_json(cum));
	json_object_object_add(h, "sum_s", json_object_new_double(st->handshake_ns_sum / 1e9));
	json_object_object_add(h, "buckets", buckets);
	json_object_object_add(c, "handshake_time", h);
	return c;
}

static json_object *service_stats(struct cli_ctx *ctx, struct ts_maps *m,
				  const struct ts_service_cfg *s, const __u32 *flows,
				  struct ts_err *err)
{
	json_object *o = json_object_new_object(), *bs = json_object_new_array();
	__u32 slots[TS_MAX_SERVICE_BACKENDS];
	char vip[TS_ADDRSTRLEN], addr[TS_ADDRSTRLEN], drain[64];
	__u64 now = ts_now_ns();

	ts_format_endpoint(s->key.addr, s->key.port, s->key.family, vip, sizeof(vip));
	json_object_object_add(o, "name", json_object_new_string(s->svc.name));
	json_object_object_add(o, "vip", json_object_new_string(vip));
	json_object_object_add(o, "table_size", json_object_new_int64(s->svc.table_size));
	json_object_object_add(o, "backends", bs);
	__u32 eff[TS_MAX_SERVICE_BACKENDS];
	bool checked = s->svc.health.check != TS_CHECK_NONE;

	if (ts_table_shares(m, s, slots, err)) {
		json_object_put(o);
		return NULL;
	}
	/* health as in 'service list': only where there are checks or a
	 * backend is down */
	ts_effective_weights(s->backends, s->nbackends, eff);
	for (size_t j = 0; j < s->nbackends; j++)
		checked |= s->backends[j].be.health != TS_HEALTH_UP;
	if (!ctx->json)
		printf("service %s %s (table %u)\n  %-12s %-28s %6s %7s %10s %12s %14s %8s\n",
		       s->svc.name, vip, s->svc.table_size, "BACKEND", "ADDRESS", "WEIGHT",
		       "SHARE", "NEW_FLOWS", "PACKETS", "BYTES", "FLOWS");
	for (size_t i = 0; i < s->nbackends; i++) {
		const struct ts_backend_cfg *b = &s->backends[i];
		double share = (double)slots[i] / s->svc.table_size;
		struct ts_backend_stats st;
		json_object *bo, *drain_left;

		if (ts_backend_stats_read(m, b->id, &st, err)) {
			json_object_put(o);
			return NULL;
		}
		ts_format_endpoint(b->be.addr, b->be.port, b->be.family, addr, sizeof(addr));
		drain_left = cli_drain(&b->be, now, drain, sizeof(drain));
		char health[96] = "";

		if (checked)
			cli_health_text(&b->be, eff[i], health, sizeof(health));
		if (!ctx->json) {
			char p50[32], p99[32];

			printf("  %-12s %-28s %6u %6.2f%% %10llu %12llu %14llu %8u%s%s\n",
			       b->be.name, addr, b->weight, 100 * share,
			       (unsigned long long)st.new_flows, (unsigned long long)st.packets,
			       (unsigned long long)st.bytes, flows[b->id], drain, health);
			printf("  %-12s attempts %llu, syn-retransmits %llu, handshakes %llu, "
			       "refused %llu, reset %llu, closed %llu, open %llu; bytes to %llu, "
			       "from %llu; handshake p50 %s p99 %s\n",
			       "", (unsigned long long)st.new_flows,
			       (unsigned long long)st.syn_retransmits,
			       (unsigned long long)st.handshakes, (unsigned long long)st.refused,
			       (unsigned long long)st.reset, (unsigned long long)st.closed,
			       (unsigned long long)ts_backend_open(&st),
			       (unsigned long long)st.bytes_to_backend,
			       (unsigned long long)st.bytes_from_backend,
			       cli_handshake_time(ts_handshake_quantile(&st, 0.5), p50, sizeof(p50)),
			       cli_handshake_time(ts_handshake_quantile(&st, 0.99), p99,
						  sizeof(p99)));
		}
		bo = json_object_new_object();
		json_object_object_add(bo, "name", json_object_new_string(b->be.name));
		json_object_object_add(bo, "addr", json_object_new_string(addr));
		json_object_object_add(bo, "weight", json_object_new_int64(b->weight));
		json_object_object_add(bo, "share", json_object_new_double(share));
		json_object_object_add(bo, "new_flows", json_object_new_int64((int64_t)st.new_flows));
		json_object_object_add(bo, "packets", json_object_new_int64((int64_t)st.packets));
		json_object_object_add(bo, "bytes", json_object_new_int64((int64_t)st.bytes));
		json_object_object_add(bo, "flows", json_object_new_int64(flows[b->id]));
		json_object_object_add(bo, "canary", canary_json(&st));
		if (checked) {
			json_object_object_add(bo, "effective_weight", json_object_new_int64(eff[i]));
			json_object_object_add(bo, "health",
					       json_object_new_string(b->be.health == TS_HEALTH_DOWN
									      ? "down"
									      : "up"));
			if (b->be.health_since_s)
				json_object_object_add(
					bo, "health_since",
					json_object_new_int64((int64_t)b->be.health_since_s));
		}
		if (drain_left)
			json_object_object_add(bo, "drain_deadline_s", drain_left);
		json_object_array_add(bs, bo);
	}
	return o;
}

int cmd_stats(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct pinned_count pc = {};
	json_object *root = NULL, *svcs;
	struct ts_backend *all = NULL;
	__u64 counters[TS_CNT_MAX];
	struct ts_config cfg = {};
	const char *only = NULL;
	struct ts_maps m;
	struct ts_err err;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs > 1)
		return cli_usage(argv[0], "stats takes at most one SERVICE");
	if (nargs)
		only = argv[1];
	r = cli_open_maps_read(ctx, &m);
	if (r)
		return r;
	all = calloc(TS_MAX_BACKENDS, sizeof(*all));
	pc.flows = calloc(TS_MAX_BACKENDS, sizeof(*pc.flows));
	if (!all || !pc.flows) {
		ts_fail(&err, TS_ERR_RUNTIME, "out of memory");
		r = cli_report(&err);
		goto out;
	}
	pc.all = all;
	if (ts_config_read(&m, &cfg, &err) || ts_backends_read_all(&m, all, &err) ||
	    ts_counters_read(&m, counters, &err)) {
		r = cli_report(&err);
		goto out;
	}
	if (only && !ts_config_service(&cfg, only)) {
		ts_fail(&err, TS_ERR_USAGE, "unknown service '%s': see 'tcpshift service list'",
			only);
		r = cli_report(&err);
		goto out;
	}
	ts_flows_foreach(&m, count_flow, &pc);

	root = json_object_new_object();
	svcs = json_object_new_array();
	json_object_object_add(root, "services", svcs);
	for (size_t i = 0; i < cfg.nservices; i++) {
		json_object *o;

		if (only && strcmp(only, cfg.services[i].svc.name))
			continue;
		o = service_stats(ctx, &m, &cfg.services[i], pc.flows, &err);
		if (!o) {
			r = cli_report(&err);
			goto out;
		}
		json_object_array_add(svcs, o);
	}
	json_object_object_add(root, "counters", cli_counters(ctx, counters));
	if (ctx->json) {
		cli_print_json(root);
		root = NULL;
	}
out:
	json_object_put(root);
	free(all);
	free(pc.flows);
	ts_config_free(&cfg);
	ts_maps_close(&m);
	return r;
}
