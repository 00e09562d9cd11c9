/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The tcpshift command line: one cmd_<name>() per command. */
#ifndef TCPSHIFT_CLI_H
#define TCPSHIFT_CLI_H

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
int cmd_rollout(struct ts_ctx *ctx, int argc, char **argv);
int cmd_flows(struct ts_ctx *ctx, int argc, char **argv);
int cmd_stats(struct ts_ctx *ctx, int argc, char **argv);
int cmd_pick(struct ts_ctx *ctx, int argc, char **argv);
int cmd_export(struct ts_ctx *ctx, int argc, char **argv);
int cmd_import(struct ts_ctx *ctx, int argc, char **argv);
int cmd_health(struct ts_ctx *ctx, int argc, char **argv);
int cmd_agent(struct ts_ctx *ctx, int argc, char **argv);

/* One change of an import as the line `import` prints (cmd_import.c). */
void cli_change_text(const struct ts_change *c, char *buf, size_t len);
/* Print err as the one stderr line; returns its exit status. */
int cli_report(const struct ts_err *err);
/* A usage error: "tcpshift: <msg> (see 'tcpshift <cmd> --help')", returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Options are declared, not hand-parsed (xdp-tools style): a table of
 * cli_opt, each with its type, whose parser checks and converts the value
 * into *dest. Long options take "--name VALUE" or "--name=VALUE"; short ones
 * "-x VALUE" or "-xVALUE", flags bundle ("-jv").
 */
enum cli_opt_type {
	CLI_FLAG,	/* bool */
	CLI_COUNT,	/* int, one more each time (-vv) */
	CLI_STRING,	/* const char * */
	CLI_STRINGS,	/* const char *[max], *count of them: a repeatable option */
	CLI_U32,	/* __u32 in [min, max]; metavar names it in errors */
	CLI_SEED,	/* __u32, decimal or 0x hex */
	CLI_WEIGHT,	/* __u32, 0-65535 */
	CLI_TABLE_SIZE,	/* __u32, a prime in range */
	CLI_DURATION,	/* __u64 ns */
	CLI_ENUM,	/* int: index in choices (NULL-terminated); metavar lists them */
	CLI_HELP,	/* print the help, exit 0 */
};

struct cli_opt {
	const char		*name;		/* long name, without "--"; NULL ends */
	char			short_name;	/* 0: none */
	enum cli_opt_type	type;
	void			*dest;
	bool			*given;		/* set when the option is given, or NULL */
	const char		*metavar;
	__u32			min, max;	/* CLI_U32 */
	const char *const	*choices;	/* CLI_ENUM */
	size_t			*count;		/* CLI_STRINGS */
	size_t			max_count;
};

#define CLI_OPT_HELP	{ .name = "help", .short_name = 'h', .type = CLI_HELP }

/*
 * Parse argv[1..argc) by opts. Positionals may come between options: they
 * are moved to argv[1..*first] (their count in *first), unless
 * stop_at_positional (global options: they end at the command, whose index is
 * *first). Returns 0; CLI_HELP_DONE after printing help (exit 0); or 2 after
 * printing a usage error.
 */
int cli_parse(int argc, char **argv, const struct cli_opt *opts, const char *help,
	      bool stop_at_positional, int *first);
/* cli_parse for a command: CLI_CONTINUE with the positionals in
 * argv[1..*nargs], or the exit status to return (0 after --help). */
int cli_args(int argc, char **argv, const struct cli_opt *opts, const char *help, int *nargs);
#define CLI_CONTINUE	(-1)
/* cli_args for a command that takes no positional argument. */
int cli_no_args(int argc, char **argv, const struct cli_opt *opts, const char *help);
/* cli_args for "COMMAND VERB ARGS...": *verb (NULL when none) and its
 * arguments in (*vargv)[0..*vargc). */
int cli_verb(int argc, char **argv, const struct cli_opt *opts, const char *help,
	     const char **verb, int *vargc, char ***vargv);

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

/* A backend's health for people: " (down since 2026-12-01 01:02:03 UTC:
 * effective weight 0)", " (up since ...)", " (up)" before any transition. */
void cli_health_text(const struct ts_backend *be, __u32 effective, char *text, size_t len);

#define CLI_HELP_DONE	(-3)	/* cli_parse: help printed */

#endif /* TCPSHIFT_CLI_H */
