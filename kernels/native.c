/*
 * greenai._native: the sampling loop in C, on a thread that never takes the GIL.
 *
 * One Loop reads its sources (RAPL energy_uj files, NVIDIA GPUs through NVML) on a fixed
 * period and pushes one 32-byte record per source and tick into a single-producer ring
 * buffer that Python drains without blocking. The pure-Python twin with the same API is
 * greenai/sampling/native_py.py; tests run both (tests/sampling/test_native_loop.py).
 *
 * Timing: deadlines are absolute on CLOCK_MONOTONIC (the clock of time.perf_counter and
 * time.monotonic on Linux) and slept to with clock_nanosleep(TIMER_ABSTIME), so lateness
 * never accumulates. A tick that overruns skips the grid points it missed (counted).
 * Waits longer than STOP_POLL_NS are cut into absolute chunks so stop() is prompt.
 *
 * NVML is loaded with dlopen (libnvidia-ml.so.1, or GREENAI_NVML_LIB / lib=): there is no
 * build-time CUDA dependency.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define MIN_PERIOD_NS 1000000LL   /* 1 ms */
#define MAX_PERIOD_NS 3600000000000LL /* 1 hour */
#define MAX_NVML_LIBS 8
#define STOP_POLL_NS 10000000LL   /* a stop request is seen within 10 ms */
#define NVML_FI_DEV_POWER_INSTANT 186

/* --- records ---------------------------------------------------------------------------- */

typedef struct {
    int64_t t_ns;    /* CLOCK_MONOTONIC, middle of the read */
    int32_t source;  /* index returned by add_rapl/add_nvml */
    int32_t status;  /* 0 ok; < 0: -errno (RAPL); > 0: NVML return code */
    double energy_j; /* cumulative energy, NaN when not read on this tick */
    double power_w;  /* instant power, NaN when the source has none */
} record_t;

typedef struct {
    record_t *buf;
    uint64_t mask;
    _Atomic uint64_t head; /* next slot the producer writes */
    _Atomic uint64_t tail; /* next slot the consumer reads */
    _Atomic uint64_t overflow;
} ring_t;

static void ring_push(ring_t *r, const record_t *rec) {
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - t > r->mask) { /* full: drop the newest, and say so */
        atomic_fetch_add_explicit(&r->overflow, 1, memory_order_relaxed);
        return;
    }
    r->buf[h & r->mask] = *rec;
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
}

/* --- NVML through dlopen ------------------------------------------------------------------ */

typedef void *nvml_device_t;
typedef union {
    double dVal;
    unsigned int uiVal;
    unsigned long ulVal;
    unsigned long long ullVal;
    long long sllVal;
    int siVal;
    unsigned short usVal;
} nvml_value_t;
typedef struct {
    unsigned int fieldId;
    unsigned int scopeId;
    long long timestamp;
    long long latencyUsec;
    int valueType;
    int nvmlReturn;
    nvml_value_t value;
} nvml_field_value_t;

typedef struct {
    void *dl;
    int (*init)(void);
    int (*shutdown)(void);
    int (*by_index)(unsigned int, nvml_device_t *);
    int (*by_uuid)(const char *, nvml_device_t *);
    int (*energy)(nvml_device_t, unsigned long long *);
    int (*power)(nvml_device_t, unsigned int *);
    int (*fields)(nvml_device_t, int, nvml_field_value_t *);
    const char *(*error_string)(int);
    char path[4096];
} nvml_api_t;

/* --- the loop object ---------------------------------------------------------------------- */

enum { SRC_RAPL = 1, SRC_NVML = 2 };
enum { POWER_NONE = 0, POWER_INSTANT = 1, POWER_AVERAGE = 2 };

typedef struct {
    int kind;
    /* RAPL */
    int fd;
    uint64_t wrap_uj, last_uj, total_uj;
    /* NVML */
    nvml_device_t handle;
    int power_mode;
    int64_t energy_every; /* read the energy counter every this many ticks; 0 = never */
    int64_t next_energy_tick;
} source_t;

typedef struct loop_s {
    PyObject_HEAD
    int64_t period_ns;
    ring_t ring;
    source_t *sources;
    int nsources;
    const nvml_api_t *nvml; /* process-wide, never unloaded (see load_nvml) */
    int nvml_inits;         /* successful nvmlInit calls this loop owes a shutdown for */
    pthread_mutex_t tick_lock; /* one producer at a time: the thread or a synchronous tick */
    pthread_t thread;
    int thread_valid;
    _Atomic int stop_flag;
    _Atomic int running;
    int forked;   /* inherited through fork(): the thread is gone, NVML must not be used */
    int closed;
    int abandoned; /* stop() gave up on a thread stuck in a read: it owns the loop's memory */
    /* Lifecycle: start/stop/tick/add/close run one at a time. `busy` is guarded by
       life_lock, which is only ever held briefly and never while waiting for the GIL;
       a caller that finds the loop busy waits on life_cond with the GIL released. */
    pthread_mutex_t life_lock;
    pthread_cond_t life_cond;
    int busy;
    int64_t start_ns;
    int64_t tick_index;
    _Atomic uint64_t ticks, missed;
    _Atomic int64_t late_max_ns, late_sum_ns;
    _Atomic int64_t cpu_ns; /* thread CPU time of finished runs */
    struct loop_s *next_loop;
    struct loop_s *prev_loop;
} loop_t;

