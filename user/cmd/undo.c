// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift undo */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift undo [N] [--dry-run]\n"
	"\n"
	"Restore the configuration as it was before the last change in the journal (see\n"
	"'tcpshift history'), or before change N: services, backends, weights, health\n"
	"checks and the seed, as 'import' of that moment's export would. Each service\n"
	"changes in one atomic table switch; established connections stay on their\n"
	"backends (a backend that the undo removes has its connections reset, as\n"
	"'backend del' would). The undo is a change like any other: it is journaled,\n"
	"and 'tcpshift undo' again undoes the undo.\n"
	"\n"
	"  --dry-run   print the changes, make none\n"
	"\n"
	"Prints one line per change (-j: as 'import').\n"
	"\n"
	"Examples:\n"
	"  tcpshift undo\n"
	"  tcpshift history && tcpshift undo 12 --dry-run\n";

int cmd_undo(struct cli_ctx *ctx, int argc, char **argv)
{
	const struct ts_journal_entry *e;
	struct ts_journal j;
	struct ts_doc doc = {};
	char source[64];
	bool dry_run = false;
	const struct cli_opt opts[] = {
		{ "dry-run", 0, CLI_FLAG, &dry_run },
		CLI_OPT_HELP,
		{},
	};
	__u32 seq = 0;
	struct ts_err err;
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs > 1)
		return cli_usage(argv[0], "undo takes at most one change number N");
	if (nargs == 1 && ts_parse_u32(argv[1], "change number N", 1, UINT32_MAX, &seq, &err))
		return cli_report(&err);
	e = cli_journal_entry(ctx, &j, seq, &r);
	if (!e)
		return r;
	snprintf(source, sizeof(source), "the configuration before change %llu",
		 (unsigned long long)e->seq);
	r = cli_journal_doc(ctx, &j, e->seq - 1, &doc);
	ts_journal_free(&j);
	if (r)
		return r;
	r = cli_import(ctx, &doc, dry_run, source);
	ts_doc_free(&doc);
	return r;
}
