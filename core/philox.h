/* Counter-based random numbers: Philox4x32-10 and standard normals on top.
 *
 * "Same seed, same image, whatever the layout": noise is indexed by element,
 * never by rank or thread, so any rank can generate any slice of a tensor and
 * the slices concatenate to exactly the single-process result.
 *
 * Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
 * as 1, 2, 3", SC 2011; the Random123 library): a 4 x 32-bit counter and a
 * 2 x 32-bit key go through 10 rounds of
 *     (hi0, lo0) = 0xD2511F53 * c0      (hi1, lo1) = 0xCD9E8D57 * c2
 *     c = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
 * with the key bumped by (0x9E3779B9, 0xBB67AE85) between rounds.
 *
 * Exact mapping used by philox_normal / philox_fill_normal (this is the
 * contract; changing any step changes every generated image):
 *   key     = (seed & 0xffffffff, seed >> 32)
 *   block   = index / 4
 *   counter = (block & 0xffffffff, block >> 32,
 *              stream & 0xffffffff, stream >> 32)
 *   x[0..3] = philox4x32_10(counter, key)
 *   u[i]    = (x[i] + 0.5) * 2^-32          in double, so 0 < u < 1 exactly
 *   r0 = sqrt(-2 ln u[0]),  z[0] = r0 cos(2 pi u[1]),  z[1] = r0 sin(2 pi u[1])
 *   r1 = sqrt(-2 ln u[2]),  z[2] = r1 cos(2 pi u[3]),  z[3] = r1 sin(2 pi u[3])
 *   (all in double precision)
 *   result  = (float)z[index % 4]
 * Index arithmetic is uint64_t and wraps; a stream therefore holds 2^64
 * normals. */
#ifndef MOEDIT_CORE_PHILOX_H
#define MOEDIT_CORE_PHILOX_H

#include <stdint.h>

/* One Philox4x32-10 block: counter (4 x u32) and key (2 x u32) -> 4 x u32.
 * out may alias counter. */
void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

/* Standard normal float for element `index` of the stream `seed`/`stream`:
 * deterministic function of (seed, stream, index) alone, so any rank can
 * generate any slice. */
float philox_normal(uint64_t seed, uint64_t stream, uint64_t index);

/* Fill dst[0..count) with the normals for indices first..first+count-1;
 * equal elementwise (bit for bit) to philox_normal. One Philox block serves
 * four consecutive indices. count <= 0 writes nothing. */
void philox_fill_normal(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, float *dst);

/* Uniform floats in (-1, 1) for the same (seed, stream, index) counters:
 * element i is 2 (x + 0.5) 2^-32 - 1 for the (i % 4)-th word x of block i / 4.
 * Several times cheaper than the normals (no logarithm or sine), for
 * filling billions of random weights. */
void philox_fill_uniform(uint64_t seed, uint64_t stream, uint64_t first, int64_t count, float *dst);

#endif
