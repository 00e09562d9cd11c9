// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift backend add|del */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift backend add SERVICE NAME ADDR:PORT [--weight W]\n"
	"       tcpshift backend del SERVICE NAME\n"
	"\n"
	"Add a backend to a service, or remove one. Weights are relative integers\n"
	"0-65535 (default 1); a backend's share of new flows is its weight over the sum.\n"
	"Weight 0 means draining: no new flows, established ones continue.\n"
	"\n"
	"Removing a backend closes the flows still pinned to it: their next packet from\n"
	"the client is answered with a TCP RST (counted as removed_backend); they are\n"
	"never moved to another backend. Drain it first ('tcpshift drain') to let its\n"
	"connections finish. A backend address:port serves one service.\n"
	"\n"
	"Examples:\n"
	"  tcpshift backend add tcp-echo v1 198.18.2.11:8008 --weight 90\n"
	"  tcpshift backend add tcp-echo v2 198.18.2.12:8008 --weight 10\n"
	"  tcpshift backend del tcp-echo v1\n";

int cmd_backend(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ts_endpoint addr;
	__u32 weight = 1;
	const struct cli_opt opts[] = {
		{ "weight", 'w', CLI_WEIGHT, &weight },
		CLI_OPT_HELP,
		{},
	};
	struct ts_maps m;
	struct ts_err err;
	const char *verb;
	int r;

	r = cli_verb(argc, argv, opts, help, &verb, &argc, &argv);
	if (r != CLI_CONTINUE)
		return r;
	if (!verb)
		return cli_usage("backend", "give add or del");
	if (!strcmp(verb, "add")) {
		if (argc != 3)
			return cli_usage("backend", "backend add takes SERVICE NAME ADDR:PORT");
		if (ts_parse_name(argv[1], "backend", &err) ||
		    ts_parse_endpoint(argv[2], &addr, &err))
			return cli_report(&err);
	} else if (!strcmp(verb, "del")) {
		if (argc != 2)
			return cli_usage("backend", "backend del takes SERVICE NAME");
	} else {
		return cli_usage("backend", "unknown verb '%s': give add or del", verb);
	}

	r = cli_open_maps(ctx, &m);
	if (r)
		return r;
	if (!strcmp(verb, "add"))
		r = ts_backend_add(&m, argv[0], argv[1], &addr, weight, &err);
	else
		r = ts_backend_del(&m, argv[0], argv[1], &err);
	ts_maps_close(&m);
	return r ? cli_report(&err) : 0;
}
