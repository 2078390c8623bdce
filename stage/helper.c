/* Helper threads of the stage-in: see helper.h. */
#include "config.h"

#include "stage/helper.h"

#include "common/error.h"
#include "stage/engine.h"

static void *helper_main(void *arg)
{
	struct bb_helper *h = arg;

	pthread_mutex_lock(&h->lock);
	for (;;) {
		if (h->step(h))
			continue;
		if (h->quit)
			break;
		pthread_cond_wait(&h->cond, &h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

int bb_helper_start(struct bb_helper *h, struct bb_engine *eng, int (*step)(struct bb_helper *))
{
	if (h->started || h->broken)
		return h->started ? BB_OK : BB_ESYS;
	h->eng = eng;
	h->step = step;
	h->quit = 0;
	h->pending = 0;
	bb_fifo_init(&h->back);
	if (pthread_mutex_init(&h->lock, NULL) != 0)
		goto broken;
	if (pthread_cond_init(&h->cond, NULL) != 0) {
		pthread_mutex_destroy(&h->lock);
		goto broken;
	}
	if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
		goto broken;
	}
	h->started = 1;
	return BB_OK;
broken:
	h->broken = 1;
	return BB_ESYS;
}

void bb_helper_stop(struct bb_helper *h)
{
	if (!h->started)
		return;
	pthread_mutex_lock(&h->lock);
	h->quit = 1;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	pthread_join(h->thread, NULL);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	h->started = 0;
}

void bb_helper_give_back(struct bb_helper *h, struct bb_qnode *n)
{
	int wake = !h->back.head;

	bb_fifo_push(&h->back, n);
	if (!wake)
		return; /* the engine's thread has not taken the list since its wakeup */
	pthread_mutex_unlock(&h->lock);
	bb_engine_wakeup(h->eng);
	pthread_mutex_lock(&h->lock);
}

struct bb_qnode *bb_helper_take_back(struct bb_helper *h)
{
	struct bb_qnode *n;

	if (!h->started || !h->pending)
		return NULL;
	pthread_mutex_lock(&h->lock);
	n = bb_fifo_take(&h->back);
	pthread_mutex_unlock(&h->lock);
	return n;
}