/* Every live loop, for fork() and interpreter exit. Changed only with the GIL held. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static loop_t *g_loops = NULL;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void raise_greenai(const char *cls, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    PyObject *mod = PyImport_ImportModule("greenai.errors");
    PyObject *exc = mod ? PyObject_GetAttrString(mod, cls) : NULL;
    Py_XDECREF(mod);
    if (exc == NULL) {
        PyErr_Clear();
        PyErr_SetString(PyExc_RuntimeError, msg);
        return;
    }
    PyErr_SetString(exc, msg);
    Py_DECREF(exc);
}

/* --- reading one source ------------------------------------------------------------------- */

static int read_uj(int fd, uint64_t *out) {
    char buf[32];
    ssize_t n;
    do n = pread(fd, buf, sizeof buf - 1, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    buf[n] = '\0';
    if (buf[0] < '0' || buf[0] > '9') return -EBADMSG;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (end == buf || errno || (*end != '\0' && *end != '\n')) return -EBADMSG;
    *out = v;
    return 0;
}

static void read_rapl(source_t *s, record_t *rec) {
    uint64_t raw;
    int status = read_uj(s->fd, &raw);
    if (status) {
        rec->status = status;
        return;
    }
    uint64_t delta = raw >= s->last_uj ? raw - s->last_uj : raw + s->wrap_uj - s->last_uj;
    s->total_uj += delta;
    s->last_uj = raw;
    rec->energy_j = (double)s->total_uj * 1e-6;
}

static double field_as_double(const nvml_field_value_t *f) {
    switch (f->valueType) {
        case 0: return f->value.dVal;
        case 2: return (double)f->value.ulVal;
        case 3: return (double)f->value.ullVal;
        case 4: return (double)f->value.sllVal;
        case 5: return (double)f->value.siVal;
        case 6: return (double)f->value.usVal;
        default: return (double)f->value.uiVal;
    }
}

static int energy_due(const source_t *s, int64_t tick) {
    return s->energy_every > 0 && tick >= s->next_energy_tick;
}

static void read_nvml(loop_t *L, source_t *s, int64_t tick, record_t *rec) {
    int ret = 0;
    if (energy_due(s, tick)) {
        unsigned long long mj = 0;
        ret = L->nvml->energy(s->handle, &mj);
        if (ret) goto fail;
        rec->energy_j = (double)mj / 1000.0;
        s->next_energy_tick = (tick / s->energy_every + 1) * s->energy_every;
    }
    if (s->power_mode == POWER_INSTANT) {
        nvml_field_value_t f;
        memset(&f, 0, sizeof f);
        f.fieldId = NVML_FI_DEV_POWER_INSTANT;
        ret = L->nvml->fields(s->handle, 1, &f);
        if (!ret) ret = f.nvmlReturn;
        if (ret) goto fail;
        rec->power_w = field_as_double(&f) / 1000.0;
    } else if (s->power_mode == POWER_AVERAGE) {
        unsigned int mw = 0;
        ret = L->nvml->power(s->handle, &mw);
        if (ret) goto fail;
        rec->power_w = (double)mw / 1000.0;
    }
    return;
fail:
    rec->status = ret;
    rec->energy_j = rec->power_w = NAN;
}

/* Read every source once. Caller holds tick_lock. */
static void do_tick(loop_t *L, int64_t tick) {
    for (int i = 0; i < L->nsources; i++) {
        source_t *s = &L->sources[i];
        if (s->kind == SRC_NVML && s->power_mode == POWER_NONE && !energy_due(s, tick)) continue;
        record_t rec = {0, i, 0, NAN, NAN};
        int64_t before = now_ns();
        if (s->kind == SRC_RAPL)
            read_rapl(s, &rec);
        else
            read_nvml(L, s, tick, &rec);
        rec.t_ns = before + (now_ns() - before) / 2;
        ring_push(&L->ring, &rec);
    }
}

/* --- the thread --------------------------------------------------------------------------- */

static void ns_to_ts(int64_t ns, struct timespec *ts) {
    ts->tv_sec = ns / 1000000000LL;
    ts->tv_nsec = ns % 1000000000LL;
}

/* Sleep until `deadline` (absolute, CLOCK_MONOTONIC); return 1 when asked to stop. */
static int wait_until(loop_t *L, int64_t deadline) {
    for (;;) {
        if (atomic_load_explicit(&L->stop_flag, memory_order_acquire)) return 1;
        int64_t now = now_ns();
        if (now >= deadline) return 0;
        int64_t target = deadline - now > STOP_POLL_NS ? now + STOP_POLL_NS : deadline;
        struct timespec ts;
        ns_to_ts(target, &ts);
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
}

static void *run(void *arg) {
    loop_t *L = (loop_t *)arg;
    /* The default 50 us timer slack lets the kernel wake us that late to batch timers;
       a sampler wants its deadline (per-thread setting; failure only costs precision). */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    int64_t period = L->period_ns;
    int64_t tick = L->tick_index;
    int64_t deadline = L->start_ns + tick * period;
    while (!wait_until(L, deadline)) {
        int64_t late = now_ns() - deadline;
        atomic_fetch_add_explicit(&L->late_sum_ns, late, memory_order_relaxed);
        if (late > atomic_load_explicit(&L->late_max_ns, memory_order_relaxed))
            atomic_store_explicit(&L->late_max_ns, late, memory_order_relaxed);
        pthread_mutex_lock(&L->tick_lock);
        do_tick(L, tick);
        pthread_mutex_unlock(&L->tick_lock);
        atomic_fetch_add_explicit(&L->ticks, 1, memory_order_relaxed);
        tick++;
        deadline += period;
        int64_t now = now_ns();
        if (now >= deadline) { /* overran: skip the grid points already past, keep the grid */
            int64_t skip = (now - deadline) / period + 1;
            atomic_fetch_add_explicit(&L->missed, (uint64_t)skip, memory_order_relaxed);
            tick += skip;
            deadline += skip * period;
        }
    }
    L->tick_index = tick;
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
        atomic_fetch_add(&L->cpu_ns, (int64_t)cpu.tv_sec * 1000000000LL + cpu.tv_nsec);
    return NULL;
}

/* --- lifecycle: one operation at a time ---------------------------------------------------- */

/* Take the loop for one operation (start/stop/tick/add/close/stats). Call without the GIL:
   a second caller waits here until the first is done, so a thread is never joined twice,
   never started twice, and sources never change under a running operation. */
static void op_begin_nogil(loop_t *L) {
    pthread_mutex_lock(&L->life_lock);
    while (L->busy) pthread_cond_wait(&L->life_cond, &L->life_lock);
    L->busy = 1;
    pthread_mutex_unlock(&L->life_lock);
}

/* Give the loop back; with or without the GIL. */
static void op_end(loop_t *L) {
    pthread_mutex_lock(&L->life_lock);
    L->busy = 0;
    pthread_cond_broadcast(&L->life_cond);
    pthread_mutex_unlock(&L->life_lock);
}

/* op_begin_nogil for a caller holding the GIL (released while it waits). */
static void op_begin(loop_t *L) {
    Py_BEGIN_ALLOW_THREADS
    op_begin_nogil(L);
    Py_END_ALLOW_THREADS
}

/* Join the thread, if any. Caller owns the operation (no GIL needed). */
static void join_thread(loop_t *L) {
    if (!L->thread_valid) return;
    atomic_store_explicit(&L->stop_flag, 1, memory_order_release);
    /* Wait two periods, at least a second: a read that hangs (a wedged driver) must not
       hang stop(). The thread is then left behind, detached; it may still touch the loop,
       so the loop's memory, files and NVML handles are never released (see close_locked
       and Loop_dealloc). */
    int64_t wait = 2 * L->period_ns;
    if (wait < 1000000000LL) wait = 1000000000LL;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    int64_t ns = deadline.tv_nsec + wait % 1000000000LL;
    deadline.tv_sec += (time_t)(wait / 1000000000LL + ns / 1000000000LL);
    deadline.tv_nsec = (long)(ns % 1000000000LL);
    if (pthread_timedjoin_np(L->thread, NULL, &deadline) != 0) {
        pthread_detach(L->thread);
        L->abandoned = 1;
    }
    L->thread_valid = 0;
    atomic_store(&L->running, 0);
}

/* Read every source once at the current tick. With `all_energy`, NVML energy counters
   are read whatever their own period (the window's last reading must carry one). */
static void locked_tick(loop_t *L, int all_energy) {
    pthread_mutex_lock(&L->tick_lock);
    if (all_energy)
        for (int i = 0; i < L->nsources; i++)
            if (L->sources[i].energy_every > 0) L->sources[i].next_energy_tick = L->tick_index;
    do_tick(L, L->tick_index);
    pthread_mutex_unlock(&L->tick_lock);
}

/* --- fork() and exit ----------------------------------------------------------------------- */

static pthread_mutex_t g_nvml_lock = PTHREAD_MUTEX_INITIALIZER;

static void atfork_prepare(void) {
    pthread_mutex_lock(&g_lock);
    pthread_mutex_lock(&g_nvml_lock);
    for (loop_t *L = g_loops; L; L = L->next_loop) {
        pthread_mutex_lock(&L->life_lock);
        pthread_mutex_lock(&L->tick_lock);
    }
}

static void atfork_parent(void) {
    for (loop_t *L = g_loops; L; L = L->next_loop) {
        pthread_mutex_unlock(&L->tick_lock);
        pthread_mutex_unlock(&L->life_lock);
    }
    pthread_mutex_unlock(&g_nvml_lock);
    pthread_mutex_unlock(&g_lock);
}

static void atfork_child(void) {
    /* Only the forking thread exists in the child: no sampler thread, no operation in
       flight on another thread, and NVML handles are not to be used. The loop becomes
       inert; the child starts its own if it wants one. */
    for (loop_t *L = g_loops; L; L = L->next_loop) {
        pthread_mutex_unlock(&L->tick_lock);
        pthread_mutex_unlock(&L->life_lock);
        pthread_cond_init(&L->life_cond, NULL);
        L->busy = 0;
        L->forked = 1;
        L->thread_valid = 0;
        atomic_store(&L->running, 0);
        atomic_store(&L->ring.head, 0);
        atomic_store(&L->ring.tail, 0);
    }
    pthread_mutex_unlock(&g_nvml_lock);
    pthread_mutex_unlock(&g_lock);
}

static PyObject *stop_all(PyObject *mod, PyObject *unused) {
    (void)mod;
    (void)unused;
    /* Collect first: joining releases the GIL, and the list may change meanwhile. */
    PyObject *loops = PyList_New(0);
    if (!loops) return NULL;
    for (loop_t *L = g_loops; L; L = L->next_loop)
        if (!L->forked && PyList_Append(loops, (PyObject *)L) < 0) {
            Py_DECREF(loops);
            return NULL;
        }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(loops); i++) {
        loop_t *L = (loop_t *)PyList_GET_ITEM(loops, i);
        /* All of it without the GIL: a daemon thread in stop() must be able to finish. */
        Py_BEGIN_ALLOW_THREADS
        op_begin_nogil(L);
        if (!L->forked) join_thread(L);
        op_end(L);
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(loops);
    Py_RETURN_NONE;
}

/* --- Loop methods -------------------------------------------------------------------------- */

enum { ST_OK = 0, ST_FORKED, ST_CLOSED, ST_RUNNING };

static int idle_state(const loop_t *L) {
    if (L->forked) return ST_FORKED;
    if (L->closed || L->abandoned) return ST_CLOSED;
    if (L->thread_valid) return ST_RUNNING;
    return ST_OK;
}

/* Raise the error for a nonzero idle_state() and return -1 (0 for ST_OK). */
static int raise_state(int state, const char *what) {
    switch (state) {
        case ST_FORKED:
            raise_greenai("TrackerStateError",
                          "this sampling loop was inherited through fork(); create a new one "
                          "in the child process before calling %s()", what);
            return -1;
        case ST_CLOSED:
            raise_greenai("TrackerStateError", "the sampling loop is closed; create a new one");
            return -1;
        case ST_RUNNING:
            raise_greenai("TrackerStateError",
                          "%s() is not allowed while the loop runs (or was started by another "
                          "thread); stop() it", what);
            return -1;
        default:
            return 0;
    }
}

static source_t *new_source(loop_t *L) {
    source_t *grown = realloc(L->sources, sizeof(source_t) * (L->nsources + 1));
    if (!grown) {
        PyErr_NoMemory();
        return NULL;
    }
    L->sources = grown;
    source_t *s = &L->sources[L->nsources];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    return s;
}

static PyObject *add_rapl_locked(loop_t *L, const char *path, unsigned long long max_range) {
    if (raise_state(idle_state(L), "add_rapl")) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        raise_greenai(err == ENOENT ? "DeviceUnavailableError" : "DeviceError",
                      "cannot open RAPL counter %s: %s", path, strerror(err));
        return NULL;
    }
    uint64_t first;
    int status = read_uj(fd, &first);
    if (status) {
        close(fd);
        raise_greenai("DeviceError", "cannot read RAPL counter %s: %s", path, strerror(-status));
        return NULL;
    }
    source_t *s = new_source(L);
    if (!s) {
        close(fd);
        return NULL;
    }
    s->kind = SRC_RAPL;
    s->fd = fd;
    s->wrap_uj = (uint64_t)max_range + 1; /* the counter takes values 0..max_range */
    s->last_uj = first;
    return PyLong_FromLong(L->nsources++);
}

static PyObject *Loop_add_rapl(loop_t *L, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"path", "max_energy_range_uj", NULL};
    PyObject *path_obj;
    unsigned long long max_range;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&K", kwlist, PyUnicode_FSConverter, &path_obj,
                                     &max_range))
        return NULL;
    op_begin(L);
    PyObject *res = add_rapl_locked(L, PyBytes_AS_STRING(path_obj), max_range);
    op_end(L);
    Py_DECREF(path_obj);
    return res;
}

