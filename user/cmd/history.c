// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift history */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift history\n"
	"\n"
	"Show the journal of changes to this instance's configuration, oldest first:\n"
	"each change's number, when it was made, by whom (user and uid) and with what\n"
	"command line, and what it changed, one line per change as 'import' prints\n"
	"them. Every command that changes the configuration (service, backend, weight,\n"
	"drain, health, import, undo, restore, rollout steps, the agent's documents from\n"
	"etcd) adds an entry; one that changes nothing adds none. The journal keeps the\n"
	"last 100 changes (and at most 4 MiB of entries, each what its change changed)\n"
	"in /var/lib/tcpshift/<pin dir>/journal.json (TCPSHIFT_STATE_DIR), beside the\n"
	"whole configuration as of a recent change (base-N.json), readable by root\n"
	"alone; it outlives unload and reboots. 'tcpshift undo N' restores the\n"
	"configuration before change N.\n"
	"\n"
	"-j: [{\"seq\", \"time_s\", \"uid\", \"user\", \"command\", \"changes\": [{\"action\",\n"
	"\"service\", \"backend\", \"from\", \"to\"}]}].\n"
	"\n"
	"Example:\n"
	"  tcpshift history\n";

const struct ts_journal_entry *cli_journal_entry(struct cli_ctx *ctx, struct ts_journal *j,
						 __u64 seq, int *status)
{
	struct ts_err err;

	*status = 0;
	if (ts_journal_read(ctx->pin_dir, j, &err)) {
		*status = cli_report(&err);
		return NULL;
	}
	if (!j->n) {
		fprintf(stderr, "tcpshift: the journal of %s holds no change yet: see 'tcpshift "
			"history --help'\n", ctx->pin_dir);
		*status = TS_ERR_RUNTIME;
		return NULL;
	}
	if (!seq)
		return &j->entries[j->n - 1];
	for (size_t i = 0; i < j->n; i++)
		if (j->entries[i].seq == seq)
			return &j->entries[i];
	fprintf(stderr, "tcpshift: no change %llu in the journal of %s (it holds %llu to %llu): "
		"see 'tcpshift history'\n", (unsigned long long)seq, ctx->pin_dir,
		(unsigned long long)j->entries[0].seq,
		(unsigned long long)j->entries[j->n - 1].seq);
	*status = TS_ERR_USAGE;
	return NULL;
}

int cli_journal_doc(struct cli_ctx *ctx, const struct ts_journal *j, __u64 seq,
		    struct ts_doc *doc)
{
	struct ts_err err;
	char *text = ts_journal_doc(ctx->pin_dir, j, seq, &err);
	int r;

	if (!text)
		return cli_report(&err);
	r = ts_doc_parse(text, strlen(text), doc, &err);
	free(text);
	if (!r)
		return 0;
	fprintf(stderr, "tcpshift: the journal's document after change %llu is damaged: %s\n",
		(unsigned long long)seq, err.msg);
	return TS_ERR_RUNTIME;
}

/* What an entry changed: the plan from its document before to after. */
static void print_entry_changes(const struct ts_journal_entry *e)
{
	struct ts_doc before = {}, after = {};
	struct ts_plan plan = {};
	struct ts_err err;

	print_open_array("changes");
	if (!ts_doc_parse(e->before, strlen(e->before), &before, &err) &&
	    !ts_doc_parse(e->after, strlen(e->after), &after, &err) &&
	    !ts_doc_plan(&before, &after, &plan, &err))
		for (size_t i = 0; i < plan.nchanges; i++)
			print_change(&plan.changes[i], "      ");
	else
		print_text("      (the documents of this change are damaged)\n");
	print_close_array();
	ts_plan_free(&plan);
	ts_doc_free(&before);
	ts_doc_free(&after);
}

int cmd_history(struct cli_ctx *ctx, int argc, char **argv)
{
	static const struct cli_opt opts[] = { CLI_OPT_HELP, {} };
	struct ts_journal j;
	struct ts_err err;
	int r = cli_no_args(argc, argv, opts, help);

	if (r != CLI_CONTINUE)
		return r;
	if (ts_journal_read(ctx->pin_dir, &j, &err))
		return cli_report(&err);
	print_start(stdout, ctx->json, 0);
	print_open_array(NULL);
	for (size_t i = 0; i < j.n; i++) {
		const struct ts_journal_entry *e = &j.entries[i];
		time_t t = (time_t)e->time_s;
		char when[32] = "?";
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		print_open_object(NULL);
		print_u64(PRINT_ANY, "seq", "%4llu  ", e->seq);
		print_u64(PRINT_JSON, "time_s", NULL, e->time_s);
		print_string(PRINT_FP, NULL, "%s  ", when);
		print_string(PRINT_ANY, "user", "%s", e->user);
		print_u64(PRINT_ANY, "uid", " (uid %llu)  ", e->uid);
		print_string(PRINT_ANY, "command", "%s\n", e->command);
		print_entry_changes(e);
		print_close_object();
	}
	print_close_array();
	if (!j.n)
		print_text("no change journaled for %s yet\n", ctx->pin_dir);
	ts_journal_free(&j);
	return print_end();
}
