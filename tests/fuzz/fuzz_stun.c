/* libFuzzer target for probe_stun: any input must give a sane result, and the result must
 * not change when the same bytes are probed again (the probes are pure), and the bytes fed
 * incrementally, cut as the input says, must give the one-shot answer at every call. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/probe_stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_probe(probe_stun, data, size);
    fuzz_check_incremental(probe_stun, PROBE_ID_STUN, data, size);
    return 0;
}
