// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * rr: request/response load from one client, for tools/bench/local.sh.
 *
 *   rr --connect ADDR:PORT --seconds S --new        connect, "ping\n", one reply
 *                                                   line, close; again for S s
 *   rr --connect ADDR:PORT --seconds S --keepalive  one connection, "ping\n" and
 *                                                   its reply line, again for S s
 *
 * Prints one line: "count N per_s R p50_us A p99_us B errors E", the
 * latency being one whole exchange (with --new: connect to close). One
 * thread, one exchange at a time: it measures the path's latency and the
 * rate it allows, not a server's capacity. The server is `ts-echo server`.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "endpoint.h"

#define MAX_SAMPLES (1 << 22)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int open_conn(const struct sockaddr_storage *ss, socklen_t len)
{
	int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 2 };

	if (fd < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)ss, len)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* "ping\n" and one reply line; 0 or -1. */
static int ping(int fd)
{
	char buf[256];
	size_t got = 0;

	if (send(fd, "ping\n", 5, MSG_NOSIGNAL) != 5)
		return -1;
	while (got < sizeof(buf)) {
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);

		if (n <= 0)
			return -1;
		got += (size_t)n;
		if (memchr(buf, '\n', got))
			return 0;
	}
	return -1;
}

static int cmp(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	const char *connect_to = NULL;
	double seconds = 0, start, end, t;
	bool keepalive = false, have_mode = false;
	unsigned long n = 0, errors = 0;
	float *lat;
	int fd = -1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--connect") && i + 1 < argc)
			connect_to = argv[++i];
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--new") || !strcmp(argv[i], "--keepalive"))
			keepalive = argv[i][2] == 'k', have_mode = true;
		else
			goto usage;
	}
	if (!connect_to || seconds <= 0 || seconds > 600 || !have_mode ||
	    parse_ep(connect_to, &ss, &len))
		goto usage;
	lat = malloc(MAX_SAMPLES * sizeof(*lat));
	if (!lat)
		return 1;
	start = now_us();
	end = start + seconds * 1e6;
	for (t = start; t < end && n < MAX_SAMPLES; ) {
		double t0 = t;
		int r;

		if (fd < 0)
			fd = open_conn(&ss, len);
		r = fd < 0 ? -1 : ping(fd);
		if (fd >= 0 && (!keepalive || r)) {
			close(fd);
			fd = -1;
		}
		t = now_us();
		if (r)
			errors++;
		else
			lat[n++] = (float)(t - t0);
		if (errors > 1000)
			break;
	}
	qsort(lat, n, sizeof(*lat), cmp);
	printf("count %lu per_s %.0f p50_us %.1f p99_us %.1f errors %lu\n", n,
	       n / ((t - start) / 1e6), n ? lat[n / 2] : 0.0, n ? lat[n * 99 / 100] : 0.0, errors);
	free(lat);
	return 0;
usage:
	fprintf(stderr, "usage: rr --connect ADDR:PORT --seconds S --new|--keepalive\n");
	return 2;
}
