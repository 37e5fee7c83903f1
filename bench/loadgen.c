/*
 * loadgen: a WebSocket echo and fan-out load generator (Linux, epoll,
 * non-blocking, one thread).
 *
 * Echo mode (the default): opens N connections, performs the HTTP upgrade on
 * each, keeps a fixed number of messages in flight per connection (a closed
 * loop: every echo lets one more message go), verifies every echo byte for
 * byte, and prints one JSON line on stdout. Diagnostics go to stderr.
 *
 * Fan-out mode (-F): opens N subscriber connections (GET /fanout?role=sub)
 * and one publisher connection (GET /fanout?role=pub). The server must send
 * every message the publisher sends to every subscriber, and nothing to the
 * publisher. First the publisher sends probe messages every 20 ms until each
 * subscriber has received one (so every subscription is in place); then it
 * keeps -i numbered messages in flight, a message being in flight until
 * every subscriber has received it (a closed loop). Each subscriber must
 * receive every numbered message, in order, byte for byte (probes may come
 * only before the first one). It reports deliveries (messages received by
 * subscribers) per second, messages per second, and the fan-out latency of
 * each message: from its send to its arrival at the last subscriber.
 * With -P the publisher connects to another port than the subscribers (two
 * server processes sharing a pub/sub backplane, say).
 *
 * Burst mode (-B, echo mode only): the same closed loop, written the way a
 * pipelining client writes (a browser behind a busy page, a server-to-server
 * link). Each connection reads everything the socket holds, in chunks of up
 * to its whole window, before it answers; then all the frames that may go
 * (one per echo read, or the whole window at the start) leave in ONE write()
 * call from one contiguous buffer. Without -B, the loop answers after every
 * read, and a read holds at most two frames of the largest sizes, so that
 * the server mostly sees one frame per write.
 *
 *   loadgen -p PORT [-h 127.0.0.1] [-u /bench] [-c 64] [-i 16] [-s 32]
 *           [-t text|binary] [-w 1] (-d 3 | -n COUNT) [-T 60] [-B | -I | -F [-P PORT]]
 *
 *   -h HOST     server address (IPv4 literal)           default 127.0.0.1
 *   -p PORT     server port                             required
 *   -u PATH     request target of the upgrade (echo and  default /bench
 *               idle modes; -F always uses /fanout?role=sub|pub)
 *   -c N        connections (-F: subscribers)           default 64
 *   -i N        messages in flight per connection        default 16
 *               (-F: messages in flight in all)
 *   -s BYTES    payload size (-F: at least 16)          default 32
 *   -t KIND     text or binary                          default binary
 *   -w SECONDS  warm-up before measuring (not counted)  default 1
 *   -d SECONDS  measure for this long                   default 3
 *   -n COUNT    measure until COUNT echoes (-F: COUNT messages received by
 *               every subscriber) (instead of -d)
 *   -T SECONDS  hard limit on the whole run; exceeding it is an error
 *               default: warm-up + duration + 30, or 60 with -n
 *   -I          idle mode: open the connections, print {"ready":true,...},
 *               then hold them, silent, until stdin reaches EOF, SIGTERM or
 *               SIGINT arrives, or -d seconds pass; report any frame or close
 *               from the server as an error
 *   -B          burst mode (see above)
 *   -F          fan-out mode (see above)
 *   -P PORT     -F: the publisher's server port         default: -p
 *
 * Fan-out payloads start with the message's number as 16 hexadecimal
 * digits (a probe has 16 'P's instead); the rest is the same filler as an
 * echo payload. Both are valid UTF-8, so -t text works too.
 *
 * Exit status: 0 when every echo matched and no connection failed, 1 on any
 * verification or connection error, 2 on bad arguments.
 *
 * Build: gcc -O2 -o loadgen loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define MAX_PENDING_HANDSHAKES 128 /* connects in progress at once: stay under the listen backlog */
#define CONNECT_TIMEOUT_NS (15ull * 1000000000ull)
#define DRAIN_TIMEOUT_NS (10ull * 1000000000ull)
#define HIST_MAX_US 1000000u /* 1 µs buckets up to 1 s, then one overflow bucket */
#define MAX_IOV 64
#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 §1.3 example */
#define SEQ_DIGITS 16                              /* fan-out: the message number, in hex, at the payload's start */
#define PROBE_INTERVAL_NS (20ull * 1000000ull)
#define PROBE_TIMEOUT_NS (15ull * 1000000000ull)

enum { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_DEAD };
enum { PH_CONNECT, PH_PROBE, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_HOLD, PH_DONE };

typedef struct {
  int fd;
  int state;
  int want_out;     /* EPOLLOUT registered */
  uint8_t *rbuf;    /* bytes read and not yet parsed start at rbuf[0] */
  size_t rlen, rcap;
  size_t hs_off;    /* bytes of the upgrade request written */
  uint32_t pend;    /* frames queued and not completely written */
  size_t pend_off;  /* bytes of the first queued frame already written */
  uint32_t inflight;
  uint64_t *sent_at; /* ring of send times, one per message in flight */
  uint32_t ring_head, ring_tail;
  /* fan-out */
  int publisher;     /* the one publishing connection */
  int probed;        /* a subscriber that has received a probe */
  uint64_t next_seq; /* a subscriber's next expected message */
  uint8_t *obuf;     /* the publisher's frames not yet written: obuf[ooff..olen) */
  size_t olen, ooff, ocap;
} conn_t;

