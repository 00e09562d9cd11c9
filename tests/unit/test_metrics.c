// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's metrics text: names, labels, the histogram. */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "prom.h"
#include "unit.h"

#define HAS(text, line) ASSERT_TRUE(strstr(text, line "\n"), "missing line: %s", line)

static void metrics_render_text(void **state)
{
	static struct ts_config cfg;
	static struct ts_service_cfg svc;
	static struct ts_backend_cfg backends[2];
	struct ts_backend_stats st[2] = {}, *stats[1] = { st };
	__u32 eff[2] = { 90, 0 }, slots[2] = { 7, 0 }, *effp[1] = { eff }, *slotp[1] = { slots };
	struct ts_metrics in = { .cfg = &cfg, .stats = stats, .effective = effp, .slots = slotp,
				 .flows = 3, .flows_max = 1024, .half_open = 1,
				 .half_open_max = 256, .services = 1, .backends = 2 };
	size_t len = 0;
	char *text;

	(void)state;
	memset(&svc, 0, sizeof(svc));
	svc.backends = backends;
	strcpy(svc.svc.name, "web");
	svc.svc.table_size = 7;
	svc.nbackends = 2;
	for (int i = 0; i < 2; i++) {
		svc.backends[i].be.family = TS_AF_INET;
		svc.backends[i].be.addr[0] = htonl(0xc6120200 + 11 + i);	/* 198.18.2.11 */
		svc.backends[i].be.port = htons(8008);
	}
	strcpy(svc.backends[0].be.name, "v1");
	strcpy(svc.backends[1].be.name, "v2");
	svc.backends[0].weight = 90;
	svc.backends[1].weight = 10;
	svc.backends[1].be.health = TS_HEALTH_DOWN;
	svc.backends[1].be.health_since_s = 1700000000;
	cfg.nservices = 1;
	cfg.services = &svc;
	st[0].new_flows = 5;
	st[0].opened = 4;
	st[0].ended = 1;
	st[0].bytes_to_backend = 100;
	st[0].bytes_from_backend = 200;
	st[0].handshake_hist[0] = 2;	/* <= 65.536 us */
	st[0].handshake_hist[2] = 1;	/* <= 262.144 us */
	st[0].handshake_hist[TS_HANDSHAKE_BUCKETS - 1] = 1;	/* more */
	st[0].handshake_ns_sum = 1500000000;
	st[1].opened = 1;
	st[1].ended = 2;	/* drifted: never below 0 */
	in.counters[TS_CNT_NON_SYN_MISS] = 9;

	text = ts_metrics_render(&in, &len);
	ASSERT_TRUE(text && strlen(text) == len, "rendered");
	HAS(text, "# TYPE tcpshift_backend_connection_attempts_total counter");
	HAS(text, "tcpshift_backend_connection_attempts_total{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\"} 5");
	HAS(text, "tcpshift_backend_open_connections{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\"} 3");
	HAS(text, "tcpshift_backend_open_connections{service=\"web\",backend=\"v2\","
		  "addr=\"198.18.2.12:8008\"} 0");
	HAS(text, "tcpshift_backend_bytes_total{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\",direction=\"to_backend\"} 100");
	HAS(text, "tcpshift_backend_bytes_total{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\",direction=\"from_backend\"} 200");
	HAS(text, "# TYPE tcpshift_backend_handshake_seconds histogram");
	/* cumulative buckets, le in seconds: 65536 ns << i */
	HAS(text, "tcpshift_backend_handshake_seconds_bucket{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\",le=\"6.5536e-05\"} 2");
	HAS(text, "tcpshift_backend_handshake_seconds_bucket{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\",le=\"0.000131072\"} 2");
	HAS(text, "tcpshift_backend_handshake_seconds_bucket{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\",le=\"0.000262144\"} 3");
	HAS(text, "tcpshift_backend_handshake_seconds_bucket{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\",le=\"+Inf\"} 4");
	HAS(text, "tcpshift_backend_handshake_seconds_count{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\"} 4");
	HAS(text, "tcpshift_backend_handshake_seconds_sum{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\"} 1.500000000");
	HAS(text, "tcpshift_backend_weight{service=\"web\",backend=\"v2\","
		  "addr=\"198.18.2.12:8008\"} 10");
	HAS(text, "tcpshift_backend_effective_weight{service=\"web\",backend=\"v2\","
		  "addr=\"198.18.2.12:8008\"} 0");
	HAS(text, "tcpshift_backend_up{service=\"web\",backend=\"v2\",addr=\"198.18.2.12:8008\"} 0");
	HAS(text, "tcpshift_backend_up{service=\"web\",backend=\"v1\",addr=\"198.18.2.11:8008\"} 1");
	HAS(text, "tcpshift_backend_health_since_seconds{service=\"web\",backend=\"v2\","
		  "addr=\"198.18.2.12:8008\"} 1700000000");
	HAS(text, "tcpshift_backend_table_slots{service=\"web\",backend=\"v1\","
		  "addr=\"198.18.2.11:8008\"} 7");
	HAS(text, "tcpshift_service_table_size{service=\"web\"} 7");
	HAS(text, "tcpshift_events_total{event=\"non_syn_miss\"} 9");
	HAS(text, "tcpshift_flow_table_entries{table=\"flows\"} 3");
	HAS(text, "tcpshift_flow_table_max_entries{table=\"half_open\"} 256");
	HAS(text, "tcpshift_services 1");
	HAS(text, "tcpshift_backends 2");
	HAS(text, "tcpshift_metrics_backends_omitted 0");
	/* every line is a comment or a sample of ours */
	for (char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		ASSERT_TRUE(nl, "the text ends with a newline");
		ASSERT_TRUE(line[0] == '#' || !strncmp(line, "tcpshift_", 9),
			    "a line that is no sample: %.60s", line);
	}
	ASSERT_TRUE(!strstr(text, "tcpshift_config_"), "no configuration source: no series");
	free(text);
}

