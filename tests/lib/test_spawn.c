/* lib/spawn.c: what a child inherits (signals, descriptors), what it is
 * given and what it gives back, and how it is stopped. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "spawn.h"

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Runs argv and expects it to have run (whatever its status). */
static void run(char *const argv[], const struct mg_spawn *extra, struct mg_spawn_result *r)
{
	struct mg_spawn s = extra ? *extra : (struct mg_spawn){0};
	char err[256] = "";

	s.argv = argv;
	if (mg_spawn_run(&s, r, err, sizeof(err)))
		fail_msg("%s: %s", argv[0], err);
}

/* What the core does to a plugin's thread: SIGTERM and SIGHUP blocked (the
 * main thread takes them), SIGPIPE ignored. */
static void block_like_the_core(sigset_t *old, struct sigaction *old_pipe)
{
	struct sigaction ign = {.sa_handler = SIG_IGN};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, old), 0);
	assert_int_equal(sigaction(SIGPIPE, &ign, old_pipe), 0);
}

static void unblock(const sigset_t *old, const struct sigaction *old_pipe)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
	sigaction(SIGPIPE, old_pipe, NULL);
}

/* The hex mask of a /proc status line ("SigBlk:\t0000...") in text. */
static unsigned long long proc_mask(const char *text, const char *field)
{
	const char *line = strstr(text, field);

	if (!line)
		fail_msg("no %s in /proc/self/status", field);
	return strtoull(line + strlen(field), NULL, 16);
}

static void *start_sleeper(void *arg)
{
	char *argv[] = {"sleep", "30", NULL};
	struct mg_spawn s = {.argv = argv};
	sigset_t old;
	struct sigaction old_pipe;
	char err[256];

	block_like_the_core(&old, &old_pipe);
	if (mg_spawn_start(&s, arg, err, sizeof(err)))
		fail_msg("%s", err);
	unblock(&old, &old_pipe);
	return NULL;
}

static void test_child_from_a_blocking_thread_dies_of_sigterm(void **state)
{
	pthread_t thread;
	pid_t pid = 0;
	int status;
	char path[64], *text = NULL;
	size_t cap = 0;
	FILE *f;

	(void)state;
	assert_int_equal(pthread_create(&thread, NULL, start_sleeper, &pid), 0);
	pthread_join(thread, NULL);
	assert_true(pid > 0);
	/* the child's own view: nothing blocked, nothing ignored */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	assert_non_null(f = fopen(path, "r"));
	assert_true(getdelim(&text, &cap, '\0', f) > 0);
	fclose(f);
	assert_int_equal(proc_mask(text, "SigBlk:"), 0);
	assert_int_equal(proc_mask(text, "SigIgn:"), 0);
	free(text);
	assert_int_equal(mg_spawn_stop(pid, 5000, &status), 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);
	assert_int_equal(mg_spawn_exited(pid, NULL), -ECHILD); /* reaped */
}

static void test_run_resets_mask_and_dispositions(void **state)
{
	char *argv[] = {"cat", "/proc/self/status", NULL};
	struct mg_spawn_result r;
	sigset_t old;
	struct sigaction old_pipe, handler = {.sa_handler = SIG_IGN};

	(void)state;
	block_like_the_core(&old, &old_pipe);
	sigaction(SIGUSR1, &handler, NULL);
	run(argv, NULL, &r);
	handler.sa_handler = SIG_DFL;
	sigaction(SIGUSR1, &handler, NULL);
	unblock(&old, &old_pipe);
	assert_true(mg_spawn_succeeded(&r));
	assert_int_equal(proc_mask(r.out, "SigBlk:"), 0);
	assert_int_equal(proc_mask(r.out, "SigIgn:"), 0);
	mg_spawn_result_free(&r);
}

static void test_only_0_1_2_are_inherited(void **state)
{
	char *argv[] = {"ls", "/proc/self/fd", NULL};
	struct mg_spawn_result r;
	int fds[2], high;

	(void)state;
	/* neither is close-on-exec: only the spawner can keep them from ls */
	assert_int_equal(pipe(fds), 0);
	high = dup2(fds[0], 90);
	assert_int_equal(high, 90);
	assert_int_equal(fcntl(fds[1], F_GETFD) & FD_CLOEXEC, 0);
	run(argv, NULL, &r);
	/* 3 is ls's own handle on the directory */
	assert_string_equal(r.out, "0\n1\n2\n3\n");
	mg_spawn_result_free(&r);
	close(fds[0]);
	close(fds[1]);
	close(high);
}

