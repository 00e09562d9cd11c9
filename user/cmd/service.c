// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift service add|del|list */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift service add NAME VIP:PORT [--table-size M]\n"
	"       tcpshift service del NAME\n"
	"       tcpshift service list\n"
	"\n"
	"A service is a VIP:port whose new TCP connections are split over its backends\n"
	"by weight. NAME: 1-31 letters, digits, '.', '_', '-'. VIP:PORT: 198.18.100.1:8008\n"
	"or [2001:2::1]:8008; IPv6 VIPs take IPv6 backends.\n"
	"\n"
	"  --table-size M   Maglev table size, a prime: shares are exact to 1/M. By\n"
	"                   default M follows the backends: the smallest of 127, 251,\n"
	"                   509, ... 131071 with 100 slots per backend (each share\n"
	"                   within 1 % of an even share)\n"
	"\n"
	"'service del' stops balancing the VIP at once: packets to it are no longer\n"
	"rewritten, so connections still open through it break. Drain its backends\n"
	"first ('tcpshift drain', 'tcpshift flows SERVICE').\n"
	"\n"
	"Examples:\n"
	"  tcpshift service add tcp-echo 198.18.100.1:8008\n"
	"  tcpshift service add web6 [2001:2:100::1]:80 --table-size 65537\n"
	"  tcpshift -j service list\n";

static int service_list(struct cli_ctx *ctx, struct ts_maps *m)
{
	char vip[TS_ADDRSTRLEN], addr[TS_ADDRSTRLEN];
	__u32 eff[TS_MAX_SERVICE_BACKENDS];
	__u64 now = ts_now_ns();
	struct ts_config cfg;
	struct ts_err err;
	bool checked, zero;

	if (ts_config_read(m, &cfg, &err))
		return cli_report(&err);
	print_start(stdout, ctx->json, PRINT_F_STREAM);
	print_text("%-20s %-28s %-6s %-12s %-28s %s\n", "SERVICE", "VIP", "TABLE", "BACKEND",
		   "ADDRESS", "WEIGHT");
	print_open_array(NULL);
	for (size_t i = 0; i < cfg.nservices; i++) {
		struct ts_service_cfg *s = &cfg.services[i];

		ts_format_endpoint(s->key.addr, s->key.port, s->key.family, vip, sizeof(vip));
		/* health only where there are checks or a backend is down: the
		 * output stays as it was for everything else */
		ts_effective_weights(s->backends, s->nbackends, eff);
		checked = s->svc.health.check != TS_CHECK_NONE;
		for (size_t j = 0; j < s->nbackends; j++)
			checked |= s->backends[j].be.health != TS_HEALTH_UP;
		print_open_object(NULL);
		/* as text, the service's columns are those of its first backend */
		print_string(PRINT_ANY, "name", "%-20s", s->svc.name);
		print_string(PRINT_ANY, "vip", " %-28s", vip);
		print_u64(PRINT_ANY, "table_size", " %-6llu", s->svc.table_size);
		if (checked)
			print_json("health", ts_health_json(&s->svc.health));
		if (!s->nbackends)
			print_text(" -\n");
		print_open_array("backends");
		for (size_t j = 0; j < s->nbackends; j++) {
			struct ts_backend_cfg *b = &s->backends[j];

			ts_format_endpoint(b->be.addr, b->be.port, b->be.family, addr,
					   sizeof(addr));
			if (j)
				print_text("%-20s %-28s %-6s", "", "", "");
			print_open_object(NULL);
			print_string(PRINT_ANY, "name", " %-12s", b->be.name);
			print_string(PRINT_ANY, "addr", " %-28s", addr);
			print_u64(PRINT_ANY, "weight", " %llu", b->weight);
			/* seconds until a drain's deadline closes the remaining
			 * flows; only when there is one (the output stays as it
			 * was for everything else) */
			/* weight 0: no new connections, whether it ever had
			 * any (added at 0) or drains the ones it has */
			zero = !print_drain(&b->be, now) && !b->weight;
			if (zero)
				print_text(" (no new connections%s", checked ? "" : ")");
			if (checked)
				print_health(&b->be, eff[j], zero);
			print_text("\n");
			print_close_object();
		}
		print_close_array();
		print_close_object();
	}
	print_close_array();
	ts_config_free(&cfg);
	return print_end();
}

int cmd_service(struct cli_ctx *ctx, int argc, char **argv)
{
	__u32 table_size = 0;	/* follows the backends */
	const struct cli_opt opts[] = {
		{ "table-size", 0, CLI_TABLE_SIZE, &table_size },
		CLI_OPT_HELP,
		{},
	};
	struct ts_endpoint vip;
	struct ts_maps m;
	struct ts_err err;
	const char *verb;
	int r;

	r = cli_verb(argc, argv, opts, help, &verb, &argc, &argv);
	if (r != CLI_CONTINUE)
		return r;
	if (!verb)
		return cli_usage("service", "give add, del or list");
	if (!strcmp(verb, "add")) {
		if (argc != 2)
			return cli_usage("service", "service add takes NAME VIP:PORT");
		if (ts_parse_name(argv[0], "service", &err) ||
		    ts_parse_vip(argv[1], &vip, &err))
			return cli_report(&err);
	} else if (!strcmp(verb, "del")) {
		if (argc != 1)
			return cli_usage("service", "service del takes NAME");
	} else if (!strcmp(verb, "list")) {
		if (argc != 0)
			return cli_usage("service", "service list takes no arguments");
	} else {
		return cli_usage("service", "unknown verb '%s': give add, del or list", verb);
	}

	r = !strcmp(verb, "list") ? cli_open_maps_read(ctx, &m) : cli_open_maps(ctx, &m);
	if (r)
		return r;
	if (!strcmp(verb, "list"))
		r = service_list(ctx, &m);
	else if (!strcmp(verb, "add"))
		r = ts_service_add(&m, argv[0], &vip, table_size, &err) ? cli_report(&err) : 0;
	else
		r = ts_service_del(&m, argv[0], &err) ? cli_report(&err) : 0;
	ts_maps_close(&m);
	return r;
}
