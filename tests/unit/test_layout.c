// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The set of pinned maps and their layout come from the BPF object itself
 * (user/lib/layout.c): every map struct ts_maps uses is there, with the key and
 * value sizes of include/tcpshift.h, so that a pin is validated against what
 * the data plane really uses (invariant 9). No BPF program is loaded.
 */
#include <string.h>
#include <linux/bpf.h>

#include "libtcpshift.h"
#include "tcpshift_abi5.h"
#include "unit.h"

static const struct ts_map_layout *find(const struct ts_map_layout *l, size_t n,
					const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(l[i].name, name))
			return &l[i];
	return NULL;
}

static void layouts_come_from_the_object(void **state)
{
	static const struct {
		const char *name;
		__u32 type, key, value;
	} want[] = {
		{ "services", BPF_MAP_TYPE_HASH, sizeof(struct ts_endpoint_key),
		  sizeof(struct ts_service) },
		{ "service_names", BPF_MAP_TYPE_HASH, sizeof(struct ts_service_name),
		  sizeof(struct ts_endpoint_key) },
		{ "tables", BPF_MAP_TYPE_ARRAY_OF_MAPS, sizeof(__u32), sizeof(__u32) },
		{ "backends", BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct ts_backend) },
		{ "flows", BPF_MAP_TYPE_LRU_HASH, sizeof(struct ts_flow_key),
		  sizeof(struct ts_flow_entry) },
		{ "half_open", BPF_MAP_TYPE_LRU_HASH, sizeof(struct ts_flow_key),
		  sizeof(struct ts_flow) },
		{ "backend_addrs", BPF_MAP_TYPE_HASH, sizeof(struct ts_endpoint_key),
		  sizeof(struct ts_reply) },
		{ "backend_stats", BPF_MAP_TYPE_ARRAY_OF_MAPS, sizeof(__u32), sizeof(__u32) },
		{ "counters", BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(__u32), sizeof(__u64) },
		{ "settings", BPF_MAP_TYPE_ARRAY, sizeof(__u32), sizeof(struct ts_settings) },
	};
	struct ts_map_layout l[TS_MAX_PINNED_MAPS];
	struct ts_err err;
	size_t n;

	ASSERT_TRUE(ts_map_layouts(l, &n, &err) == 0, "ts_map_layouts: %s", err.msg);
	/* maps added later are covered with no change here */
	ASSERT_TRUE(n >= ARRAY_SIZE(want), "%zu pinned maps in the object", n);
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const struct ts_map_layout *m = find(l, n, want[i].name);

		ASSERT_TRUE(m != NULL, "map %s not in the object", want[i].name);
		ASSERT_EQ(m->type, want[i].type, want[i].name);
		ASSERT_EQ(m->key_size, want[i].key, want[i].name);
		ASSERT_EQ(m->value_size, want[i].value, want[i].name);
	}
	/* every map the commands use by name is one the object pins */
	for (size_t i = 0; ts_pin_name(i); i++)
		ASSERT_TRUE(find(l, n, ts_pin_name(i)) != NULL, "ts_maps names %s, not pinned",
			    ts_pin_name(i));
}

/* The table the build wrote is what the object defines now, map for map (a
 * stale build/layouts.h would open maps by an old layout). */
static void built_layouts_are_the_objects(void **state)
{
	struct ts_map_layout built[TS_MAX_PINNED_MAPS], object[TS_MAX_PINNED_MAPS];
	struct ts_err err;
	size_t nb, no;

	ASSERT_TRUE(ts_map_layouts(built, &nb, &err) == 0, "ts_map_layouts: %s", err.msg);
	ASSERT_TRUE(ts_map_layouts_of_object(object, &no, &err) == 0, "of the object: %s",
		    err.msg);
	ASSERT_EQ(nb, no, "pinned maps");
	for (size_t i = 0; i < nb; i++) {
		ASSERT_TRUE(!strcmp(built[i].name, object[i].name), "map %zu: %s, the object %s",
			    i, built[i].name, object[i].name);
		ASSERT_EQ(built[i].type, object[i].type, built[i].name);
		ASSERT_EQ(built[i].key_size, object[i].key_size, built[i].name);
		ASSERT_EQ(built[i].value_size, object[i].value_size, built[i].name);
		ASSERT_EQ(built[i].map_flags, object[i].map_flags, built[i].name);
	}
}

/* Pin paths: PATH_MAX and NAME_MAX are checked before any pin is made. */
static void pin_dir_lengths(void **state)
{
	char dir[TS_PIN_DIR_MAX + 8];
	struct ts_err err;

	ASSERT_EQ(ts_check_pin_dir("/sys/fs/bpf/tcpshift", &err), 0, "the default");
	ASSERT_EQ(ts_check_pin_dir("", &err), -TS_ERR_USAGE, "empty");
	memset(dir, 'a', 300);
	dir[0] = '/';
	dir[300] = '\0';
	ASSERT_EQ(ts_check_pin_dir(dir, &err), -TS_ERR_USAGE, "a 299-character component");
	dir[200] = '/';
	ASSERT_EQ(ts_check_pin_dir(dir, &err), 0, "300 characters in two components");
	for (size_t i = 0; i < sizeof(dir) - 1; i++)
		dir[i] = i % 200 ? 'b' : '/';
	dir[sizeof(dir) - 1] = '\0';
	ASSERT_EQ(ts_check_pin_dir(dir, &err), -TS_ERR_USAGE, "past PATH_MAX");
	ASSERT_EQ(err.status, TS_ERR_USAGE, "a usage error");
}

/* Layout 5's settings and today's carry the same instance both ways: a
 * downgrade and the upgrade after it give back every field but generation,
 * which layout 5 has not, and the ABI version is each layout's own. */
static void settings_round_trip_layout5(void **state)
{
	struct ts_settings in = {
		.abi_version = TS_ABI_VERSION, .seed = 0x12345678, .ndevices = 2,
		.flags = TS_SETTINGS_F_XDP | TS_SETTINGS_F_SYNC, .netns_dev = 7, .netns_ino = 99,
		.netns_cookie = 4096, .generation = 42,
	}, out;
	struct ts_settings_abi5 mid;

	(void)state;
	in.ifindex[0] = 3;
	in.ifindex[1] = 5;
	in.dev_flags[1] = TS_DEV_F_OWN_CLSACT;
	ts_settings_to_abi5(&in, &mid);
	ASSERT_EQ(mid.abi_version, TS_ABI5_VERSION, "layout 5's ABI version");
	ASSERT_EQ(mid.seed, in.seed, "seed kept");
	ts_settings_from_abi5(&mid, &out);
	ASSERT_EQ(out.generation, 0, "no generation in layout 5");
	in.generation = 0;
	ASSERT_EQ(memcmp(&in, &out, sizeof(in)), 0, "every other field kept both ways");
}

int run_layout_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layouts_come_from_the_object),
		cmocka_unit_test(built_layouts_are_the_objects),
		cmocka_unit_test(pin_dir_lengths),
		cmocka_unit_test(settings_round_trip_layout5),
	};

	return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
