// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift unload */
#include <stdio.h>

#include "cli.h"

static const char help[] =
	"Usage: tcpshift unload\n"
	"\n"
	"Detach the data plane from every device it was loaded on, remove the clsact\n"
	"qdiscs that load created, and remove the pinned maps and the pin directory.\n"
	"Pinned flows are lost: established connections through the gateway break.\n"
	"\n"
	"Example:\n"
	"  tcpshift unload\n";

int cmd_unload(struct ts_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct ts_err err;
	int c;

	while ((c = cli_getopt(argc, argv, "h", opts, help)) != -1)
		return c == CLI_HELP_DONE ? 0 : TS_ERR_USAGE;
	if (optind < argc)
		return cli_usage(argv[0], "unexpected argument '%s'", argv[optind]);
	if (ts_unload(ctx->pin_dir, &err))
		return cli_report(&err);
	return 0;
}
