// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * follow: how long after a weight command new connections follow it.
 *
 *   follow --connect ADDR:PORT --want NAME [--streak N] [--timeout-ms T] -- CMD [ARG...]
 *
 * Starts CMD (the weight change, e.g. "nsenter --net=... tcpshift weight ..."),
 * and from the same instant opens connections to ADDR:PORT one after another,
 * each sending "p\n" to a `ts-echo server` and reading its "NAME p" answer.
 * It stops when the last N connections (default 50) were all answered by
 * NAME, or after T ms (default 10000). Prints one line:
 *
 *   cmd_ms C cmd_status S follow_ms F last_other_ms L probes P errors E
 *
 * follow_ms: from CMD's start to the start of the first connection of the
 * final all-NAME streak (every connection opened after it followed);
 * last_other_ms: start of the last connection answered by another backend
 * (-1 if none). follow_ms is -1 when the streak never came. Exit: 0, 1 no
 * streak within the time, 2 usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* One probe: the first word of the server's answer in name, or -1. */
static int probe(const struct sockaddr_storage *ss, socklen_t len, char *name, size_t nlen,
		 int timeout_ms)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	char buf[256];
	size_t got = 0;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)ss, len) || write(fd, "p\n", 2) != 2)
		goto fail;
	while (got < sizeof(buf) - 1) {
		ssize_t r = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (r <= 0)
			goto fail;
		got += (size_t)r;
		if (memchr(buf, '\n', got))
			break;
	}
	buf[got] = '\0';
	buf[strcspn(buf, " \n")] = '\0';
	snprintf(name, nlen, "%.63s", buf);
	close(fd);
	return 0;
fail:
	close(fd);
	return -1;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "want", required_argument, NULL, 'w' },
		{ "streak", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{},
	};
	const char *connect_to = NULL, *want = NULL;
	int streak = 50, timeout_ms = 10000, c, status = -1, run = 0, probes = 0, errors = 0;
	double t0, cmd_ms = -1, follow_ms = -1, last_other = -1, run_start = 0;
	struct sockaddr_storage ss;
	socklen_t len;
	bool cmd_done = false;
	pid_t pid;

	while ((c = getopt_long(argc, argv, "+", lo, NULL)) != -1) {
		switch (c) {
		case 'c':
			connect_to = optarg;
			break;
		case 'w':
			want = optarg;
			break;
		case 's':
			streak = atoi(optarg);
			break;
		case 't':
			timeout_ms = atoi(optarg);
			break;
		default:
			return 2;
		}
	}
	if (!connect_to || !want || streak < 1 || timeout_ms < 1 || optind >= argc ||
	    parse_ep(connect_to, &ss, &len)) {
		fprintf(stderr, "usage: follow --connect ADDR:PORT --want NAME [--streak N] "
				"[--timeout-ms T] -- CMD [ARG...]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	t0 = now_ms();
	pid = fork();
	if (pid < 0) {
		perror("follow: fork");
		return 1;
	}
	if (!pid) {
		execvp(argv[optind], argv + optind);
		_exit(127);
	}
	while (now_ms() - t0 < timeout_ms) {
		double start = now_ms() - t0;
		char name[64];
		int ws;

		if (!cmd_done && waitpid(pid, &ws, WNOHANG) == pid) {
			cmd_done = true;
			cmd_ms = now_ms() - t0;
			status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
		}
		probes++;
		if (probe(&ss, len, name, sizeof(name), 1000)) {
			errors++;
			run = 0;
			continue;
		}
		if (strcmp(name, want)) {
			last_other = start;
			run = 0;
			continue;
		}
		if (!run++)
			run_start = start;
		if (run >= streak && cmd_done) {
			follow_ms = run_start;
			break;
		}
	}
	if (!cmd_done) {
		int ws;

		waitpid(pid, &ws, 0);
		cmd_ms = now_ms() - t0;
		status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
	}
	printf("cmd_ms %.3f cmd_status %d follow_ms %.3f last_other_ms %.3f probes %d errors %d\n",
	       cmd_ms, status, follow_ms, last_other, probes, errors);
	return follow_ms < 0;
}
