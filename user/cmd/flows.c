// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift flows */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift flows [SERVICE] [--backend NAME] [--state STATE]\n"
	"\n"
	"Dump the flow pinning: for every pinned flow its client, VIP, service, backend\n"
	"name and address, age and idle time in seconds (idle to within 1 s), and TCP\n"
	"state (syn, established, closing, closed, midstream = pinned from a non-SYN\n"
	"packet). backend_state is removed when the flow's backend was removed: its\n"
	"next packet is answered with a TCP RST, never sent to another backend.\n"
	"Connections of local clients (see load: cgroup) are marked local: CLIENT is the\n"
	"socket's own address, listed from its SYN until it closes; their idle time\n"
	"counts from their last TCP state change.\n"
	"\n"
	"  --backend NAME   only flows pinned to backend NAME\n"
	"  --state STATE    only flows in TCP state STATE\n"
	"\n"
	"Examples:\n"
	"  tcpshift flows\n"
	"  tcpshift -j flows tcp-echo --backend v1\n"
	"  tcpshift flows --state established\n";

struct flows_ctx {
	struct ts_config	*cfg;
	struct ts_service_cfg	**by_vip;	/* cfg's services sorted by VIP key */
	struct ts_backend	*all;
	const struct ts_service_cfg *service;	/* filter, or NULL */
	const char		*backend;	/* filter, or NULL */
	int			state;		/* filter (enum ts_tcp_state), or 0 */
	__u64			now;
};

static int cmp_vip(const void *a, const void *b)
{
	const struct ts_service_cfg *const *x = a, *const *y = b;

	return memcmp(&(*x)->key, &(*y)->key, sizeof((*x)->key));
}

/*
 * The service a flow belongs to: the one of the flow's VIP (its key holds the
 * VIP the client connected to), found in the index of VIPs, not by the
 * service id the flow recorded, which changes when a table is resized and is
 * reused once a service is deleted. A live backend (id and generation) must
 * also be one of that service's.
 */
static const struct ts_service_cfg *flow_service(struct flows_ctx *fc,
						  const struct ts_flow_key *k,
						  const struct ts_flow *f, bool live)
{
	struct ts_service_cfg want = {}, *wp = &want, **found;
	const struct ts_service_cfg *s;

	memcpy(want.key.addr, k->daddr, sizeof(want.key.addr));
	want.key.port = k->dport;
	want.key.proto = IPPROTO_TCP;
	want.key.family = k->family;
	found = bsearch(&wp, fc->by_vip, fc->cfg->nservices, sizeof(*fc->by_vip), cmp_vip);
	if (!found)
		return NULL;
	s = *found;
	if (!live)
		return s; /* a removed backend of this service, or of its namesake */
	for (size_t i = 0; i < s->nbackends; i++)
		if (s->backends[i].id == f->backend_id)
			return s;
	return NULL;
}

static void print_flow(const struct ts_flow_key *k, const struct ts_flow *f, void *data)
{
	struct flows_ctx *fc = data;
	const struct ts_backend *be = f->backend_id < TS_MAX_BACKENDS ? &fc->all[f->backend_id]
								   : NULL;
	bool live = be && be->state == TS_BACKEND_ACTIVE && be->generation == f->generation;
	const struct ts_service_cfg *s = flow_service(fc, k, f, live);
	char client[TS_ADDRSTRLEN], vip[TS_ADDRSTRLEN], baddr[TS_ADDRSTRLEN];
	__u64 age = fc->now > f->created_ns ? (fc->now - f->created_ns) / 1000000000ULL : 0;
	__u64 idle = fc->now > f->last_seen_ns ? (fc->now - f->last_seen_ns) / 1000000000ULL : 0;
	bool local = f->flags & TS_FLOW_F_LOCAL;

	if (fc->service && (!s || s->svc.id != fc->service->svc.id))
		return;
	if (fc->backend && (!live || strcmp(be->name, fc->backend)))
		return;
	if (fc->state && f->tcp_state != fc->state)
		return;
	ts_format_endpoint(k->saddr, k->sport, k->family, client, sizeof(client));
	ts_format_endpoint(k->daddr, k->dport, k->family, vip, sizeof(vip));
	if (live)
		ts_format_endpoint(be->addr, be->port, be->family, baddr, sizeof(baddr));
	print_open_object(NULL);
	print_string(PRINT_ANY, "client", "%-28s", client);
	print_string(PRINT_ANY, "vip", " %-28s", vip);
	/* null in JSON, "-" as text */
	print_string(PRINT_ANY, "service", " %-16s", s ? s->svc.name : NULL);
	print_string(PRINT_ANY, "backend", " %-12s", live ? be->name : NULL);
	print_string(PRINT_ANY, "backend_addr", " %-28s", live ? baddr : NULL);
	print_u64(PRINT_ANY, "age_s", " %6llu", age);
	print_u64(PRINT_ANY, "idle_s", " %6llu", idle);
	print_string(PRINT_ANY, "state", " %s", cli_tcp_state_name(f->tcp_state));
	print_string(PRINT_JSON, "backend_state", NULL, live ? "active" : "removed");
	print_bool(PRINT_JSON, "local", NULL, local);
	/* pinned by another gateway, written here by `tcpshift sync` */
	print_bool(PRINT_JSON, "synced", NULL, f->flags & TS_FLOW_F_SYNCED);
	print_text("%s%s%s\n", local ? " local" : "", live ? "" : " (backend removed)",
		   f->flags & TS_FLOW_F_SYNCED ? " (synced)" : "");
	print_close_object();
}

