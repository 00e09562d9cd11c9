// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshift: global options, then one command. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

/*
 * The daemons (agent, sync, rollout) are tcpshiftd, a program of their own
 * installed beside this one: their libraries (libcurl, libmicrohttpd,
 * libcrypto) are loaded by them alone, and a one-shot command starts in a
 * few milliseconds. `tcpshift agent ...` execs it, keeping the process (a
 * unit's main PID, a test's $!) and the network namespace already entered.
 */
static int run_daemon(struct cli_ctx *ctx, int argc, char **argv)
{
	char self[PATH_MAX], path[PATH_MAX + 16];
	char *args[argc + 8];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;
	int k = 0;

	if (n < 0 || n >= (ssize_t)sizeof(self) - 1) {
		fprintf(stderr, "tcpshift: cannot find this program's own path: %s\n",
			n < 0 ? strerror(errno) : "too long");
		return TS_ERR_RUNTIME;
	}
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/tcpshiftd", self);
	args[k++] = path;
	args[k++] = "--pin-dir";
	args[k++] = (char *)ctx->pin_dir;
	if (ctx->json)
		args[k++] = "--json";
	for (int v = 0; v < ctx->verbose && v < 2; v++)
		args[k++] = "--verbose";
	for (int i = 0; i < argc; i++)
		args[k++] = argv[i];
	args[k] = NULL;
	execv(path, args);
	fprintf(stderr, "tcpshift: cannot run %s for '%s': %s: install tcpshiftd beside "
		"tcpshift (make install)\n", path, argv[0], strerror(errno));
	return TS_ERR_RUNTIME;
}

static const struct cli_command commands[] = {
	{ "load", cmd_load },	  { "unload", cmd_unload }, { "status", cmd_status },
	{ "service", cmd_service }, { "backend", cmd_backend }, { "weight", cmd_weight },
	{ "drain", cmd_drain },	  { "flows", cmd_flows },   { "stats", cmd_stats },
	{ "pick", cmd_pick },	  { "export", cmd_export }, { "import", cmd_import },
	{ "health", cmd_health }, { "rollout", run_daemon }, { "agent", run_daemon },
	{ "sync", run_daemon },	  { "top", cmd_top },	    { "history", cmd_history },
	{ "undo", cmd_undo },	  { "restore", cmd_restore }, { "downgrade", cmd_downgrade },
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
	"  downgrade --to-layout N [--accept-loss]   pinned maps to the previous release's\n"
	"  status                              devices, programs, map fill, counters\n"
	"  service add NAME VIP:PORT [--table-size M] | service del NAME | service list\n"
	"  backend add SERVICE NAME ADDR:PORT [--weight W] | backend del SERVICE NAME\n"
	"  weight SERVICE NAME=W [NAME=W...]   change weights in one atomic switch\n"
	"  drain SERVICE NAME [--timeout DUR]  weight 0: no new flows, old ones stay\n"
	"  flows [SERVICE] [--backend NAME] [--state STATE]   pinned flows\n"
	"  stats [SERVICE]                     per-backend weights, shares and traffic\n"
	"  pick SERVICE CLIENT:PORT...         the backend a new connection gets now\n"
	"  top [SERVICE]                       live per-backend rates, health, rollout\n"
	"  rollout SERVICE FROM TO [OPTIONS]   shift step by step, gated on TO's failures\n"
	"  export                              the whole configuration as a JSON document\n"
	"  import [--dry-run] FILE             make the configuration equal to a document\n"
	"  history                             the journal of changes: who, when, what\n"
	"  undo [N] [--dry-run]                the configuration before the last change (or N)\n"
	"  restore [--dry-run]                 the journal's last configuration, after a reboot\n"
	"  health SERVICE --check tcp|none [--interval D] [--timeout D] [--rise N] [--fall N]\n"
	"                                      health checks of its backends (by the agent)\n"
	"  agent [--metrics ADDR:PORT] [--config etcd://HOST:PORT/KEY]\n"
	"                                      health checks, metrics, status page, etcd config\n"
	"  sync --listen ADDR:PORT --peer ADDR:PORT... --key FILE  share flow pins\n"
	"\n"
	"Global options:\n"
	"  --pin-dir DIR   maps live under DIR (default /sys/fs/bpf/tcpshift,\n"
	"                  env TCPSHIFT_PIN_DIR)\n"
	"  -n, --netns NAME  run in network namespace /run/netns/NAME (like ip -n)\n"
	"  -j, --json      JSON output\n"
	"  -v, --verbose   show libbpf's messages\n"
	"  -h, --help      this help; 'tcpshift COMMAND --help' for a command\n"
	"  --version       this tcpshift's version and map layout (status: the running\n"
	"                  object's)\n"
	"\n"
	"Example: shift 10% of new connections to v2\n"
	"  tcpshift load --dev eth0 --dev eth1\n"
	"  tcpshift service add web 198.18.100.1:8008\n"
	"  tcpshift backend add web v1 198.18.2.11:8008 --weight 90\n"
	"  tcpshift backend add web v2 198.18.2.12:8008 --weight 10\n"
	"  tcpshift weight web v1=0 v2=100\n"
	"\n"
	"Exit status: 0 success, 1 runtime error (an interrupted rollout too), 2 usage\n"
	"error, 3 a rollout rolled back, 4 agent or sync: an address in use.\n";

int main(int argc, char **argv)
{
	return cli_main(argc, argv, commands, sizeof(commands) / sizeof(commands[0]), usage);
}
