/* libFuzzer target for the POST /ufrags body parser (ufrag_req_parse): JSON and line
 * forms. Bodies with a NUL byte never reach it (the admin API refuses them). Checks:
 * a verdict or entries, never both; at most `max` entries; every field a terminated
 * string of its array; the same answer twice. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/ufrag_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_REGS 8 /* small, so that "too many entries" is reached too */

static void check_field(const char *f, size_t cap)
{
    FUZZ_CHECK(memchr(f, '\0', cap) != NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (memchr(data, '\0', size))
        return 0;
    char *body = malloc(size + 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, data, size);
    body[size] = '\0';
    static struct ufrag_reg a[MAX_REGS], b[MAX_REGS];
    size_t na = 99, nb = 99;
    memset(a, 0x55, sizeof(a)); /* no NUL: an unterminated field would show */
    const char *ea = ufrag_req_parse(body, size, a, MAX_REGS, &na);
    const char *eb = ufrag_req_parse(body, size, b, MAX_REGS, &nb);
    FUZZ_CHECK((ea == NULL) == (eb == NULL));
    if (ea) {
        FUZZ_CHECK(*ea != '\0' && strcmp(ea, eb) == 0);
    } else {
        FUZZ_CHECK(na == nb && na <= MAX_REGS);
        for (size_t i = 0; i < na; i++) {
            check_field(a[i].ufrag, sizeof(a[i].ufrag));
            check_field(a[i].server, sizeof(a[i].server));
            check_field(a[i].backend, sizeof(a[i].backend));
            FUZZ_CHECK(strcmp(a[i].ufrag, b[i].ufrag) == 0 &&
                       strcmp(a[i].server, b[i].server) == 0 &&
                       strcmp(a[i].backend, b[i].backend) == 0);
        }
    }
    free(body);
    return 0;
}
