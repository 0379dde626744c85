/* Parsing the bodies of ufrag registrations (POST /ufrags on the admin API). Pure code:
 * no allocation beyond a scratch copy, no logging; fuzzed. */
#ifndef MUX443_LIB_UFRAG_REQ_H
#define MUX443_LIB_UFRAG_REQ_H

#include <stddef.h>

#include "mux443/lib/addr.h"
#include "mux443/lib/ice.h"
#include "mux443/lib/names.h"

/* One registration: ufrag -> server (HOST:PORT text as in the configuration), optionally
 * of a named backend, for ttl seconds (0 = the configured ufrag_ttl). */
struct ufrag_reg {
    /* One byte more than the longest valid ufrag: an over-long one is read whole and
     * refused by the caller's syntax check as malformed, like any other bad ufrag. */
    char ufrag[UFRAG_MAX + 2];
    char server[ADDR_TEXT_MAX];
    char backend[NAME_MAX_LEN + 1];
    double ttl;
};

/* Parses a request body (len bytes, no NUL inside) into regs (at most max). Returns NULL
 * with *n entries, or a static text saying what is wrong. Values too long for their
 * field are refused, never cut. Syntax only: ufrag characters, servers and TTL ranges are
 * the caller's to check. */
const char *ufrag_req_parse(const char *body, size_t len, struct ufrag_reg *regs, size_t max,
                            size_t *n);

#endif