/* ---- configuration ---- */
static const char *opt_host = "127.0.0.1";
static const char *opt_path = "/bench";
static int opt_port = -1;
static uint32_t opt_conns = 64;
static uint32_t opt_window = 16;
static size_t opt_size = 32;
static int opt_text = 0;
static double opt_warmup = 1.0;
static double opt_duration = 3.0;
static uint64_t opt_count = 0;
static double opt_limit = 0;
static int opt_idle = 0;
static int opt_fanout = 0;
static int opt_burst = 0;
static int opt_pub_port = -1; /* -F: the publisher's port (-1: the same as opt_port) */

/* ---- state ---- */
static conn_t *conns;
static int ep = -1;
static struct sockaddr_in server_addr;
static struct sockaddr_in pub_addr; /* fan-out: the publisher's server (server_addr unless -P) */
static uint8_t *frame;          /* one masked client frame, sent over and over */
static size_t frame_len;
static uint8_t *burst;          /* -B: opt_window copies of frame, back to back */
static uint8_t *expected;       /* the payload the echo must carry */
static uint8_t expected_b0;     /* FIN + opcode of the echo */
static char request[512];
static size_t request_len;
static char pub_request[512]; /* fan-out: the publisher's upgrade request (request is the subscribers') */
static size_t pub_request_len;
static int phase = PH_CONNECT;
static uint32_t total_conns; /* opt_conns, plus the publisher with -F */
static uint32_t started, opened, pending_handshakes;
static uint64_t errors;
static char first_error[256];
static volatile sig_atomic_t stop_signal;
static int stdin_watched;

/* ---- fan-out ---- */
static conn_t *pub;              /* the publisher: conns[opt_conns] */
static uint64_t fan_sent;        /* numbered messages sent: the next one's number */
static uint64_t fan_done;        /* messages every subscriber has received (they complete in order) */
static uint32_t *fan_got;        /* per message in flight (by number % window): subscribers that have it */
static uint64_t *fan_sent_at;    /* per message in flight: when it was queued */
static uint32_t probed_count;    /* subscribers that have received a probe */
static uint64_t t_probe_start, t_probe_last;
static uint64_t deliveries;      /* messages received by subscribers while measuring */

/* ---- statistics (reset at the end of the warm-up) ---- */
static uint32_t *hist;
static uint64_t hist_overflow, measured, lat_sum_us, lat_max_us;
static uint64_t t_start, t_measure, t_measure_end, t_drain_end;
static double cpu_measure, cpu_measure_end; /* this process's CPU seconds (user + system) */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(conn_t *c, const char *fmt, ...) {
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  errors++;
  if (errors <= 5) fprintf(stderr, "loadgen: connection %ld: %s\n", c ? (long)(c - conns) : -1L, msg);
  if (first_error[0] == 0) snprintf(first_error, sizeof first_error, "%s", msg);
  if (c && c->state != ST_DEAD) {
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) pending_handshakes--;
    c->state = ST_DEAD;
    if (c->fd >= 0) close(c->fd); /* also removes it from epoll */
    c->fd = -1;
  }
}

static void usage(const char *why) {
  fprintf(stderr, "loadgen: %s\nusage: loadgen -p PORT [-h HOST] [-u PATH] [-c CONNS] [-i INFLIGHT] [-s BYTES] "
                  "[-t text|binary] [-w WARMUP_S] (-d SECONDS | -n COUNT) [-T LIMIT_S] [-B | -I | -F [-P PUB_PORT]]\n", why);
  exit(2);
}

static double parse_num(const char *s, const char *what, double min, double max) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v < min || v > max) {
    char msg[128];
    snprintf(msg, sizeof msg, "invalid %s: %s", what, s);
    usage(msg);
  }
  return v;
}

static void on_signal(int sig) { stop_signal = sig; }

/* CPU time used by this process so far, in seconds: user + system. */
static double cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_out(conn_t *c, int on);

/* ---- frames ---- */

static const uint8_t frame_mask[4] = {0x37, 0xfa, 0x21, 0x3d}; /* every client frame's mask */

