// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Upgrade in place from layout 5 (include/tcpshift_abi5.h, user/lib/migrate.c):
 * each map whose layout changed is converted, each other map is kept as it
 * is (the same map, its entries untouched). The pin directory is made into
 * one of layout 5 by hand: today's object pinned, then settings and counters
 * replaced by layout 5's maps and direct_pending removed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "ts_test.h"
#include "tcpshift_abi5.h"
#include "tcpshift.skel.h"

static void pin_replace(const char *dir, const char *name, int fd)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	ASSERT_EQ(bpf_obj_pin(fd, path), 0, "pin the layout 5 map");
}

static int pinned(const char *dir, const char *name, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);
	char path[256];
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	memset(info, 0, sizeof(*info));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -1;
	r = bpf_obj_get_info_by_fd(fd, info, &len);
	close(fd);
	return r;
}

static int skel_fd(void *ctx, const char *name)
{
	struct bpf_map *map = bpf_object__find_map_by_name(((struct tcpshift_bpf *)ctx)->obj, name);

	return map ? bpf_map__fd(map) : -1;
}

/* Every field of layout 5's settings lands in today's, the version is today's. */
static void test_settings_from_abi5(void **state)
{
	struct ts_settings_abi5 in = {
		.abi_version = 5, .seed = 0x1234, .ndevices = 2,
		.flags = TS_SETTINGS_F_FORWARD_FIB | TS_SETTINGS_F_XDP,
		.netns_dev = 7, .netns_ino = 8, .netns_cookie = 9,
		.ifindex = { 3, 4 }, .dev_flags = { TS_DEV_F_OWN_CLSACT, 0 },
	};
	struct ts_settings out;

	(void)state;
	memset(&out, 0xff, sizeof(out));
	ts_settings_from_abi5(&in, &out);
	ASSERT_EQ(out.abi_version, TS_ABI_VERSION, "version");
	ASSERT_EQ(out.seed, 0x1234, "seed");
	ASSERT_EQ(out.ndevices, 2, "devices");
	ASSERT_EQ(out.flags, TS_SETTINGS_F_FORWARD_FIB | TS_SETTINGS_F_XDP, "flags");
	ASSERT_EQ(out.netns_dev, 7, "netns_dev");
	ASSERT_EQ(out.netns_ino, 8, "netns_ino");
	ASSERT_EQ(out.netns_cookie, 9, "netns_cookie");
	ASSERT_EQ(out.ifindex[1], 4, "ifindex");
	ASSERT_EQ(out.dev_flags[0], TS_DEV_F_OWN_CLSACT, "dev_flags");
	ASSERT_EQ(out.ifindex[2], 0, "unused devices zero");
	ASSERT_EQ(out.generation, 0, "generation starts at 0");
	/* layout 5's settings are today's without the last field */
	ASSERT_EQ(sizeof(struct ts_settings_abi5), offsetof(struct ts_settings, generation),
		  "layout 5 is a prefix");
}

