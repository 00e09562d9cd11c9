// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Helpers shared by the commands: errors, option parsing, JSON. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
	/* the global options' usage is the program's own: no command name */
	if (strchr(cmd, '/') || !strcmp(cmd, "tcpshift"))
		cmd = "";
	fprintf(stderr, " (see 'tcpshift %s%s--help')\n", cmd, *cmd ? " " : "");
	return TS_ERR_USAGE;
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts,
	       const char *help)
{
	int c, idx = 0;

	opterr = 0;
	c = getopt_long(argc, argv, shortopts, longopts, &idx);
	if (c == 'h') {
		fputs(help, stdout);
		return CLI_HELP_DONE;
	}
	if (c == '?' || c == ':') {
		const char *opt = argv[optind - 1];

		/* a long option: name it as typed, not by its short letter */
		if (!strncmp(opt, "--", 2)) {
			size_t n = strcspn(opt + 2, "=");
			const struct option *lo = NULL;

			for (const struct option *o = longopts; o && o->name; o++)
				if (strlen(o->name) == n && !strncmp(o->name, opt + 2, n))
					lo = o;
			if (lo && lo->has_arg == required_argument && !opt[2 + n])
				cli_usage(argv[0], "option --%s needs a value", lo->name);
			else if (lo && lo->has_arg == no_argument && opt[2 + n])
				cli_usage(argv[0], "option --%s takes no value", lo->name);
			else
				cli_usage(argv[0], "unknown or incomplete option '%.*s'",
					  (int)(n + 2), opt);
		} else if (optopt && c == ':') {
			cli_usage(argv[0], "option -%c needs a value", optopt);
		} else if (optopt && !strchr(shortopts, optopt)) {
			cli_usage(argv[0], "unknown option -%c", optopt);
		} else if (optopt) {
			cli_usage(argv[0], "option -%c needs a value", optopt);
		} else {
			cli_usage(argv[0], "unknown or incomplete option '%s'", opt);
		}
		return -2;
	}
	return c;
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
