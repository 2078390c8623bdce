/* Helper threads of the stage-in.
 *
 * The engine's thread receives every byte; a helper thread takes work off
 * it (hashing, writing) and hands each finished item back on a list that
 * the engine's drain hook takes (bb_engine_set_drain).  The shape is the
 * same for every helper: work arrives under one lock, the thread waits on
 * one condition, and an item handed back to an empty list wakes the
 * engine once (bb_engine_wakeup); until its drain hook takes the list, that
 * wakeup is pending and covers the later items too. */
#ifndef BB_STAGE_HELPER_H
#define BB_STAGE_HELPER_H

#include <pthread.h>

#include "common/list.h"

struct bb_engine;

/* A helper thread.  Fields are the engine's thread's unless marked "lock". */
struct bb_helper {
	pthread_mutex_t lock;
	pthread_cond_t cond;      /* work for the thread, or quit */
	pthread_t thread;
	int started, broken;      /* broken: could not start (the caller does the work itself) */
	int quit;                 /* lock */
	struct bb_fifo back;      /* lock: items handed back, in order */
	unsigned pending;         /* items given to the thread, not taken back yet */
	struct bb_engine *eng;
	/* One step of the thread's work, called with lock held (it may drop
	 * and retake it): nonzero when it did something, 0 when there is
	 * nothing to do until cond is signalled (or, with quit set, ever). */
	int (*step)(struct bb_helper *h);
};

/* Start h's thread, which runs step until quit: BB_OK, or BB_ESYS with h
 * broken (nothing left initialised; later calls fail at once).  Started
 * again after bb_helper_stop.  A started helper: BB_OK. */
int bb_helper_start(struct bb_helper *h, struct bb_engine *eng, int (*step)(struct bb_helper *));
/* Tell the thread to quit once step finds nothing more to do, wait for it,
 * and destroy the lock and condition.  Nothing if it never started. */
void bb_helper_stop(struct bb_helper *h);
/* The thread, lock held: hand n back to the engine's thread (waking it
 * when the list was empty; the lock is dropped for that). */
void bb_helper_give_back(struct bb_helper *h, struct bb_qnode *n);
/* The engine's thread: the items handed back so far, in order (the caller
 * counts them off h->pending). */
struct bb_qnode *bb_helper_take_back(struct bb_helper *h);

#endif
