/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The command line both programs share (tcpshift, the one-shot commands, and
 * tcpshiftd, the daemons): global options, the command table, declared
 * options, errors as one line on stderr, and opening the pinned maps.
 */
#ifndef TCPSHIFT_CLI_H
#define TCPSHIFT_CLI_H

#include <stdbool.h>
#include <json-c/json.h>

#include "libtcpshift.h"

/* The global options, given before the command. */
struct cli_ctx {
	const char	*pin_dir;
	const char	*netns;
	bool		json;
	int		verbose;
};

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
int cli_open_maps(struct cli_ctx *ctx, struct ts_maps *m);
/* The same for a reader: holds the lock shared, so that what it reads is one
 * configuration, never a mix of two (changes hold it exclusive). */
int cli_open_maps_read(struct cli_ctx *ctx, struct ts_maps *m);
/* Print and free a JSON value, one line. */
void cli_print_json(json_object *obj);

/* One command: its name and what runs it; argv[0] is the command's name.
 * Each returns the exit status: 0, 1 (runtime) or 2 (usage). */
struct cli_command {
	const char	*name;
	int		(*run)(struct cli_ctx *ctx, int argc, char **argv);
};

/* A program's main: the global options, then the command named next, run
 * as root and in the namespace of -n (--help needs neither). */
int cli_main(int argc, char **argv, const struct cli_command *commands, size_t ncommands,
	     const char *usage);

#define CLI_HELP_DONE	(-3)	/* cli_parse: help printed */

#endif /* TCPSHIFT_CLI_H */
