/* The temporary folders where moedit serve's ranks write images (a run's
 * PNGs before they are answered or sent to rank 0, an edit's upload).
 *
 * Rank 0 makes TMPDIR/moedit-serve-XXXXXX (mkdtemp) and tells every rank
 * its path; a rank on rank 0's host takes a folder inside it, rank-N, and a
 * rank on another host makes one of its own. So rank 0 can remove, with its
 * own folder, the folders of its host's other ranks, also of a rank it lost
 * (a rank that hung and is killed by the launcher after rank 0's error never
 * runs its own removal).
 *
 * Removed on every exit path of serve_run (a normal stop, a failed start,
 * a lost rank: rank 0 removes its whole tree, each rank its own folder).
 * Not on the paths no code of the server runs: a rank killed by SIGKILL
 * (kill -9, the OOM killer, mpirun ending the job after a rank died: rank 0
 * too, then, and ranks on other hosts), or a crash; their folders stay
 * behind (empty, or with the images of the request that was running). */
#ifndef MOEDIT_SERVE_SERVE_FOLDER_H
#define MOEDIT_SERVE_SERVE_FOLDER_H

#include "parallel/world.h"

#include <stddef.h>

/* Every rank (rank 0's broadcast of its path; no other collective): this
 * rank's folder into folder. 0, or -1 with the error set (on rank 0's
 * failure, on every rank); the caller agrees on the status over the ranks. */
int serve_folder_make(const world *w, char *folder, size_t size);

/* This rank's folder and everything in it; on rank 0, its host's other
 * ranks' folders with it. Quiet: what is already gone is no failure. */
void serve_folder_remove(const char *folder);

#endif
