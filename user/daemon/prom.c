// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Prometheus metrics (text exposition format 0.0.4) of an instance, rendered
 * from what `tcpshift agent` read from the maps: pure, so the unit tests
 * check the text. Every per-backend series has the labels service, backend
 * and addr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

/* A label value: \, " and newline escaped (names and addresses have none,
 * but the format is the format). */
static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n') {
			fputs("\\n", f);
			continue;
		}
		fputc(*v, f);
	}
}

static void put_labels(FILE *f, const struct ts_service_cfg *s, const struct ts_backend_cfg *b)
{
	char addr[TS_ADDRSTRLEN];

	ts_format_endpoint(b->be.addr, b->be.port, b->be.family, addr, sizeof(addr));
	fputs("service=\"", f);
	put_label(f, s->svc.name);
	fputs("\",backend=\"", f);
	put_label(f, b->be.name);
	fputs("\",addr=\"", f);
	put_label(f, addr);
	fputc('"', f);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One value per backend of every service: the series of one metric. */
typedef unsigned long long (*backend_value)(const struct ts_metrics *in, size_t si, size_t bi);

static void per_backend(FILE *f, const struct ts_metrics *in, const char *name, const char *type,
			const char *help, backend_value value)
{
	header(f, name, type, help);
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		const struct ts_service_cfg *s = &in->cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++) {
			fprintf(f, "%s{", name);
			put_labels(f, s, &s->backends[j]);
			fprintf(f, "} %llu\n", value(in, i, j));
		}
	}
}

#define STAT(field)                                                                      \
	static unsigned long long stat_##field(const struct ts_metrics *in, size_t si,   \
					       size_t bi)                                 \
	{                                                                                \
		return in->stats[si][bi].field;                                         \
	}
STAT(new_flows)
STAT(handshakes)
STAT(refused)
STAT(syn_retransmits)
STAT(reset)
STAT(closed)
STAT(packets)

static unsigned long long open_connections(const struct ts_metrics *in, size_t si, size_t bi)
{
	const struct ts_backend_stats *st = &in->stats[si][bi];

	/* evicted flows are not seen to end: never below 0 */
	return st->opened > st->ended ? st->opened - st->ended : 0;
}

static unsigned long long weight(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->cfg->services[si].backends[bi].weight;
}

static unsigned long long effective_weight(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->effective[si][bi];
}

static unsigned long long up(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->cfg->services[si].backends[bi].be.health != TS_HEALTH_DOWN;
}

static unsigned long long health_since(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->cfg->services[si].backends[bi].be.health_since_s;
}

static unsigned long long slots(const struct ts_metrics *in, size_t si, size_t bi)
{
	return in->slots[si][bi];
}

static void handshake_histogram(FILE *f, const struct ts_metrics *in)
{
	const char *name = "tcpshift_backend_handshake_seconds";

	header(f, name, "histogram",
	       "Time from a SYN forwarded to the backend's SYN-ACK seen at the gateway.");
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		const struct ts_service_cfg *s = &in->cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++) {
			const struct ts_backend_stats *st = &in->stats[i][j];
			unsigned long long cum = 0;

			for (int k = 0; k < TS_HANDSHAKE_BUCKETS; k++) {
				cum += st->handshake_hist[k];
				fprintf(f, "%s_bucket{", name);
				put_labels(f, s, &s->backends[j]);
				if (k == TS_HANDSHAKE_BUCKETS - 1)
					fprintf(f, ",le=\"+Inf\"} %llu\n", cum);
				else
					fprintf(f, ",le=\"%.9g\"} %llu\n",
						(double)(TS_HANDSHAKE_BUCKET0_NS << k) / 1e9, cum);
			}
			fprintf(f, "%s_sum{", name);
			put_labels(f, s, &s->backends[j]);
			fprintf(f, "} %.9f\n", (double)st->handshake_ns_sum / 1e9);
			fprintf(f, "%s_count{", name);
			put_labels(f, s, &s->backends[j]);
			fprintf(f, "} %llu\n", cum);
		}
	}
}

static void source_metrics(FILE *f, const struct ts_source_metrics *src)
{
	header(f, "tcpshift_config_up", "gauge",
	       "1 while the agent watches its configuration key in etcd, 0 while it cannot.");
	fprintf(f, "tcpshift_config_up %d\n", src->up);
	header(f, "tcpshift_config_revision", "gauge",
		"etcd revision of the document in force (0: none applied yet).");
	fprintf(f, "tcpshift_config_revision %lld\n", (long long)src->revision);
	header(f, "tcpshift_config_latest_revision", "gauge",
	       "etcd revision of the key's latest value seen; above tcpshift_config_revision "
	       "while the latest document is refused.");
	fprintf(f, "tcpshift_config_latest_revision %lld\n", (long long)src->latest_revision);
	header(f, "tcpshift_config_applied_total", "counter", "Documents from etcd applied.");
	fprintf(f, "tcpshift_config_applied_total %llu\n", (unsigned long long)src->applied);
	header(f, "tcpshift_config_rejected_total", "counter",
	       "Documents from etcd refused (invalid, too large, or failed to apply); the one "
	       "in force stays.");
	fprintf(f, "tcpshift_config_rejected_total %llu\n", (unsigned long long)src->rejected);
	header(f, "tcpshift_config_etcd_errors_total", "counter",
	       "Failed requests to etcd and lost watches (each retried with backoff).");
	fprintf(f, "tcpshift_config_etcd_errors_total %llu\n", (unsigned long long)src->errors);
	header(f, "tcpshift_config_applied_timestamp_seconds", "gauge",
	       "Unix time of the last document applied (0: none).");
	fprintf(f, "tcpshift_config_applied_timestamp_seconds %llu\n",
		(unsigned long long)src->applied_time_s);
}

