// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift downgrade */
#include <stdio.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift downgrade --to-layout N [--accept-loss]\n"
	"\n"
	"Hand the instance to the previous release without dropping a connection:\n"
	"convert its pinned maps to map layout N in place (7: release 0.3.0), then\n"
	"run that release's 'tcpshift load' with the same devices, which reuses them\n"
	"and replaces the programs. Until then the programs of this build stay\n"
	"attached and keep forwarding (the counts they make meanwhile are not kept),\n"
	"and the instance belongs to the older release: its commands work on it, this\n"
	"build's 'load' upgrades it again. Stop this build's agent and sync first.\n"
	"What layout N cannot hold is listed (nothing for 7; for 6 and 5: services\n"
	"beyond layout 6's 256, of more than 256 backends or with backend ids from\n"
	"4,096 on, with their backends; for 5 the syn_not_viable counter); with any,\n"
	"nothing changes unless --accept-loss is given. Pinned flows, half-open\n"
	"flows, reverse entries, direct connections, local sockets, the\n"
	"configuration, health state and rollouts are kept. Killed, it is run again\n"
	"to finish.\n"
	"\n"
	"  --to-layout N   the layout to convert to (the previous release's: 7;\n"
	"                  5: release 0.2.0's; 6: the layout between them)\n"
	"  --accept-loss   downgrade even if something listed is lost\n"
	"\n"
	"Exit status: 0 done, 1 runtime error, 2 usage error or a loss not accepted.\n"
	"\n"
	"Example:\n"
	"  tcpshift downgrade --to-layout 7\n"
	"  (then the older release's tcpshift load, with the same devices)\n";

int cmd_downgrade(struct cli_ctx *ctx, int argc, char **argv)
{
	__u32 to = 0;
	bool accept_loss = false;
	const struct cli_opt opts[] = {
		{ "to-layout", 0, CLI_U32, &to, .metavar = "N", .min = 1, .max = 1000 },
		{ "accept-loss", 0, CLI_FLAG, &accept_loss },
		CLI_OPT_HELP,
		{},
	};
	struct ts_losses lost;
	struct ts_err err;
	int r;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	if (!to)
		return cli_usage(argv[0], "downgrade needs --to-layout N (the previous release's: 7)");
	if (ts_downgrade(ctx->pin_dir, to, accept_loss, &lost, &err))
		return cli_report(&err);
	for (size_t i = 0; i < lost.n; i++)
		printf("lost: %s\n", lost.what[i]);
	printf("%s holds layout %u: run the older release's 'tcpshift load' with the same "
	       "devices to hand it over\n", ctx->pin_dir, to);
	return 0;
}
