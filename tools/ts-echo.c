// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ts-echo: the TCP service and the two clients that tcpshift's end-to-end
 * tests and demo run in their network namespaces.
 *
 *   server  answers every line received on a connection with "NAME <line>\n",
 *           so a client can tell which backend it reached;
 *   count   opens N connections one after another and tallies who answered;
 *   hold    keeps one connection open and relays stdin lines over it, to
 *           watch a long-lived connection while weights change.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN	   8
#define MAX_CONNS	   1024
#define LINE_MAX_LEN	   4096
#define NAME_MAX_LEN	   64
#define MAX_NAMES	   64
#define MAX_REPORTED	   3 /* failed connections described on stderr by count */
#define DEFAULT_TIMEOUT_MS 2000

struct endpoint {
	struct sockaddr_storage ss;
	socklen_t len;
	const char *text;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ts-echo server --name NAME --listen ADDR:PORT [--listen ADDR:PORT...]\n"
		"       ts-echo count --connect ADDR:PORT --n N [--timeout-ms T]\n"
		"       ts-echo hold --connect ADDR:PORT [--timeout-ms T]\n"
		"       ts-echo --help\n"
		"\n"
		"server  answer each line received on a connection with \"NAME <line>\"; runs\n"
		"        until killed\n"
		"count   open N connections one after another (connect, send \"ping\", read one\n"
		"        reply line, close) and print \"NAME COUNT\" per first word of the\n"
		"        replies, sorted, then \"error COUNT\" for connections that failed\n"
		"hold    open one connection, send each stdin line and print each reply line;\n"
		"        print \"closed\" and exit 1 when the connection closes, exit 0 when\n"
		"        stdin closes\n"
		"\n"
		"ADDR:PORT is 198.18.2.11:8008 or [2001:2:2::11]:8008. T is the timeout of\n"
		"one connection (count) or of connecting and of the last replies (hold),\n"
		"default %d ms. Exit status: 0 ran, 1 runtime error, 2 usage error.\n",
		DEFAULT_TIMEOUT_MS);
}

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ts-echo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see ts-echo --help)\n", stderr);
	return 2;
}

static void warn_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("ts-echo: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int parse_port(const char *s, in_port_t *port)
{
	unsigned long v = 0;
	const char *p;

	if (!*s || strlen(s) > 5)
		return -1;
	for (p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

/* "A.B.C.D:PORT" or "[V6]:PORT" */
static int parse_endpoint(const char *s, struct endpoint *ep)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *end;
	bool v6 = s[0] == '[';
	size_t n;

	memset(ep, 0, sizeof(*ep));
	ep->text = s;
	if (v6) {
		end = strchr(s, ']');
		if (!end || end[1] != ':')
			return -1;
		n = (size_t)(end - s - 1);
		colon = end + 1;
		s++;
	} else {
		colon = strchr(s, ':');
		if (!colon || strchr(colon + 1, ':'))
			return -1;
		n = (size_t)(colon - s);
	}
	if (n == 0 || n >= sizeof(host))
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';

	if (v6) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ep->ss;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			return -1;
		if (parse_port(colon + 1, &a6->sin6_port))
			return -1;
		a6->sin6_family = AF_INET6;
		ep->len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ep->ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			return -1;
		if (parse_port(colon + 1, &a4->sin_port))
			return -1;
		a4->sin_family = AF_INET;
		ep->len = sizeof(*a4);
	}
	return 0;
}

/* Wait for events on fd until the deadline: >0 ready, 0 timed out, <0 error. */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	long long left;
	int r;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return 0;
		r = poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		return r;
	}
}

/* A non-blocking socket connected to ep, or -1 with errno set. */
static int connect_by(const struct endpoint *ep, long long deadline)
{
	int fd, err = 0, r;
	socklen_t elen = sizeof(err);

	fd = socket(ep->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (const struct sockaddr *)&ep->ss, ep->len) == 0)
		return fd;
	if (errno != EINPROGRESS)
		goto fail;
	r = wait_fd(fd, POLLOUT, deadline);
	if (r == 0)
		errno = ETIMEDOUT;
	if (r <= 0)
		goto fail;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
		goto fail;
	if (err) {
		errno = err;
		goto fail;
	}
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