static void test_output_captured_and_exit_code(void **state)
{
	char *argv[] = {"sh", "-c", "printf out; printf 'it failed\\n' >&2; exit 3", NULL};
	struct mg_spawn_result r;
	char msg[256];

	(void)state;
	run(argv, NULL, &r);
	assert_string_equal(r.out, "out");
	assert_int_equal(r.out_len, 3);
	assert_string_equal(r.err, "it failed\n");
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 3);
	assert_false(mg_spawn_succeeded(&r));
	mg_spawn_describe("sh", &r, msg, sizeof(msg));
	assert_string_equal(msg, "sh exited with 3: it failed");
	mg_spawn_result_free(&r);
}

static void test_success_has_empty_strings(void **state)
{
	char *argv[] = {"true", NULL};
	struct mg_spawn_result r;
	char msg[64];

	(void)state;
	run(argv, NULL, &r);
	assert_true(mg_spawn_succeeded(&r));
	assert_string_equal(r.out, "");
	assert_string_equal(r.err, "");
	mg_spawn_describe("true", &r, msg, sizeof(msg));
	assert_string_equal(msg, "true succeeded");
	mg_spawn_result_free(&r);
}

static void test_killed_by_signal(void **state)
{
	char *argv[] = {"sh", "-c", "kill -9 $$", NULL};
	struct mg_spawn_result r;
	char msg[64];

	(void)state;
	run(argv, NULL, &r);
	assert_true(WIFSIGNALED(r.status));
	assert_false(mg_spawn_succeeded(&r));
	mg_spawn_describe("sh", &r, msg, sizeof(msg));
	assert_string_equal(msg, "sh was killed by signal 9");
	mg_spawn_result_free(&r);
}

/* Larger than any pipe buffer both ways: stdin is written while stdout is
 * read, or cat and we would wait on each other for ever. */
static void test_input_through_cat(void **state)
{
	char *argv[] = {"cat", NULL};
	size_t len = 1u << 20;
	char *input = malloc(len);
	struct mg_spawn s = {.input = input, .input_len = len, .timeout_ms = 20000};
	struct mg_spawn_result r;

	(void)state;
	assert_non_null(input);
	for (size_t i = 0; i < len; i++)
		input[i] = (char)('a' + i % 26);
	run(argv, &s, &r);
	assert_true(mg_spawn_succeeded(&r));
	assert_int_equal(r.out_len, len);
	assert_memory_equal(r.out, input, len);
	mg_spawn_result_free(&r);

	/* bounded: the rest is read and dropped */
	s.max_output = 10;
	run(argv, &s, &r);
	assert_true(mg_spawn_succeeded(&r));
	assert_int_equal(r.out_len, 10);
	assert_true(r.out_truncated);
	assert_memory_equal(r.out, input, 10);
	mg_spawn_result_free(&r);
	free(input);
}

/* A child that exits without reading its input must not kill us (SIGPIPE). */
static void test_child_ignoring_its_input(void **state)
{
	char *argv[] = {"true", NULL};
	static char input[1u << 20];
	struct mg_spawn s = {.input = input, .input_len = sizeof(input)};
	struct mg_spawn_result r;

	(void)state;
	run(argv, &s, &r);
	assert_true(mg_spawn_succeeded(&r));
	mg_spawn_result_free(&r);
}

static void test_deadline_stops_a_sleeper(void **state)
{
	char *argv[] = {"sleep", "30", NULL};
	struct mg_spawn s = {.timeout_ms = 200};
	struct mg_spawn_result r;
	long start = now_ms();
	char msg[64];

	(void)state;
	run(argv, &s, &r);
	assert_true(now_ms() - start < 5000);
	assert_true(r.timed_out);
	assert_true(WIFSIGNALED(r.status));
	assert_int_equal(WTERMSIG(r.status), SIGTERM);
	assert_false(mg_spawn_succeeded(&r));
	mg_spawn_describe("sleep", &r, msg, sizeof(msg));
	assert_string_equal(msg, "sleep did not finish within 200 ms");
	mg_spawn_result_free(&r);
}

