/* libFuzzer target for probe_sip: any input must give a sane result, and the result must
 * not change when the same bytes are probed again (the probes are pure). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/probe_sip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_probe(probe_sip, data, size);
    return 0;
}
