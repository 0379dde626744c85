/* Names: the operator's names for listeners, backends, routes and [tls] sections (their
 * syntax and one length limit, checked when the file is loaded), and host name matching
 * with "*." wildcards (SNI, Host, certificate names). */
#ifndef MUX443_LIB_NAMES_H
#define MUX443_LIB_NAMES_H

#include <stdbool.h>
#include <stddef.h>

/* Longest name of a listener, backend, route or [tls] section. Metrics labels, the ufrag
 * table and logs hold names in NAME_MAX_LEN + 1 bytes, so longer ones are refused at load
 * time with a file:line error, never cut. */
#define NAME_MAX_LEN 63

/* True when s is 1..NAME_MAX_LEN letters, digits, '_', '.' or '-'. */
bool name_valid(const char *s);

/* Case-insensitive host name match; "*.example.com" matches any name ending in
 * ".example.com" with at least one label before it. A trailing dot on name is ignored. */
bool name_match(const char *pattern, const char *name, size_t len);

#endif
