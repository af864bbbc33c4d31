/* Safetensors files: the weight format of diffusers checkpoints.
 *
 * Layout of one file: u64 little-endian header length N, then N bytes of JSON
 *   {"__metadata__": {...}, "name": {"dtype": "F32", "shape": [a, b],
 *                                    "data_offsets": [begin, end]}, ...}
 * then the data section; offsets are relative to its start. A large model is
 * sharded: NAME.safetensors.index.json maps each tensor to its shard file in
 * "weight_map"; shard names must be plain file names beside the index
 * (anything with a '/' or "..", e.g. ../../etc/passwd, is refused before any
 * shard is opened). The reader mmaps every file read-only and checks every field
 * before trusting it; the writer emits the same layout through a temporary
 * file and a rename, so a failed write leaves nothing behind.
 *
 * Dtypes: F32, F16, BF16, I32, F8_E4M3 and F8_E5M2 are entries (F8: OCP
 * float8, core/float8.h). Other dtypes of the format (F64, I64, U8, BOOL,
 * F8_E8M0...) are validated but left out of the entry list;
 * reading one fails with "unsupported dtype F64 for tensor X in FILE", except
 * that safetensors_read_i32 also accepts I64 within the int32 range. */
#ifndef MOEDIT_IO_SAFETENSORS_H
#define MOEDIT_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/tensor.h"

typedef struct safetensors_entry {
    const char *name;
    tensor_dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data; /* inside the mapping; may be unaligned */
    size_t nbytes;
    const char *file; /* the file that holds it */
} safetensors_entry;

typedef struct safetensors safetensors; /* opaque: one file, or a sharded set */

/* path is a *.safetensors file or a *.safetensors.index.json (sharded: its
 * "weight_map" maps tensor name -> shard file, relative to the index's
 * directory). */
int safetensors_open(safetensors **out, const char *path);

/* In dir, open <stem>.safetensors, else <stem>.safetensors.index.json, else
 * the only *.safetensors file in dir. stem may be NULL (only the last rule). */
int safetensors_open_dir(safetensors **out, const char *dir, const char *stem);

void safetensors_close(safetensors *st);

/* The path given to safetensors_open (a file or an index). */
const char *safetensors_path(const safetensors *st);

/* Entries in header order, shard after shard. */
int safetensors_count(const safetensors *st);
const safetensors_entry *safetensors_entry_at(const safetensors *st, int i);

/* NULL if absent or of a dtype that is no entry (no error set). */
const safetensors_entry *safetensors_find(const safetensors *st, const char *name);

/* The dtype's name ("F32", "U8", ...) of tensor `name` whatever its dtype,
 * or NULL if there is no such tensor. */
const char *safetensors_dtype_of(const safetensors *st, const char *name);

/* safetensors_find, with an error when NULL: "FILE: no tensor "X"", or
 * "FILE: tensor "X" has dtype U8, which moedit does not read (...)". */
const safetensors_entry *safetensors_require(const safetensors *st, const char *name);

/* Read tensor `name`, converted to F32 (from F32, F16, BF16, I32 or the codes
 * of F8_E4M3 / F8_E5M2, exactly; no scale is applied), into dst.
 * Fails naming file and tensor if it is missing, of an unsupported dtype, or
 * of a shape other than shape[0..ndim). */
int safetensors_read_f32(const safetensors *st, const char *name, int ndim, const int64_t *shape,
                         float *dst);

/* Same for integer data: I32, or I64 with every value in the int32 range. */
int safetensors_read_i32(const safetensors *st, const char *name, int ndim, const int64_t *shape,
                         int32_t *dst);

/* Drops the mapped pages of e's data from this process's memory (the
 * mapping is private and read-only, so they stay in the page cache and a
 * later read faults them in again): a reader that goes through a large file
 * once, tensor by tensor, then holds about one tensor at a time instead of
 * the whole file (moedit quantize). */
void safetensors_release(const safetensors_entry *e);

/* Write count tensors (host data of any tensor dtype; the brief's callers use
 * F32 and I32) to path: written to a temporary beside it (io/temp_file.h), then renamed
 * over path. */
int safetensors_write(const char *path, const char *const *names, const tensor *tensors, int count);

/* The same file written tensor by tensor, so only one tensor need be in
 * memory at a time: open writes the header from every tensor's name, dtype
 * and shape (`layouts`' data are not read), append gives the next tensor's
 * data (the dtype and shape its header lists; anything else fails), commit
 * renames the file into place once all were given. On any failure the
 * caller discards the writer (commit discards it itself). The bytes equal
 * safetensors_write's for the same tensors. */
typedef struct safetensors_writer safetensors_writer;
int safetensors_writer_open(safetensors_writer **out, const char *path, const char *const *names,
                            const tensor *layouts, int count);
int safetensors_writer_append(safetensors_writer *w, const tensor *t);
int safetensors_writer_commit(safetensors_writer *w);
void safetensors_writer_discard(safetensors_writer *w); /* NULL: nothing */

#endif