static void build_frames(void) {
  const uint8_t *mask = frame_mask;
  expected = malloc(opt_size ? opt_size : 1);
  for (size_t i = 0; i < opt_size; i++) {
    /* Text: printable ASCII. Binary: every byte value, most not valid UTF-8. */
    expected[i] = opt_text ? (uint8_t)('a' + i % 26) : (uint8_t)(i * 31 + 7);
    /* Fan-out: the message number goes first (ASCII, so the payload stays valid UTF-8). */
    if (opt_fanout && i < SEQ_DIGITS) expected[i] = '0';
  }
  uint8_t op = opt_text ? 0x1 : 0x2;
  expected_b0 = 0x80 | op;
  size_t hdr = 2 + (opt_size < 126 ? 0 : opt_size < 65536 ? 2 : 8) + 4;
  frame_len = hdr + opt_size;
  frame = malloc(frame_len);
  frame[0] = expected_b0;
  size_t p = 2;
  if (opt_size < 126) {
    frame[1] = 0x80 | (uint8_t)opt_size;
  } else if (opt_size < 65536) {
    frame[1] = 0x80 | 126;
    frame[2] = (uint8_t)(opt_size >> 8);
    frame[3] = (uint8_t)opt_size;
    p = 4;
  } else {
    frame[1] = 0x80 | 127;
    for (int i = 0; i < 8; i++) frame[2 + i] = (uint8_t)((uint64_t)opt_size >> (56 - 8 * i));
    p = 10;
  }
  memcpy(frame + p, mask, 4);
  p += 4;
  for (size_t i = 0; i < opt_size; i++) frame[p + i] = expected[i] ^ mask[i & 3];
  if (opt_burst) {
    burst = malloc(opt_window * frame_len);
    for (uint32_t k = 0; k < opt_window; k++) memcpy(burst + (size_t)k * frame_len, frame, frame_len);
  }
#define UPGRADE_REQUEST "GET %s HTTP/1.1\r\n"                    \
                        "Host: %s:%d\r\n"                        \
                        "Upgrade: websocket\r\n"                 \
                        "Connection: Upgrade\r\n"                \
                        "Sec-WebSocket-Key: " WS_KEY "\r\n"      \
                        "Sec-WebSocket-Version: 13\r\n\r\n"
  /* The target is an argument, never part of the format: a '%' in -u stays a '%'. */
  request_len = (size_t)snprintf(request, sizeof request, UPGRADE_REQUEST,
                                 opt_fanout ? "/fanout?role=sub" : opt_path, opt_host, opt_port);
  pub_request_len = (size_t)snprintf(pub_request, sizeof pub_request, UPGRADE_REQUEST, "/fanout?role=pub", opt_host,
                                     opt_pub_port);
#undef UPGRADE_REQUEST
}

/* ---- fan-out: the publisher ---- */

/* Queues one message for the publisher: the frame with the number `seq` (or a probe) in its payload. */
static void queue_fanout(uint64_t seq, int probe) {
  if (pub->olen + frame_len > pub->ocap) {
    if (pub->ooff > 0) { /* move what is left to the front first */
      memmove(pub->obuf, pub->obuf + pub->ooff, pub->olen - pub->ooff);
      pub->olen -= pub->ooff;
      pub->ooff = 0;
    }
    if (pub->olen + frame_len > pub->ocap) {
      size_t cap = pub->ocap ? pub->ocap : 4096;
      while (cap < pub->olen + frame_len) cap *= 2;
      uint8_t *grown = realloc(pub->obuf, cap);
      if (!grown) {
        fail(pub, "out of memory");
        return;
      }
      pub->obuf = grown;
      pub->ocap = cap;
    }
  }
  uint8_t *f = pub->obuf + pub->olen;
  memcpy(f, frame, frame_len);
  uint8_t *payload = f + (frame_len - opt_size); /* the mask's phase is 0 at the payload's start */
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < SEQ_DIGITS; i++) {
    uint8_t digit = probe ? (uint8_t)'P' : (uint8_t)hex[(seq >> (4 * (SEQ_DIGITS - 1 - i))) & 0xf];
    payload[i] = digit ^ frame_mask[i & 3];
  }
  pub->olen += frame_len;
}

static void flush_pub(void) {
  conn_t *c = pub;
  while (c->state == ST_OPEN && c->ooff < c->olen) {
    ssize_t w = write(c->fd, c->obuf + c->ooff, c->olen - c->ooff);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_out(c, 1);
        return;
      }
      fail(c, "write: %s", strerror(errno));
      return;
    }
    c->ooff += (size_t)w;
  }
  if (c->state == ST_OPEN && c->ooff == c->olen) {
    c->ooff = c->olen = 0;
    set_out(c, 0);
  }
}

/* Tops up the messages in flight (a closed loop: one goes out as one reaches every subscriber). */
static void fanout_publish(uint64_t t) {
  if (pub->state != ST_OPEN) return;
  int queued = 0;
  while (fan_sent < fan_done + opt_window) {
    queue_fanout(fan_sent, 0);
    fan_sent_at[fan_sent % opt_window] = t;
    fan_sent++;
    queued = 1;
  }
  if (queued) flush_pub();
}

/* ---- epoll helpers ---- */

static void set_out(conn_t *c, int on) {
  if (c->want_out == on || c->fd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
    fail(c, "epoll_ctl: %s", strerror(errno));
    return;
  }
  c->want_out = on;
}

