// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift restore */
#include <stdio.h>
#include <stdlib.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift restore [--dry-run]\n"
	"\n"
	"Bring back the last configuration in the journal (the document after its\n"
	"latest change, see 'tcpshift history') into a loaded instance: after a reboot\n"
	"or an unload emptied the pin directory, 'tcpshift load' then 'tcpshift\n"
	"restore'. This is what tcpshift-boot.service runs at boot, with the load\n"
	"options of /etc/tcpshift/tcpshift.conf. Each service changes in one atomic\n"
	"table switch, as with 'import'. A journal with no change yet restores nothing\n"
	"(exit 0).\n"
	"\n"
	"  --dry-run   print the changes, make none\n"
	"\n"
	"Examples:\n"
	"  tcpshift restore --dry-run\n"
	"  tcpshift restore\n";

int cmd_restore(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ts_journal j;
	struct ts_doc doc = {};
	bool dry_run = false;
	const struct cli_opt opts[] = {
		{ "dry-run", 0, CLI_FLAG, &dry_run },
		CLI_OPT_HELP,
		{},
	};
	struct ts_err err;
	char source[64];
	__u64 seq;
	int r;

	r = cli_no_args(argc, argv, opts, help);
	if (r != CLI_CONTINUE)
		return r;
	if (ts_journal_read(ctx->pin_dir, &j, &err))
		return cli_report(&err);
	if (!j.n) {
		printf("nothing to restore: the journal of %s holds no change\n", ctx->pin_dir);
		return 0;
	}
	seq = j.entries[j.n - 1].seq;
	r = cli_journal_doc(ctx, &j, seq, &doc);
	ts_journal_free(&j);
	if (r)
		return r;
	snprintf(source, sizeof(source), "the journal's (after change %llu)",
		 (unsigned long long)seq);
	r = cli_import(ctx, &doc, dry_run, source);
	ts_doc_free(&doc);
	return r;
}
