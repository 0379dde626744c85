/* libFuzzer target for probe_detect: any input must give a sane result that does not change
 * when the same bytes are probed again, and the bytes fed incrementally into one state, cut
 * as the input says, must give the one-shot answer at every call (differential). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/classify.h"
#include "mux443/lib/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_probe(fuzz_detect_once, data, size);
    fuzz_check_incremental(fuzz_detect_once, -1, data, size);
    return 0;
}