static void start_connect(conn_t *c) {
  started++;
  pending_handshakes++;
  c->state = ST_CONNECTING;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    fail(c, "socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const struct sockaddr_in *addr = c->publisher ? &pub_addr : &server_addr;
  if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
    fail(c, "connect: %s", strerror(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->want_out = 1;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) fail(c, "epoll_ctl: %s", strerror(errno));
}

/* ---- writing ---- */

static void queue_messages(conn_t *c, uint32_t n, uint64_t t) {
  for (uint32_t k = 0; k < n; k++) {
    c->sent_at[c->ring_tail] = t;
    c->ring_tail = (c->ring_tail + 1) % opt_window;
  }
  c->inflight += n;
  c->pend += n;
}

/* Updates the queue for `w` bytes written from its front. */
static void consume_written(conn_t *c, size_t w) {
  size_t left = w;
  while (left > 0) {
    size_t rest = frame_len - c->pend_off;
    if (left >= rest) {
      left -= rest;
      c->pend--;
      c->pend_off = 0;
    } else {
      c->pend_off += left;
      left = 0;
    }
  }
}

static void flush_conn(conn_t *c) {
  while (c->state == ST_OPEN && c->pend > 0) {
    struct iovec iov[MAX_IOV];
    uint32_t n;
    if (opt_burst) {
      /* -B: every queued frame in one contiguous write (the frames are identical: burst holds the window's worth in a row). */
      iov[0].iov_base = burst + c->pend_off;
      iov[0].iov_len = (size_t)c->pend * frame_len - c->pend_off;
      n = 1;
    } else {
      n = c->pend < MAX_IOV ? c->pend : MAX_IOV;
      iov[0].iov_base = frame + c->pend_off;
      iov[0].iov_len = frame_len - c->pend_off;
      for (uint32_t k = 1; k < n; k++) {
        iov[k].iov_base = frame;
        iov[k].iov_len = frame_len;
      }
    }
    ssize_t w = writev(c->fd, iov, (int)n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_out(c, 1);
        return;
      }
      fail(c, "write: %s", strerror(errno));
      return;
    }
    consume_written(c, (size_t)w);
  }
  if (c->state == ST_OPEN && c->pend == 0) set_out(c, 0);
}

static int sending(void) { return phase == PH_WARMUP || phase == PH_MEASURE; }

/* Reads the message number of a fan-out payload; returns 0 if it is not one. */
static int parse_seq(const uint8_t *p, uint64_t *seq) {
  uint64_t v = 0;
  for (int i = 0; i < SEQ_DIGITS; i++) {
    uint8_t ch = p[i];
    uint64_t d;
    if (ch >= '0' && ch <= '9') d = (uint64_t)(ch - '0');
    else if (ch >= 'a' && ch <= 'f') d = (uint64_t)(ch - 'a' + 10);
    else return 0;
    v = (v << 4) | d;
  }
  *seq = v;
  return 1;
}

/* ---- reading ---- */

static void record_latency(uint64_t sent, uint64_t t) {
  uint64_t us = (t - sent) / 1000;
  measured++;
  lat_sum_us += us;
  if (us > lat_max_us) lat_max_us = us;
  if (us < HIST_MAX_US) hist[us]++;
  else hist_overflow++;
}

/* Parses the echoes in rbuf; returns how many complete ones were consumed. */
static uint32_t parse_frames(conn_t *c, uint64_t t) {
  size_t pos = 0;
  uint32_t echoes = 0;
  while (c->state == ST_OPEN) {
    size_t avail = c->rlen - pos;
    if (avail < 2) break;
    const uint8_t *b = c->rbuf + pos;
    if (b[1] & 0x80) {
      fail(c, "server frame is masked");
      return echoes;
    }
    size_t hdr = 2;
    uint64_t len = b[1] & 0x7f;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)b[2] << 8) | b[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
      hdr = 10;
    }
    if (b[0] != expected_b0) {
      uint8_t op = b[0] & 0x0f;
      if (op == 0x8) {
        unsigned code = len >= 2 && avail >= hdr + 2 ? ((unsigned)b[hdr] << 8 | b[hdr + 1]) : 1005;
        fail(c, "server sent a close frame (code %u)", code);
      } else {
        fail(c, "unexpected frame: first byte 0x%02x, expected 0x%02x", b[0], expected_b0);
      }
      return echoes;
    }
    if (len != opt_size) {
      fail(c, "echo has %llu bytes, expected %zu", (unsigned long long)len, opt_size);
      return echoes;
    }
    if (avail < hdr + len) break;
    if (memcmp(b + hdr, expected, opt_size) != 0) {
      fail(c, "echo payload differs from what was sent");
      return echoes;
    }
    if (c->inflight == 0) {
      fail(c, "echo of a message that was never sent");
      return echoes;
    }
    uint64_t sent = c->sent_at[c->ring_head];
    c->ring_head = (c->ring_head + 1) % opt_window;
    c->inflight--;
    if (phase == PH_MEASURE) record_latency(sent, t);
    echoes++;
    pos += hdr + len;
  }
  if (pos > 0 && c->state == ST_OPEN) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
  return echoes;
}