/* NVML libraries loaded so far, by path: loaded once per process and never unloaded, so a
   loop (or a concurrent one) can never call into an unmapped library. */
static nvml_api_t g_nvml[MAX_NVML_LIBS];
static int g_nvml_count = 0;

static void *nvml_sym(void *dl, const char *name, const char *fallback) {
    void *f = dlsym(dl, name);
    if (!f && fallback) f = dlsym(dl, fallback);
    return f;
}

/* The NVML entry points of `lib`, loading it on first use; NULL with an exception set. */
static const nvml_api_t *load_nvml(const char *lib) {
    char err[600] = "";
    const char *cls = "DeviceUnavailableError";
    const nvml_api_t *found = NULL;
    pthread_mutex_lock(&g_nvml_lock);
    for (int i = 0; i < g_nvml_count && !found; i++)
        if (!strcmp(g_nvml[i].path, lib)) found = &g_nvml[i];
    if (found) goto out;
    if (strlen(lib) >= sizeof g_nvml[0].path || g_nvml_count == MAX_NVML_LIBS) {
        cls = "ConfigError";
        snprintf(err, sizeof err, "cannot load NVML from %.200s: at most %d NVML libraries "
                 "(paths of < 4096 bytes) per process", lib, MAX_NVML_LIBS);
        goto out;
    }
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *why = dlerror();
        snprintf(err, sizeof err, "cannot load NVML from %.200s (%.200s): NVIDIA driver/NVML "
                 "not found", lib, why ? why : "dlopen failed");
        goto out;
    }
    nvml_api_t *api = &g_nvml[g_nvml_count];
    memset(api, 0, sizeof *api);
    api->init = nvml_sym(dl, "nvmlInit_v2", "nvmlInit");
    api->shutdown = nvml_sym(dl, "nvmlShutdown", NULL);
    api->by_index = nvml_sym(dl, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    api->by_uuid = nvml_sym(dl, "nvmlDeviceGetHandleByUUID", NULL);
    api->energy = nvml_sym(dl, "nvmlDeviceGetTotalEnergyConsumption", NULL);
    api->power = nvml_sym(dl, "nvmlDeviceGetPowerUsage", NULL);
    api->fields = nvml_sym(dl, "nvmlDeviceGetFieldValues", NULL);
    api->error_string = nvml_sym(dl, "nvmlErrorString", NULL);
    if (!api->init || !api->shutdown || !api->by_index || !api->by_uuid) {
        dlclose(dl); /* no function of it was handed out */
        memset(api, 0, sizeof *api);
        cls = "DriverMismatchError";
        snprintf(err, sizeof err, "%.200s lacks the NVML entry points greenai needs "
                 "(nvmlInit_v2, nvmlDeviceGetHandleByIndex_v2, nvmlDeviceGetHandleByUUID); "
                 "update the NVIDIA driver", lib);
        goto out;
    }
    api->dl = dl;
    snprintf(api->path, sizeof api->path, "%s", lib);
    found = api;
    g_nvml_count++;
out:
    pthread_mutex_unlock(&g_nvml_lock);
    if (!found) raise_greenai(cls, "%s", err);
    return found;
}

