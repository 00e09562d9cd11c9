// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The command line both programs share: see cli.h. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "print.h"

int cli_report(const struct ts_err *err)
{
	fprintf(stderr, "tcpshift: %s\n", err->msg);
	return err->status ? err->status : TS_ERR_RUNTIME;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("tcpshift: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'tcpshift %s%s--help')\n", cmd, *cmd ? " " : "");
	return TS_ERR_USAGE;
}

static const struct cli_opt *find_long(const struct cli_opt *opts, const char *name, size_t n)
{
	for (const struct cli_opt *o = opts; o->name; o++)
		if (strlen(o->name) == n && !strncmp(o->name, name, n))
			return o;
	return NULL;
}

static const struct cli_opt *find_short(const struct cli_opt *opts, char c)
{
	for (const struct cli_opt *o = opts; o->name; o++)
		if (o->short_name && o->short_name == c)
			return o;
	return NULL;
}

static bool takes_value(const struct cli_opt *o)
{
	return o->type != CLI_FLAG && o->type != CLI_COUNT && o->type != CLI_HELP;
}

/* Store one option's value by its type: 0, or the exit status of a usage
 * error already printed. */
static int store(const char *cmd, const struct cli_opt *o, const char *val)
{
	struct ts_err err;

	if (o->given)
		*o->given = true;
	switch (o->type) {
	case CLI_FLAG:
		*(bool *)o->dest = true;
		return 0;
	case CLI_COUNT:
		(*(int *)o->dest)++;
		return 0;
	case CLI_STRING:
		*(const char **)o->dest = val;
		return 0;
	case CLI_STRINGS:
		if (*o->count == o->max_count)
			return cli_usage(cmd, "at most %zu --%s", o->max_count, o->name);
		((const char **)o->dest)[(*o->count)++] = val;
		return 0;
	case CLI_U32:
		if (ts_parse_u32(val, o->metavar, o->min, o->max, (__u32 *)o->dest, &err))
			return cli_report(&err);
		return 0;
	case CLI_SEED:
		if (ts_parse_seed(val, (__u32 *)o->dest))
			return cli_usage(cmd,
					 "--%s '%s' is not a 32-bit number: give decimal or 0x hex",
					 o->name, val);
		return 0;
	case CLI_WEIGHT:
		if (ts_parse_weight(val, (__u32 *)o->dest, &err))
			return cli_report(&err);
		return 0;
	case CLI_TABLE_SIZE:
		if (ts_parse_table_size(val, (__u32 *)o->dest, &err))
			return cli_report(&err);
		return 0;
	case CLI_DURATION:
		if (ts_parse_duration(val, (__u64 *)o->dest, &err))
			return cli_report(&err);
		return 0;
	case CLI_ENUM:
		for (int i = 0; o->choices[i]; i++)
			if (!strcmp(o->choices[i], val)) {
				*(int *)o->dest = i;
				return 0;
			}
		return cli_usage(cmd, "--%s '%s': give %s", o->name, val, o->metavar);
	case CLI_HELP:
		break;
	}
	return 0;
}

int cli_parse(int argc, char **argv, const struct cli_opt *opts, const char *help,
	      bool stop_at_positional, int *first)
{
	const char *cmd = argv[0];
	int npos = 0, i, r;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL;
		const struct cli_opt *o;

		if (!strcmp(arg, "--")) {
			i++;
			break;
		}
		if (arg[0] != '-' || !arg[1]) {
			if (stop_at_positional)
				break;
			argv[1 + npos++] = argv[i];
			continue;
		}
		if (arg[1] == '-') {
			size_t n = strcspn(arg + 2, "=");

			o = find_long(opts, arg + 2, n);
			if (!o)
				return cli_usage(cmd, "unknown option '%.*s'", (int)(n + 2), arg);
			if (arg[2 + n])
				val = arg + 3 + n;
			if (val && !takes_value(o))
				return cli_usage(cmd, "option --%s takes no value", o->name);
			if (!val && takes_value(o)) {
				if (i + 1 == argc)
					return cli_usage(cmd, "option --%s needs a value", o->name);
				val = argv[++i];
			}
		} else {
			/* -vv, -jv: flags bundle; -nNAME or -n NAME */
			for (const char *c = arg + 1; *c; c++) {
				o = find_short(opts, *c);
				if (!o)
					return cli_usage(cmd, "unknown option -%c", *c);
				if (!takes_value(o) && c[1]) {
					if (o->type == CLI_HELP)
						goto help;
					r = store(cmd, o, NULL);
					if (r)
						return r;
					continue;
				}
				if (takes_value(o)) {
					if (c[1])
						val = c + 1;
					else if (i + 1 < argc)
						val = argv[++i];
					else
						return cli_usage(cmd, "option -%c needs a value", *c);
				}
				break;
			}
		}
		if (o->type == CLI_HELP)
			goto help;
		r = store(cmd, o, val);
		if (r)
			return r;
	}
	if (stop_at_positional) {
		*first = i;
		return 0;
	}
	/* what follows "--" is positional too */
	for (; i < argc; i++)
		argv[1 + npos++] = argv[i];
	argv[1 + npos] = NULL;
	*first = npos;
	return 0;