/* Fan-out: parses the messages in a subscriber's rbuf, checks each one and counts it. */
static void parse_fanout(conn_t *c, uint64_t t) {
  size_t pos = 0;
  while (c->state == ST_OPEN) {
    size_t avail = c->rlen - pos;
    if (avail < 2) break;
    const uint8_t *b = c->rbuf + pos;
    if (b[1] & 0x80) {
      fail(c, "server frame is masked");
      return;
    }
    size_t hdr = 2;
    uint64_t len = b[1] & 0x7f;
    if (len == 126) {
      if (avail < 4) break;
      len = ((uint64_t)b[2] << 8) | b[3];
      hdr = 4;
    } else if (len == 127) {
      if (avail < 10) break;
      len = 0;
      for (int i = 0; i < 8; i++) len = (len << 8) | b[2 + i];
      hdr = 10;
    }
    if (c->publisher) {
      fail(c, "the publisher received a frame (first byte 0x%02x)", b[0]);
      return;
    }
    if (b[0] != expected_b0) {
      uint8_t op = b[0] & 0x0f;
      if (op == 0x8) {
        unsigned code = len >= 2 && avail >= hdr + 2 ? ((unsigned)b[hdr] << 8 | b[hdr + 1]) : 1005;
        fail(c, "server sent a close frame (code %u)", code);
      } else {
        fail(c, "unexpected frame: first byte 0x%02x, expected 0x%02x", b[0], expected_b0);
      }
      return;
    }
    if (len != opt_size) {
      fail(c, "message has %llu bytes, expected %zu", (unsigned long long)len, opt_size);
      return;
    }
    if (avail < hdr + len) break;
    const uint8_t *p = b + hdr;
    if (memcmp(p + SEQ_DIGITS, expected + SEQ_DIGITS, opt_size - SEQ_DIGITS) != 0) {
      fail(c, "payload differs from what was published");
      return;
    }
    uint64_t seq;
    if (p[0] == 'P') {
      for (int i = 1; i < SEQ_DIGITS; i++) {
        if (p[i] != 'P') {
          fail(c, "malformed probe");
          return;
        }
      }
      if (c->next_seq != 0) {
        fail(c, "a probe after message %llu", (unsigned long long)(c->next_seq - 1));
        return;
      }
      if (!c->probed) {
        c->probed = 1;
        probed_count++;
      }
    } else if (!parse_seq(p, &seq)) {
      fail(c, "malformed message number");
      return;
    } else if (seq != c->next_seq) {
      fail(c, "message %llu where %llu was expected (a message missing, repeated or out of order)",
           (unsigned long long)seq, (unsigned long long)c->next_seq);
      return;
    } else if (seq >= fan_sent) {
      fail(c, "message %llu was never published", (unsigned long long)seq);
      return;
    } else {
      c->next_seq++;
      if (phase == PH_MEASURE) deliveries++;
      uint32_t slot = (uint32_t)(seq % opt_window);
      if (++fan_got[slot] == opt_conns) { /* the last subscriber got it */
        fan_got[slot] = 0;
        fan_done++;
        if (phase == PH_MEASURE) record_latency(fan_sent_at[slot], t);
      }
    }
    pos += hdr + len;
  }
  if (pos > 0 && c->state == ST_OPEN) {
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
  }
}

/* Checks the 101 answer; returns 1 when the upgrade completed. */
static int parse_handshake(conn_t *c) {
  uint8_t *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
  if (!end) {
    if (c->rlen >= c->rcap) fail(c, "upgrade response too large");
    return 0;
  }
  size_t head_len = (size_t)(end - c->rbuf) + 4;
  char head[4096];
  size_t n = head_len < sizeof head - 1 ? head_len : sizeof head - 1;
  memcpy(head, c->rbuf, n);
  head[n] = 0;
  if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
    char *eol = strstr(head, "\r\n");
    if (eol) *eol = 0;
    fail(c, "upgrade refused: %.120s", head);
    return 0;
  }
  char *h = strcasestr(head, "\r\nsec-websocket-accept:");
  if (!h) {
    fail(c, "upgrade response without Sec-WebSocket-Accept");
    return 0;
  }
  h += strlen("\r\nsec-websocket-accept:");
  while (*h == ' ' || *h == '\t') h++;
  if (strncmp(h, WS_ACCEPT "\r\n", strlen(WS_ACCEPT) + 2) != 0) {
    fail(c, "wrong Sec-WebSocket-Accept");
    return 0;
  }
  memmove(c->rbuf, c->rbuf + head_len, c->rlen - head_len);
  c->rlen -= head_len;
  c->state = ST_OPEN;
  pending_handshakes--;
  opened++;
  return 1;
}

/* -B: answers every echo read so far, all at once. */
static void answer_burst(conn_t *c, uint32_t *echoes) {
  if (*echoes > 0 && c->state == ST_OPEN && sending()) {
    queue_messages(c, *echoes, now_ns());
    flush_conn(c);
  }
  *echoes = 0;
}

static void on_readable(conn_t *c) {
  uint32_t burst_echoes = 0; /* -B: echoes read and not yet answered */
  for (;;) {
    if (c->state == ST_DEAD) return;
    if (c->rlen == c->rcap) {
      fail(c, "read buffer full: %zu bytes without a complete frame", c->rlen);
      return;
    }
    ssize_t r = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        answer_burst(c, &burst_echoes);
        return;
      }
      fail(c, "read: %s", strerror(errno));
      return;
    }
    if (r == 0) {
      fail(c, c->state == ST_OPEN ? "server closed the connection" : "server closed the connection during the upgrade");
      return;
    }
    c->rlen += (size_t)r;
    uint64_t t = now_ns();
    if (c->state == ST_HANDSHAKE || c->state == ST_CONNECTING) {
      if (!parse_handshake(c)) continue;
    }
    if (opt_idle) {
      if (c->rlen > 0) fail(c, "server sent data on an idle connection");
      continue;
    }
    if (opt_fanout) {
      parse_fanout(c, t);
      /* A short read emptied the socket: epoll (level-triggered) tells when more comes, no need to read EAGAIN. */
      if (c->rlen + (size_t)r < c->rcap) return;
      continue;
    }
    uint32_t echoes = parse_frames(c, t);
    if (opt_burst) {
      burst_echoes += echoes;
      continue;
    }
    if (echoes > 0 && sending()) {
      queue_messages(c, echoes, t);
      flush_conn(c);
    }
  }
}

