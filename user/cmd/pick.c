// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift pick */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift pick SERVICE CLIENT_ADDR:PORT [CLIENT_ADDR:PORT...]\n"
	"       tcpshift pick SERVICE -      (clients from standard input, one a line)\n"
	"\n"
	"Which backend a new connection from each client gets now. The answer comes\n"
	"from the data plane's own code: the loaded program is run (without writing\n"
	"any map) on a SYN from the client to the service's VIP. A pinned connection\n"
	"keeps its backend whatever pick says. Gateways with the same configuration\n"
	"and seed give the same answers.\n"
	"\n"
	"Running the real program means loading it first: a call takes about 0.1-0.2 s\n"
	"whatever the number of clients. Give many clients in one call (or on standard\n"
	"input), not one call each in a loop.\n"
	"\n"
	"Output: one line a client, 'CLIENT BACKEND BACKEND_ADDR' ('-' when no backend\n"
	"has weight); with -j an array of {client, backend, backend_addr}.\n"
	"\n"
	"Examples:\n"
	"  tcpshift pick tcp-echo 198.18.1.2:40000\n"
	"  seq 40000 40099 | sed 's/^/198.18.1.2:/' | tcpshift -j pick tcp-echo -\n";

static int pick_one(struct ts_picker *p, const char *client)
{
	const struct ts_backend_cfg *b;
	struct ts_endpoint ep;
	char addr[TS_ADDRSTRLEN];
	struct ts_err err;

	if (ts_parse_endpoint(client, &ep, &err) || ts_picker_pick(p, &ep, &b, &err))
		return cli_report(&err);
	if (b)
		ts_format_endpoint(b->be.addr, b->be.port, b->be.family, addr, sizeof(addr));
	print_open_object(NULL);
	print_string(PRINT_ANY, "client", "%s", client);
	/* null in JSON, "-" as text */
	print_string(PRINT_ANY, "backend", " %s", b ? b->be.name : NULL);
	print_string(PRINT_ANY, "backend_addr", " %s\n", b ? addr : NULL);
	print_close_object();
	return 0;
}

int cmd_pick(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct ts_picker *p = NULL;
	struct ts_maps m;
	struct ts_err err;
	char line[256];
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs < 2)
		return cli_usage(argv[0], "pick takes SERVICE CLIENT_ADDR:PORT... or SERVICE -");
	r = cli_open_maps_read(ctx, &m);
	if (r)
		return r;
	if (ts_picker_open(&p, &m, argv[1], &err)) {
		r = cli_report(&err);
		goto out;
	}
	/* one document: a bad client in the middle prints no partial one */
	print_start(stdout, ctx->json, 0);
	print_open_array(NULL);
	if (nargs == 2 && !strcmp(argv[2], "-")) {
		while (!r && fgets(line, sizeof(line), stdin)) {
			line[strcspn(line, "\r\n")] = '\0';
			if (line[0])
				r = pick_one(p, line);
		}
	} else {
		for (int i = 2; !r && i <= nargs; i++)
			r = pick_one(p, argv[i]);
	}
	if (!r)
		print_close_array();
	r = print_end() ?: r;
out:
	ts_picker_close(p);
	ts_maps_close(&m);
	return r;
}
