// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift stats */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
	"Usage: tcpshift stats [SERVICE]\n"
	"\n"
	"Per backend: weight, share of the Maglev table (the share of new flows it\n"
	"gets), new flows, packets and bytes through the gateway (both directions), and\n"
	"flows pinned now; then the global counters (non-SYN flow-table misses,\n"
	"no-backend drops, malformed packets, flows closed for removed or drained\n"
	"backends...).\n"
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

static json_object *service_stats(struct ts_ctx *ctx, struct ts_maps *m,
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
	if (ts_table_shares(m, s, slots, err)) {
		json_object_put(o);
		return NULL;
	}
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
		if (!ctx->json)
			printf("  %-12s %-28s %6u %6.2f%% %10llu %12llu %14llu %8u%s\n",
			       b->be.name, addr, b->weight, 100 * share,
			       (unsigned long long)st.new_flows, (unsigned long long)st.packets,
			       (unsigned long long)st.bytes, flows[b->id], drain);
		bo = json_object_new_object();
		json_object_object_add(bo, "name", json_object_new_string(b->be.name));
		json_object_object_add(bo, "addr", json_object_new_string(addr));
		json_object_object_add(bo, "weight", json_object_new_int64(b->weight));
		json_object_object_add(bo, "share", json_object_new_double(share));
		json_object_object_add(bo, "new_flows", json_object_new_int64((int64_t)st.new_flows));
		json_object_object_add(bo, "packets", json_object_new_int64((int64_t)st.packets));
		json_object_object_add(bo, "bytes", json_object_new_int64((int64_t)st.bytes));
		json_object_object_add(bo, "flows", json_object_new_int64(flows[b->id]));
		if (drain_left)
			json_object_object_add(bo, "drain_deadline_s", drain_left);
		json_object_array_add(bs, bo);
	}
	return o;
}

int cmd_stats(struct ts_ctx *ctx, int argc, char **argv)
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