static void on_writable(conn_t *c) {
  if (c->state == ST_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      fail(c, "connect: %s", strerror(err));
      return;
    }
    c->state = ST_HANDSHAKE;
  }
  if (c->state == ST_HANDSHAKE) {
    const char *req = c->publisher ? pub_request : request;
    size_t req_len = c->publisher ? pub_request_len : request_len;
    while (c->hs_off < req_len) {
      ssize_t w = write(c->fd, req + c->hs_off, req_len - c->hs_off);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN) return;
        fail(c, "write: %s", strerror(errno));
        return;
      }
      c->hs_off += (size_t)w;
    }
    set_out(c, 0);
    return;
  }
  if (c->state == ST_OPEN) {
    if (c->publisher) flush_pub();
    else flush_conn(c);
  }
}

/* ---- phases ---- */

static void begin_load(uint64_t t) {
  phase = opt_warmup > 0 ? PH_WARMUP : PH_MEASURE;
  t_start = t;
  t_measure = t + (uint64_t)(opt_warmup * 1e9);
  cpu_measure = cpu_seconds();
  if (opt_fanout) {
    fanout_publish(t);
    return;
  }
  for (uint32_t i = 0; i < opt_conns; i++) {
    conn_t *c = &conns[i];
    if (c->state != ST_OPEN) continue;
    queue_messages(c, opt_window, t);
    flush_conn(c);
  }
}

/* The first error, as a JSON string body (quotes, backslashes and control characters escaped). */
static const char *error_json(void) {
  static char out[sizeof first_error * 6];
  size_t o = 0;
  for (const char *p = first_error; *p; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch == '"' || ch == '\\') o += (size_t)sprintf(out + o, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) o += (size_t)sprintf(out + o, "\\u%04x", ch);
    else out[o++] = (char)ch;
  }
  out[o] = 0;
  return out;
}

static void print_json(void) {
  double cpu = t_measure_end > t_measure && cpu_measure_end > cpu_measure
                   ? (cpu_measure_end - cpu_measure) / ((double)(t_measure_end - t_measure) / 1e9)
                   : 0;
  if (opt_idle) {
    printf("{\"mode\":\"idle\",\"connections\":%u,\"opened\":%u,\"errors\":%llu,\"error\":\"%s\"}\n", opt_conns,
           opened, (unsigned long long)errors, error_json());
    return;
  }
  double secs = t_measure_end > t_measure ? (double)(t_measure_end - t_measure) / 1e9 : 0;
  double rate = secs > 0 ? (double)measured / secs : 0;
  uint64_t p50 = 0, p99 = 0, p999 = 0;
  uint64_t want50 = (measured * 50 + 99) / 100, want99 = (measured * 99 + 99) / 100;
  uint64_t want999 = (measured * 999 + 999) / 1000;
  uint64_t cum = 0;
  int got50 = 0, got99 = 0, got999 = 0;
  for (uint32_t us = 0; us < HIST_MAX_US && !got999; us++) {
    cum += hist[us];
    if (!got50 && cum >= want50 && measured) p50 = us, got50 = 1;
    if (!got99 && cum >= want99 && measured) p99 = us, got99 = 1;
    if (!got999 && cum >= want999 && measured) p999 = us, got999 = 1;
  }
  if (measured && !got50) p50 = lat_max_us;
  if (measured && !got99) p99 = lat_max_us;
  if (measured && !got999) p999 = lat_max_us;
  if (opt_fanout) {
    double dps = secs > 0 ? (double)deliveries / secs : 0;
    printf("{\"mode\":\"fanout\",\"subscribers\":%u,\"inflight\":%u,\"size\":%zu,\"type\":\"%s\","
           "\"seconds\":%.3f,\"messages\":%llu,\"msgs_per_s\":%.0f,\"deliveries\":%llu,\"deliveries_per_s\":%.0f,"
           "\"mb_per_s\":%.2f,\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"mean_us\":%.1f,"
           "\"gen_cpu\":%.3f,\"errors\":%llu,\"error\":\"%s\"}\n",
           opt_conns, opt_window, opt_size, opt_text ? "text" : "binary", secs, (unsigned long long)measured, rate,
           (unsigned long long)deliveries, dps, dps * (double)opt_size / 1e6, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)p999, (unsigned long long)lat_max_us,
           measured ? (double)lat_sum_us / (double)measured : 0.0, cpu, (unsigned long long)errors, error_json());
    return;
  }
  printf("{\"mode\":\"load\",\"burst\":%s,\"connections\":%u,\"inflight\":%u,\"size\":%zu,\"type\":\"%s\","
         "\"seconds\":%.3f,\"messages\":%llu,\"msgs_per_s\":%.0f,\"mb_per_s\":%.2f,"
         "\"p50_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,\"mean_us\":%.1f,"
         "\"gen_cpu\":%.3f,\"errors\":%llu,\"error\":\"%s\"}\n",
         opt_burst ? "true" : "false", opt_conns, opt_window, opt_size, opt_text ? "text" : "binary", secs,
         (unsigned long long)measured, rate, rate * (double)opt_size / 1e6, (unsigned long long)p50, (unsigned long long)p99,
         (unsigned long long)p999, (unsigned long long)lat_max_us,
         measured ? (double)lat_sum_us / (double)measured : 0.0, cpu, (unsigned long long)errors, error_json());
}