help:
	fputs(help, stdout);
	return CLI_HELP_DONE;
}

int cli_args(int argc, char **argv, const struct cli_opt *opts, const char *help, int *nargs)
{
	int r = cli_parse(argc, argv, opts, help, false, nargs);

	return r == CLI_HELP_DONE ? 0 : r ? r : CLI_CONTINUE;
}

int cli_no_args(int argc, char **argv, const struct cli_opt *opts, const char *help)
{
	int nargs, r = cli_args(argc, argv, opts, help, &nargs);

	if (r == CLI_CONTINUE && nargs)
		return cli_usage(argv[0], "unexpected argument '%s'", argv[1]);
	return r;
}

int cli_verb(int argc, char **argv, const struct cli_opt *opts, const char *help,
	     const char **verb, int *vargc, char ***vargv)
{
	int nargs, r = cli_args(argc, argv, opts, help, &nargs);

	*verb = r == CLI_CONTINUE && nargs ? argv[1] : NULL;
	*vargc = nargs - 1;
	*vargv = argv + 2;
	return r;
}

int cli_open_maps(struct cli_ctx *ctx, struct ts_maps *m)
{
	struct ts_err err;

	if (ts_maps_open(m, ctx->pin_dir, &err))
		return cli_report(&err);
	return 0;
}

int cli_open_maps_read(struct cli_ctx *ctx, struct ts_maps *m)
{
	struct ts_err err;

	if (ts_maps_open(m, ctx->pin_dir, &err))
		return cli_report(&err);
	if (ts_maps_lock_shared(m, &err)) {
		ts_maps_close(m);
		return cli_report(&err);
	}
	return 0;
}

void cli_print_json(json_object *obj)
{
	puts(json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(obj);
}

static int verbosity;

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && verbosity < 2)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

static int silent_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

static int enter_netns(const char *name)
{
	char path[256];
	int fd;

	if (strchr(name, '/') || snprintf(path, sizeof(path), "/run/netns/%s", name) >=
					       (int)sizeof(path))
		return cli_usage("", "'%s' is not a network namespace name", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cli_usage("", "network namespace '%s' not found: see 'ip netns list'",
				 name);
	if (setns(fd, CLONE_NEWNET)) {
		fprintf(stderr, "tcpshift: cannot enter network namespace %s: %s\n", name,
			strerror(errno));
		close(fd);
		return TS_ERR_RUNTIME;
	}
	close(fd);
	return 0;
}

/* --version: "tcpshift 0.3.0 (map layout 6)", or with -j
 * {"program":"tcpshift","version":"0.3.0","layout":6}. */
static int print_version(const char *program, bool json)
{
	print_start(stdout, json, 0);
	print_open_object(NULL);
	print_string(PRINT_ANY, "program", "%s ", program);
	print_string(PRINT_ANY, "version", "%s", ts_version());
	print_u64(PRINT_ANY, "layout", " (map layout %llu)\n", TS_ABI_VERSION);
	print_close_object();
	return print_end();
}

int cli_main(int argc, char **argv, const struct cli_command *commands, size_t ncommands,
	     const char *usage)
{
	const char *program = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	bool version = false;
	struct cli_ctx ctx = { .pin_dir = getenv(TS_PIN_DIR_ENV) };
	const struct cli_opt opts[] = {
		{ "pin-dir", 0, CLI_STRING, &ctx.pin_dir },
		{ "netns", 'n', CLI_STRING, &ctx.netns },
		{ "json", 'j', CLI_FLAG, &ctx.json },
		{ "verbose", 'v', CLI_COUNT, &ctx.verbose },
		{ "version", 0, CLI_FLAG, &version },
		CLI_OPT_HELP,
		{},
	};
	struct ts_err err;
	int first, r;

	if (!ctx.pin_dir || !*ctx.pin_dir)
		ctx.pin_dir = TS_DEFAULT_PIN_DIR;
	/* global options end at the command; usage errors name no command */
	argv[0] = "";
	r = cli_parse(argc, argv, opts, usage, true, &first);
	if (r)
		return r == CLI_HELP_DONE ? 0 : r;
	if (version)
		return print_version(program, ctx.json);
	if (first >= argc) {
		fputs(usage, stderr);
		return TS_ERR_USAGE;
	}
	verbosity = ctx.verbose;
	libbpf_set_print(ctx.verbose ? print_libbpf : silent_libbpf);

	for (size_t i = 0; i < ncommands; i++) {
		int cargc = argc - first;
		char **cargv = argv + first;

		if (strcmp(cargv[0], commands[i].name))
			continue;
		/* --help needs neither root nor a namespace. */
		for (int a = 1; a < cargc; a++)
			if (!strcmp(cargv[a], "--help") || !strcmp(cargv[a], "-h"))
				goto run;
		if (ts_check_root(&err) || ts_check_pin_dir(ctx.pin_dir, &err))
			return cli_report(&err);
		if (ctx.netns && (r = enter_netns(ctx.netns)))
			return r;
run:
		return commands[i].run(&ctx, cargc, cargv);
	}
	return cli_usage("", "unknown command '%s'", argv[first]);
}
