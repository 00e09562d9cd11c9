// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift export */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift export\n"
	"\n"
	"Print the whole configuration as a JSON document: the flow hash seed, every\n"
	"service (name, VIP:port, table size, health checks) and its backends (name,\n"
	"address:port, weight), sorted by name. Gateways with the same configuration\n"
	"print the same bytes. The document is what 'tcpshift import' reads: a backup,\n"
	"and the way to make several gateways behind ECMP identical. -j is implied.\n"
	"\n"
	"Not in the document: pinned flows, counters, drain deadlines, devices.\n"
	"\n"
	"Examples:\n"
	"  tcpshift export > gateway.json\n"
	"  tcpshift export | ssh gw2 tcpshift import -\n";

int cmd_export(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct ts_maps m;
	struct ts_err err;
	char *text;
	int r;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;

	r = cli_open_maps(ctx, &m);
	if (r)
		return r;
	/* Locked: the services and the seed of one moment, not a mix. */
	r = ts_maps_lock_shared(&m, &err);
	text = r ? NULL : ts_doc_text_read(&m, &err);
	ts_maps_close(&m);
	if (!text)
		return cli_report(&err);
	fputs(text, stdout);
	free(text);
	if (fflush(stdout) || ferror(stdout)) {
		perror("tcpshift: cannot write the document");
		return TS_ERR_RUNTIME;
	}
	return 0;
}