static const char *nvml_error(const nvml_api_t *api, int code) {
    const char *s = api && api->error_string ? api->error_string(code) : NULL;
    return s ? s : "unknown error";
}

static PyObject *add_nvml_locked(loop_t *L, PyObject *device, const char *power,
                                 long long energy_period_ns, const char *lib) {
    if (raise_state(idle_state(L), "add_nvml")) return NULL;
    int mode;
    if (!strcmp(power, "instant"))
        mode = POWER_INSTANT;
    else if (!strcmp(power, "average"))
        mode = POWER_AVERAGE;
    else if (!strcmp(power, "none"))
        mode = POWER_NONE;
    else {
        raise_greenai("ConfigError", "power must be 'instant', 'average' or 'none', got '%s'",
                      power);
        return NULL;
    }
    if (energy_period_ns < 0) {
        raise_greenai("ConfigError", "energy_period_ns must be >= 0 (0: no energy counter)");
        return NULL;
    }
    unsigned int index = 0;
    const char *uuid = NULL;
    char desc[128];
    if (PyLong_Check(device)) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(device, &overflow);
        if (v == -1 && PyErr_Occurred()) return NULL;
        if (overflow || v < 0 || v > (long long)UINT_MAX) {
            raise_greenai("ConfigError", "NVML index must be 0..%u (a GPU's index as "
                          "nvidia-smi lists it)", UINT_MAX);
            return NULL;
        }
        index = (unsigned int)v;
        snprintf(desc, sizeof desc, "index %u", index);
    } else if (PyUnicode_Check(device)) {
        uuid = PyUnicode_AsUTF8(device);
        if (!uuid) return NULL;
        snprintf(desc, sizeof desc, "%s", uuid);
    } else {
        PyErr_SetString(PyExc_TypeError, "device must be an NVML index (int) or a UUID (str)");
        return NULL;
    }
    if (!lib || !*lib) {
        lib = getenv("GREENAI_NVML_LIB");
        if (!lib || !*lib) lib = "libnvidia-ml.so.1";
    }
    const nvml_api_t *api = load_nvml(lib);
    if (!api) return NULL;
    if ((energy_period_ns > 0 && !api->energy) || (mode == POWER_INSTANT && !api->fields) ||
        (mode == POWER_AVERAGE && !api->power)) {
        raise_greenai("DriverMismatchError", "%s lacks the NVML function for the requested "
                      "reading; update the NVIDIA driver", lib);
        return NULL;
    }
    if (L->nvml && L->nvml != api) {
        raise_greenai("ConfigError", "this loop already reads NVML through %s; use one loop "
                      "per NVML library", L->nvml->path);
        return NULL;
    }
    int ret;
    nvml_device_t handle = NULL;
    Py_BEGIN_ALLOW_THREADS /* the loop is ours (op_begin): nothing else touches it */
    ret = api->init();
    Py_END_ALLOW_THREADS
    if (ret) {
        raise_greenai("DeviceError", "cannot initialise NVML: NVML error %d: %s", ret,
                      nvml_error(api, ret));
        return NULL;
    }
    L->nvml = api;
    L->nvml_inits++;
    ret = uuid ? api->by_uuid(uuid, &handle) : api->by_index(index, &handle);
    if (ret) {
        raise_greenai("DeviceError", "cannot find NVIDIA GPU %s: NVML error %d: %s", desc, ret,
                      nvml_error(api, ret));
        return NULL;
    }
    source_t *s = new_source(L);
    if (!s) return NULL;
    s->kind = SRC_NVML;
    s->handle = handle;
    s->power_mode = mode;
    if (energy_period_ns > 0) {
        int64_t every = energy_period_ns / L->period_ns;
        s->energy_every = every > 0 ? every : 1;
    }
    s->next_energy_tick = 0;
    return PyLong_FromLong(L->nsources++);
}

