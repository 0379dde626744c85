/* The phases before routing: reading the client's first bytes into the preread buffer
 * (one buffer, grown as needed up to preread_max; never MSG_PEEK), stripping an inbound
 * PROXY header, running the probes over what arrived, and the TLS handshake when mux443
 * terminates. Bytes are looked at once: CPU grows linearly with the first flight. */
#ifndef MUX443_CORE_DETECT_H
#define MUX443_CORE_DETECT_H

#include "mux443/core/session.h"

/* The preread buffer's first allocation: most first flights fit (Chromium's
 * ClientHello is ~2 KB); it doubles from there up to preread_max, each step counted in
 * preread_budget. */
#define DETECT_FIRST_BLOCK 4096

/* CONN_PROXY: DONE once the header is consumed and the real client is admitted. */
enum step detect_proxy(struct conn *c, int revents);

/* CONN_DETECT: DONE when *out holds the verdict: a class with its fields, CLASS_UNKNOWN
 * (out->why says what was seen; also at preread_max) or CLASS_TIMEOUT (peek_timeout). */
enum step detect_first_bytes(struct conn *c, int revents, struct probe_out *out);

/* CONN_HANDSHAKE: DONE once the TLS handshake with the client completed. */
enum step detect_handshake(struct conn *c, int revents);

/* Frees what detection holds (probe state) and returns the preread buffer's bytes to
 * preread_budget; the buffer itself stays with the leg. */
void detect_release(struct conn *c);

#endif
