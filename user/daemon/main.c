// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* tcpshiftd: the long-running commands of tcpshift, which `tcpshift agent`,
 * `tcpshift sync` and `tcpshift rollout` run (cmd/main.c). */
#include "daemon.h"

static const struct cli_command commands[] = {
	{ "agent", cmd_agent },
	{ "sync", cmd_sync },
	{ "rollout", cmd_rollout },
};

static const char usage[] =
	"Usage: tcpshiftd [GLOBAL OPTIONS] agent|sync|rollout [ARGS]\n"
	"\n"
	"The long-running commands of tcpshift, in a program of their own so that the\n"
	"one-shot commands load none of their libraries. 'tcpshift agent', 'tcpshift\n"
	"sync' and 'tcpshift rollout' run this program; see 'tcpshift --help' and\n"
	"'tcpshift COMMAND --help'.\n"
	"\n"
	"Global options: --pin-dir DIR, -n/--netns NAME, -j/--json, -v/--verbose,\n"
	"--version, as for tcpshift.\n";

int main(int argc, char **argv)
{
	return cli_main(argc, argv, commands, sizeof(commands) / sizeof(commands[0]), usage);
}
