/* Helper threads of the stage-in, and the intrusive lists they and the
 * stage-in use.
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
#include <stddef.h>

struct bb_engine;

#define bb_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A singly linked FIFO of nodes embedded in its items. */
struct bb_qnode {
	struct bb_qnode *next;
};

struct bb_fifo {
	struct bb_qnode *head, **tail;
};

static inline void bb_fifo_init(struct bb_fifo *f)
{
	f->head = NULL;
	f->tail = &f->head;
}

static inline void bb_fifo_push(struct bb_fifo *f, struct bb_qnode *n)
{
	n->next = NULL;
	*f->tail = n;
	f->tail = &n->next;
}

static inline struct bb_qnode *bb_fifo_pop(struct bb_fifo *f)
{
	struct bb_qnode *n = f->head;

	if (n && !(f->head = n->next))
		f->tail = &f->head;
	return n;
}

/* The whole list, in order (walk it by ->next); f is then empty. */
static inline struct bb_qnode *bb_fifo_take(struct bb_fifo *f)
{
	struct bb_qnode *n = f->head;

	bb_fifo_init(f);
	return n;
}

/* A doubly linked list of nodes embedded in its items.  Whether an item is
 * on the list is the caller's to know: a lone item has both links NULL too. */
struct bb_dnode {
	struct bb_dnode *prev, *next;
};

struct bb_dlist {
	struct bb_dnode *head, *tail;
};

static inline void bb_dlist_push_back(struct bb_dlist *l, struct bb_dnode *n)
{
	n->next = NULL;
	n->prev = l->tail;
	if (l->tail)
		l->tail->next = n;
	else
		l->head = n;
	l->tail = n;
}

static inline void bb_dlist_push_front(struct bb_dlist *l, struct bb_dnode *n)
{
	n->prev = NULL;
	n->next = l->head;
	if (l->head)
		l->head->prev = n;
	else
		l->tail = n;
	l->head = n;
}

static inline void bb_dlist_remove(struct bb_dlist *l, struct bb_dnode *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->head = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->tail = n->prev;
	n->prev = n->next = NULL;
}

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
