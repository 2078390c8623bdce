/* Unit tests: the intrusive lists (common/list.h) and the stage-in's
 * helper threads (stage/helper.h): FIFO and list order, and a helper thread that hands
 * every item back, in order, through a real engine's drain hook. */
#include "config.h"

#include <CUnit/Basic.h>
#include <stdlib.h>
#include <time.h>

#include "common/error.h"
#include "stage/engine.h"
#include "stage/helper.h"

struct item {
	int v, result;
	struct bb_qnode qn;
	struct bb_dnode dn;
};

static void test_fifo(void)
{
	struct item it[4];
	struct bb_fifo f;
	struct bb_qnode *n;

	bb_fifo_init(&f);
	CU_ASSERT_PTR_NULL(bb_fifo_pop(&f));
	for (int i = 0; i < 4; i++) {
		it[i].v = i;
		bb_fifo_push(&f, &it[i].qn);
	}
	n = bb_fifo_pop(&f);
	CU_ASSERT_EQUAL(bb_container_of(n, struct item, qn)->v, 0);
	n = bb_fifo_take(&f);
	CU_ASSERT_PTR_NULL(f.head);
	CU_ASSERT_PTR_NULL(bb_fifo_pop(&f));
	for (int i = 1; i < 4; i++, n = n->next)
		CU_ASSERT_EQUAL(bb_container_of(n, struct item, qn)->v, i);
	CU_ASSERT_PTR_NULL(n);
	/* Empty again after the last pop: a push lands at the head. */
	bb_fifo_push(&f, &it[2].qn);
	CU_ASSERT_PTR_EQUAL(bb_fifo_pop(&f), &it[2].qn);
	bb_fifo_push(&f, &it[3].qn);
	CU_ASSERT_PTR_EQUAL(f.head, &it[3].qn);
	CU_ASSERT_PTR_EQUAL(bb_fifo_pop(&f), &it[3].qn);
	CU_ASSERT_PTR_NULL(bb_fifo_pop(&f));
}

/* The values of l, head to tail, as digits ("" when empty); checks the
 * back links on the way. */
static void dlist_str(const struct bb_dlist *l, char *out)
{
	const struct bb_dnode *prev = NULL;

	for (const struct bb_dnode *n = l->head; n; prev = n, n = n->next) {
		CU_ASSERT_PTR_EQUAL(n->prev, prev);
		*out++ = (char)('0' + bb_container_of(n, struct item, dn)->v);
	}
	CU_ASSERT_PTR_EQUAL(l->tail, prev);
	*out = '\0';
}

static void test_dlist(void)
{
	struct item it[5];
	struct bb_dlist l = {0};
	char s[8];

	for (int i = 0; i < 5; i++)
		it[i].v = i;
	bb_dlist_push_back(&l, &it[1].dn);
	bb_dlist_push_back(&l, &it[2].dn);
	bb_dlist_push_front(&l, &it[0].dn);
	bb_dlist_push_back(&l, &it[3].dn);
	dlist_str(&l, s);
	CU_ASSERT_STRING_EQUAL(s, "0123");
	bb_dlist_remove(&l, &it[2].dn); /* the middle */
	dlist_str(&l, s);
	CU_ASSERT_STRING_EQUAL(s, "013");
	bb_dlist_remove(&l, &it[0].dn); /* the head */
	bb_dlist_remove(&l, &it[3].dn); /* the tail */
	dlist_str(&l, s);
	CU_ASSERT_STRING_EQUAL(s, "1");
	bb_dlist_push_front(&l, &it[4].dn);
	dlist_str(&l, s);
	CU_ASSERT_STRING_EQUAL(s, "41");
	bb_dlist_remove(&l, &it[4].dn);
	bb_dlist_remove(&l, &it[1].dn);
	CU_ASSERT_PTR_NULL(l.head);
	CU_ASSERT_PTR_NULL(l.tail);
	CU_ASSERT_PTR_NULL(it[1].dn.prev);
	CU_ASSERT_PTR_NULL(it[1].dn.next);
}