int main(int argc, char **argv) {
  int opt, have_d = 0, have_u = 0;
  while ((opt = getopt(argc, argv, "h:p:u:c:i:s:t:w:d:n:T:BIFP:")) != -1) {
    switch (opt) {
      case 'h': opt_host = optarg; break;
      case 'p': opt_port = (int)parse_num(optarg, "port", 1, 65535); break;
      case 'u': opt_path = optarg; have_u = 1; break;
      case 'c': opt_conns = (uint32_t)parse_num(optarg, "connections", 1, 100000); break;
      case 'i': opt_window = (uint32_t)parse_num(optarg, "messages in flight", 1, 4096); break;
      case 's': opt_size = (size_t)parse_num(optarg, "payload size", 0, 64 * 1024 * 1024); break;
      case 't':
        if (strcmp(optarg, "text") == 0) opt_text = 1;
        else if (strcmp(optarg, "binary") == 0) opt_text = 0;
        else usage("-t must be text or binary");
        break;
      case 'w': opt_warmup = parse_num(optarg, "warm-up", 0, 3600); break;
      case 'd': opt_duration = parse_num(optarg, "duration", 0.001, 3600); have_d = 1; break;
      case 'n': opt_count = (uint64_t)parse_num(optarg, "count", 1, 1e15); break;
      case 'T': opt_limit = parse_num(optarg, "time limit", 0.001, 86400); break;
      case 'B': opt_burst = 1; break;
      case 'I': opt_idle = 1; break;
      case 'F': opt_fanout = 1; break;
      case 'P': opt_pub_port = (int)parse_num(optarg, "publisher port", 1, 65535); break;
      default: usage("unknown option");
    }
  }
  if (optind != argc) usage("unexpected argument");
  if (opt_port < 0) usage("-p PORT is required");
  if (opt_count && have_d) usage("give -d or -n, not both");
  if (opt_idle && opt_fanout) usage("give -I or -F, not both");
  if (opt_burst && (opt_idle || opt_fanout)) usage("-B goes with the echo mode only");
  if (opt_pub_port >= 0 && !opt_fanout) usage("-P needs -F");
  if (opt_path[0] != '/' || strlen(opt_path) > 200 || strpbrk(opt_path, " \r\n") != NULL) {
    usage("-u must be a path that starts with / (at most 200 bytes, no spaces or line breaks)");
  }
  if (have_u && opt_fanout) usage("-u does not go with -F");
  if (opt_pub_port < 0) opt_pub_port = opt_port;
  if (opt_fanout && opt_size < SEQ_DIGITS) usage("-F needs -s 16 or more (the message number takes 16 bytes)");
  total_conns = opt_conns + (opt_fanout ? 1 : 0);
  if (opt_limit == 0) opt_limit = opt_count ? 60 : opt_warmup + opt_duration + 30;
  if (opt_idle) opt_limit = opt_duration + 30;

  /* Die with the parent, whatever happens to it. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < total_conns + 64) {
    rl.rlim_cur = rl.rlim_max < total_conns + 64 ? rl.rlim_max : total_conns + 64;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  memset(&server_addr, 0, sizeof server_addr);
  server_addr.sin_family = AF_INET;
  server_addr.sin_port = htons((uint16_t)opt_port);
  if (inet_pton(AF_INET, opt_host, &server_addr.sin_addr) != 1) usage("-h must be an IPv4 address");
  pub_addr = server_addr;
  pub_addr.sin_port = htons((uint16_t)opt_pub_port);

  build_frames();
  hist = calloc(HIST_MAX_US, sizeof *hist);
  conns = calloc(total_conns, sizeof *conns);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (!hist || !conns || ep < 0) {
    perror("loadgen: setup");
    return 1;
  }
  size_t rcap = opt_idle ? 4096
                : opt_fanout ? 2 * frame_len + 65536
                : opt_burst ? (size_t)opt_window * frame_len + 65536 /* a whole window in one read */
                            : 2 * frame_len + 16384;
  for (uint32_t i = 0; i < total_conns; i++) {
    conns[i].fd = -1;
    conns[i].rcap = rcap;
    conns[i].rbuf = malloc(rcap);
    conns[i].sent_at = calloc(opt_window, sizeof(uint64_t));
    if (!conns[i].rbuf || !conns[i].sent_at) {
      perror("loadgen: malloc");
      return 1;
    }
  }
  if (opt_fanout) {
    pub = &conns[opt_conns];
    pub->publisher = 1;
    fan_got = calloc(opt_window, sizeof *fan_got);
    fan_sent_at = calloc(opt_window, sizeof *fan_sent_at);
    if (!fan_got || !fan_sent_at) {
      perror("loadgen: malloc");
      return 1;
    }
  }
  if (opt_idle) {
    struct stat st;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (fstat(0, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)) &&
        epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) == 0)
      stdin_watched = 1;
  }

  uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)(opt_limit * 1e9);
  uint64_t hold_end = 0;
  struct epoll_event events[256];
  while (phase != PH_DONE) {
    /* Start connections, a bounded number at a time. */
    while (phase == PH_CONNECT && started < total_conns && pending_handshakes < MAX_PENDING_HANDSHAKES)
      start_connect(&conns[started]);

    int n = epoll_wait(ep, events, 256, 5);
    if (n < 0 && errno != EINTR) {
      perror("loadgen: epoll_wait");
      errors++;
      break;
    }
    for (int k = 0; k < n; k++) {
      conn_t *c = events[k].data.ptr;
      if (c == NULL) { /* stdin: EOF (or anything) ends the hold */
        char buf[256];
        ssize_t r = read(0, buf, sizeof buf);
        if (r <= 0) {
          epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
          stdin_watched = 0;
          if (phase == PH_HOLD) phase = PH_DONE;
          else stop_signal = SIGTERM;
        }
        continue;
      }
      if (c->state == ST_DEAD) continue;
      uint32_t e = events[k].events;
      if (e & (EPOLLOUT | EPOLLERR)) on_writable(c);
      if (c->state != ST_DEAD && (e & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
    }

    uint64_t t = now_ns();
    if (opt_fanout && sending()) fanout_publish(t);
    if (stop_signal) {
      if (phase == PH_HOLD) phase = PH_DONE;
      else {
        if (errors == 0) snprintf(first_error, sizeof first_error, "interrupted by signal %d", (int)stop_signal);
        errors++;
        break;
      }
    }
    if (t > deadline) {
      fail(NULL, "time limit of %.0f s exceeded (phase %d, %u of %u connections open)", opt_limit, phase, opened,
           total_conns);
      break;
    }
    if (errors) break; /* already reported: a run with a failed connection or a bad echo is void */

    switch (phase) {
      case PH_CONNECT:
        if (opened == total_conns) {
          if (opt_fanout) {
            phase = PH_PROBE;
            t_probe_start = t;
            t_probe_last = 0;
          } else if (opt_idle) {
            phase = PH_HOLD;
            hold_end = t + (uint64_t)(opt_duration * 1e9);
            printf("{\"ready\":true,\"connections\":%u}\n", opened);
            fflush(stdout);
          } else {
            begin_load(t);
          }
        } else if (t - t0 > CONNECT_TIMEOUT_NS) {
          fail(NULL, "only %u of %u connections opened in %llu s", opened, total_conns,
               (unsigned long long)(CONNECT_TIMEOUT_NS / 1000000000ull));
          goto out;
        }
        break;
      case PH_PROBE:
        if (probed_count == opt_conns) {
          begin_load(t);
        } else if (t - t_probe_start > PROBE_TIMEOUT_NS) {
          fail(NULL, "only %u of %u subscribers received a probe in %llu s", probed_count, opt_conns,
               (unsigned long long)(PROBE_TIMEOUT_NS / 1000000000ull));
          goto out;
        } else if (t - t_probe_last >= PROBE_INTERVAL_NS) {
          t_probe_last = t;
          queue_fanout(0, 1);
          flush_pub();
        }
        break;
      case PH_WARMUP:
        if (t >= t_measure) {
          memset(hist, 0, HIST_MAX_US * sizeof *hist);
          hist_overflow = measured = lat_sum_us = lat_max_us = deliveries = 0;
          t_measure = t;
          cpu_measure = cpu_seconds();
          phase = PH_MEASURE;
        }
        break;
      case PH_MEASURE:
        if ((opt_count && measured >= opt_count) || (!opt_count && t >= t_measure + (uint64_t)(opt_duration * 1e9))) {
          t_measure_end = t;
          cpu_measure_end = cpu_seconds();
          t_drain_end = t + DRAIN_TIMEOUT_NS;
          phase = PH_DRAIN;
        }
        break;
      case PH_DRAIN: {
        uint64_t left = 0;
        if (opt_fanout) left = fan_sent - fan_done;
        else
          for (uint32_t i = 0; i < opt_conns; i++) left += conns[i].inflight;
        if (left == 0) phase = PH_DONE;
        else if (t > t_drain_end) {
          if (opt_fanout) {
            uint64_t behind = 0;
            for (uint32_t i = 0; i < opt_conns; i++) behind += conns[i].next_seq < fan_sent;
            fail(NULL, "%llu of %llu messages not received by every subscriber (%llu subscribers behind)",
                 (unsigned long long)left, (unsigned long long)fan_sent, (unsigned long long)behind);
          } else {
            fail(NULL, "%llu messages never echoed", (unsigned long long)left);
          }
          goto out;
        }
        break;
      }
      case PH_HOLD:
        if (t >= hold_end) phase = PH_DONE;
        break;
    }
  }
out:
  if (phase != PH_DONE && t_measure_end == 0) t_measure_end = now_ns();

  /* Say goodbye: a masked close frame (1000), then close. */
  static const uint8_t close_frame[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8};
  for (uint32_t i = 0; i < total_conns; i++) {
    if (conns[i].fd < 0) continue;
    if (conns[i].state == ST_OPEN && conns[i].pend_off == 0 && conns[i].ooff == conns[i].olen) {
      ssize_t ignored = write(conns[i].fd, close_frame, sizeof close_frame);
      (void)ignored;
    }
    close(conns[i].fd);
  }
  print_json();
  return errors ? 1 : 0;
}