/* The configuration source's series, only with --config. */
static void metrics_render_source(void **state)
{
	static struct ts_config cfg;
	struct ts_source_metrics src = { .up = true, .revision = 41, .latest_revision = 44,
					 .applied = 7, .rejected = 2, .errors = 3,
					 .applied_time_s = 1800000000 };
	struct ts_metrics in = { .cfg = &cfg, .source = &src };
	size_t len = 0;
	char *text;

	(void)state;
	text = ts_metrics_render(&in, &len);
	ASSERT_TRUE(text && strlen(text) == len, "rendered");
	HAS(text, "# TYPE tcpshift_config_up gauge");
	HAS(text, "tcpshift_config_up 1");
	HAS(text, "tcpshift_config_revision 41");
	HAS(text, "tcpshift_config_latest_revision 44");
	HAS(text, "# TYPE tcpshift_config_applied_total counter");
	HAS(text, "tcpshift_config_applied_total 7");
	HAS(text, "tcpshift_config_rejected_total 2");
	HAS(text, "tcpshift_config_etcd_errors_total 3");
	HAS(text, "tcpshift_config_applied_timestamp_seconds 1800000000");
	free(text);
}

/* Build information: one sample of 1, its labels the versions, layout and mode
 * (a label value escaped as every other). */
static void metrics_render_build_info(void **state)
{
	static struct ts_config cfg;
	struct ts_metrics in = { .cfg = &cfg, .version = "0.3.0-dev.4+gabcdef0",
				 .object_version = "0.3.0", .mode = "xdp", .layout = 6 };
	size_t len = 0;
	char *text;

	(void)state;
	text = ts_metrics_render(&in, &len);
	ASSERT_TRUE(text && strlen(text) == len, "rendered");
	HAS(text, "# TYPE tcpshift_build_info gauge");
	HAS(text, "tcpshift_build_info{version=\"0.3.0-dev.4+gabcdef0\",layout=\"6\",mode=\"xdp\","
		  "object_version=\"0.3.0\"} 1");
	free(text);
	in.object_version = "a\"b";
	text = ts_metrics_render(&in, &len);
	ASSERT_TRUE(text && strstr(text, "object_version=\"a\\\"b\"} 1\n"),
		    "a quote in a version escaped");
	free(text);
}

/* Over the agent's bound no service is read: the totals and what is left out,
 * no per-backend sample. */
static void metrics_render_totals_without_backends(void **state)
{
	static struct ts_config cfg;
	struct ts_metrics in = { .cfg = &cfg, .services = 65536, .backends = 262144,
				 .backends_omitted = 262144 };
	size_t len = 0;
	char *text;

	(void)state;
	text = ts_metrics_render(&in, &len);
	ASSERT_TRUE(text && strlen(text) == len, "rendered");
	HAS(text, "# TYPE tcpshift_services gauge");
	HAS(text, "tcpshift_services 65536");
	HAS(text, "tcpshift_backends 262144");
	HAS(text, "# TYPE tcpshift_metrics_backends_omitted gauge");
	HAS(text, "tcpshift_metrics_backends_omitted 262144");
	ASSERT_TRUE(!strstr(text, "\ntcpshift_backend_") && !strstr(text, "\ntcpshift_service_"),
		    "no per-backend or per-service sample");
	ASSERT_TRUE(len < 8192, "the text without backends is small: %zu bytes", len);
	free(text);
}

int run_metrics_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(metrics_render_text),
		cmocka_unit_test(metrics_render_source),
		cmocka_unit_test(metrics_render_build_info),
		cmocka_unit_test(metrics_render_totals_without_backends),
	};

	return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
