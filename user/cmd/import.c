// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift import */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

static const char help[] =
	"Usage: tcpshift import [--dry-run] FILE\n"
	"\n"
	"Make this gateway's configuration equal to a document written by 'tcpshift\n"
	"export' (FILE, or - for stdin). Declarative: services and backends that are\n"
	"not in the document are REMOVED, so that gateways importing the same document\n"
	"are identical (same tables, same seed: the same backend for the same flow).\n"
	"\n"
	"The whole document is checked first; a bad one changes nothing (exit 2, one\n"
	"line naming the place, e.g. services[1].backends[0].weight). Then each\n"
	"service changes in one atomic table switch: all its backend additions,\n"
	"removals and weight changes together. Import is atomic per service, not\n"
	"across services. A service whose VIP or table size changes is deleted and\n"
	"added again (not atomic: its open connections break); a backend removed, or\n"
	"whose address changes, has its pinned connections reset. The seed is written\n"
	"when it differs: new flows hash with it, pinned flows stay.\n"
	"\n"
	"  --dry-run   print the changes, make none\n"
	"\n"
	"Prints one line per change (-j: {\"dry_run\", \"changes\": [{\"action\",\n"
	"\"service\", \"backend\", \"from\", \"to\"}]}).\n"
	"\n"
	"Examples:\n"
	"  tcpshift import --dry-run gateway.json\n"
	"  tcpshift import gateway.json\n"
	"  ssh gw1 tcpshift export | tcpshift import -\n";

/* The whole of f, NUL-terminated; NULL with errno set. */
static char *read_all(FILE *f, size_t *len)
{
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1), *p;

	while (buf) {
		size_t got = fread(buf + n, 1, cap - n, f);

		n += got;
		if (got == 0 && ferror(f)) {
			free(buf);
			return NULL;
		}
		if (n < cap) {
			if (feof(f))
				break;
			continue;
		}
		if (cap > TS_DOC_MAX_SIZE)
			break; /* too large: the parser says so */
		p = realloc(buf, cap * 2 + 1);
		if (!p) {
			free(buf);
			errno = ENOMEM;
			return NULL;
		}
		buf = p;
		cap *= 2;
	}
	if (buf) {
		buf[n] = '\0';
		*len = n;
	}
	return buf;
}

static int print_plan(const struct cli_ctx *ctx, const struct ts_plan *plan, bool dry_run,
		      const char *source)
{
	const char *plural = plan->nchanges == 1 ? "" : "s";

	print_start(stdout, ctx->json, 0);
	print_open_object(NULL);
	print_bool(PRINT_JSON, "dry_run", NULL, dry_run);
	print_open_array("changes");
	for (size_t i = 0; i < plan->nchanges; i++) {
		print_change(&plan->changes[i], "");
	}
	print_close_array();
	if (!plan->nchanges)
		print_string(PRINT_FP, NULL, "no changes: the configuration equals %s\n", source);
	else if (dry_run)
		print_text("dry run: %zu change%s, none made\n", plan->nchanges, plural);
	else
		print_text("%zu change%s made\n", plan->nchanges, plural);
	print_close_object();
	return print_end();
}

/* Read and check the document: exit 2 with "FILE: where: what" when bad. */
static int load_document(const char *path, const char *source, struct ts_doc *doc)
{
	struct ts_err err;
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	size_t len = 0;
	char *text;
	int r;

	if (!f) {
		fprintf(stderr, "tcpshift: %s: cannot open: %s\n", source, strerror(errno));
		return errno == ENOENT || errno == EISDIR || errno == ENOTDIR ? TS_ERR_USAGE
										  : TS_ERR_RUNTIME;
	}
	text = read_all(f, &len);
	if (!text) {
		fprintf(stderr, "tcpshift: %s: cannot read: %s\n", source, strerror(errno));
		if (f != stdin)
			fclose(f);
		return errno == EISDIR ? TS_ERR_USAGE : TS_ERR_RUNTIME;
	}
	if (f != stdin)
		fclose(f);
	r = ts_doc_parse(text, len, doc, &err);
	free(text);
	if (r) {
		fprintf(stderr, "tcpshift: %s: %s\n", source, err.msg);
		return err.status ? err.status : TS_ERR_RUNTIME;
	}
	return 0;
}

int cmd_import(struct cli_ctx *ctx, int argc, char **argv)
{
	struct ts_doc want = {};
	const char *source;
	bool dry_run = false;
	const struct cli_opt opts[] = {
		{ "dry-run", 0, CLI_FLAG, &dry_run },
		CLI_OPT_HELP,
		{},
	};
	int nargs, r;

	r = cli_args(argc, argv, opts, help, &nargs);
	if (r != CLI_CONTINUE)
		return r;
	if (nargs != 1)
		return cli_usage(argv[0], "import takes one FILE (- for stdin)");
	source = strcmp(argv[1], "-") ? argv[1] : "stdin";

	/* The whole document is checked before anything is opened or changed. */
	r = load_document(argv[1], source, &want);
	if (r)
		return r;
	r = cli_import(ctx, &want, dry_run, source);
	ts_doc_free(&want);
	return r;
}

int cli_import(struct cli_ctx *ctx, const struct ts_doc *want, bool dry_run, const char *source)
{
	struct ts_plan plan = {};
	struct ts_maps m;
	struct ts_err err;
	int r = cli_open_maps(ctx, &m);

	if (r)
		return r;
	r = ts_doc_import(&m, want, dry_run, &plan, &err);
	ts_maps_close(&m);
	r = r ? cli_report(&err) : print_plan(ctx, &plan, dry_run, source);
	ts_plan_free(&plan);
	return r;
}
