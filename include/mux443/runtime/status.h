/* The status page of the admin listener: `/` and `/status` (HTML with inline CSS and
 * script, no external asset), `/status.json` (what the page shows, polled by it every
 * two seconds), and the certificate expiry gauges of /metrics. Read-only: GET and HEAD,
 * query strings ignored. Main thread. */
#ifndef MUX443_RUNTIME_STATUS_H
#define MUX443_RUNTIME_STATUS_H

#include <stdbool.h>
#include <stdio.h>

/* Notes the start time (uptime). */
void status_init(void);

/* Writes the answer to path into body and sets *type if path is one of the status
 * page's; false if not. */
bool status_serve(const char *path, FILE *body, const char **type);

/* mux443_tls_certificate_expiry_seconds{tls=...}: the certificates of the running
 * snapshot, as Unix time of their notAfter. */
void status_metrics(FILE *out);

#endif
