// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * ts-tables PIN_DIR: one line per service of the instance pinned under
 * PIN_DIR, sorted by name: its name, the id of its table in `tables`, the
 * kernel's id of that table map, its live half, and a hash (FNV-1a, 64 bits)
 * of every byte of the table, both halves. The scale test compares these
 * lines before and after a change to one service: the others' tables must be
 * the same maps with the same bytes. It reads the maps directly (the raw
 * pins, not libtcpshift), so that it checks the library rather than trusting
 * its reader.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "tcpshift.h"

struct line {
	char	name[TS_NAME_LEN];
	char	text[160];
};

static int cmp_line(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->name, ((const struct line *)b)->name);
}

static int pinned(const char *dir, const char *name)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = bpf_obj_get(path);
	if (fd < 0)
		fprintf(stderr, "ts-tables: cannot open %s: %s\n", path, strerror(errno));
	return fd;
}

/* The FNV-1a hash of the whole table map with kernel id inner (its values
 * in key order: an array's batch read gives them so). */
static int table_hash(__u32 inner, __u64 *hash)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info), n, out_batch;
	unsigned char *v = NULL;
	__u32 *keys = NULL;
	int fd = bpf_map_get_fd_by_id(inner), r = -1;

	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) || !info.max_entries)
		goto out;
	n = info.max_entries;
	keys = calloc(n, sizeof(*keys));
	v = calloc(n, info.value_size);
	if (!keys || !v)
		goto out;
	/* ENOENT: the batch reached the end, as it must */
	if ((bpf_map_lookup_batch(fd, NULL, &out_batch, keys, v, &n, NULL) && errno != ENOENT) ||
	    n != info.max_entries)
		goto out;
	*hash = 14695981039346656037ULL;
	for (size_t i = 0; i < (size_t)n * info.value_size; i++)
		*hash = (*hash ^ v[i]) * 1099511628211ULL;
	r = 0;
out:
	free(keys);
	free(v);
	if (fd >= 0)
		close(fd);
	return r;
}

int main(int argc, char **argv)
{
	struct ts_endpoint_key key, *prev = NULL;
	struct line *lines = NULL;
	size_t n = 0, cap = 0;
	int services, tables;

	if (argc != 2) {
		fprintf(stderr, "usage: ts-tables PIN_DIR\n");
		return 2;
	}
	services = pinned(argv[1], "services");
	tables = pinned(argv[1], "tables");
	if (services < 0 || tables < 0)
		return 1;
	while (!bpf_map_get_next_key(services, prev, &key)) {
		struct ts_service svc;
		__u32 inner;
		__u64 hash;

		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			lines = realloc(lines, cap * sizeof(*lines));
			if (!lines)
				return 1;
		}
		if (bpf_map_lookup_elem(services, &key, &svc) ||
		    bpf_map_lookup_elem(tables, &svc.id, &inner) || table_hash(inner, &hash)) {
			fprintf(stderr, "ts-tables: cannot read the table of a service: %s\n",
				strerror(errno));
			return 1;
		}
		snprintf(lines[n].name, sizeof(lines[n].name), "%s", svc.name);
		snprintf(lines[n].text, sizeof(lines[n].text), "%s id %u map %u half %u %016llx",
			 svc.name, svc.id, inner, svc.table_half, (unsigned long long)hash);
		n++;
		prev = &key;
	}
	qsort(lines, n, sizeof(*lines), cmp_line);
	for (size_t i = 0; i < n; i++)
		printf("%s\n", lines[i].text);
	free(lines);
	return 0;
}
