// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ts-echo: the TCP service and the two clients that tcpshift's end-to-end
 * tests and demo run in their network namespaces.
 *
 *   server  answers every line received on a connection with "NAME <line>\n",
 *           so a client can tell which backend it reached;
 *   count   opens N connections one after another and tallies who answered;
 *   hold    keeps one connection open and relays stdin lines over it, to
 *           watch a long-lived connection while weights change;
 *   holdmany keeps many connections open, driven by commands on stdin, and
 *           reports per connection which backend answers (or how it ended);
 *   synflood sends spoofed TCP SYNs from a range of source addresses through
 *           a raw socket (IPv4), to fill a load balancer's tables.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_LISTEN	   8
#define MAX_CONNS	   1024
#define LINE_MAX_LEN	   32768
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
		"       ts-echo count --connect ADDR:PORT --n N [--timeout-ms T] [--sport P]\n"
		"       ts-echo hold --connect ADDR:PORT [--timeout-ms T]\n"
		"       ts-echo holdmany --connect ADDR:PORT [--n N] [--timeout-ms T]\n"
		"       ts-echo synflood --to A.B.C.D:PORT --n N (--src-net A.B.C.D/LEN |\n"
		"                        --from A.B.C.D:PORT) [--flags LIST] [--repeat R]\n"
		"                        [--lag L] [--max-seconds S] [--seed X] [--ttl T]\n"
		"                        [--bad-checksum]\n"
		"       ts-echo --help\n"
		"\n"
		"server  answer each line received on a connection with \"NAME <line>\"; runs\n"
		"        until killed\n"
		"count   open N connections one after another (connect, send \"ping\", read one\n"
		"        reply line, close) and print \"NAME COUNT\" per first word of the\n"
		"        replies, sorted, then \"error COUNT\" for connections that failed;\n"
		"        with --sport, each from local port P (SO_REUSEADDR)\n"
		"hold    open one connection, send each stdin line and print each reply line;\n"
		"        print \"closed\" and exit 1 when the connection closes, exit 0 when\n"
		"        stdin closes\n"
		"holdmany open N connections (default 0), each greeted with \"hello-I\"; then\n"
		"        read commands on stdin, one a line; each is answered by lines\n"
		"        \"conn I ORIG RESULT\" and a last line starting \"end\":\n"
		"          open [ADDR:PORT]  one more connection (default: --connect)\n"
		"          send [TAG]        send \"TAG-I\" (default TAG ping) on every open\n"
		"                            connection and wait for the replies\n"
		"          send-to I [TAG]   the same on connection I only\n"
		"          status            every connection's state, nothing sent\n"
		"          close I           close connection I (its state: dropped)\n"
		"          peer I            \"conn I ORIG PEER LOCAL\": connection I's\n"
		"                            getpeername and getsockname, ADDR:PORT\n"
		"          timeout MS        T of the commands that follow\n"
		"          quit              close everything and exit (also at end of stdin)\n"
		"        I counts from 1; ORIG is the backend that answered the greeting;\n"
		"        RESULT is the name of the backend that answered TAG-I, or reset\n"
		"        (a RST arrived, now or earlier), closed (the peer closed), timeout\n"
		"        (no reply within T), garbled (a reply that does not echo TAG-I),\n"
		"        error:WHAT; status shows open instead of a name. \"end OK BAD\"\n"
		"        counts the connections answered by their ORIG and the others\n"
		"synflood send N spoofed TCP segments to A.B.C.D:PORT from sources in the\n"
		"        given network, or all from one address:port (--from: a blind\n"
		"        attacker who knows a client's 4-tuple), through a raw socket with\n"
		"        both checksums computed; segment i carries the flags of LIST's\n"
		"        (i mod its length)th entry, from the letters F S R P A (default S;\n"
		"        e.g. S,A,R,FA), random sequence and acknowledgment numbers; each\n"
		"        is sent R times (default 2: the copies are retransmissions, sent\n"
		"        L segments later, default 64); stops after S seconds (default 60);\n"
		"        X seeds the source ports and sequence numbers (the same X sends the\n"
		"        same segments again); T is the TTL (default 64); --bad-checksum\n"
		"        makes every TCP checksum wrong. Prints what it sent; exit 1 when\n"
		"        it could not send everything in time\n"
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

