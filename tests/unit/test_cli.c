// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The declarative option parser (user/lib/cli.c, cli_parse): typed options from a
 * table, positionals anywhere, "--name=value", bundled short flags, "--",
 * and usage errors named as the operator typed them.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "unit.h"

struct load_like {
	const char	*devs[3];
	size_t		ndevs;
	__u32		max_flows, seed;
	bool		seed_set, dry;
	int		forward, verbose;
	__u64		timeout;
};

/* Parse a command line (words separated by spaces) as a command with
 * options like load's; returns cli_parse's result, the positionals in pos. */
static int parse(const char *line, struct load_like *o, char pos[][32], int *npos,
		 bool stop_at_positional)
{
	static const char *const modes[] = { "stack", "fib", NULL };
	const struct cli_opt opts[] = {
		{ "dev", 'd', CLI_STRINGS, o->devs, .count = &o->ndevs, .max_count = 3 },
		{ "max-flows", 0, CLI_U32, &o->max_flows, .metavar = "--max-flows", .min = 1024,
		  .max = 1U << 27 },
		{ "seed", 0, CLI_SEED, &o->seed, &o->seed_set },
		{ "forward", 0, CLI_ENUM, &o->forward, .metavar = "fib or stack", .choices = modes },
		{ "dry-run", 0, CLI_FLAG, &o->dry },
		{ "verbose", 'v', CLI_COUNT, &o->verbose },
		{ "timeout", 't', CLI_DURATION, &o->timeout },
		CLI_OPT_HELP,
		{},
	};
	char buf[256], *argv[32];
	int argc = 0, first = 0, r;

	memset(o, 0, sizeof(*o));
	o->forward = -1;
	snprintf(buf, sizeof(buf), "cmd %s", line);
	for (char *t = strtok(buf, " "); t && argc < 31; t = strtok(NULL, " "))
		argv[argc++] = t;
	argv[argc] = NULL;
	r = cli_parse(argc, argv, opts, "help text\n", stop_at_positional, &first);
	*npos = 0;
	if (r)
		return r;
	if (stop_at_positional)
		for (int i = first; i < argc; i++)
			snprintf(pos[(*npos)++], 32, "%s", argv[i]);
	else
		for (int i = 1; i <= first; i++)
			snprintf(pos[(*npos)++], 32, "%s", argv[i]);
	return 0;
}

static void options_anywhere_typed(void **state)
{
	struct load_like o;
	char pos[8][32];
	int n;

	ASSERT_EQ(parse("a --dev eth0 b --max-flows=2048 -d eth1 --seed 010 c --forward fib "
			"--dry-run -vv -t 5s",
			&o, pos, &n, false),
		  0, "parse");
	ASSERT_EQ(n, 3, "positionals");
	ASSERT_TRUE(!strcmp(pos[0], "a") && !strcmp(pos[1], "b") && !strcmp(pos[2], "c"),
		    "positionals in order: %s %s %s", pos[0], pos[1], pos[2]);
	ASSERT_EQ(o.ndevs, 2, "--dev twice");
	ASSERT_TRUE(!strcmp(o.devs[0], "eth0") && !strcmp(o.devs[1], "eth1"), "devices");
	ASSERT_EQ(o.max_flows, 2048, "--max-flows=2048");
	ASSERT_EQ(o.seed, 10, "--seed 010 is decimal");
	ASSERT_TRUE(o.seed_set && o.dry, "given flags");
	ASSERT_EQ(o.forward, 1, "--forward fib");
	ASSERT_EQ(o.verbose, 2, "-vv");
	ASSERT_EQ(o.timeout, 5000000000ULL, "-t 5s");
	/* "--" ends the options; "-" alone is a positional */
	ASSERT_EQ(parse("x -- --dev -", &o, pos, &n, false), 0, "--");
	ASSERT_TRUE(n == 3 && !strcmp(pos[1], "--dev") && !strcmp(pos[2], "-") && !o.ndevs,
		    "after --: %d positionals", n);
	/* global options stop at the command */
	ASSERT_EQ(parse("-v load --dev x", &o, pos, &n, true), 0, "stop at the command");
	ASSERT_TRUE(n == 3 && !strcmp(pos[0], "load") && o.verbose == 1 && !o.ndevs,
		    "the command and its arguments are left alone");
	ASSERT_EQ(parse("--help", &o, pos, &n, false), CLI_HELP_DONE, "--help");
}

static void usage_errors(void **state)
{
	static const char *const bad[] = {
		"--max-flows",		/* missing value: named as typed */
		"--max-flows 12",	/* out of range */
		"--seed 0x",		"--seed -1",	"--forward xdp",
		"--dry-run=1",		/* a flag takes no value */
		"--bogus",		"-x",		"-t",
		"--dev a --dev b --dev c --dev d",	/* at most 3 */
		"--timeout 5parsecs",
	};
	struct load_like o;
	char pos[8][32];
	int n;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		ASSERT_EQ(parse(bad[i], &o, pos, &n, false), TS_ERR_USAGE, bad[i]);
}

int run_cli_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(options_anywhere_typed),
		cmocka_unit_test(usage_errors),
	};

	return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