/* One that ignores SIGTERM itself gets SIGKILL after the grace period. */
static void test_deadline_kills_one_ignoring_sigterm(void **state)
{
	char *argv[] = {"sh", "-c", "trap '' TERM; exec sleep 30", NULL};
	struct mg_spawn s = {.timeout_ms = 200};
	struct mg_spawn_result r;
	long start = now_ms();

	(void)state;
	run(argv, &s, &r);
	assert_true(now_ms() - start < 200 + MG_SPAWN_GRACE_MS + 5000);
	assert_true(r.timed_out);
	assert_true(WIFSIGNALED(r.status));
	assert_int_equal(WTERMSIG(r.status), SIGKILL);
	mg_spawn_result_free(&r);
}

static void test_stop_escalates_to_sigkill(void **state)
{
	char *argv[] = {"sh", "-c", "trap '' TERM; exec sleep 30", NULL};
	struct mg_spawn s = {.argv = argv};
	char err[256];
	pid_t pid;
	int status;

	(void)state;
	assert_int_equal(mg_spawn_start(&s, &pid, err, sizeof(err)), 0);
	usleep(200 * 1000); /* let the shell set its trap */
	assert_int_equal(mg_spawn_exited(pid, NULL), 0);
	assert_int_equal(mg_spawn_stop(pid, 300, &status), 0);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_int_equal(mg_spawn_stop(pid, 300, NULL), -ESRCH);
}

/* new_session: the child leads a session of its own (what keeps wireguard-go
 * out of reach of signals to meshgated's process group); by default it
 * stays in ours. */
static void test_new_session(void **state)
{
	char *argv[] = {"sleep", "30", NULL};
	struct mg_spawn s = {.argv = argv};
	char err[256];
	pid_t plain, detached;

	(void)state;
	assert_int_equal(mg_spawn_start(&s, &plain, err, sizeof(err)), 0);
	s.new_session = true;
	assert_int_equal(mg_spawn_start(&s, &detached, err, sizeof(err)), 0);
	/* setsid runs in the child before execve, which start() waits for */
	assert_int_equal(getsid(plain), getsid(0));
	assert_int_equal(getsid(detached), detached);
	assert_int_equal(getpgid(detached), detached);
	assert_int_equal(mg_spawn_stop(plain, 1000, NULL), 0);
	assert_int_equal(mg_spawn_stop(detached, 1000, NULL), 0);
}

static void test_cannot_run(void **state)
{
	char *missing[] = {"meshgate-no-such-program", NULL};
	char path[] = "/tmp/mg_spawn_XXXXXX", *not_a_program[] = {path, NULL};
	struct mg_spawn s = {.argv = missing};
	struct mg_spawn_result r;
	char err[256];
	pid_t pid = 1;
	int fd;

	(void)state;
	assert_int_equal(mg_spawn_run(&s, &r, err, sizeof(err)), -ENOENT);
	assert_string_equal(err, "cannot run meshgate-no-such-program: not found in PATH");
	assert_int_equal(mg_spawn_start(&s, &pid, err, sizeof(err)), -ENOENT);
	assert_int_equal(pid, 0);

	/* executable but no program: execve fails in the child, which says so */
	assert_true((fd = mkstemp(path)) >= 0);
	assert_int_equal(write(fd, "\x7f\x45garbage", 9), 9);
	close(fd);
	chmod(path, 0700);
	s.argv = not_a_program;
	assert_int_equal(mg_spawn_start(&s, &pid, err, sizeof(err)), -ENOEXEC);
	assert_non_null(strstr(err, "Exec format error"));
	assert_int_equal(mg_spawn_run(&s, &r, err, sizeof(err)), -ENOEXEC);
	unlink(path);
	/* no child left behind */
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_child_from_a_blocking_thread_dies_of_sigterm),
	    cmocka_unit_test(test_run_resets_mask_and_dispositions),
	    cmocka_unit_test(test_only_0_1_2_are_inherited),
	    cmocka_unit_test(test_output_captured_and_exit_code),
	    cmocka_unit_test(test_success_has_empty_strings),
	    cmocka_unit_test(test_killed_by_signal),
	    cmocka_unit_test(test_input_through_cat),
	    cmocka_unit_test(test_child_ignoring_its_input),
	    cmocka_unit_test(test_deadline_stops_a_sleeper),
	    cmocka_unit_test(test_deadline_kills_one_ignoring_sigterm),
	    cmocka_unit_test(test_stop_escalates_to_sigkill),
	    cmocka_unit_test(test_new_session),
	    cmocka_unit_test(test_cannot_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
