/* Backend by device name: the one place that knows which backends exist. */
#include "backend/backend.h"
#include "backend/backend_profile.h"
#include "core/error.h"

#include <string.h>

#ifdef MOEDIT_HAVE_CUDA
#include "backend/cuda/backend_cuda.h"
#endif

static backend *backend_create_plain(const char *device)
{
    if (!device || !strcmp(device, "cpu")) return backend_cpu_create();
    if (!strcmp(device, "cuda")) {
#ifdef MOEDIT_HAVE_CUDA
        return backend_cuda_create(-1);
#else
        error_set("--device cuda: this moedit was built without CUDA (no nvcc found at configure time)");
        return NULL;
#endif
    }
    error_set("unknown device '%s' (use cpu or cuda)", device);
    return NULL;
}

const char *backend_default_device(void)
{
#ifdef MOEDIT_HAVE_CUDA
    if (backend_cuda_device_count() > 0) return "cuda";
#endif
    return "cpu";
}

backend *backend_create(const char *device)
{
    backend *be = backend_create_plain(device);
    return be && backend_profile_requested() ? backend_profile_wrap(be) : be;
}
