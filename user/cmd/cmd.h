/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The one-shot commands of tcpshift: one cmd_<name>() per command, one file each. */
#ifndef TCPSHIFT_CMD_H
#define TCPSHIFT_CMD_H

#include "cli.h"
#include "print.h"

int cmd_load(struct cli_ctx *ctx, int argc, char **argv);
int cmd_unload(struct cli_ctx *ctx, int argc, char **argv);
int cmd_downgrade(struct cli_ctx *ctx, int argc, char **argv);
int cmd_status(struct cli_ctx *ctx, int argc, char **argv);
int cmd_service(struct cli_ctx *ctx, int argc, char **argv);
int cmd_backend(struct cli_ctx *ctx, int argc, char **argv);
int cmd_weight(struct cli_ctx *ctx, int argc, char **argv);
int cmd_drain(struct cli_ctx *ctx, int argc, char **argv);
int cmd_flows(struct cli_ctx *ctx, int argc, char **argv);
int cmd_stats(struct cli_ctx *ctx, int argc, char **argv);
int cmd_pick(struct cli_ctx *ctx, int argc, char **argv);
int cmd_export(struct cli_ctx *ctx, int argc, char **argv);
int cmd_import(struct cli_ctx *ctx, int argc, char **argv);
int cmd_health(struct cli_ctx *ctx, int argc, char **argv);
int cmd_top(struct cli_ctx *ctx, int argc, char **argv);
int cmd_history(struct cli_ctx *ctx, int argc, char **argv);
int cmd_undo(struct cli_ctx *ctx, int argc, char **argv);
int cmd_restore(struct cli_ctx *ctx, int argc, char **argv);

/* import.c: make the configuration equal to want (validated), printing the
 * changes as `import` does; source names the document ("no changes: the
 * configuration equals SOURCE"). The exit status. */
int cli_import(struct cli_ctx *ctx, const struct ts_doc *want, bool dry_run, const char *source);
/* history.c: the journal's entry seq (0: the latest), or NULL after printing
 * why not; *j is the journal read (free it with ts_journal_free). */
const struct ts_journal_entry *cli_journal_entry(struct cli_ctx *ctx, struct ts_journal *j,
						 __u64 seq, int *status);
/* The whole document after change seq of the journal j (the one before its
 * oldest included), into *doc: 0 or the exit status, after saying why. */
int cli_journal_doc(struct cli_ctx *ctx, const struct ts_journal *j, __u64 seq,
		    struct ts_doc *doc);

/* show.c: what several commands show alike, through the output writer */
/* The global counters: "counters" and a line each as text, an object in JSON. */
void print_counters(const __u64 counters[TS_CNT_MAX]);
const char *cli_tcp_state_name(__u8 state);
/* enum ts_tcp_state of a name, 0 if none. */
int cli_tcp_state_parse(const char *name);
/* A backend's drain deadline, when it has one (returns false otherwise):
 * drain_deadline_s, the seconds left, and " (draining: flows closed in Ns)"
 * as text. */
bool print_drain(const struct ts_backend *be, __u64 now);
/* A backend's health: health, health_since, effective_weight, and for people
 * " (down since 2026-12-01 01:02:03 UTC: effective weight 0)", " (up since
 * ...)", " (up)" before any transition; more: within a parenthesis already
 * open, "; up)". */
void print_health(const struct ts_backend *be, __u32 effective, bool more);
/* One change of an import plan: a line of text after indent, an object
 * {action, service, backend, from, to} of an array in JSON. */
void print_change(const struct ts_change *c, const char *indent);

#endif /* TCPSHIFT_CMD_H */
