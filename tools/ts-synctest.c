// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ts-synctest: the test helper of `tcpshift sync` (tests/e2e/test_sync*.sh).
 *
 *   fill    pin N confirmed flows of a service directly in an instance's maps
 *           (clients 198.19.x.y, spread over its backends), as if its data
 *           plane had, but without its events: only a bulk resync or a
 *           refresh carries them to the peers
 *   send    one sync datagram, signed with a key file's key (a peer's, or
 *           another: a forgery), from ADDR:PORT to ADDR:PORT (its recipient);
 *           --save keeps its bytes; --proto-version N writes another version
 *   replay  send saved bytes again, from ADDR:PORT to ADDR:PORT
 *
 * It uses tcpshift's own message code (user/daemon/sync_proto.c): what it sends is what
 * a peer sends, but for the key, the epoch, the sequence number, the time and the
 * protocol version it is told; its recipient is --to.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "daemon.h"
#include "sync_proto.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: ts-synctest fill --pin-dir DIR --service NAME --n N [--first I]\n"
		"       ts-synctest send --key FILE --from ADDR:PORT --to ADDR:PORT\n"
		"                   --epoch E --seq S [--age-s A] (--pin|--end)\n"
		"                   CLIENT:PORT VIP:PORT BACKEND:PORT [--save FILE]\n"
		"                   [--proto-version N]\n"
		"       ts-synctest replay --from ADDR:PORT --to ADDR:PORT FILE\n"
		"Exit 0 done, 1 runtime error, 2 usage error.\n");
}

static __u64 now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

static int fill(const char *pin_dir, const char *service, unsigned long first, unsigned long n)
{
	struct ts_config cfg = {};
	struct ts_service_cfg *s;
	struct ts_flow_key *keys;
	struct ts_flow_entry *vals;
	struct ts_maps m;
	struct ts_err err;
	__u64 now = ts_now_ns();
	int r = 1;

	if (ts_maps_open(&m, pin_dir, &err) || ts_config_read(&m, &cfg, &err)) {
		fprintf(stderr, "ts-synctest: %s\n", err.msg);
		return 1;
	}
	s = ts_config_service(&cfg, service);
	keys = calloc(n, sizeof(*keys));
	vals = calloc(n, sizeof(*vals));
	if (!s || !s->nbackends || !keys || !vals) {
		fprintf(stderr, "ts-synctest: no service %s with backends\n", service);
		goto out;
	}
	for (unsigned long j = 0; j < n; j++) {
		unsigned long i = first + j;
		const struct ts_backend_cfg *b = &s->backends[i % s->nbackends];

		/* flow i: 198.19.0.0/16, ports 1024..: 65,536 clients of 1,000 ports */
		keys[j] = (struct ts_flow_key){
			.saddr = { htonl(0xc6130000U | (__u32)(i / 1000 % 65536)) },
			.sport = htons((__u16)(1024 + i % 1000)),
			.dport = s->key.port,
			.proto = IPPROTO_TCP,
			.family = s->key.family,
		};
		memcpy(keys[j].daddr, s->key.addr, sizeof(keys[j].daddr));
		vals[j] = (struct ts_flow_entry){
			.flow = {
				.backend_id = b->id,
				.generation = b->be.generation,
				.service_id = s->svc.id,
				.tcp_state = TS_TCP_ESTABLISHED,
				.created_ns = now,
				.last_seen_ns = now,
				.client_end = (__u32)i,
			},
			.backend_port = b->be.port,
		};
		memcpy(vals[j].backend_addr, b->be.addr, sizeof(vals[j].backend_addr));
	}
	for (unsigned long done = 0; done < n;) {
		__u32 count = (__u32)(n - done > 8192 ? 8192 : n - done);

		if (bpf_map_update_batch(m.flows, keys + done, vals + done, &count, NULL)) {
			fprintf(stderr, "ts-synctest: cannot write flows: %s\n", strerror(errno));
			goto out;
		}
		done += count;
	}
	printf("filled %lu\n", n);
	r = 0;
out:
	free(keys);
	free(vals);
	ts_config_free(&cfg);
	ts_maps_close(&m);
	return r;
}

/* A UDP socket bound to from, and to's address. */
static int socket_pair(const char *from, const char *to, struct sockaddr_storage *dst,
		       socklen_t *dl, struct ts_endpoint *src)
{
	struct sockaddr_storage ss;
	struct ts_endpoint d;
	struct ts_err err;
	socklen_t sl;
	int fd, one = 1;

	if (ts_parse_endpoint(from, src, &err) || ts_parse_endpoint(to, &d, &err)) {
		fprintf(stderr, "ts-synctest: %s\n", err.msg);
		return -2;
	}
	sl = ts_sockaddr_of(src->family, src->addr, src->port, &ss);
	*dl = ts_sockaddr_of(d.family, d.addr, d.port, dst);
	fd = socket(ss.ss_family, SOCK_DGRAM, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl)) {
		fprintf(stderr, "ts-synctest: cannot bind %s: %s\n", from, strerror(errno));
		return -1;
	}
	return fd;
}