static PyObject *Loop_add_nvml(loop_t *L, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"device", "power", "energy_period_ns", "lib", NULL};
    PyObject *device;
    const char *power = "instant";
    long long energy_period_ns = 100000000LL;
    const char *lib = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|$sLz", kwlist, &device, &power,
                                     &energy_period_ns, &lib))
        return NULL;
    op_begin(L);
    PyObject *res = add_nvml_locked(L, device, power, energy_period_ns, lib);
    op_end(L);
    return res;
}

static PyObject *Loop_start(loop_t *L, PyObject *unused) {
    (void)unused;
    int state, err = 0;
    Py_BEGIN_ALLOW_THREADS
    op_begin_nogil(L);
    state = idle_state(L);
    if (state == ST_OK) {
        atomic_store(&L->stop_flag, 0);
        L->tick_index = 0;
        for (int i = 0; i < L->nsources; i++) L->sources[i].next_energy_tick = 0;
        L->start_ns = now_ns();
        locked_tick(L, 0); /* the first reading is taken before start() returns */
        L->tick_index = 1;
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old); /* the thread inherits: signals stay with Python */
        err = pthread_create(&L->thread, NULL, run, L);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (!err) {
            L->thread_valid = 1;
            atomic_store(&L->running, 1);
        }
    }
    op_end(L);
    Py_END_ALLOW_THREADS
    if (raise_state(state, "start")) return NULL;
    if (err) {
        raise_greenai("DeviceError", "cannot start the sampling thread: %s", strerror(err));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *Loop_stop(loop_t *L, PyObject *unused) {
    (void)unused;
    /* Without the GIL throughout, so that a daemon thread stopping a loop while the
       interpreter exits (and _stop_all waits for it) can always finish. */
    Py_BEGIN_ALLOW_THREADS
    op_begin_nogil(L);
    if (!L->forked && !L->closed && L->thread_valid) {
        join_thread(L);
        if (!L->abandoned) /* the stuck thread holds tick_lock: no last reading then */
            locked_tick(L, 1); /* the last reading, after the thread ended, every counter */
    }
    op_end(L);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *Loop_tick(loop_t *L, PyObject *unused) {
    (void)unused;
    int state;
    Py_BEGIN_ALLOW_THREADS
    op_begin_nogil(L);
    state = idle_state(L);
    if (state == ST_OK) {
        locked_tick(L, 0);
        L->tick_index++;
    }
    op_end(L);
    Py_END_ALLOW_THREADS
    if (raise_state(state, "tick")) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Loop_drain(loop_t *L, PyObject *unused) {
    (void)unused;
    ring_t *r = &L->ring;
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t n = h - t;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n * sizeof(record_t)));
    if (!out) return NULL;
    char *dst = PyBytes_AS_STRING(out);
    uint64_t first = t & r->mask;
    uint64_t run1 = n < r->mask + 1 - first ? n : r->mask + 1 - first;
    memcpy(dst, r->buf + first, run1 * sizeof(record_t));
    memcpy(dst + run1 * sizeof(record_t), r->buf, (n - run1) * sizeof(record_t));
    atomic_store_explicit(&r->tail, h, memory_order_release);
    return out;
}

/* Stop the thread and release files and NVML. Caller owns the operation; no GIL needed. */
static void close_locked(loop_t *L) {
    if (L->closed) return;
    if (!L->forked) join_thread(L);
    if (L->abandoned) { /* the stuck thread may still read these: keep them */
        L->closed = 1;
        return;
    }
    for (int i = 0; i < L->nsources; i++)
        if (L->sources[i].fd >= 0) close(L->sources[i].fd);
    L->nsources = 0;
    if (L->nvml && !L->forked)
        while (L->nvml_inits-- > 0) L->nvml->shutdown();
    L->nvml_inits = 0;
    L->closed = 1;
}

static PyObject *Loop_close(loop_t *L, PyObject *unused) {
    (void)unused;
    Py_BEGIN_ALLOW_THREADS
    op_begin_nogil(L);
    close_locked(L);
    op_end(L);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static int64_t thread_cpu_ns(loop_t *L) {
    clockid_t cid;
    struct timespec ts;
    op_begin(L); /* the thread cannot be joined (nor add its own total) meanwhile */
    int64_t total = atomic_load(&L->cpu_ns);
    if (L->thread_valid && pthread_getcpuclockid(L->thread, &cid) == 0 &&
        clock_gettime(cid, &ts) == 0)
        total += (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    op_end(L);
    return total;
}

static PyObject *Loop_stats(loop_t *L, PyObject *unused) {
    (void)unused;
    return Py_BuildValue(
        "{s:K,s:K,s:K,s:L,s:L,s:L,s:L}", "ticks", (unsigned long long)atomic_load(&L->ticks),
        "missed", (unsigned long long)atomic_load(&L->missed), "overflow",
        (unsigned long long)atomic_load(&L->ring.overflow), "late_max_ns",
        (long long)atomic_load(&L->late_max_ns), "late_sum_ns",
        (long long)atomic_load(&L->late_sum_ns), "cpu_ns", (long long)thread_cpu_ns(L),
        "sources", (long long)L->nsources);
}

static PyObject *Loop_get_running(loop_t *L, void *closure) {
    (void)closure;
    return PyBool_FromLong(atomic_load(&L->running) && !L->forked);
}

static PyObject *Loop_get_period_ns(loop_t *L, void *closure) {
    (void)closure;
    return PyLong_FromLongLong(L->period_ns);
}

static PyObject *Loop_get_abandoned(loop_t *L, void *closure) {
    (void)closure;
    return PyBool_FromLong(L->abandoned);
}

static PyObject *Loop_get_overflow(loop_t *L, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(atomic_load(&L->ring.overflow));
}

static PyObject *Loop_get_capacity(loop_t *L, void *closure) {
    (void)closure;
    return PyLong_FromUnsignedLongLong(L->ring.mask + 1);
}

static int Loop_init(loop_t *L, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"period_ns", "capacity", NULL};
    long long period_ns = 10000000LL;
    long long capacity = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|L$L", kwlist, &period_ns, &capacity)) return -1;
    if (L->ring.buf) {
        PyErr_SetString(PyExc_RuntimeError, "Loop.__init__ called twice");
        return -1;
    }
    if (period_ns < MIN_PERIOD_NS) {
        raise_greenai("ConfigError",
                      "period_ns must be at least %lld (1 ms), got %lld; the loop reads every "
                      "source on each tick",
                      (long long)MIN_PERIOD_NS, period_ns);
        return -1;
    }
    if (period_ns > MAX_PERIOD_NS) {
        raise_greenai("ConfigError",
                      "period_ns must be at most %lld (1 hour), got %lld; pass nanoseconds",
                      (long long)MAX_PERIOD_NS, period_ns);
        return -1;
    }
    if (capacity < 16 || capacity > (1LL << 26)) {
        raise_greenai("ConfigError", "capacity must be 16..%lld records, got %lld", 1LL << 26,
                      capacity);
        return -1;
    }
    uint64_t cap = 16;
    while ((long long)cap < capacity) cap <<= 1;
    L->ring.buf = calloc(cap, sizeof(record_t));
    if (!L->ring.buf) {
        PyErr_NoMemory();
        return -1;
    }
    L->ring.mask = cap - 1;
    L->period_ns = period_ns;
    pthread_mutex_init(&L->tick_lock, NULL);
    pthread_mutex_init(&L->life_lock, NULL);
    pthread_cond_init(&L->life_cond, NULL);
    pthread_mutex_lock(&g_lock);
    L->next_loop = g_loops;
    if (g_loops) g_loops->prev_loop = L;
    g_loops = L;
    pthread_mutex_unlock(&g_lock);
    return 0;
}

static void Loop_dealloc(loop_t *L) {
    if (L->ring.buf) { /* initialised: in the registry */
        Py_BEGIN_ALLOW_THREADS
        op_begin_nogil(L);
        close_locked(L);
        op_end(L);
        Py_END_ALLOW_THREADS
        pthread_mutex_lock(&g_lock);
        if (L->prev_loop)
            L->prev_loop->next_loop = L->next_loop;
        else
            g_loops = L->next_loop;
        if (L->next_loop) L->next_loop->prev_loop = L->prev_loop;
        pthread_mutex_unlock(&g_lock);
        if (L->abandoned) return; /* a detached thread may still write here: never free */
        free(L->ring.buf);
        free(L->sources);
        pthread_mutex_destroy(&L->tick_lock);
        pthread_mutex_destroy(&L->life_lock);
        pthread_cond_destroy(&L->life_cond);
    }
    Py_TYPE(L)->tp_free((PyObject *)L);
}

static PyMethodDef Loop_methods[] = {
    {"add_rapl", (PyCFunction)(void (*)(void))Loop_add_rapl, METH_VARARGS | METH_KEYWORDS,
     "Add a RAPL energy_uj file; return its source index."},
    {"add_nvml", (PyCFunction)(void (*)(void))Loop_add_nvml, METH_VARARGS | METH_KEYWORDS,
     "Add an NVIDIA GPU by NVML index or UUID; return its source index."},
    {"start", (PyCFunction)Loop_start, METH_NOARGS, "Read once, then start the thread."},
    {"stop", (PyCFunction)Loop_stop, METH_NOARGS, "Stop the thread, then read once more."},
    {"tick", (PyCFunction)Loop_tick, METH_NOARGS, "Read every source once (not while running)."},
    {"drain", (PyCFunction)Loop_drain, METH_NOARGS, "Take the buffered records (bytes)."},
    {"close", (PyCFunction)Loop_close, METH_NOARGS, "Stop and release files and NVML."},
    {"stats", (PyCFunction)Loop_stats, METH_NOARGS, "Counters: ticks, missed, overflow, ..."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Loop_getset[] = {
    {"running", (getter)Loop_get_running, NULL, "Whether the thread runs.", NULL},
    {"period_ns", (getter)Loop_get_period_ns, NULL, "The period in nanoseconds.", NULL},
    {"overflow", (getter)Loop_get_overflow, NULL, "Records dropped on a full buffer.", NULL},
    {"abandoned", (getter)Loop_get_abandoned, NULL,
     "Whether stop() left behind a thread stuck in a read.", NULL},
    {"capacity", (getter)Loop_get_capacity, NULL, "Ring buffer size in records.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject LoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "greenai._native.Loop",
    .tp_basicsize = sizeof(loop_t),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Sampling loop on a native thread (see greenai/sampling/native_py.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Loop_init,
    .tp_dealloc = (destructor)Loop_dealloc,
    .tp_methods = Loop_methods,
    .tp_getset = Loop_getset,
};

static PyMethodDef module_methods[] = {
    {"_stop_all", stop_all, METH_NOARGS, "Stop every loop's thread (run at interpreter exit)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "greenai._native",
    .m_doc = "greenai's native sampling loop.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__native(void) {
    static int atfork_done = 0;
    if (PyType_Ready(&LoopType) < 0) return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (!m) return NULL;
    Py_INCREF(&LoopType);
    if (PyModule_AddObject(m, "Loop", (PyObject *)&LoopType) < 0 ||
        PyModule_AddIntConstant(m, "RECORD_SIZE", (long)sizeof(record_t)) < 0 ||
        PyModule_AddIntConstant(m, "MIN_PERIOD_NS", (long)MIN_PERIOD_NS) < 0 ||
        PyModule_AddObject(m, "MAX_PERIOD_NS", PyLong_FromLongLong(MAX_PERIOD_NS)) < 0)
        goto fail;
    if (!atfork_done) {
        if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child)) {
            PyErr_SetString(PyExc_RuntimeError, "pthread_atfork failed");
            goto fail;
        }
        atfork_done = 1;
    }
    PyObject *atexit = PyImport_ImportModule("atexit");
    PyObject *stop = atexit ? PyObject_GetAttrString(m, "_stop_all") : NULL;
    PyObject *res = stop ? PyObject_CallMethod(atexit, "register", "O", stop) : NULL;
    Py_XDECREF(atexit);
    Py_XDECREF(stop);
    if (!res) goto fail;
    Py_DECREF(res);
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
