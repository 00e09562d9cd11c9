/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The tcpshift command line: one cmd_<name>() per command. */
#ifndef TCPSHIFT_CLI_H
#define TCPSHIFT_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <json-c/json.h>

#include "libtcpshift.h"

struct ts_ctx {
	const char	*pin_dir;
	const char	*netns;
	bool		json;
	int		verbose;
};

/* Each returns the exit status: 0, 1 (runtime) or 2 (usage). argv[0] is the
 * command's name. */
int cmd_load(struct ts_ctx *ctx, int argc, char **argv);
int cmd_unload(struct ts_ctx *ctx, int argc, char **argv);
int cmd_status(struct ts_ctx *ctx, int argc, char **argv);
int cmd_service(struct ts_ctx *ctx, int argc, char **argv);
int cmd_backend(struct ts_ctx *ctx, int argc, char **argv);
int cmd_weight(struct ts_ctx *ctx, int argc, char **argv);
int cmd_drain(struct ts_ctx *ctx, int argc, char **argv);
int cmd_flows(struct ts_ctx *ctx, int argc, char **argv);
int cmd_stats(struct ts_ctx *ctx, int argc, char **argv);
int cmd_pick(struct ts_ctx *ctx, int argc, char **argv);
int cmd_export(struct ts_ctx *ctx, int argc, char **argv);
int cmd_import(struct ts_ctx *ctx, int argc, char **argv);

/* Print err as the one stderr line; returns its exit status. */
int cli_report(const struct ts_err *err);
/* A usage error: "tcpshift: <msg> (see 'tcpshift <cmd> --help')", returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * getopt_long over a command's options; --help prints help (to stdout, exit
 * 0). Returns the option, -1 at the end, or -2 after a usage error was printed.
 */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	       const char *help);
/* Open the pinned maps (and report a failure). */
int cli_open_maps(struct ts_ctx *ctx, struct ts_maps *m);
/* The same for a reader: holds the lock shared, so that what it reads is one
 * configuration, never a mix of two (changes hold it exclusive). */
int cli_open_maps_read(struct ts_ctx *ctx, struct ts_maps *m);
/* Print and free a JSON value, one line. */
void cli_print_json(json_object *obj);

/* The global counters: printed as text unless -j, and as a JSON object. */
json_object *cli_counters(const struct ts_ctx *ctx, const __u64 counters[TS_CNT_MAX]);
const char *cli_tcp_state_name(__u8 state);
/* enum ts_tcp_state of a name, 0 if none. */
int cli_tcp_state_parse(const char *name);

/* A backend's drain deadline: seconds left as JSON (NULL when it has none),
 * and " (draining: flows closed in Ns)" in text ("" when none). */
json_object *cli_drain(const struct ts_backend *be, __u64 now, char *text, size_t len);

#define CLI_HELP_DONE	(-3)	/* cli_getopt: help printed */

#endif /* TCPSHIFT_CLI_H */