/* A helper that squares numbers, slowly now and then, so that the engine's
 * thread sometimes waits on it and sometimes finds several items back. */
struct squarer {
	struct bb_helper h;
	struct bb_fifo todo;      /* h.lock */
	int next_back;            /* engine thread: the value expected back next */
	int total;
	int bad;
};

static int squarer_step(struct bb_helper *hp)
{
	struct squarer *q = bb_container_of(hp, struct squarer, h);
	struct bb_qnode *n = bb_fifo_pop(&q->todo);

	if (!n)
		return 0;
	struct item *it = bb_container_of(n, struct item, qn);
	pthread_mutex_unlock(&hp->lock);
	if (it->v % 7 == 0)
		nanosleep(&(struct timespec){0, 200000}, NULL);
	it->result = it->v * it->v;
	pthread_mutex_lock(&hp->lock);
	bb_helper_give_back(hp, n);
	return 1;
}

static struct item items[500];

static unsigned squarer_drain(void *arg)
{
	struct squarer *q = arg;

	for (struct bb_qnode *n = bb_helper_take_back(&q->h), *next; n; n = next) {
		struct item *it = bb_container_of(n, struct item, qn);
		next = n->next;
		q->h.pending--;
		if (it->v != q->next_back || it->result != it->v * it->v)
			q->bad++;
		q->next_back++;
		/* Give more work from the drain hook, as the stage-in does. */
		if (q->total < 500) {
			struct item *more = &items[q->total];
			more->v = q->total++;
			pthread_mutex_lock(&q->h.lock);
			bb_fifo_push(&q->todo, &more->qn);
			pthread_cond_signal(&q->h.cond);
			pthread_mutex_unlock(&q->h.lock);
			q->h.pending++;
		}
	}
	return q->h.pending;
}

static void test_helper_thread(void)
{
	struct bb_engine_opts eo = {0};
	struct bb_engine *eng;
	struct squarer q = {0};

	CU_ASSERT_FATAL(bb_engine_new(&eo, &eng) == BB_OK);
	bb_fifo_init(&q.todo);
	CU_ASSERT_PTR_NULL(bb_helper_take_back(&q.h)); /* not started: nothing */
	CU_ASSERT_FATAL(bb_helper_start(&q.h, eng, squarer_step) == BB_OK);
	CU_ASSERT_EQUAL(bb_helper_start(&q.h, eng, squarer_step), BB_OK); /* started: no-op */
	pthread_mutex_lock(&q.h.lock);
	for (; q.total < 50; q.total++) {
		items[q.total].v = q.total;
		bb_fifo_push(&q.todo, &items[q.total].qn);
		q.h.pending++;
	}
	pthread_cond_signal(&q.h.cond);
	pthread_mutex_unlock(&q.h.lock);
	bb_engine_set_drain(eng, squarer_drain, &q);
	CU_ASSERT_EQUAL(bb_engine_run(eng), BB_OK); /* returns once every item is back */
	CU_ASSERT_EQUAL(q.h.pending, 0);
	CU_ASSERT_EQUAL(q.next_back, 500);
	CU_ASSERT_EQUAL(q.bad, 0);
	bb_helper_stop(&q.h);
	CU_ASSERT_FALSE(q.h.started);
	bb_helper_stop(&q.h); /* stopped: no-op */
	/* It starts again after a stop. */
	CU_ASSERT_EQUAL(bb_helper_start(&q.h, eng, squarer_step), BB_OK);
	bb_helper_stop(&q.h);
	bb_engine_free(eng);
}

int main(void)
{
	CU_pSuite s;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("helper", NULL, NULL);
	CU_add_test(s, "FIFO", test_fifo);
	CU_add_test(s, "doubly linked list", test_dlist);
	CU_add_test(s, "a helper thread through the engine's drain hook", test_helper_thread);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
