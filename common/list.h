/* Intrusive lists: the node is a member of the item (bb_container_of
 * gets the item back), so putting an item on a list allocates nothing. */
#ifndef BB_COMMON_LIST_H
#define BB_COMMON_LIST_H

#include <stddef.h>

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

#endif
