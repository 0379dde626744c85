/* Checks the admin API applies to a request before any endpoint (against web pages in an
 * operator's browser and DNS rebinding). Pure code: no I/O, no allocation. */
#ifndef MUX443_LIB_HTTP_GUARD_H
#define MUX443_LIB_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>

/* A Host header value (HOST or HOST:PORT) naming this machine as a rebinding page
 * cannot: an IPv4 literal, a bracketed IPv6 literal, localhost (a trailing dot allowed),
 * or one of names[0..n) (case-insensitive). A port, when present, is digits. */
bool http_host_allowed(const char *host, char *const *names, size_t n);

/* The media type of a Content-Type value (before any parameter, case-insensitive) is
 * `type`. */
bool http_media_type_is(const char *ctype, const char *type);

/* given == want, in time that does not depend on where they differ (only on want's
 * length). */
bool http_token_eq(const char *given, const char *want);

/* An Authorization header value that carries the token `want`: "Bearer TOKEN", or
 * "Basic base64(USER:TOKEN)" with any user (what a browser sends after its login prompt,
 * so that the status page works with a token). The comparison is http_token_eq's. */
bool http_auth_carries(const char *authorization, const char *want);

#endif
