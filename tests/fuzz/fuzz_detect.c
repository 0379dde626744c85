/* libFuzzer target for probe_detect: any input must give a sane result, and the result must
 * not change when the same bytes are probed again (the probes are pure). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum probe_result detect_once(const uint8_t *p, size_t n, struct probe_out *out)
{
    struct probe_state st;

    probe_state_init(&st);
    return probe_detect(&st, p, n, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_probe(detect_once, data, size);
    return 0;
}