static int send_all(int fd, const char *buf, size_t len, long long deadline)
{
	ssize_t n;
	int r;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		r = wait_fd(fd, POLLOUT, deadline);
		if (r == 0)
			errno = ETIMEDOUT;
		if (r <= 0)
			return -1;
	}
	return 0;
}

/* ---- server ------------------------------------------------------------- */

struct conn {
	int fd;
	bool eof; /* the peer will send no more */
	size_t inlen;
	size_t outoff, outlen;
	char in[LINE_MAX_LEN];
	char out[2 * LINE_MAX_LEN];
};

static int listen_on(const struct endpoint *ep)
{
	int fd, one = 1;

	fd = socket(ep->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		goto fail;
	if (ep->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&ep->ss, ep->len) < 0)
		goto fail;
	if (listen(fd, 512) < 0)
		goto fail;
	return fd;
fail:
	one = errno;
	close(fd);
	errno = one;
	return -1;
}

/* Turn the complete lines in c->in into replies in c->out while they fit. */
static void conn_answer(struct conn *c, const char *name, size_t namelen)
{
	size_t start = 0, len, skip, need;
	char *nl;

	while (start < c->inlen) {
		nl = memchr(c->in + start, '\n', c->inlen - start);
		if (nl) {
			len = (size_t)(nl - (c->in + start));
			skip = len + 1;
		} else if (c->eof || (start == 0 && c->inlen == sizeof(c->in))) {
			/* the last line has no newline, or a line too long: answer it whole */
			len = c->inlen - start;
			skip = len;
		} else {
			break;
		}
		need = namelen + 1 + len + 1;
		if (sizeof(c->out) - c->outlen < need && c->outoff > 0) {
			memmove(c->out, c->out + c->outoff, c->outlen - c->outoff);
			c->outlen -= c->outoff;
			c->outoff = 0;
		}
		if (sizeof(c->out) - c->outlen < need)
			break; /* the peer is slow to read: wait for out to drain */
		if (len > 0 && c->in[start + len - 1] == '\r')
			len--;
		memcpy(c->out + c->outlen, name, namelen);
		c->out[c->outlen + namelen] = ' ';
		memcpy(c->out + c->outlen + namelen + 1, c->in + start, len);
		c->outlen += namelen + 1 + len;
		c->out[c->outlen++] = '\n';
		start += skip;
	}
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
}