int cmd_flows(struct cli_ctx *ctx, int argc, char **argv)
{
	struct flows_ctx fc = {};
	const char *state = NULL;
	const struct cli_opt opts[] = {
		{ "backend", 'b', CLI_STRING, &fc.backend },
		{ "state", 0, CLI_STRING, &state },
		CLI_OPT_HELP,
		{},
	};
	struct ts_config cfg = {};
	struct ts_maps m;
	struct ts_err err;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (state && !(fc.state = cli_tcp_state_parse(state)))
		return cli_usage(argv[0],
				 "unknown state '%s': give syn, established, closing, closed or "
				 "midstream",
				 state);
	if (nargs > 1)
		return cli_usage(argv[0], "flows takes at most one SERVICE");
	r = cli_open_maps_read(ctx, &m);
	if (r)
		return r;
	fc.all = calloc(TS_MAX_BACKENDS, sizeof(*fc.all));
	if (!fc.all) {
		ts_fail(&err, TS_ERR_RUNTIME, "out of memory");
		r = cli_report(&err);
		goto out;
	}
	if (ts_config_read(&m, &cfg, &err) || ts_backends_read_all(&m, fc.all, &err)) {
		r = cli_report(&err);
		goto out;
	}
	fc.cfg = &cfg;
	fc.by_vip = calloc(cfg.nservices ?: 1, sizeof(*fc.by_vip));
	if (!fc.by_vip) {
		ts_fail(&err, TS_ERR_RUNTIME, "out of memory");
		r = cli_report(&err);
		goto out;
	}
	for (size_t i = 0; i < cfg.nservices; i++)
		fc.by_vip[i] = &cfg.services[i];
	qsort(fc.by_vip, cfg.nservices, sizeof(*fc.by_vip), cmp_vip);
	if (nargs && !(fc.service = ts_config_service(&cfg, argv[1]))) {
		ts_fail(&err, TS_ERR_USAGE, "unknown service '%s': see 'tcpshift service list'",
			argv[1]);
		r = cli_report(&err);
		goto out;
	}
	if (fc.backend && fc.service &&
	    !ts_service_backend((struct ts_service_cfg *)fc.service, fc.backend)) {
		ts_fail(&err, TS_ERR_USAGE,
			"service '%s' has no backend '%s': see 'tcpshift service list'",
			argv[1], fc.backend);
		r = cli_report(&err);
		goto out;
	}
	/* the configuration is read; the walk of the flow tables is not one
	 * snapshot anyway, and must not hold changes back */
	ts_maps_unlock(&m);
	fc.now = ts_now_ns();
	/* streamed, one object at a time: a million flows need no array in memory */
	print_start(stdout, ctx->json, PRINT_F_STREAM);
	print_text("%-28s %-28s %-16s %-12s %-28s %6s %6s %s\n", "CLIENT", "VIP", "SERVICE",
		   "BACKEND", "BACKEND_ADDR", "AGE_S", "IDLE_S", "STATE");
	print_open_array(NULL);
	r = ts_flows_foreach(&m, print_flow, &fc);
	print_close_array();
	if (r) {
		ts_fail(&err, TS_ERR_RUNTIME, "cannot read the flows map: %s", strerror(-r));
		r = cli_report(&err);
	}
	r = print_end() ?: r;
out:
	free(fc.by_vip);
	free(fc.all);
	ts_config_free(&cfg);
	ts_maps_close(&m);
	return r;
}
