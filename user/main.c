// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift: global options, then one command. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>

#include "cli.h"

static const struct {
	const char *name;
	int (*run)(struct ts_ctx *ctx, int argc, char **argv);
} commands[] = {
	{ "load", cmd_load },	  { "unload", cmd_unload }, { "status", cmd_status },
	{ "service", cmd_service }, { "backend", cmd_backend }, { "weight", cmd_weight },
	{ "drain", cmd_drain },	  { "flows", cmd_flows },   { "stats", cmd_stats },
	{ "pick", cmd_pick },	  { "rollout", cmd_rollout },
	{ "export", cmd_export },   { "import", cmd_import },	{ "health", cmd_health },
	{ "agent", cmd_agent },
};

static const char usage[] =
	"Usage: tcpshift [GLOBAL OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Weighted TCP load balancing in the kernel (tc/eBPF, NAT mode): new connections\n"
	"split by weight, established connections stay on their backend.\n"
	"\n"
	"Commands:\n"
	"  load --dev IFACE [--dev IFACE...]   load and attach (again: upgrade in place)\n"
	"  unload                              detach everywhere, remove the pinned maps\n"
	"  status                              devices, programs, map fill, counters\n"
	"  service add NAME VIP:PORT [--table-size M] | service del NAME | service list\n"
	"  backend add SERVICE NAME ADDR:PORT [--weight W] | backend del SERVICE NAME\n"
	"  weight SERVICE NAME=W [NAME=W...]   change weights in one atomic switch\n"
	"  drain SERVICE NAME [--timeout DUR]  weight 0: no new flows, old ones stay\n"
	"  flows [SERVICE] [--backend NAME] [--state STATE]   pinned flows\n"
	"  stats [SERVICE]                     per-backend weights, shares and traffic\n"
	"  pick SERVICE CLIENT:PORT...         the backend a new connection gets now\n"
	"  rollout SERVICE FROM TO [OPTIONS]   shift step by step, gated on TO's failures\n"
	"  export                              the whole configuration as a JSON document\n"
	"  import [--dry-run] FILE             make the configuration equal to a document\n"
	"  health SERVICE --check tcp|none [--interval D] [--timeout D] [--rise N] [--fall N]\n"
	"                                      health checks of its backends (by the agent)\n"
	"  agent [--metrics ADDR:PORT] [--config etcd://HOST:PORT/KEY]\n"
	"                                      health checks, metrics, configuration from etcd\n"
	"\n"
	"Global options:\n"
	"  --pin-dir DIR   maps live under DIR (default /sys/fs/bpf/tcpshift,\n"
	"                  env TCPSHIFT_PIN_DIR)\n"
	"  -n, --netns NAME  run in network namespace /run/netns/NAME (like ip -n)\n"
	"  -j, --json      JSON output\n"
	"  -v, --verbose   show libbpf's messages\n"
	"  -h, --help      this help; 'tcpshift COMMAND --help' for a command\n"
	"\n"
	"Example: shift 10% of new connections to v2\n"
	"  tcpshift load --dev eth0 --dev eth1\n"
	"  tcpshift service add web 198.18.100.1:8008\n"
	"  tcpshift backend add web v1 198.18.2.11:8008 --weight 90\n"
	"  tcpshift backend add web v2 198.18.2.12:8008 --weight 10\n"
	"  tcpshift weight web v1=0 v2=100\n"
	"\n"
	"Exit status: 0 success, 1 runtime error, 2 usage error.\n";

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

int main(int argc, char **argv)
{
	struct ts_ctx ctx = { .pin_dir = getenv(TS_PIN_DIR_ENV) };
	const struct cli_opt opts[] = {
		{ "pin-dir", 0, CLI_STRING, &ctx.pin_dir },
		{ "netns", 'n', CLI_STRING, &ctx.netns },
		{ "json", 'j', CLI_FLAG, &ctx.json },
		{ "verbose", 'v', CLI_COUNT, &ctx.verbose },
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
	if (first >= argc) {
		fputs(usage, stderr);
		return TS_ERR_USAGE;
	}
	verbosity = ctx.verbose;
	libbpf_set_print(ctx.verbose ? print_libbpf : silent_libbpf);

	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
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
