/* libFuzzer target for probe_tls: any input must give a sane result, and the result must
 * not change when the same bytes are probed again (the probes are pure), and the bytes fed
 * incrementally, cut as the input says, must give the one-shot answer at every call. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/probe_tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_probe(probe_tls, data, size);
    fuzz_check_incremental(probe_tls, PROBE_ID_TLS, data, size);
    return 0;
}
