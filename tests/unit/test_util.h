/* Helpers shared by the unit tests: loading captured vectors, re-framing TLS hellos into
 * other record layouts, and the checks every probe result must pass. */
#ifndef MUX443_TEST_UTIL_H
#define MUX443_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mux443/lib/classify.h"
#include "mux443/lib/probe.h"

typedef enum probe_result (*tu_probe_fn)(const uint8_t *p, size_t n, struct probe_out *out);

/* probe_detect on a fresh state, in one call: the one-shot result that every split of
 * the same bytes must reproduce. */
enum probe_result tu_detect_once(const uint8_t *p, size_t n, struct probe_out *out);

/* Reads tests/vectors/NAME (directory from $MUX443_VECTORS or the build-time default);
 * fails the test when missing. The caller frees. */
uint8_t *tu_load(const char *name, size_t *len);

/* Runs fn over an exact-size heap copy of p[0..n), so ASan sees any over-read. fn is a
 * stateless probe or tu_detect_once; the same bytes are also fed in a few reads of
 * growing size into one incremental state (probe_detect, or the probe as the dispatcher
 * runs it), whose final answer must equal fn's. */
enum probe_result tu_run(tu_probe_fn fn, const uint8_t *p, size_t n, struct probe_out *out);

/* Feeds p[0..n) into one incremental state for fn (see tu_run), cut into reads of
 * sizes[0], sizes[1], ... (cycled; 0 is a call with no new byte), each call over a fresh
 * exact-size heap copy of the bytes so far (the buffer moves between calls). Every call's
 * answer must equal fn's one-shot answer on the same bytes: result, fields, consumed, and
 * the NOMATCH reason. Feeding goes on after MATCH and NOMATCH: a further call must answer
 * the same (a NOMATCH with the reason it first gave). Returns the last answer; *out gets
 * its output. */
enum probe_result tu_feed(tu_probe_fn fn, const uint8_t *p, size_t n, const size_t *sizes,
                          size_t count, struct probe_out *out);

/* tu_feed with 1-byte reads and a few other patterns (7, 100, 1-0-3-64, 2048 bytes). */
void tu_check_splits(tu_probe_fn fn, const uint8_t *p, size_t n);

/* Checks the invariants of any probe result (lengths in bounds, NUL-terminated strings,
 * ALPN wire format sound, class consistent with the result). */
void tu_check_sane(enum probe_result r, const struct probe_out *out, size_t n);

/* Feeds every prefix p[0..k), k < n, then p[0..n): prefixes must answer AGAIN, except
 * that once `early` bytes are in, a MATCH equal to the full one is allowed (STUN
 * matches on its header). The full buffer must give `want`; *full gets its output.
 * Then tu_check_splits: the same bytes, incrementally, split every way it tries. */
void tu_check_prefixes(tu_probe_fn fn, const uint8_t *p, size_t n, size_t early,
                       enum probe_result want, struct probe_out *full);

/* True when two MATCH outputs carry the same routing fields (consumed excluded). */
bool tu_same_fields(const struct probe_out *a, const struct probe_out *b);

/* Concatenates the payloads of the TLS records in p (which must be well formed). */
size_t tu_tls_payload(const uint8_t *p, size_t n, uint8_t *hs, size_t cap);
/* Wraps a handshake byte string into handshake records of at most chunk bytes each.
 * Returns the bytes written (0 if cap is too small). */
size_t tu_tls_records(const uint8_t *hs, size_t hs_len, size_t chunk, uint8_t *out, size_t cap);
/* Builds a ClientHello handshake message (header included) with the given extension
 * block contents; exts == NULL means no extension block at all. */
size_t tu_client_hello(const uint8_t *exts, size_t exts_len, uint8_t *hs, size_t cap);

/* Deterministic PRNG for corruption tests (xorshift64*). */
uint64_t tu_rand(uint64_t *state);

#endif
