/* Philox4x32-10 block function and the element-indexed standard normal
 * generator built on it (Box-Muller in double precision). The exact mapping
 * from (seed, stream, index) to a float is documented in core/philox.h.
 * Written from the published algorithm description (Salmon et al. 2011). */
#include "core/philox.h"

#include <math.h>
#include <string.h>

#define PHILOX_M0 UINT32_C(0xD2511F53)
#define PHILOX_M1 UINT32_C(0xCD9E8D57)
#define PHILOX_W0 UINT32_C(0x9E3779B9)
#define PHILOX_W1 UINT32_C(0xBB67AE85)

void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4])
{
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        if (round > 0) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0;
        c1 = n1;
        c2 = n2;
        c3 = n3;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

/* (x + 0.5) * 2^-32: strictly inside (0, 1), so log() never sees 0. */
static double philox_uniform(uint32_t x)
{
    return ((double)x + 0.5) * (1.0 / 4294967296.0);
}

/* The four normals of one block (indices 4*block .. 4*block+3). Both public
 * entry points go through this one out-of-line function so they agree bit
 * for bit whatever the compiler does with inlining or contraction. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void philox_block_normals(uint64_t seed, uint64_t stream, uint64_t block, float z[4])
{
    const double two_pi = 6.283185307179586476925286766559;
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                       (uint32_t)(stream >> 32)};
    uint32_t x[4];
    philox4x32_10(ctr, key, x);
    double r0 = sqrt(-2.0 * log(philox_uniform(x[0])));
    double t0 = two_pi * philox_uniform(x[1]);
    double r1 = sqrt(-2.0 * log(philox_uniform(x[2])));
    double t1 = two_pi * philox_uniform(x[3]);
    z[0] = (float)(r0 * cos(t0));
    z[1] = (float)(r0 * sin(t0));
    z[2] = (float)(r1 * cos(t1));
    z[3] = (float)(r1 * sin(t1));
}

float philox_normal(uint64_t seed, uint64_t stream, uint64_t index)
{
    float z[4];
    philox_block_normals(seed, stream, index / 4, z);
    return z[index % 4];
}

void philox_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, float *dst)
{
    if (count <= 0) return;
    uint64_t n = (uint64_t)count;
    uint64_t done = 0;
    float z[4];
    /* Leading partial block. */
    uint64_t lead = first % 4;
    if (lead) {
        philox_block_normals(seed, stream, first / 4, z);
        while (lead < 4 && done < n) dst[done++] = z[lead++];
    }
    /* Whole blocks, then a trailing partial one. */
    while (done < n) {
        uint64_t index = first + done; /* multiple of 4 (mod 2^64) */
        philox_block_normals(seed, stream, index / 4, z);
        uint64_t take = n - done < 4 ? n - done : 4;
        memcpy(dst + done, z, (size_t)take * sizeof(float));
        done += take;
    }
}

void philox_fill_uniform(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, float *dst)
{
    const uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t i = 0; i < count;) {
        uint64_t index = first + (uint64_t)i, block = index / 4;
        uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream, (uint32_t)(stream >> 32)};
        uint32_t x[4];
        philox4x32_10(ctr, key, x);
        for (uint64_t lane = index % 4; lane < 4 && i < count; lane++, i++)
            dst[i] = (float)(((double)x[lane] + 0.5) * (2.0 / 4294967296.0) - 1.0);
    }
}
