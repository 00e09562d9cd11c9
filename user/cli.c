// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers shared by the commands: errors, option parsing, JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"

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

int cli_open_maps(struct ts_ctx *ctx, struct ts_maps *m)
{
	struct ts_err err;

	if (ts_maps_open(m, ctx->pin_dir, &err))
		return cli_report(&err);
	return 0;
}

int cli_open_maps_read(struct ts_ctx *ctx, struct ts_maps *m)
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

static const char *const tcp_states[] = {
	[TS_TCP_SYN_SEEN] = "syn",
	[TS_TCP_ESTABLISHED] = "established",
	[TS_TCP_CLOSING] = "closing",
	[TS_TCP_CLOSED] = "closed",
	[TS_TCP_MIDSTREAM] = "midstream",
};

const char *cli_tcp_state_name(__u8 state)
{
	if (state < sizeof(tcp_states) / sizeof(tcp_states[0]) && tcp_states[state])
		return tcp_states[state];
	return "unknown";
}

int cli_tcp_state_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(tcp_states) / sizeof(tcp_states[0]); i++)
		if (tcp_states[i] && !strcmp(tcp_states[i], name))
			return (int)i;
	return 0;
}

json_object *cli_counters(const struct ts_ctx *ctx, const __u64 counters[TS_CNT_MAX])
{
	json_object *o = json_object_new_object();

	if (!ctx->json)
		printf("counters\n");
	for (int i = 0; i < TS_CNT_MAX; i++) {
		json_object_object_add(o, ts_counter_name(i),
				       json_object_new_int64((int64_t)counters[i]));
		if (!ctx->json)
			printf("  %-24s %llu\n", ts_counter_name(i),
			       (unsigned long long)counters[i]);
	}
	return o;
}

json_object *cli_drain(const struct ts_backend *be, __u64 now, char *text, size_t len)
{
	__u64 left;

	text[0] = '\0';
	if (!be->drain_deadline_ns)
		return NULL;
	left = be->drain_deadline_ns > now ? (be->drain_deadline_ns - now + 999999999ULL) /
						     1000000000ULL
					   : 0;
	snprintf(text, len, left ? " (draining: flows closed in %llus)" :
				   " (drained: remaining flows are closed)",
		 (unsigned long long)left);
	return json_object_new_int64((int64_t)left);
}

void cli_health_text(const struct ts_backend *be, __u32 effective, char *text, size_t len)
{
	char since[32] = "";
	time_t t = (time_t)be->health_since_s;
	struct tm tm;

	text[0] = '\0';
	if (be->health_since_s && gmtime_r(&t, &tm))
		strftime(since, sizeof(since), " since %Y-%m-%d %H:%M:%S UTC", &tm);
	if (be->health == TS_HEALTH_DOWN)
		snprintf(text, len, " (down%s: effective weight %u%s)", since, effective,
			 effective ? ", every backend is down: fail open" : "");
	else
		snprintf(text, len, " (up%s)", since);
}
