/* SIP probe (RFC 3261): a request line "METHOD sip:user@host SIP/2.0" (any method token;
 * sip:, sips: or tel: Request-URI) or a status line "SIP/2.0 200 OK". Pure function, same
 * contract as the probes in probe.h. */
#ifndef MUX443_LIB_PROBE_SIP_H
#define MUX443_LIB_PROBE_SIP_H

#include "mux443/lib/probe.h"

/* Longest request or status line accepted; a longer one is NOMATCH. */
#define PROBE_SIP_LINE_MAX 2048

/* MATCH once the first line is complete (CRLF); out->consumed is its length with the
 * CRLF, out->method the method (cut to 15 characters), out->host/host_len the
 * Request-URI host without port or parameters (empty for tel: and responses; IPv6 in
 * brackets, as in HTTP). NOMATCH as soon as a byte cannot continue a SIP line: a method
 * must be followed by sip:/sips:/tel:, and the line must end with " SIP/2.0", so HTTP
 * ("GET / HTTP/1.1", "OPTIONS * HTTP/1.1", "GET http://...") is refused at the target
 * or, at the latest, at its line end.
 * Need (for a resumable table): every byte up to the first LF may decide; the probe
 * re-reads from the start, so "one more byte than last time" (n + 1) is exact. */
enum probe_result probe_sip(const uint8_t *p, size_t n, struct probe_out *out);

/* The dispatcher's step (probe_step_fn): the line is scanned again from its start on each
 * call, which the PROBE_SIP_LINE_MAX bound keeps cheap; need stays n + 1. */
enum probe_result probe_sip_step(struct probe_state *st, const uint8_t *p, size_t n,
                                 struct probe_out *out, size_t *need);

#endif
