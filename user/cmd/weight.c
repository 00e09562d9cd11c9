// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift weight */
#include <stdio.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift weight SERVICE NAME=W [NAME=W...]\n"
	"\n"
	"Change backend weights (0-65535) of a service. All named weights change in one\n"
	"atomic table switch; backends not named keep theirs. Only new connections\n"
	"follow the new weights: every established connection stays on its backend.\n"
	"Weight 0 drains a backend.\n"
	"\n"
	"Examples:\n"
	"  tcpshift weight tcp-echo v1=90 v2=10\n"
	"  tcpshift weight tcp-echo v1=0 v2=100\n";

int cmd_weight(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	char names[TS_MAX_SERVICE_BACKENDS][TS_NAME_LEN];
	__u32 weights[TS_MAX_SERVICE_BACKENDS];
	struct ts_maps m;
	struct ts_err err;
	size_t n = 0;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs < 2)
		return cli_usage(argv[0], "weight takes SERVICE NAME=W [NAME=W...]");
	if (nargs - 1 > TS_MAX_SERVICE_BACKENDS)
		return cli_usage(argv[0], "at most %d weights", TS_MAX_SERVICE_BACKENDS);
	for (int i = 2; i <= nargs; i++, n++)
		if (ts_parse_assignment(argv[i], names[n], &weights[n], &err))
			return cli_report(&err);

	r = cli_open_maps(ctx, &m);
	if (r)
		return r;
	r = ts_weights_set(&m, argv[1], names, weights, n, &err);
	ts_maps_close(&m);
	return r ? cli_report(&err) : 0;
}
