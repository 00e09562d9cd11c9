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
	"flows pinned now (closed ones not counted), and its health when the service\n"
	"is checked ('tcpshift health'); then its canary signals, counted by the data\n"
	"plane:\n"
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
	const struct ts_backend *all;	/* ids [0, n): those the services list */
	__u32 n;
	__u32 *flows;	/* per backend id */
};

static void count_flow(const struct ts_flow_key *k, const struct ts_flow *f, void *data)
{
	struct pinned_count *pc = data;

	/* pinned now: a closed connection's entry stays until evicted or
	 * reused, but is no connection of the backend's any more */
	if (f->backend_id < pc->n && f->tcp_state != TS_TCP_CLOSED &&
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

/* The canary signals of a backend: counters, open connections, and the
 * handshake time; in JSON its histogram as cumulative buckets ({le (s),
 * count}), as Prometheus has them, as text its median and 99th percentile. */
static void print_canary(const struct ts_backend_stats *st)
{
	char p50[32], p99[32];
	__u64 total = 0, cum = 0;

	print_open_object("canary");
	print_text("  %-12s", "");
	print_u64(PRINT_ANY, "attempts", " attempts %llu", st->new_flows);
	print_u64(PRINT_ANY, "syn_retransmits", ", syn-retransmits %llu", st->syn_retransmits);
	print_u64(PRINT_ANY, "handshakes", ", handshakes %llu", st->handshakes);
	print_u64(PRINT_ANY, "refused", ", refused %llu", st->refused);
	print_u64(PRINT_ANY, "reset", ", reset %llu", st->reset);
	print_u64(PRINT_ANY, "closed", ", closed %llu", st->closed);
	print_u64(PRINT_ANY, "open", ", open %llu", ts_backend_open(st));
	print_u64(PRINT_ANY, "bytes_to_backend", "; bytes to %llu", st->bytes_to_backend);
	print_u64(PRINT_ANY, "bytes_from_backend", ", from %llu", st->bytes_from_backend);
	print_text("; handshake p50 %s p99 %s\n",
		   cli_handshake_time(ts_handshake_quantile(st, 0.5), p50, sizeof(p50)),
		   cli_handshake_time(ts_handshake_quantile(st, 0.99), p99, sizeof(p99)));
	for (__u32 i = 0; i < TS_HANDSHAKE_BUCKETS; i++)
		total += st->handshake_hist[i];
	print_open_object("handshake_time");
	print_u64(PRINT_JSON, "count", NULL, total);
	print_double(PRINT_JSON, "sum_s", NULL, st->handshake_ns_sum / 1e9);
	print_open_array("buckets");
	for (__u32 i = 0; i < TS_HANDSHAKE_BUCKETS; i++) {
		__u64 le = ts_handshake_bucket_le(i);

		cum += st->handshake_hist[i];
		print_open_object(NULL);
		if (le == UINT64_MAX)
			print_string(PRINT_JSON, "le", NULL, "+Inf");
		else
			print_double(PRINT_JSON, "le", NULL, le / 1e9);
		print_u64(PRINT_JSON, "count", NULL, cum);
		print_close_object();
	}
	print_close_array();
	print_close_object();
	print_close_object();
}

static int print_service_stats(struct ts_maps *m, const struct ts_service_cfg *s,
			       const __u32 *flows, struct ts_err *err)
{
	__u32 slots[TS_MAX_SERVICE_BACKENDS], eff[TS_MAX_SERVICE_BACKENDS];
	char vip[TS_ADDRSTRLEN], addr[TS_ADDRSTRLEN];
	bool checked = s->svc.health.check != TS_CHECK_NONE;
	__u64 now = ts_now_ns();

	if (ts_table_shares(m, s, slots, err))
		return -1;
	/* health as in 'service list': only where there are checks or a
	 * backend is down */
	ts_effective_weights(s->backends, s->nbackends, eff);
	for (size_t j = 0; j < s->nbackends; j++)
		checked |= s->backends[j].be.health != TS_HEALTH_UP;
	ts_format_endpoint(s->key.addr, s->key.port, s->key.family, vip, sizeof(vip));
	print_open_object(NULL);
	print_string(PRINT_ANY, "name", "service %s", s->svc.name);
	print_string(PRINT_ANY, "vip", " %s", vip);
	print_u64(PRINT_ANY, "table_size", " (table %llu)\n", s->svc.table_size);
	print_text("  %-12s %-28s %6s %7s %10s %12s %14s %8s\n", "BACKEND", "ADDRESS", "WEIGHT",
		   "SHARE", "NEW_FLOWS", "PACKETS", "BYTES", "FLOWS");
	print_open_array("backends");
	for (size_t i = 0; i < s->nbackends; i++) {
		const struct ts_backend_cfg *b = &s->backends[i];
		double share = (double)slots[i] / s->svc.table_size;
		struct ts_backend_stats st;

		if (ts_backend_stats_read(m, b->id, &st, err))
			return -1;
		ts_format_endpoint(b->be.addr, b->be.port, b->be.family, addr, sizeof(addr));
		print_open_object(NULL);
		print_string(PRINT_ANY, "name", "  %-12s", b->be.name);
		print_string(PRINT_ANY, "addr", " %-28s", addr);
		print_u64(PRINT_ANY, "weight", " %6llu", b->weight);
		print_double(PRINT_JSON, "share", NULL, share);
		print_double(PRINT_FP, NULL, " %6.2f%%", 100 * share);
		print_u64(PRINT_ANY, "new_flows", " %10llu", st.new_flows);
		print_u64(PRINT_ANY, "packets", " %12llu", st.packets);
		print_u64(PRINT_ANY, "bytes", " %14llu", st.bytes);
		print_u64(PRINT_ANY, "flows", " %8llu", flows[b->id]);
		print_drain(&b->be, now);
		if (checked)
			print_health(&b->be, eff[i], false);
		print_text("\n");
		print_canary(&st);
		print_close_object();
	}
	print_close_array();
	print_close_object();
	return 0;
}

int cmd_stats(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct pinned_count pc = {};
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
	/* the backends the services list, not all TS_MAX_BACKENDS ids (a flow
	 * of any other id is counted for no backend printed) */
	if (ts_config_read(&m, &cfg, &err) ||
	    ts_backends_read(&m, all, pc.n = ts_config_id_limit(&cfg), &err) ||
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

	/* (streamed: each service is written when done, not kept in a tree) */
	print_start(stdout, ctx->json, PRINT_F_STREAM);
	print_open_object(NULL);
	print_open_array("services");
	for (size_t i = 0; i < cfg.nservices; i++) {
		if (only && strcmp(only, cfg.services[i].svc.name))
			continue;
		if (print_service_stats(&m, &cfg.services[i], pc.flows, &err)) {
			r = cli_report(&err);
			goto out;
		}
	}
	print_close_array();
	print_counters(counters);
	print_close_object();
out:
	r = print_end() ?: r;
	free(all);
	free(pc.flows);
	ts_config_free(&cfg);
	ts_maps_close(&m);
	return r;
}
