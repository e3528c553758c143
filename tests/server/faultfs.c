/* faultfs: storage faults for a real process, by LD_PRELOAD.

     LD_PRELOAD=libspinnet_faultfs.so SPINNET_FAULTS=/tmp/faults spinnet-server

   While the file named by SPINNET_FAULTS exists, its one line of
   key=value words (re-read on every call it may affect) makes some file
   system calls on matching paths misbehave; without it every call is the
   real one. Keys:
     path=GLOB   fnmatch(3) pattern on the file's path as opened (or a
                 rename's source or target); '*' also matches '/'
     ops=LIST    any of write (write, pwrite, pwritev, writev), fsync
                 (fsync, fdatasync), rename (rename, renameat, renameat2)
     mode=MODE   fail: the call fails with errno; torn: a write writes the
                 first half of its bytes, then fails with errno; kill: a
                 write writes the first half, then the process is killed
                 (SIGKILL), as a power cut would; slow: sleep delay_ms,
                 then do the call
     errno=NAME  ENOSPC (default), EIO, EDQUOT or EROFS
     delay_ms=N  for mode=slow
     after=N     the first N matching calls are let through
     count=N     at most N calls misbehave (0: no limit)
   Counts start again whenever the line changes. Each call that misbehaves
   is logged to stderr ("faultfs: ..."), so a test can see that the fault
   was hit. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { kMaxFds = 65536, kLine = 1024 };
enum Op { kWrite = 1, kFsync = 2, kRename = 4 };
enum Mode { kFail, kTorn, kKill, kSlow };

/* Paths of open file descriptors, for calls that name an fd. */
static char* paths[kMaxFds];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* The line the counters belong to, and the counters. */
static char last_line[kLine];
static long seen, injected;

static int (*real_open)(const char*, int, ...);
static int (*real_openat)(int, const char*, int, ...);
static int (*real_close)(int);
static ssize_t (*real_read)(int, void*, size_t);
static ssize_t (*real_write)(int, const void*, size_t);
static ssize_t (*real_pwrite)(int, const void*, size_t, off_t);
static ssize_t (*real_writev)(int, const struct iovec*, int);
static ssize_t (*real_pwritev)(int, const struct iovec*, int, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_rename)(const char*, const char*);
static int (*real_renameat)(int, const char*, int, const char*);
static int (*real_renameat2)(int, const char*, int, const char*, unsigned);