char *ts_metrics_render(const struct ts_metrics *in, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);

	if (!f)
		return NULL;
	per_backend(f, in, "tcpshift_backend_connection_attempts_total", "counter",
		    "New connections (SYNs) pinned to the backend.", stat_new_flows);
	per_backend(f, in, "tcpshift_backend_handshakes_total", "counter",
		    "Handshakes completed: the backend's SYN-ACK, then the client's ACK.",
		    stat_handshakes);
	per_backend(f, in, "tcpshift_backend_refused_total", "counter",
		    "Connections the backend refused (its RST to a SYN, before any SYN-ACK).",
		    stat_refused);
	per_backend(f, in, "tcpshift_backend_syn_retransmits_total", "counter",
		    "Connections timed out: the client sent its SYN again, no SYN-ACK a second "
		    "after the first (counted once).",
		    stat_syn_retransmits);
	per_backend(f, in, "tcpshift_backend_resets_total", "counter",
		    "Established connections reset by the backend.", stat_reset);
	per_backend(f, in, "tcpshift_backend_closed_total", "counter",
		    "Established connections closed normally (FINs both ways).", stat_closed);
	per_backend(f, in, "tcpshift_backend_open_connections", "gauge",
		    "Connections open now (confirmed minus ended; evicted flows are not seen "
		    "to end).",
		    open_connections);
	per_backend(f, in, "tcpshift_backend_packets_total", "counter",
		    "Packets of the backend's flows, both directions.", stat_packets);
	header(f, "tcpshift_backend_bytes_total", "counter",
	       "Bytes of the backend's flows, by direction.");
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		const struct ts_service_cfg *s = &in->cfg->services[i];

		for (size_t j = 0; j < s->nbackends; j++)
			for (int d = 0; d < 2; d++) {
				fputs("tcpshift_backend_bytes_total{", f);
				put_labels(f, s, &s->backends[j]);
				fprintf(f, ",direction=\"%s\"} %llu\n",
					d ? "from_backend" : "to_backend",
					(unsigned long long)(d ? in->stats[i][j].bytes_from_backend
							       : in->stats[i][j].bytes_to_backend));
			}
	}
	handshake_histogram(f, in);
	per_backend(f, in, "tcpshift_backend_weight", "gauge",
		    "The backend's weight as the operator set it.", weight);
	per_backend(f, in, "tcpshift_backend_effective_weight", "gauge",
		    "The weight its table is built with: 0 while it is down (unless every "
		    "backend is: fail open).",
		    effective_weight);
	per_backend(f, in, "tcpshift_backend_up", "gauge",
		    "1 when the backend is up (or not checked), 0 when its health checks "
		    "marked it down.",
		    up);
	per_backend(f, in, "tcpshift_backend_health_since_seconds", "gauge",
		    "Unix time of the backend's last health transition (0: never).",
		    health_since);
	per_backend(f, in, "tcpshift_backend_table_slots", "gauge",
		    "Slots of its service's live Maglev table that the backend holds.", slots);
	header(f, "tcpshift_service_table_size", "gauge",
	       "Slots of the service's Maglev table (M).");
	for (size_t i = 0; i < in->cfg->nservices; i++) {
		fputs("tcpshift_service_table_size{service=\"", f);
		put_label(f, in->cfg->services[i].svc.name);
		fprintf(f, "\"} %u\n", in->cfg->services[i].svc.table_size);
	}
	header(f, "tcpshift_events_total", "counter",
	       "The data plane's global counters, by event (as 'tcpshift status').");
	for (int c = 0; c < TS_CNT_MAX; c++)
		fprintf(f, "tcpshift_events_total{event=\"%s\"} %llu\n", ts_counter_name(c),
			(unsigned long long)in->counters[c]);
	header(f, "tcpshift_flow_table_entries", "gauge",
	       "Entries in the flow tables (flows: confirmed; half_open: not yet).");
	fprintf(f, "tcpshift_flow_table_entries{table=\"flows\"} %u\n", in->flows);
	fprintf(f, "tcpshift_flow_table_entries{table=\"half_open\"} %u\n", in->half_open);
	header(f, "tcpshift_flow_table_max_entries", "gauge", "Size of the flow tables.");
	fprintf(f, "tcpshift_flow_table_max_entries{table=\"flows\"} %u\n", in->flows_max);
	fprintf(f, "tcpshift_flow_table_max_entries{table=\"half_open\"} %u\n",
		in->half_open_max);
	if (in->source)
		source_metrics(f, in->source);
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}