static void test_migrate_abi5_pin_dir(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	struct ts_settings_abi5 old = { .abi_version = 5, .seed = 0xabcd,
					.flags = TS_SETTINGS_F_FORWARD_FIB };
	struct ts_load_opts o = { .pin_dir = e->pin_dir, .forward_fib = -1, .mode = -1 };
	struct ts_flow_key key = { .family = TS_AF_INET, .proto = 6, .sport = 1, .dport = 2 };
	struct ts_flow flow = { .backend_id = 3 }, got;
	struct bpf_map_info info, flows_before;
	struct ts_migration mg;
	struct tcpshift_bpf *skel;
	struct ts_settings now;
	struct ts_err err = {};
	int ncpus = libbpf_num_possible_cpus();
	__u64 vals[512], sum[512];
	char path[256];
	struct stat st;
	__u32 zero = 0, abi;
	int fd;

	ASSERT_TRUE(ncpus > 0 && ncpus <= 512, "CPUs");
	ASSERT_EQ(bpf_map_update_elem(e->maps.flows, &key, &flow, 0), 0, "a pinned flow");
	ASSERT_EQ(pinned(e->pin_dir, "flows", &flows_before), 0, "flows pinned");
	/* layout 5's settings and counters in place of today's */
	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "settings", 4, sizeof(old), 1, NULL);
	ASSERT_TRUE(fd >= 0, "layout 5 settings");
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, &old, 0), 0, "write layout 5 settings");
	pin_replace(e->pin_dir, "settings", fd);
	close(fd);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "counters", 4, 8, TS_ABI5_CNT_MAX, NULL);
	ASSERT_TRUE(fd >= 0, "layout 5 counters");
	for (__u32 k = 0; k < TS_ABI5_CNT_MAX; k++) {
		for (int c = 0; c < ncpus; c++)
			vals[c] = 1000 * k + (__u64)c;
		ASSERT_EQ(bpf_map_update_elem(fd, &k, vals, 0), 0, "write a layout 5 counter");
	}
	pin_replace(e->pin_dir, "counters", fd);
	close(fd);
	snprintf(path, sizeof(path), "%s/direct_pending", e->pin_dir);
	ASSERT_EQ(unlink(path), 0, "no direct_pending in layout 5");

	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout");
	ASSERT_EQ(abi, 5, "layout 5 recognised");
	ASSERT_OK(ts_migration_prepare(&mg, e->pin_dir, &err), err, "prepare");
	ASSERT_EQ(mg.from, 5, "migrates from 5");
	ASSERT_EQ(mg.settings.seed, 0xabcd, "converted seed");
	o.migration = &mg;
	skel = ts_bpf_open_load(&o, &err);
	ASSERT_TRUE(skel != NULL, "load on the layout 5 pins");
	ASSERT_TRUE(skel->rodata->forward_fib, "--forward fib kept from layout 5's settings");
	/* the new program counted one of each before the commit */
	for (__u32 k = 0; k < TS_CNT_MAX; k++) {
		for (int c = 0; c < ncpus; c++)
			vals[c] = 1;
		bpf_map_update_elem(bpf_map__fd(skel->maps.counters), &k, vals, 0);
	}
	ASSERT_OK(ts_migration_commit(&mg, e->pin_dir, skel_fd, skel, &err), err, "commit");
	ts_bpf_destroy(skel);

	ASSERT_EQ(pinned(e->pin_dir, "settings", &info), 0, "settings pinned");
	ASSERT_EQ(info.value_size, sizeof(struct ts_settings), "settings of today's layout");
	fd = bpf_obj_get(strcat(strcpy(path, e->pin_dir), "/settings"));
	ASSERT_EQ(bpf_map_lookup_elem(fd, &zero, &now), 0, "read settings");
	close(fd);
	ASSERT_EQ(now.abi_version, TS_ABI_VERSION, "version now");
	ASSERT_EQ(now.seed, 0xabcd, "seed kept");
	ASSERT_TRUE(now.flags & TS_SETTINGS_F_FORWARD_FIB, "flags kept");
	ASSERT_EQ(pinned(e->pin_dir, "counters", &info), 0, "counters pinned");
	ASSERT_EQ(info.max_entries, TS_CNT_MAX, "counters of today's layout");
	fd = bpf_obj_get(strcat(strcpy(path, e->pin_dir), "/counters"));
	for (__u32 k = 0; k < TS_CNT_MAX; k++) {
		ASSERT_EQ(bpf_map_lookup_elem(fd, &k, sum), 0, "read a counter");
		for (int c = 0; c < ncpus; c++) {
			test_context("counter %u, CPU %d", k, c);
			ASSERT_EQ(sum[c], k < TS_ABI5_CNT_MAX ? 1000 * k + (__u64)c + 1 : 1,
				  "layout 5's count plus the new program's");
		}
	}
	test_context("%s", "");
	close(fd);
	ASSERT_EQ(pinned(e->pin_dir, "direct_pending", &info), 0, "direct_pending pinned");
	ASSERT_EQ(pinned(e->pin_dir, "flows", &info), 0, "flows pinned");
	ASSERT_EQ(info.id, flows_before.id, "flows: the same map, kept");
	ASSERT_EQ(bpf_map_lookup_elem(e->maps.flows, &key, &got), 0, "the flow is there");
	ASSERT_EQ(got.backend_id, 3, "the flow's backend");
	snprintf(path, sizeof(path), "%s/migrating", e->pin_dir);
	ASSERT_TRUE(stat(path, &st) && errno == ENOENT, "no staging directory left");
	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout after");
	ASSERT_EQ(abi, TS_ABI_VERSION, "today's layout after");
}

/* A layout newer than this build's is recognised as such (load refuses it). */
static void test_newer_layout_recognised(void **state)
{
	struct ts_env *e = fixture_env(state, 0, TEST_SEED, TEST_MAX_FLOWS);
	__u32 zero = 0, abi, buf[256] = { TS_ABI_VERSION + 1 };
	struct ts_err err = {};
	int fd;

	fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "settings", 4, sizeof(struct ts_settings) + 8, 1,
			    NULL);
	ASSERT_TRUE(fd >= 0, "a newer settings map");
	ASSERT_EQ(bpf_map_update_elem(fd, &zero, buf, 0), 0, "write it");
	pin_replace(e->pin_dir, "settings", fd);
	close(fd);
	ASSERT_OK(ts_pinned_layout(e->pin_dir, &abi, &err), err, "pinned layout");
	ASSERT_EQ(abi, TS_ABI_VERSION + 1, "newer layout recognised");
}

int run_migrate_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_settings_from_abi5),
		TEST(test_migrate_abi5_pin_dir),
		TEST(test_newer_layout_recognised),
	};

	return cmocka_run_group_tests_name("migration from older layouts", tests, NULL, NULL);
}