/* Before any call: another library's constructor may write or open files
   before this one's would run. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static void Resolve(void) {
  real_open = dlsym(RTLD_NEXT, "open");
  real_openat = dlsym(RTLD_NEXT, "openat");
  real_close = dlsym(RTLD_NEXT, "close");
  real_read = dlsym(RTLD_NEXT, "read");
  real_write = dlsym(RTLD_NEXT, "write");
  real_pwrite = dlsym(RTLD_NEXT, "pwrite");
  real_writev = dlsym(RTLD_NEXT, "writev");
  real_pwritev = dlsym(RTLD_NEXT, "pwritev");
  real_fsync = dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
  real_rename = dlsym(RTLD_NEXT, "rename");
  real_renameat = dlsym(RTLD_NEXT, "renameat");
  real_renameat2 = dlsym(RTLD_NEXT, "renameat2");
}

static void Init(void) { pthread_once(&once, Resolve); }

struct Rule {
  char path[512];
  int ops;
  enum Mode mode;
  int err;
  long delay_ms, after, count;
};

/* Reads the control file into `line`; 0 when there is none. */
static int ReadControl(char* line) {
  const char* file = getenv("SPINNET_FAULTS");
  if (file == NULL) return 0;
  const int fd = real_open(file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  const ssize_t n = real_read(fd, line, kLine - 1);
  real_close(fd);
  if (n <= 0) return 0;
  line[n] = '\0';
  line[strcspn(line, "\n")] = '\0';
  return 1;
}

static int ErrnoOf(const char* name) {
  if (strcmp(name, "EIO") == 0) return EIO;
  if (strcmp(name, "EDQUOT") == 0) return EDQUOT;
  if (strcmp(name, "EROFS") == 0) return EROFS;
  return ENOSPC;
}

static void Parse(char* line, struct Rule* r) {
  memset(r, 0, sizeof(*r));
  r->err = ENOSPC;
  char* save = NULL;
  for (char* w = strtok_r(line, " \t", &save); w != NULL;
       w = strtok_r(NULL, " \t", &save)) {
    char* eq = strchr(w, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    const char* v = eq + 1;
    if (strcmp(w, "path") == 0) {
      snprintf(r->path, sizeof(r->path), "%s", v);
    } else if (strcmp(w, "ops") == 0) {
      if (strstr(v, "write")) r->ops |= kWrite;
      if (strstr(v, "fsync")) r->ops |= kFsync;
      if (strstr(v, "rename")) r->ops |= kRename;
    } else if (strcmp(w, "mode") == 0) {
      r->mode = strcmp(v, "torn") == 0   ? kTorn
                : strcmp(v, "kill") == 0 ? kKill
                : strcmp(v, "slow") == 0 ? kSlow
                                         : kFail;
    } else if (strcmp(w, "errno") == 0) {
      r->err = ErrnoOf(v);
    } else if (strcmp(w, "delay_ms") == 0) {
      r->delay_ms = atol(v);
    } else if (strcmp(w, "after") == 0) {
      r->after = atol(v);
    } else if (strcmp(w, "count") == 0) {
      r->count = atol(v);
    }
  }
}

/* Whether the call `op` on `path` (or `path2`) must misbehave now, and how
   (in `rule`). */
static int Hit(enum Op op, const char* path, const char* path2,
               struct Rule* rule) {
  if (path == NULL && path2 == NULL) return 0; /* a socket, a pipe */
  char line[kLine];
  if (!ReadControl(line)) return 0;
  char copy[kLine];
  memcpy(copy, line, sizeof(copy));
  Parse(copy, rule);
  if ((rule->ops & op) == 0) return 0;
  const int match = (path != NULL && fnmatch(rule->path, path, 0) == 0) ||
                    (path2 != NULL && fnmatch(rule->path, path2, 0) == 0);
  if (!match) return 0;
  int hit = 0;
  pthread_mutex_lock(&mu);
  if (strcmp(line, last_line) != 0) {
    memcpy(last_line, line, sizeof(last_line));
    seen = injected = 0;
  }
  if (seen++ >= rule->after && (rule->count == 0 || injected < rule->count)) {
    ++injected;
    hit = 1;
  }
  pthread_mutex_unlock(&mu);
  if (hit) {
    char msg[1200];
    const int n =
        snprintf(msg, sizeof(msg), "faultfs: %s %s: %s\n",
                 op == kWrite   ? "write"
                 : op == kFsync ? "fsync"
                                : "rename",
                 path, rule->mode == kSlow ? "slow" : strerror(rule->err));
    if (n > 0)
      real_write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
  }
  return hit;
}

/* A copy of the path of `fd`, or NULL, into `out`. */
static const char* PathOf(int fd, char* out, size_t size) {
  if (fd < 0 || fd >= kMaxFds) return NULL;
  const char* p = NULL;
  pthread_mutex_lock(&mu);
  if (paths[fd] != NULL) {
    snprintf(out, size, "%s", paths[fd]);
    p = out;
  }
  pthread_mutex_unlock(&mu);
  return p;
}

static void Remember(int fd, int dirfd, const char* path) {
  if (fd < 0 || fd >= kMaxFds || path == NULL) return;
  char full[4096];
  if (path[0] != '/' && dirfd == AT_FDCWD) {
    char cwd[3000];
    if (getcwd(cwd, sizeof(cwd)) != NULL) {
      snprintf(full, sizeof(full), "%s/%s", cwd, path);
      path = full;
    }
  }
  char* copy = strdup(path);
  pthread_mutex_lock(&mu);
  free(paths[fd]);
  paths[fd] = copy;
  pthread_mutex_unlock(&mu);
}

static void Sleep(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Applies `rule` to a write of `n` bytes at `buf` on `fd` (at `offset`, or
   at the file position when offset < 0). Returns the call's result. */
static ssize_t Misbehave(const struct Rule* rule, int fd, const void* buf,
                         size_t n, off_t offset) {
  if (rule->mode == kSlow) {
    Sleep(rule->delay_ms);
    return offset < 0 ? real_write(fd, buf, n)
                      : real_pwrite(fd, buf, n, offset);
  }
  if (rule->mode == kTorn || rule->mode == kKill) {
    const size_t half = n / 2;
    if (offset < 0) {
      real_write(fd, buf, half);
    } else {
      real_pwrite(fd, buf, half, offset);
    }
    if (rule->mode == kKill) kill(getpid(), SIGKILL);
  }
  errno = rule->err;
  return -1;
}

int open(const char* path, int flags, ...) {
  Init();
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  const int fd = real_open(path, flags, mode);
  Remember(fd, AT_FDCWD, path);
  return fd;
}
int open64(const char* path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char* path, int flags, ...) {
  Init();
  mode_t mode = 0;
  if (flags & (O_CREAT | O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  const int fd = real_openat(dirfd, path, flags, mode);
  Remember(fd, dirfd, path);
  return fd;
}
int openat64(int dirfd, const char* path, int flags, ...)
    __attribute__((alias("openat")));

int close(int fd) {
  Init();
  if (fd >= 0 && fd < kMaxFds) {
    pthread_mutex_lock(&mu);
    free(paths[fd]);
    paths[fd] = NULL;
    pthread_mutex_unlock(&mu);
  }
  return real_close(fd);
}

ssize_t write(int fd, const void* buf, size_t n) {
  Init();
  char path[4096];
  struct Rule rule;
  if (Hit(kWrite, PathOf(fd, path, sizeof(path)), NULL, &rule)) {
    return Misbehave(&rule, fd, buf, n, -1);
  }
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  Init();
  char path[4096];
  struct Rule rule;
  if (Hit(kWrite, PathOf(fd, path, sizeof(path)), NULL, &rule)) {
    return Misbehave(&rule, fd, buf, n, offset);
  }
  return real_pwrite(fd, buf, n, offset);
}
ssize_t pwrite64(int fd, const void* buf, size_t n, off_t offset)
    __attribute__((alias("pwrite")));

/* A call that fails or waits whole (vectored writes, fsyncs): no tearing. */
static int WholeFault(enum Op op, int fd) {
  char path[4096];
  struct Rule rule;
  if (!Hit(op, PathOf(fd, path, sizeof(path)), NULL, &rule)) return 0;
  if (rule.mode == kSlow) {
    Sleep(rule.delay_ms);
    return 0;
  }
  if (rule.mode == kKill) kill(getpid(), SIGKILL);
  errno = rule.err;
  return -1;
}

ssize_t writev(int fd, const struct iovec* iov, int n) {
  Init();
  if (WholeFault(kWrite, fd) < 0) return -1;
  return real_writev(fd, iov, n);
}

ssize_t pwritev(int fd, const struct iovec* iov, int n, off_t offset) {
  Init();
  if (WholeFault(kWrite, fd) < 0) return -1;
  return real_pwritev(fd, iov, n, offset);
}
ssize_t pwritev64(int fd, const struct iovec* iov, int n, off_t offset)
    __attribute__((alias("pwritev")));

int fsync(int fd) {
  Init();
  return WholeFault(kFsync, fd) < 0 ? -1 : real_fsync(fd);
}
int fdatasync(int fd) {
  Init();
  return WholeFault(kFsync, fd) < 0 ? -1 : real_fdatasync(fd);
}

static int RenameFault(const char* from, const char* to) {
  struct Rule rule;
  if (!Hit(kRename, from, to, &rule)) return 0;
  if (rule.mode == kSlow) {
    Sleep(rule.delay_ms);
    return 0;
  }
  if (rule.mode == kKill) kill(getpid(), SIGKILL);
  errno = rule.err;
  return -1;
}

int rename(const char* from, const char* to) {
  Init();
  return RenameFault(from, to) < 0 ? -1 : real_rename(from, to);
}

int renameat(int fromfd, const char* from, int tofd, const char* to) {
  Init();
  return RenameFault(from, to) < 0 ? -1 : real_renameat(fromfd, from, tofd, to);
}

int renameat2(int fromfd, const char* from, int tofd, const char* to,
              unsigned flags) {
  Init();
  return RenameFault(from, to) < 0
             ? -1
             : real_renameat2(fromfd, from, tofd, to, flags);
}