/* Read, answer, write what can be written. Returns false when c is done. */
static bool conn_serve(struct conn *c, const char *name, size_t namelen, short revents)
{
	ssize_t n;

	if ((revents & (POLLIN | POLLHUP | POLLERR)) && !c->eof && c->inlen < sizeof(c->in)) {
		n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
		if (n > 0)
			c->inlen += (size_t)n;
		else if (n == 0)
			c->eof = true;
		else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return false;
	}
	conn_answer(c, name, namelen);
	while (c->outoff < c->outlen) {
		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
		if (n > 0) {
			c->outoff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return false;
	}
	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	/* done once the peer has finished and everything it sent is answered */
	return !(c->eof && c->inlen == 0 && c->outlen == 0);
}

static int run_server(const char *name, const struct endpoint *eps, int neps)
{
	static struct pollfd pfds[MAX_LISTEN + MAX_CONNS];
	static struct conn *conns[MAX_CONNS];
	int lfds[MAX_LISTEN], nconns = 0, i, fd, r;
	size_t namelen = strlen(name);

	for (i = 0; i < neps; i++) {
		lfds[i] = listen_on(&eps[i]);
		if (lfds[i] < 0) {
			warn_msg("cannot listen on %s: %s", eps[i].text, strerror(errno));
			return 1;
		}
	}
	for (i = 0; i < neps; i++)
		warn_msg("%s listening on %s", name, eps[i].text);

	for (;;) {
		for (i = 0; i < neps; i++) {
			pfds[i].fd = lfds[i];
			pfds[i].events = nconns < MAX_CONNS ? POLLIN : 0;
		}
		for (i = 0; i < nconns; i++) {
			struct conn *c = conns[i];

			pfds[neps + i].fd = c->fd;
			pfds[neps + i].events = 0;
			if (!c->eof && c->inlen < sizeof(c->in))
				pfds[neps + i].events |= POLLIN;
			if (c->outlen > c->outoff)
				pfds[neps + i].events |= POLLOUT;
		}
		r = poll(pfds, (nfds_t)(neps + nconns), -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			warn_msg("poll: %s", strerror(errno));
			return 1;
		}
		/* connections first: accepting below changes the indexes */
		for (i = nconns - 1; i >= 0; i--) {
			short rev = pfds[neps + i].revents;

			if (!rev)
				continue;
			if (conn_serve(conns[i], name, namelen, rev))
				continue;
			close(conns[i]->fd);
			free(conns[i]);
			conns[i] = conns[--nconns];
		}
		for (i = 0; i < neps; i++) {
			if (!(pfds[i].revents & POLLIN))
				continue;
			while (nconns < MAX_CONNS) {
				fd = accept4(lfds[i], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd < 0) {
					if (errno != EAGAIN && errno != EWOULDBLOCK &&
					    errno != EINTR && errno != ECONNABORTED)
						warn_msg("accept: %s", strerror(errno));
					break;
				}
				conns[nconns] = calloc(1, sizeof(struct conn));
				if (!conns[nconns]) {
					close(fd);
					break;
				}
				conns[nconns++]->fd = fd;
			}
		}
	}
}

/* ---- count -------------------------------------------------------------- */

struct tally {
	char name[NAME_MAX_LEN];
	unsigned long count;
};

/* One connection: connect, send "ping\n", read one reply line, close. */
static int exchange(const struct endpoint *ep, int timeout_ms, char *reply, size_t size,
		    const char **what)
{
	long long deadline = now_ms() + timeout_ms;
	size_t len = 0;
	ssize_t n;
	int fd, r, err;

	*what = "connect";
	fd = connect_by(ep, deadline);
	if (fd < 0)
		return -1;
	*what = "send";
	if (send_all(fd, "ping\n", 5, deadline))
		goto fail;
	*what = "reply";
	while (len < size - 1) {
		n = recv(fd, reply + len, size - 1 - len, 0);
		if (n > 0) {
			len += (size_t)n;
			if (memchr(reply, '\n', len))
				break;
			continue;
		}
		if (n == 0) {
			errno = ECONNRESET;
			*what = "reply (closed before a full line)";
			goto fail;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			goto fail;
		r = wait_fd(fd, POLLIN, deadline);
		if (r == 0)
			errno = ETIMEDOUT;
		if (r <= 0)
			goto fail;
	}
	reply[len] = '\0';
	close(fd);
	return 0;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

static int tally_cmp(const void *a, const void *b)
{
	return strcmp(((const struct tally *)a)->name, ((const struct tally *)b)->name);
}

static void tally_add(struct tally *t, int *nt, unsigned long *errors, const char *word,
		      size_t wlen)
{
	int i;

	if (wlen == 0 || wlen >= NAME_MAX_LEN) {
		(*errors)++;
		return;
	}
	for (i = 0; i < *nt; i++) {
		if (strlen(t[i].name) == wlen && !memcmp(t[i].name, word, wlen)) {
			t[i].count++;
			return;
		}
	}
	if (*nt == MAX_NAMES) {
		(*errors)++;
		return;
	}
	memcpy(t[*nt].name, word, wlen);
	t[*nt].name[wlen] = '\0';
	t[(*nt)++].count = 1;
}

static int run_count(const struct endpoint *ep, unsigned long n, int timeout_ms)
{
	static struct tally t[MAX_NAMES];
	char reply[LINE_MAX_LEN];
	unsigned long i, errors = 0, reported = 0;
	const char *what;
	int nt = 0, k;

	for (i = 0; i < n; i++) {
		if (exchange(ep, timeout_ms, reply, sizeof(reply), &what)) {
			if (reported++ < MAX_REPORTED)
				warn_msg("connection %lu to %s: %s: %s", i + 1, ep->text, what,
					 strerror(errno));
			errors++;
			continue;
		}
		tally_add(t, &nt, &errors, reply, strcspn(reply, " \r\n"));
	}
	qsort(t, (size_t)nt, sizeof(t[0]), tally_cmp);
	for (k = 0; k < nt; k++)
		printf("%s %lu\n", t[k].name, t[k].count);
	printf("error %lu\n", errors);
	return fflush(stdout) ? 1 : 0;
}

/* ---- hold --------------------------------------------------------------- */

/* Print the complete lines of buf, keep the rest. */
static void print_lines(char *buf, size_t *len)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(buf + start, '\n', *len - start))) {
		fwrite(buf + start, 1, (size_t)(nl - (buf + start)) + 1, stdout);
		fflush(stdout);
		start = (size_t)(nl - buf) + 1;
	}
	if (start == 0 && *len == LINE_MAX_LEN) { /* a line too long: print it in parts */
		fwrite(buf, 1, *len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		start = *len;
	}
	memmove(buf, buf + start, *len - start);
	*len -= start;
}

static int run_hold(const struct endpoint *ep, int timeout_ms)
{
	char in[LINE_MAX_LEN], rx[LINE_MAX_LEN];
	size_t inlen = 0, rxlen = 0, start;
	long long drain_deadline = 0;
	struct pollfd pfd[2];
	bool stdin_open = true;
	ssize_t n;
	char *nl;
	int fd, r, timeout;

	fd = connect_by(ep, now_ms() + timeout_ms);
	if (fd < 0) {
		warn_msg("cannot connect to %s: %s", ep->text, strerror(errno));
		return 1;
	}
	for (;;) {
		if (!stdin_open && now_ms() >= drain_deadline) {
			warn_msg("the last replies did not come within %d ms", timeout_ms);
			break;
		}
		pfd[0].fd = stdin_open ? 0 : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = fd;
		pfd[1].events = POLLIN;
		timeout = -1;
		if (!stdin_open)
			timeout = (int)(drain_deadline - now_ms());
		if (!stdin_open && timeout < 0)
			timeout = 0;
		r = poll(pfd, 2, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			warn_msg("poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents) {
			n = recv(fd, rx + rxlen, sizeof(rx) - rxlen, 0);
			if (n > 0) {
				rxlen += (size_t)n;
				print_lines(rx, &rxlen);
			} else if (n == 0 ||
				   (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
				if (rxlen)
					printf("%.*s\n", (int)rxlen, rx);
				/* after stdin closed, the server closing is the normal end */
				if (stdin_open)
					printf("closed\n");
				fflush(stdout);
				close(fd);
				return stdin_open ? 1 : 0;
			}
		}
		if (pfd[0].revents) {
			n = read(0, in + inlen, sizeof(in) - inlen);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				/* send what is left, then read the replies until the
				 * server, having answered everything, closes too */
				stdin_open = false;
				drain_deadline = now_ms() + timeout_ms;
				if (inlen) { /* the last line has no newline */
					in[inlen++] = '\n';
					if (send_all(fd, in, inlen, now_ms() + timeout_ms))
						goto send_failed;
					inlen = 0;
				}
				shutdown(fd, SHUT_WR);
				continue;
			}
			inlen += (size_t)n;
			start = 0;
			while ((nl = memchr(in + start, '\n', inlen - start))) {
				if (send_all(fd, in + start, (size_t)(nl - (in + start)) + 1,
					     now_ms() + timeout_ms))
					goto send_failed;
				start = (size_t)(nl - in) + 1;
			}
			if (start == 0 && inlen == sizeof(in)) {
				/* a line too long: send it as it is, answered in parts */
				if (send_all(fd, in, inlen, now_ms() + timeout_ms))
					goto send_failed;
				start = inlen;
			}
			memmove(in, in + start, inlen - start);
			inlen -= start;
		}
	}
	close(fd);
	return 0;
send_failed:
	warn_msg("send to %s: %s", ep->text, strerror(errno));
	printf("closed\n");
	fflush(stdout);
	close(fd);
	return 1;
}

/* ---- main --------------------------------------------------------------- */

static int parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end || *out < min || *out > max)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'N'},
	    {"listen", required_argument, NULL, 'l'},
	    {"connect", required_argument, NULL, 'c'},
	    {"n", required_argument, NULL, 'n'},
	    {"timeout-ms", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct endpoint listen_eps[MAX_LISTEN], connect_ep;
	const char *mode, *name = NULL;
	unsigned long n = 0, timeout_ms = DEFAULT_TIMEOUT_MS;
	bool have_connect = false, have_n = false, have_timeout = false;
	int nlisten = 0, opt;

	if (argc < 2)
		return usage_error("missing mode: server, count or hold");
	mode = argv[1];
	if (!strcmp(mode, "--help") || !strcmp(mode, "-h")) {
		usage(stdout);
		return 0;
	}
	if (strcmp(mode, "server") && strcmp(mode, "count") && strcmp(mode, "hold"))
		return usage_error("unknown mode '%s': use server, count or hold", mode);

	opterr = 0;
	optind = 2;
	while ((opt = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (opt) {
		case 'N':
			if (!*optarg || strlen(optarg) >= NAME_MAX_LEN ||
			    strpbrk(optarg, " \t\r\n"))
				return usage_error("--name must be 1-%d characters, no spaces",
						   NAME_MAX_LEN - 1);
			name = optarg;
			break;
		case 'l':
			if (nlisten == MAX_LISTEN)
				return usage_error("at most %d --listen", MAX_LISTEN);
			if (parse_endpoint(optarg, &listen_eps[nlisten]))
				return usage_error("bad address '%s': use 198.18.2.11:8008 or "
						   "[2001:2:2::11]:8008",
						   optarg);
			nlisten++;
			break;
		case 'c':
			if (parse_endpoint(optarg, &connect_ep))
				return usage_error("bad address '%s': use 198.18.2.11:8008 or "
						   "[2001:2:2::11]:8008",
						   optarg);
			have_connect = true;
			break;
		case 'n':
			if (parse_ulong(optarg, 1, 10000000, &n))
				return usage_error("--n must be an integer from 1 to 10000000");
			have_n = true;
			break;
		case 't':
			if (parse_ulong(optarg, 1, 3600000, &timeout_ms))
				return usage_error("--timeout-ms must be an integer from 1 to "
						   "3600000");
			have_timeout = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			return usage_error("option %s needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);

	signal(SIGPIPE, SIG_IGN);
	if (!strcmp(mode, "server")) {
		if (!name || !nlisten)
			return usage_error("server needs --name and --listen");
		if (have_connect || have_n || have_timeout)
			return usage_error("server takes only --name and --listen");
		return run_server(name, listen_eps, nlisten);
	}
	if (name || nlisten)
		return usage_error("%s takes no --name or --listen", mode);
	if (!have_connect)
		return usage_error("%s needs --connect ADDR:PORT", mode);
	if (!strcmp(mode, "count")) {
		if (!have_n)
			return usage_error("count needs --n N");
		return run_count(&connect_ep, n, (int)timeout_ms);
	}
	if (have_n)
		return usage_error("hold takes no --n");
	return run_hold(&connect_ep, (int)timeout_ms);
}