static int send_buf(int fd, const unsigned char *buf, size_t len,
		    const struct sockaddr_storage *dst, socklen_t dl)
{
	if (sendto(fd, buf, len, 0, (const struct sockaddr *)dst, dl) != (ssize_t)len) {
		fprintf(stderr, "ts-synctest: sendto: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *pin_dir = NULL, *service = NULL, *key_file = NULL, *from = NULL, *to = NULL;
	const char *save = NULL;
	unsigned long n = 0, age_s = 0, first = 0;
	unsigned long long epoch = 0, seq = 0;
	int type = 0, c, version = TS_SYNC_VERSION;
	const struct option opts[] = {
		{ "pin-dir", required_argument, NULL, 'd' },
		{ "service", required_argument, NULL, 's' },
		{ "n", required_argument, NULL, 'n' },
		{ "first", required_argument, NULL, 'i' },
		{ "key", required_argument, NULL, 'k' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "epoch", required_argument, NULL, 'e' },
		{ "seq", required_argument, NULL, 'q' },
		{ "age-s", required_argument, NULL, 'a' },
		{ "pin", no_argument, NULL, 'P' },
		{ "end", no_argument, NULL, 'E' },
		{ "save", required_argument, NULL, 'S' },
		{ "proto-version", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	optind = 2;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd': pin_dir = optarg; break;
		case 's': service = optarg; break;
		case 'n': n = strtoul(optarg, NULL, 10); break;
		case 'i': first = strtoul(optarg, NULL, 10); break;
		case 'k': key_file = optarg; break;
		case 'f': from = optarg; break;
		case 't': to = optarg; break;
		case 'e': epoch = strtoull(optarg, NULL, 10); break;
		case 'q': seq = strtoull(optarg, NULL, 10); break;
		case 'a': age_s = strtoul(optarg, NULL, 10); break;
		case 'P': type = TS_SYNC_PIN; break;
		case 'E': type = TS_SYNC_END; break;
		case 'S': save = optarg; break;
		case 'V': version = atoi(optarg); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!strcmp(argv[1], "fill")) {
		if (!pin_dir || !service || !n) {
			usage(stderr);
			return 2;
		}
		return fill(pin_dir, service, first, n);
	}
	if (!strcmp(argv[1], "send")) {
		unsigned char key[TS_SYNC_KEY_MAX + 1], buf[TS_SYNC_DATAGRAM];
		struct ts_sync_record *rec = (void *)(buf + sizeof(struct ts_sync_hdr));
		struct ts_endpoint cl, vip, be, src, dst_ep;
		struct sockaddr_storage dst;
		struct ts_err err;
		size_t key_len, len = sizeof(struct ts_sync_hdr) + sizeof(*rec);
		socklen_t dl;
		int fd, r;

		if (!key_file || !from || !to || !type || !epoch || !seq || optind + 3 != argc) {
			usage(stderr);
			return 2;
		}
		if (ts_sync_key_read(key_file, key, &key_len, &err) ||
		    ts_parse_endpoint(argv[optind], &cl, &err) ||
		    ts_parse_endpoint(argv[optind + 1], &vip, &err) ||
		    ts_parse_endpoint(argv[optind + 2], &be, &err) ||
		    ts_parse_endpoint(to, &dst_ep, &err)) {
			fprintf(stderr, "ts-synctest: %s\n", err.msg);
			return 2;
		}
		fd = socket_pair(from, to, &dst, &dl, &src);
		if (fd < 0)
			return fd == -2 ? 2 : 1;
		memset(rec, 0, sizeof(*rec));
		memcpy(rec->client, cl.addr, sizeof(rec->client));
		memcpy(rec->vip, vip.addr, sizeof(rec->vip));
		memcpy(rec->backend, be.addr, sizeof(rec->backend));
		rec->client_port = cl.port;
		rec->vip_port = vip.port;
		rec->backend_port = be.port;
		rec->family = cl.family;
		rec->type = (__u8)type;
		rec->event_ns = htobe64(now_real());
		ts_sync_hdr_init((struct ts_sync_hdr *)buf, TS_SYNC_MSG_EVENTS, 1, &src, &dst_ep,
				 epoch, seq, now_real() - age_s * 1000000000ULL);
		((struct ts_sync_hdr *)buf)->version = (__u8)version;
		if (ts_sync_sign(key, key_len, buf, len))
			return 1;
		len += TS_SYNC_TAG_LEN;
		r = send_buf(fd, buf, len, &dst, dl);
		if (!r && save) {
			FILE *f = fopen(save, "w");

			if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
				fprintf(stderr, "ts-synctest: cannot write %s\n", save);
				r = 1;
			}
		}
		close(fd);
		return r;
	}
	if (!strcmp(argv[1], "replay")) {
		unsigned char buf[TS_SYNC_DATAGRAM];
		struct sockaddr_storage dst;
		struct ts_endpoint src;
		socklen_t dl;
		size_t len;
		FILE *f;
		int fd, r;

		if (!from || !to || optind + 1 != argc) {
			usage(stderr);
			return 2;
		}
		f = fopen(argv[optind], "r");
		if (!f) {
			fprintf(stderr, "ts-synctest: cannot read %s\n", argv[optind]);
			return 1;
		}
		len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		fd = socket_pair(from, to, &dst, &dl, &src);
		if (fd < 0)
			return fd == -2 ? 2 : 1;
		r = send_buf(fd, buf, len, &dst, dl);
		close(fd);
		return r;
	}
	usage(stderr);
	return 2;
}
