/*
 * A stand-in libnvidia-ml.so.1 for tests: two fake GPUs whose energy, power and failures the
 * test sets through fake_nvml_set(). Built with cc at test time (tests/sampling/conftest.py)
 * and loaded by path, so the native loop's and the twin's real dlopen/dlsym code runs.
 * It also answers what pynvml needs to open an NvidiaGPU (name, UUID, index, MIG mode).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NDEV 2
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_NOT_FOUND 6

typedef struct {
    unsigned long long energy_mj;
    unsigned long long energy_step_mj; /* added after every energy read */
    unsigned int power_mw;
    int fail; /* returned by every read while nonzero */
    long energy_reads, power_reads;
} fake_gpu_t;

static fake_gpu_t gpus[NDEV];
static int inits;
static volatile int hang_ms; /* every energy read sleeps this long first (a wedged driver) */

void fake_nvml_hang(int ms) { hang_ms = ms; }
static char errbuf[64];

void fake_nvml_set(int i, unsigned long long energy_mj, unsigned long long step_mj,
                   unsigned int power_mw, int fail) {
    gpus[i].energy_mj = energy_mj;
    gpus[i].energy_step_mj = step_mj;
    gpus[i].power_mw = power_mw;
    gpus[i].fail = fail;
}
long fake_nvml_reads(int i, int power) { return power ? gpus[i].power_reads : gpus[i].energy_reads; }
int fake_nvml_inits(void) { return inits; }
void fake_nvml_reset(void) { memset(gpus, 0, sizeof gpus); }

static fake_gpu_t *gpu(void *handle) {
    fake_gpu_t *g = handle;
    return (g >= gpus && g < gpus + NDEV) ? g : NULL;
}

int nvmlInit_v2(void) { inits++; return 0; }
int nvmlInitWithFlags(unsigned int flags) { (void)flags; inits++; return 0; }
int nvmlShutdown(void) { inits--; return 0; }
const char *nvmlErrorString(int code) {
    snprintf(errbuf, sizeof errbuf, "fake NVML error %d", code);
    return errbuf;
}
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = NDEV; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) {
    if (i >= NDEV) return NVML_ERROR_INVALID_ARGUMENT;
    *h = &gpus[i];
    return 0;
}
int nvmlDeviceGetHandleByUUID(const char *uuid, void **h) {
    for (int i = 0; i < NDEV; i++) {
        char want[32];
        snprintf(want, sizeof want, "GPU-fake-%d", i);
        if (!strcmp(uuid, want)) {
            *h = &gpus[i];
            return 0;
        }
    }
    return NVML_ERROR_NOT_FOUND;
}
int nvmlDeviceGetUUID(void *h, char *out, unsigned int len) {
    if (!gpu(h)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(out, len, "GPU-fake-%d", (int)(gpu(h) - gpus));
    return 0;
}
int nvmlDeviceGetName(void *h, char *out, unsigned int len) {
    if (!gpu(h)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(out, len, "Fake GPU");
    return 0;
}
int nvmlDeviceGetIndex(void *h, unsigned int *i) {
    if (!gpu(h)) return NVML_ERROR_INVALID_ARGUMENT;
    *i = (unsigned int)(gpu(h) - gpus);
    return 0;
}
int nvmlDeviceIsMigDeviceHandle(void *h, unsigned int *is_mig) { (void)h; *is_mig = 0; return 0; }
int nvmlDeviceGetMigMode(void *h, unsigned int *cur, unsigned int *pending) {
    (void)h; (void)cur; (void)pending;
    return NVML_ERROR_NOT_SUPPORTED;
}
int nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) {
    fake_gpu_t *g = gpu(h);
    if (!g) return NVML_ERROR_INVALID_ARGUMENT;
    if (g->fail) return g->fail;
    if (hang_ms) usleep((useconds_t)hang_ms * 1000);
    g->energy_reads++;
    *mj = g->energy_mj;
    g->energy_mj += g->energy_step_mj;
    return 0;
}
int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) {
    fake_gpu_t *g = gpu(h);
    if (!g) return NVML_ERROR_INVALID_ARGUMENT;
    if (g->fail) return g->fail;
    g->power_reads++;
    *mw = g->power_mw;
    return 0;
}

typedef struct {
    unsigned int fieldId, scopeId;
    long long timestamp, latencyUsec;
    int valueType, nvmlReturn;
    union {
        double d;
        unsigned int ui;
        unsigned long long ull;
    } value;
} field_t;

int nvmlDeviceGetFieldValues(void *h, int n, field_t *values) {
    fake_gpu_t *g = gpu(h);
    if (!g) return NVML_ERROR_INVALID_ARGUMENT;
    for (int k = 0; k < n; k++) {
        field_t *f = &values[k];
        if (f->fieldId != 186) { /* NVML_FI_DEV_POWER_INSTANT */
            f->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        f->nvmlReturn = g->fail;
        if (g->fail) continue;
        g->power_reads++;
        f->valueType = 1; /* NVML_VALUE_TYPE_UNSIGNED_INT */
        f->value.ui = g->power_mw;
    }
    return 0;
}
