// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift unload */
#include <stdio.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift unload\n"
	"\n"
	"Detach the data plane from every device it was loaded on, remove the clsact\n"
	"qdiscs that load created, and remove the pinned maps and the pin directory.\n"
	"Pinned flows are lost: established connections through the gateway break.\n"
	"Only what is provably this instance's is touched: a pin directory holding maps\n"
	"of another layout is refused whole, only filters whose program uses this\n"
	"instance's maps are detached. Run it in the namespace load ran in (-n NAME).\n"
	"\n"
	"Example:\n"
	"  tcpshift unload\n";

int cmd_unload(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct ts_err err;
	int r;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	if (ts_unload(ctx->pin_dir, &err))
		return cli_report(&err);
	return 0;
}
