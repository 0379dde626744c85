/* MQTT probe: a CONNECT packet of MQTT 3.1 ("MQIsdp", level 3), 3.1.1 ("MQTT", level 4)
 * or 5.0 ("MQTT", level 5). Pure function, same contract as the probes in probe.h. */
#ifndef MUX443_LIB_PROBE_MQTT_H
#define MUX443_LIB_PROBE_MQTT_H

#include "mux443/lib/probe.h"

/* MATCH once the client identifier (the payload's first field) is complete;
 * out->consumed is the bytes up to its end (the packet may go on: will, credentials),
 * out->mqtt_level the protocol level, out->mqtt_client the identifier (cut at
 * PROBE_NAME_MAX, mqtt_client_cut set; empty is allowed: the broker assigns one).
 * NOMATCH on any other first byte than 0x10, a remaining length over 4 bytes or
 * shorter than the fields it must hold, another protocol name or level, or the reserved
 * connect flag set.
 * Need (for a resumable table): probe_mqtt_need(p, n) gives the buffer length at which
 * the answer can next change (always > n while the probe says AGAIN). */
enum probe_result probe_mqtt(const uint8_t *p, size_t n, struct probe_out *out);
size_t probe_mqtt_need(const uint8_t *p, size_t n);

/* The dispatcher's step (probe_step_fn): on AGAIN, need is probe_mqtt_need. */
enum probe_result probe_mqtt_step(struct probe_state *st, const uint8_t *p, size_t n,
                                  struct probe_out *out, size_t *need);

#endif