/* A non-blocking socket connected to ep, from local port sport (0: the
 * kernel's choice), or -1 with errno set. */
static int connect_by(const struct endpoint *ep, unsigned short sport, long long deadline)
{
	int fd, err = 0, r, one = 1;
	socklen_t elen = sizeof(err);

	fd = socket(ep->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (sport) {
		struct sockaddr_storage local = { .ss_family = ep->ss.ss_family };

		/* the port may have a connection in TIME-WAIT (to another peer) */
		if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
			goto fail;
		if (ep->ss.ss_family == AF_INET)
			((struct sockaddr_in *)&local)->sin_port = htons(sport);
		else
			((struct sockaddr_in6 *)&local)->sin6_port = htons(sport);
		if (bind(fd, (struct sockaddr *)&local, ep->len) < 0)
			goto fail;
	}
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
static int exchange(const struct endpoint *ep, unsigned short sport, int timeout_ms, char *reply,
		    size_t size, const char **what)
{
	long long deadline = now_ms() + timeout_ms;
	size_t len = 0;
	ssize_t n;
	int fd, r, err;

	*what = "connect";
	fd = connect_by(ep, sport, deadline);
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

static int run_count(const struct endpoint *ep, unsigned short sport, unsigned long n,
		     int timeout_ms)
{
	static struct tally t[MAX_NAMES];
	char reply[LINE_MAX_LEN];
	unsigned long i, errors = 0, reported = 0;
	const char *what;
	int nt = 0, k;

	for (i = 0; i < n; i++) {
		if (exchange(ep, sport, timeout_ms, reply, sizeof(reply), &what)) {
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

	fd = connect_by(ep, 0, now_ms() + timeout_ms);
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

/* ---- holdmany ------------------------------------------------------------ */

struct hconn {
	int fd;				/* -1 once the connection has ended */
	char orig[NAME_MAX_LEN];	/* who answered the greeting, or "error" */
	char state[NAME_MAX_LEN];	/* "open", "reset", "closed", "error:..." */
	bool pending;			/* waiting for the reply to expect */
	char expect[NAME_MAX_LEN + 16];
	char result[NAME_MAX_LEN];
	size_t rxlen;
	char rx[LINE_MAX_LEN];
};

static struct hconn *hconns[MAX_CONNS];
static int nhconns;

/* The connection ended: how, from errno (0: the peer closed). */
static void hconn_end(struct hconn *c, int err)
{
	if (!err)
		snprintf(c->state, sizeof(c->state), "closed");
	else if (err == ECONNRESET || err == EPIPE)
		snprintf(c->state, sizeof(c->state), "reset");
	else if (err == ETIMEDOUT)
		snprintf(c->state, sizeof(c->state), "timeout");
	else
		snprintf(c->state, sizeof(c->state), "error:%s", strerrorname_np(err) ?: "?");
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->pending) {
		snprintf(c->result, sizeof(c->result), "%s", c->state);
		c->pending = false;
	}
}

/* Receive what is there; a complete line settles a pending exchange. */
static void hconn_read(struct hconn *c)
{
	ssize_t n;
	char *nl;

	if (c->fd < 0)
		return;
	if (c->rxlen == sizeof(c->rx))
		c->rxlen = 0; /* unsolicited garbage: drop it */
	n = recv(c->fd, c->rx + c->rxlen, sizeof(c->rx) - c->rxlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		hconn_end(c, n == 0 ? 0 : errno);
		return;
	}
	c->rxlen += (size_t)n;
	while (c->pending && (nl = memchr(c->rx, '\n', c->rxlen))) {
		size_t len = (size_t)(nl - c->rx), w = strcspn(c->rx, " \n");
		bool echoed = w < len && len - w - 1 == strlen(c->expect) &&
			      !memcmp(c->rx + w + 1, c->expect, len - w - 1);

		if (echoed && w > 0 && w < NAME_MAX_LEN)
			snprintf(c->result, sizeof(c->result), "%.*s", (int)w, c->rx);
		else
			snprintf(c->result, sizeof(c->result), "garbled");
		c->pending = false;
		memmove(c->rx, nl + 1, c->rxlen - len - 1);
		c->rxlen -= len + 1;
	}
}

/* Send "TAG-I" on every open connection of the set (all: i < 0), wait for the
 * replies until the deadline. */
static void hconns_exchange(int only, const char *tag, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct pollfd *pfds = calloc((size_t)nhconns + 1, sizeof(*pfds));
	char line[sizeof(hconns[0]->expect) + 1];
	int i, npend = 0, k;

	for (i = 0; i < nhconns; i++) {
		struct hconn *c = hconns[i];

		if (only >= 0 && i != only)
			continue;
		if (c->fd < 0) {
			snprintf(c->result, sizeof(c->result), "%s", c->state);
			continue;
		}
		hconn_read(c); /* anything that came unasked, an end */
		if (c->fd < 0) {
			snprintf(c->result, sizeof(c->result), "%s", c->state);
			continue;
		}
		c->rxlen = 0;
		snprintf(c->expect, sizeof(c->expect), "%s-%d", tag, i + 1);
		snprintf(line, sizeof(line), "%s\n", c->expect);
		c->pending = true;
		if (send_all(c->fd, line, strlen(line), deadline)) {
			hconn_end(c, errno);
			continue;
		}
		npend++;
	}
	while (npend > 0 && pfds) {
		long long left = deadline - now_ms();
		int r;

		if (left <= 0)
			break;
		for (i = 0, k = 0; i < nhconns; i++)
			if (hconns[i]->pending) {
				pfds[k].fd = hconns[i]->fd;
				pfds[k++].events = POLLIN;
			}
		r = poll(pfds, (nfds_t)k, (int)left);
		if (r < 0 && errno != EINTR)
			break;
		for (i = 0, npend = 0; i < nhconns; i++)
			if (hconns[i]->pending) {
				hconn_read(hconns[i]);
				npend += hconns[i]->pending;
			}
	}
	for (i = 0; i < nhconns; i++)
		if (hconns[i]->pending) {
			snprintf(hconns[i]->result, sizeof(hconns[i]->result), "timeout");
			hconns[i]->pending = false;
		}
	free(pfds);
}

/* Open connection number nhconns + 1 and greet it. */
static void hconn_open(const struct endpoint *ep, int timeout_ms)
{
	struct hconn *c;
	int i = nhconns;

	if (nhconns == MAX_CONNS) {
		printf("conn 0 error error:too-many\n");
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		printf("conn 0 error error:ENOMEM\n");
		return;
	}
	hconns[nhconns++] = c;
	snprintf(c->orig, sizeof(c->orig), "error");
	snprintf(c->state, sizeof(c->state), "open");
	c->fd = connect_by(ep, 0, now_ms() + timeout_ms);
	if (c->fd < 0) {
		hconn_end(c, errno);
	} else {
		hconns_exchange(i, "hello", timeout_ms);
		if (c->fd >= 0 && strcmp(c->result, "garbled") && strcmp(c->result, "timeout")) {
			snprintf(c->orig, sizeof(c->orig), "%s", c->result);
		} else if (c->fd >= 0) {
			hconn_end(c, 0);
			snprintf(c->state, sizeof(c->state), "%s", c->result);
		}
	}
	printf("conn %d %s %s\n", i + 1, c->orig, c->fd >= 0 ? c->orig : c->state);
}

static void hconns_report(int only, bool status)
{
	int i, ok = 0, bad = 0;

	for (i = 0; i < nhconns; i++) {
		struct hconn *c = hconns[i];
		const char *what = status ? c->state : c->result;

		if (only >= 0 && i != only)
			continue;
		printf("conn %d %s %s\n", i + 1, c->orig, what);
		if (!status && !strcmp(what, c->orig))
			ok++;
		else if (status && c->fd >= 0)
			ok++;
		else
			bad++;
	}
	printf("end %d %d\n", ok, bad);
}

/* ADDR:PORT or [ADDR]:PORT of a socket address, as parse_endpoint reads them. */
static void format_sockaddr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "-");
	}
}

/* "conn I ORIG PEER LOCAL": getpeername and getsockname of connection I. */
static void hconn_peer(int i)
{
	struct sockaddr_storage peer = {}, local = {};
	socklen_t plen = sizeof(peer), llen = sizeof(local);
	char p[INET6_ADDRSTRLEN + 16] = "-", l[INET6_ADDRSTRLEN + 16] = "-";
	struct hconn *c = hconns[i];

	if (c->fd >= 0 && !getpeername(c->fd, (struct sockaddr *)&peer, &plen))
		format_sockaddr(&peer, p, sizeof(p));
	if (c->fd >= 0 && !getsockname(c->fd, (struct sockaddr *)&local, &llen))
		format_sockaddr(&local, l, sizeof(l));
	printf("conn %d %s %s %s\n", i + 1, c->orig, p, l);
}

/* A connection number I of a command: 1..nhconns, else false (answered). */
static bool conn_index(const char *a, unsigned long *idx)
{
	char *end;

	errno = 0;
	*idx = a ? strtoul(a, &end, 10) : 0;
	if (!a || *end || errno || *idx < 1 || *idx > (unsigned long)nhconns) {
		printf("end error bad-connection\n");
		return false;
	}
	return true;
}

/* One command line; false on quit. */
static bool holdmany_command(char *line, const struct endpoint *ep, int *timeout_ms)
{
	char *cmd = strtok(line, " \t\r"), *a1 = strtok(NULL, " \t\r"), *a2 = strtok(NULL, " \t\r");
	char tag[NAME_MAX_LEN];
	unsigned long idx;
	char *end;

	if (!cmd || !strcmp(cmd, "quit"))
		return cmd == NULL;
	if (!strcmp(cmd, "open")) {
		struct endpoint other;

		if (a1 && parse_endpoint(a1, &other)) {
			printf("end error bad-address\n");
			return true;
		}
		hconn_open(a1 ? &other : ep, *timeout_ms);
		printf("end %d\n", nhconns);
		return true;
	}
	if (!strcmp(cmd, "close")) {
		if (!conn_index(a1, &idx))
			return true;
		if (hconns[idx - 1]->fd >= 0) {
			hconn_end(hconns[idx - 1], 0);
			snprintf(hconns[idx - 1]->state, sizeof(hconns[idx - 1]->state), "dropped");
		}
		printf("end %lu\n", idx);
		return true;
	}
	if (!strcmp(cmd, "peer")) {
		if (!conn_index(a1, &idx))
			return true;
		hconn_peer((int)idx - 1);
		printf("end %lu\n", idx);
		return true;
	}
	if (!strcmp(cmd, "timeout")) {
		errno = 0;
		idx = a1 ? strtoul(a1, &end, 10) : 0;
		if (!a1 || *end || errno || idx < 1 || idx > 3600000) {
			printf("end error bad-timeout\n");
			return true;
		}
		*timeout_ms = (int)idx;
		printf("end %d\n", *timeout_ms);
		return true;
	}
	if (!strcmp(cmd, "status")) {
		for (int i = 0; i < nhconns; i++)
			hconn_read(hconns[i]);
		hconns_report(-1, true);
		return true;
	}
	if (!strcmp(cmd, "send") || !strcmp(cmd, "send-to")) {
		int only = -1;
		const char *t = a1;

		if (!strcmp(cmd, "send-to")) {
			if (!conn_index(a1, &idx))
				return true;
			only = (int)idx - 1;
			t = a2;
		}
		snprintf(tag, sizeof(tag), "%s", t ? t : "ping");
		hconns_exchange(only, tag, *timeout_ms);
		hconns_report(only, false);
		return true;
	}
	printf("end error unknown-command\n");
	return true;
}

static int run_holdmany(const struct endpoint *ep, unsigned long n, int timeout_ms)
{
	char in[LINE_MAX_LEN];
	size_t inlen = 0;
	unsigned long i;
	int opened = 0;

	for (i = 0; i < n; i++) {
		hconn_open(ep, timeout_ms);
		opened += hconns[nhconns - 1]->fd >= 0;
	}
	printf("end %d %lu\n", opened, n - (unsigned long)opened);
	fflush(stdout);
	for (;;) {
		struct pollfd *pfds = calloc((size_t)nhconns + 1, sizeof(*pfds));
		char *nl;
		ssize_t r;
		int k = 1;

		if (!pfds)
			return 1;
		pfds[0].fd = 0;
		pfds[0].events = POLLIN;
		for (int j = 0; j < nhconns; j++)
			if (hconns[j]->fd >= 0) {
				pfds[k].fd = hconns[j]->fd;
				pfds[k++].events = POLLIN;
			}
		/* watch the idle connections too: a RST or FIN is noted when it comes */
		if (poll(pfds, (nfds_t)k, -1) < 0 && errno != EINTR) {
			free(pfds);
			return 1;
		}
		for (int j = 0; j < nhconns; j++)
			if (hconns[j]->fd >= 0) {
				for (int q = 1; q < k; q++)
					if (pfds[q].fd == hconns[j]->fd && pfds[q].revents) {
						hconn_read(hconns[j]);
						break;
					}
			}
		r = pfds[0].revents ? read(0, in + inlen, sizeof(in) - 1 - inlen) : -2;
		free(pfds);
		if (r == -2 || (r < 0 && errno == EINTR))
			continue;
		if (r <= 0)
			break;
		inlen += (size_t)r;
		while ((nl = memchr(in, '\n', inlen))) {
			size_t len = (size_t)(nl - in);
			bool go_on;

			*nl = '\0';
			go_on = holdmany_command(in, ep, &timeout_ms);
			fflush(stdout);
			memmove(in, nl + 1, inlen - len - 1);
			inlen -= len + 1;
			if (!go_on)
				goto out;
		}
		if (inlen == sizeof(in) - 1)
			inlen = 0; /* a line too long: ignored */
	}
out:
	for (int j = 0; j < nhconns; j++) {
		if (hconns[j]->fd >= 0)
			close(hconns[j]->fd);
		free(hconns[j]);
	}
	return 0;
}

/* ---- synflood ------------------------------------------------------------ */

#define MAX_FLAG_SETS 8

struct synflood_opts {
	struct sockaddr_in to;
	struct sockaddr_in from;	/* --from: one spoofed source (port != 0) */
	uint32_t net, hosts;	/* network address (host order), usable host count */
	unsigned long n, repeat, lag, max_seconds;
	uint64_t seed;
	uint8_t flags[MAX_FLAG_SETS];	/* segment i carries flags[i % nflags] */
	int nflags;
	unsigned long ttl;		/* --ttl */
	bool bad_checksum;		/* --bad-checksum: the TCP checksum off by one */
};

/* "S,A,R,FA": TCP flag sets from the letters F S R P A (RFC 9293 order). */
static int parse_flag_sets(const char *s, struct synflood_opts *o)
{
	static const char letters[] = "FSRPA";
	static const uint8_t bits[] = { 0x01, 0x02, 0x04, 0x08, 0x10 };

	o->nflags = 0;
	for (const char *p = s; *p; p++) {
		const char *l = strchr(letters, *p);

		if (*p == ',' && p != s && p[1] && p[1] != ',')
			continue;
		if (!l || !*l)
			return -1;
		if (p == s || p[-1] == ',') {
			if (o->nflags == MAX_FLAG_SETS)
				return -1;
			o->flags[o->nflags++] = 0;
		}
		o->flags[o->nflags - 1] |= bits[l - letters];
	}
	return o->nflags ? 0 : -1;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; len -= 2, p += 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

struct synpkt {
	struct iphdr ip;
	struct tcphdr tcp;
	uint8_t opts[4];		/* MSS */
} __attribute__((packed));

/* SYN number i: the same bytes every time it is built (a retransmission). */
static void synflood_build(const struct synflood_opts *o, unsigned long i, struct synpkt *p)
{
	uint64_t h = splitmix64(o->seed ^ ((uint64_t)i * 0x100000001b3ULL));
	struct {
		uint32_t saddr, daddr;
		uint8_t zero, proto;
		uint16_t len;
	} __attribute__((packed)) pseudo;

	memset(p, 0, sizeof(*p));
	p->ip.version = 4;
	p->ip.ihl = 5;
	p->ip.tot_len = htons(sizeof(*p));
	p->ip.id = htons((uint16_t)(h >> 48));
	p->ip.frag_off = htons(IP_DF);
	p->ip.ttl = (uint8_t)o->ttl;
	p->ip.protocol = IPPROTO_TCP;
	p->ip.saddr = o->from.sin_port ? o->from.sin_addr.s_addr
				       : htonl(o->net + 1 + (uint32_t)(i % o->hosts));
	p->ip.daddr = o->to.sin_addr.s_addr;
	p->ip.check = csum_fold(csum_add(0, &p->ip, sizeof(p->ip)));

	p->tcp.source = o->from.sin_port ? o->from.sin_port
					 : htons((uint16_t)(1024 + (h & 0xffff) % (65536 - 1024)));
	p->tcp.dest = o->to.sin_port;
	p->tcp.seq = htonl((uint32_t)(h >> 16));
	p->tcp.ack_seq = htonl((uint32_t)h);
	p->tcp.doff = (sizeof(p->tcp) + sizeof(p->opts)) / 4;
	((uint8_t *)&p->tcp)[13] = o->flags[i % (unsigned long)o->nflags];
	p->tcp.window = htons(64240);
	p->opts[0] = 2; /* MSS 1460 */
	p->opts[1] = 4;
	p->opts[2] = 1460 >> 8;
	p->opts[3] = 1460 & 0xff;
	pseudo.saddr = p->ip.saddr;
	pseudo.daddr = p->ip.daddr;
	pseudo.zero = 0;
	pseudo.proto = IPPROTO_TCP;
	pseudo.len = htons(sizeof(p->tcp) + sizeof(p->opts));
	p->tcp.check = csum_fold(csum_add(csum_add(0, &pseudo, sizeof(pseudo)), &p->tcp,
					  sizeof(p->tcp) + sizeof(p->opts)));
	if (o->bad_checksum)
		p->tcp.check ^= htons(1);
}

static int run_synflood(const struct synflood_opts *o)
{
	long long start = now_ms(), deadline = start + (long long)o->max_seconds * 1000;
	unsigned long step, r, sent = 0, retries = 0, steps;
	bool timed_out = false;
	struct synpkt p;
	int fd;

	fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (fd < 0) {
		warn_msg("raw socket: %s (needs CAP_NET_RAW)", strerror(errno));
		return 1;
	}
	/* step s sends SYN s and the copies r of SYN s - r*lag */
	steps = o->n + (o->repeat - 1) * o->lag;
	for (step = 0; step < steps && !timed_out; step++) {
		for (r = 0; r < o->repeat; r++) {
			unsigned long i;

			if (step < r * o->lag || step - r * o->lag >= o->n)
				continue;
			i = step - r * o->lag;
			synflood_build(o, i, &p);
			for (;;) {
				if (sendto(fd, &p, sizeof(p), 0, (const struct sockaddr *)&o->to,
					   sizeof(o->to)) == (ssize_t)sizeof(p)) {
					sent++;
					break;
				}
				if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) {
					warn_msg("sendto %s: %s", inet_ntoa(o->to.sin_addr),
						 strerror(errno));
					close(fd);
					return 1;
				}
				retries++;
				if (now_ms() >= deadline) {
					timed_out = true;
					break;
				}
				usleep(50);
			}
			if (timed_out)
				break;
		}
		if ((step & 1023) == 0 && now_ms() >= deadline)
			timed_out = true;
	}
	close(fd);
	printf("sent %lu packets: %lu segments x %lu (retransmission lag %lu) in %.3f s, %lu "
	       "retries%s\n",
	       sent, o->n, o->repeat, o->lag, (double)(now_ms() - start) / 1000.0, retries,
	       timed_out ? "; stopped at the time limit" : "");
	fflush(stdout);
	return timed_out || sent != o->n * o->repeat;
}

/* "A.B.C.D/LEN", LEN 8-30 */
static int parse_net(const char *s, uint32_t *net, uint32_t *hosts)
{
	char buf[INET_ADDRSTRLEN + 4];
	unsigned long len;
	struct in_addr a;
	char *slash, *end;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	errno = 0;
	len = strtoul(slash + 1, &end, 10);
	if (errno || *end || slash[1] == '\0' || len < 8 || len > 30)
		return -1;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -1;
	*net = ntohl(a.s_addr) & ~((1U << (32 - len)) - 1);
	*hosts = (1U << (32 - len)) - 2;
	return 0;
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
	    {"to", required_argument, NULL, 'T'},
	    {"src-net", required_argument, NULL, 'S'},
	    {"repeat", required_argument, NULL, 'R'},
	    {"lag", required_argument, NULL, 'L'},
	    {"max-seconds", required_argument, NULL, 'M'},
	    {"seed", required_argument, NULL, 'X'},
	    {"from", required_argument, NULL, 'F'},
	    {"flags", required_argument, NULL, 'G'},
	    {"sport", required_argument, NULL, 'P'},
	    {"ttl", required_argument, NULL, 'I'},
	    {"bad-checksum", no_argument, NULL, 'B'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct endpoint listen_eps[MAX_LISTEN], connect_ep;
	const char *mode, *name = NULL;
	unsigned long n = 0, timeout_ms = DEFAULT_TIMEOUT_MS, sport = 0;
	bool have_connect = false, have_n = false, have_timeout = false, have_flood = false;
	bool have_to = false, have_net = false;
	struct synflood_opts flood = {.repeat = 2, .lag = 64, .max_seconds = 60,
				      .seed = 0x5eed, .flags = {0x02}, .nflags = 1, .ttl = 64};
	struct endpoint to_ep;
	unsigned long v;
	int nlisten = 0, opt;

	if (argc < 2)
		return usage_error("missing mode: server, count, hold, holdmany or synflood");
	mode = argv[1];
	if (!strcmp(mode, "--help") || !strcmp(mode, "-h")) {
		usage(stdout);
		return 0;
	}
	if (strcmp(mode, "server") && strcmp(mode, "count") && strcmp(mode, "hold") &&
	    strcmp(mode, "holdmany") && strcmp(mode, "synflood"))
		return usage_error("unknown mode '%s': use server, count, hold, holdmany or "
				   "synflood",
				   mode);

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
		case 'P':
			if (parse_ulong(optarg, 1, 65535, &sport))
				return usage_error("--sport must be a port from 1 to 65535");
			break;
		case 'T':
			if (parse_endpoint(optarg, &to_ep) || to_ep.ss.ss_family != AF_INET)
				return usage_error("bad address '%s': use 198.18.100.1:8008 (IPv4)",
						   optarg);
			memcpy(&flood.to, &to_ep.ss, sizeof(flood.to));
			have_to = true;
			break;
		case 'F':
			if (parse_endpoint(optarg, &to_ep) || to_ep.ss.ss_family != AF_INET ||
			    !((struct sockaddr_in *)&to_ep.ss)->sin_port)
				return usage_error("bad address '%s': use 198.18.1.2:40000 (IPv4)",
						   optarg);
			memcpy(&flood.from, &to_ep.ss, sizeof(flood.from));
			have_net = true;
			break;
		case 'G':
			if (parse_flag_sets(optarg, &flood))
				return usage_error("bad --flags '%s': comma-separated sets of F S R "
						   "P A, at most %d, e.g. S,A,R,FA",
						   optarg, MAX_FLAG_SETS);
			have_flood = true;
			break;
		case 'S':
			if (parse_net(optarg, &flood.net, &flood.hosts))
				return usage_error("bad network '%s': use 198.19.0.0/16 (length "
						   "8-30)",
						   optarg);
			have_net = true;
			break;
		case 'R':
		case 'L':
		case 'M':
		case 'X':
			if (parse_ulong(optarg, opt == 'R' || opt == 'M' ? 1 : 0,
					opt == 'R' ? 16 : opt == 'L' ? 1000000 : opt == 'M' ? 3600
					: 0xffffffffUL, &v))
				return usage_error("bad value '%s' for %s", optarg,
						   argv[optind - 1]);
			if (opt == 'R')
				flood.repeat = v;
			else if (opt == 'L')
				flood.lag = v;
			else if (opt == 'M')
				flood.max_seconds = v;
			else
				flood.seed = v;
			have_flood = true;
			break;
		case 'I':
			if (parse_ulong(optarg, 1, 255, &flood.ttl))
				return usage_error("bad --ttl '%s': use 1-255", optarg);
			have_flood = true;
			break;
		case 'B':
			flood.bad_checksum = true;
			have_flood = true;
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
	if (strcmp(mode, "synflood") && (have_to || have_net || have_flood))
		return usage_error("--to, --src-net, --from, --flags, --repeat, --lag, "
				   "--max-seconds, --seed, --ttl and --bad-checksum are options of "
				   "synflood");
	if (sport && strcmp(mode, "count"))
		return usage_error("--sport is an option of count");
	if (!strcmp(mode, "server")) {
		if (!name || !nlisten)
			return usage_error("server needs --name and --listen");
		if (have_connect || have_n || have_timeout)
			return usage_error("server takes only --name and --listen");
		return run_server(name, listen_eps, nlisten);
	}
	if (name || nlisten)
		return usage_error("%s takes no --name or --listen", mode);
	if (!strcmp(mode, "synflood")) {
		if (!have_to || !have_net || !have_n)
			return usage_error("synflood needs --to, --src-net or --from, and --n");
		if (have_connect || have_timeout)
			return usage_error("synflood takes no --connect or --timeout-ms");
		flood.n = n;
		return run_synflood(&flood);
	}
	if (!have_connect)
		return usage_error("%s needs --connect ADDR:PORT", mode);
	if (!strcmp(mode, "count")) {
		if (!have_n)
			return usage_error("count needs --n N");
		return run_count(&connect_ep, (unsigned short)sport, n, (int)timeout_ms);
	}
	if (!strcmp(mode, "holdmany")) {
		if (n > MAX_CONNS)
			return usage_error("holdmany opens at most %d connections", MAX_CONNS);
		return run_holdmany(&connect_ep, have_n ? n : 0, (int)timeout_ms);
	}
	if (have_n)
		return usage_error("hold takes no --n");
	return run_hold(&connect_ep, (int)timeout_ms);
}
