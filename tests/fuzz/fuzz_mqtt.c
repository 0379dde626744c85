/* libFuzzer target for probe_mqtt: any input must give a sane result, and the result must
 * not change when the same bytes are probed again (the probes are pure). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "mux443/lib/probe_mqtt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_check_probe(probe_mqtt, data, size);
    /* The need function agrees with the probe: more bytes are needed only on AGAIN. */
    struct probe_out out;
    size_t need = probe_mqtt_need(data, size);
    if ((probe_mqtt(data, size, &out) == PROBE_AGAIN) != (need > size))
        abort();
    return 0;
}
