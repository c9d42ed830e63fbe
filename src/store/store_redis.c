/*
 * store_redis.c — the event store on Redis 7 streams (hiredis), URL
 * "redis://[:PASSWORD@]HOST:PORT[/DB][?prefix=NAME]" (prefix defaults to
 * "lf"; every key is "{prefix}:...", one hash slot).
 *
 * Keys:
 *   {P}:log        the global log, a stream with entry ids "<position>-0";
 *                  each entry holds the whole event: s = stream, v =
 *                  version, i = id, b = "TYPE\0TIME\0META\0DATA"
 *                  (pack_body; entries of older builds have t tm d m
 *                  in place of b)
 *   {P}:head       the last position handed out (INCRBY)
 *   {P}:s:<name>   one stream per event stream, one entry per append:
 *                  id "<last version>-0", p = first position, n = events
 *                  (an index into the log, not a copy; entries of older
 *                  builds: one per event, no n)
 *   {P}:ids        hash: event id -> "<position>", for the ids callers
 *                  gave (older builds: "<position>:<version>:<stream>",
 *                  and generated ids too)
 *   {P}:meta       hash: id_tag = the store's 26-bit tag, part of the ids
 *                  it makes (lf_store_gen_id: a version 8 UUID naming the
 *                  event's position; the script writes it into the log
 *                  entry and into no index)
 *
 * Atomicity and ordering: one Lua script (EVALSHA) does the idempotency
 * check, the expected-version check (the stream key's last id), takes
 * positions with INCRBY and XADDs. Redis runs a script alone, so the
 * version check and the writes are atomic and positions become visible in
 * order: a reader never sees a later position before an earlier one.
 * Input is validated before the script runs, so it does not fail halfway
 * (Redis does not roll a script back).
 *
 * Durability: the server runs with appendonly yes; with appendfsync always
 * the reply comes after the AOF is fsynced, so an acknowledged append
 * survives kill -9 and power loss; the script's writes go to the AOF as
 * one MULTI/EXEC, so a torn tail is trimmed whole at load. open() warns if
 * the server runs without AOF or with a weaker appendfsync.
 *
 * Threads: a pool of connections (hiredis contexts are single-threaded).
 * read_all goes through lf_tail (store_tail.c): the process's readers at
 * the top of the log share one query.
 * wait(): a listener thread blocks in XREAD on the log and publishes the
 * new head to waiters.
 */
#define _GNU_SOURCE
#include "store_int.h"

#include <ctype.h>
#include <hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POOL 8
#define PREFIX_MAX 64
#define TAIL_EVENTS 8192              /* lf_tail: newest events kept in memory */
#define TAIL_BYTES (16 * 1024 * 1024) /* and at most about this much text */

/* Work per event is what a plain XADD of the event costs, plus a hash
 * field only for an id the caller gave: those are looked up with one
 * HMGET per 1,000 (not one HEXISTS each), and only when there are any
 * (ARGV[4] "1"). An id the script makes (ARGV[5] + the position) names
 * where its event is, so it needs no index entry and no lookup: that
 * HSET was ~1.5-2 us per event, the largest cost beyond the raw XADD
 * (server CPU per event at 8 appenders 10-12 -> 7-8 us, raw 6 us). The
 * stream key gets one entry per batch (not one per event), the id index
 * holds just the position. Found by profiling the script against a raw
 * pipelined XADD of the same events (bench/bench_backend.c). What is left
 * per event beyond the raw XADD (server thread, 100-event appends): Lua's
 * own cost of each redis.call (~2.5 us) and of ARGV (~0.8 us).
 *
 * Stream key entries: id "<last version>-0", p = the first event's
 * position, n = events (a batch's positions are contiguous: one INCRBY
 * under the script). Stores written before have one entry per event and
 * no n (= 1), so the last entry's id is the stream's version either way.
 * Id index values: "<position>" ("<position>:<version>:<stream>" before);
 * a duplicate's stream and version are read from its log entry. */
static const char *APPEND_LUA =
    "local log, ids, headk, sk = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "local stream, expected, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    /* ARGV[5]: the first 24 characters of the ids this append generates
     * (time and tag); an event's own id adds its position in 12 hex
     * digits. Characters 15-23 are the version, variant and the store's
     * tag: an id with those names its position (lf_store_gen_id). */
    "local gen = ARGV[5]\n"
    "local gtag = string.sub(gen, 15, 23)\n"
    /* ARGV[4] "0": no event of the batch has the caller's id (all are to
     * be generated, so none can be stored yet): no lookup. */
    "local got, q, nq = {}, {}, 0\n"
    "if ARGV[4] ~= '0' then\n"
    "  for i = 1, n do\n"
    "    nq = nq + 1; q[nq] = ARGV[6 + (i - 1) * 2]\n"
    "    if nq == 1000 or i == n then\n"
    "      local r = redis.call('HMGET', ids, unpack(q, 1, nq))\n"
    "      if i == nq then got = r else for j = 1, nq do got[i - nq + j] = r[j] end end\n"
    "      nq = 0\n"
    "    end\n"
    "  end\n"
    /* A generated id is in no index: the event at the position it names
     * must carry it, else a client made it up. */
    "  for i = 1, n do\n"
    "    local id = ARGV[6 + (i - 1) * 2]\n"
    "    if not got[i] and #id == 36 and string.sub(id, 15, 23) == gtag then\n"
    "      local p = string.format('%d', tonumber(string.sub(id, 25), 16))\n"
    "      local e, f = redis.call('XRANGE', log, p .. '-0', p .. '-0')[1], nil\n"
    "      if e then\n"
    "        for j = 1, #e[2], 2 do if e[2][j] == 'i' then f = e[2][j + 1] end end\n"
    "      end\n"
    "      if f ~= id then return {'madeup', i - 1} end\n"
    "      got[i] = p\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if got[1] then\n"
    "  local first, prev, ver = 0, 0, 0\n"
    "  for i = 1, n do\n"
    "    local v = got[i]\n"
    "    if not v then return {'exist', i - 1} end\n"
    "    local p = tonumber(string.match(v, '^(%d+)'))\n"
    "    if p <= prev then return {'exist', i - 1} end\n"
    "    local id = string.format('%d-0', p)\n"
    "    local e = redis.call('XRANGE', log, id, id)[1]\n"
    "    local s, ve\n"
    "    if e then\n"
    "      for j = 1, #e[2], 2 do\n"
    "        if e[2][j] == 's' then s = e[2][j + 1] elseif e[2][j] == 'v' then ve = e[2][j + 1] "
    "end\n"
    "      end\n"
    "    end\n"
    "    if s ~= stream or not ve then return {'exist', i - 1} end\n"
    "    if i == 1 then first = p end\n"
    "    prev = p; ver = tonumber(ve)\n"
    "  end\n"
    "  return {'dup', first, prev, ver}\n"
    "end\n"
    "for i = 2, n do\n"
    "  if got[i] then return {'exist', i - 1} end\n"
    "end\n"
    "local last, ver = redis.call('XREVRANGE', sk, '+', '-', 'COUNT', 1)[1], 0\n"
    "if last then ver = tonumber(string.match(last[1], '^(%d+)')) end\n"
    "if (expected == -2 and ver > 0) or (expected >= 1 and expected ~= ver) then\n"
    "  return {'conflict', ver}\n"
    "end\n"
    "local h = redis.call('INCRBY', headk, n) - n\n"
    /* Only the caller's ids go into the index, with one HSET per 500
     * events, not one per event: fewer commands to run and to log. */
    "local hs, m = {ids}, 1\n"
    "local b = 5\n" /* ARGV[b + 1], ARGV[b + 2]: event i's id, its packed body */
    "for i = 1, n do\n"
    "  local p, id = string.format('%d', h + i), ARGV[b + 1]\n"
    "  if id == '' then\n"
    "    id = gen .. string.format('%012x', h + i)\n"
    "  else\n"
    "    hs[m + 1] = id; hs[m + 2] = p; m = m + 2\n"
    "    if m >= 1001 then redis.call('HSET', unpack(hs, 1, m)); hs, m = {ids}, 1 end\n"
    "  end\n"
    "  redis.call('XADD', log, p .. '-0', 's', stream, 'v', string.format('%d', ver + i),\n"
    "             'i', id, 'b', ARGV[b + 2])\n"
    "  b = b + 2\n"
    "end\n"
    "if m > 1 then redis.call('HSET', unpack(hs, 1, m)) end\n"
    "redis.call('XADD', sk, string.format('%d-0', ver + n), 'p', string.format('%d', h + 1),\n"
    "           'n', string.format('%d', n))\n"
    "return {'ok', h + 1, h + n, ver + n}\n";

/* read_stream: the stream key gives positions, the log the events. */
/* Leases: one hash KEYS[1] name -> "<expires ms> <owner>", timed by the
 * server's clock (TIME; allowed in scripts since Redis 5's effects
 * replication). ARGV: op, name/prefix, owner, ttl. Replies are strings. */
static const char *LEASE_LUA =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local op, name = ARGV[1], ARGV[2]\n"
    "local function split(v)\n"
    "  local e, o = string.match(v, '^(%d+) (.*)$')\n"
    "  return tonumber(e), o\n"
    "end\n"
    "if op == 'get' then\n"
    "  local owner, ttl = ARGV[3], tonumber(ARGV[4])\n"
    "  local v = redis.call('HGET', KEYS[1], name)\n"
    "  if v then\n"
    "    local e, o = split(v)\n"
    "    if o ~= owner and e > now then return {o, string.format('%d', e - now)} end\n"
    "  end\n"
    "  redis.call('HSET', KEYS[1], name, string.format('%d', now + ttl) .. ' ' .. owner)\n"
    "  return {owner, string.format('%d', ttl)}\n"
    "elseif op == 'rel' then\n"
    "  local v = redis.call('HGET', KEYS[1], name)\n"
    "  if v then\n"
    "    local e, o = split(v)\n"
    "    if o == ARGV[3] then redis.call('HDEL', KEYS[1], name) end\n"
    "  end\n"
    "  return {}\n"
    "end\n"
    "local all, out = redis.call('HGETALL', KEYS[1]), {}\n"
    "for i = 1, #all, 2 do\n"
    "  local e, o = split(all[i + 1])\n"
    "  if string.sub(all[i], 1, #name) == name and e > now then\n"
    "    out[#out + 1] = all[i]; out[#out + 1] = o\n"
    "    out[#out + 1] = string.format('%d', e - now)\n"
    "  end\n"
    "end\n"
    "return out\n";

/* ARGV: from version, max events. Each stream key entry covers versions
 * (id - n, id] at positions p, p + 1, ... (see APPEND_LUA). */
static const char *READ_STREAM_LUA =
    "local from, max = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local r = redis.call('XRANGE', KEYS[1], ARGV[1] .. '-0', '+', 'COUNT', ARGV[2])\n"
    "local out = {}\n"
    "for _, e in ipairs(r) do\n"
    "  local lastv = tonumber(string.match(e[1], '^(%d+)'))\n"
    "  local p, cnt = nil, 1\n"
    "  for j = 1, #e[2], 2 do\n"
    "    if e[2][j] == 'p' then p = tonumber(e[2][j + 1])\n"
    "    elseif e[2][j] == 'n' then cnt = tonumber(e[2][j + 1]) end\n"
    "  end\n"
    "  local skip = from - (lastv - cnt + 1)\n"
    "  if skip < 0 then skip = 0 end\n"
    "  local k = cnt - skip\n"
    "  if k > max - #out then k = max - #out end\n"
    "  if k > 0 then\n"
    "    local m = redis.call('XRANGE', KEYS[2], string.format('%d-0', p + skip),\n"
    "                         string.format('%d-0', p + skip + k - 1))\n"
    "    for _, x in ipairs(m) do out[#out + 1] = {string.match(x[1], '^(%d+)'), x[2]} end\n"
    "  end\n"
    "  if #out >= max then break end\n"
    "end\n"
    "return out\n";

typedef struct {
    redisContext *c;
} rd_slot;

typedef struct {
    char host[256];
    int port, db;
    char password[256];
    char prefix[PREFIX_MAX + 1];
    char k_log[PREFIX_MAX + 16], k_ids[PREFIX_MAX + 16], k_head[PREFIX_MAX + 16];
    char k_meta[PREFIX_MAX + 16];
    uint32_t tag; /* the store's id tag (lf_store_gen_id), in {P}:meta */
    char sha_append[41], sha_read[41], sha_lease[41];
    pthread_mutex_t lock;
    pthread_cond_t head_cond;
    lf_slots slots; /* which of pool[] are in use */
    rd_slot pool[POOL];
    int closing;
    int64_t head;
    lf_tail *tail; /* read_all of the newest events, shared by our readers */
    pthread_t listener;
    int listener_started;
} rd_store;

/* ---- connections ----------------------------------------------------- */
static int rd_fail(redisContext *c, redisReply *r, const char *what)
{
    if (r && r->type == REDIS_REPLY_ERROR)
        lf_err_set("redis: %s: %s", what, r->str);
    else if (c && c->err)
        lf_err_set("redis: %s: %s", what, c->errstr);
    else
        lf_err_set("redis: %s: unexpected reply", what);
    return LF_EIO;
}

static int rd_connect(rd_store *s, redisContext **out)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    if (!c || c->err) {
        lf_err_set("redis: connect %s:%d: %s", s->host, s->port, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return LF_EIO;
    }
    struct timeval op = {30, 0};
    redisSetTimeout(c, op);
    redisReply *r = NULL;
    if (s->password[0]) {
        r = redisCommand(c, "AUTH %s", s->password);
        if (!r || r->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(r);
    }
    if (s->db) {
        r = redisCommand(c, "SELECT %d", s->db);
        if (!r || r->type == REDIS_REPLY_ERROR) goto fail;
        freeReplyObject(r);
    }
    *out = c;
    return 0;
fail:
    rd_fail(c, r, "connect");
    if (r) freeReplyObject(r);
    redisFree(c);
    return LF_EIO;
}

static int conn_get(rd_store *s, int *idx)
{
    int rc = lf_slots_take(&s->slots, idx);
    if (rc) {
        lf_err_set("redis: store is closing");
        return rc;
    }
    rd_slot *sl = &s->pool[*idx];
    if (sl->c && sl->c->err) { /* broken (server restart): replace */
        redisFree(sl->c);
        sl->c = NULL;
    }
    if (!sl->c && (rc = rd_connect(s, &sl->c))) lf_slots_give(&s->slots, *idx);
    return rc;
}

static void conn_put(rd_store *s, int idx)
{
    lf_slots_give(&s->slots, idx);
}

static void head_seen(rd_store *s, int64_t h)
{
    pthread_mutex_lock(&s->lock);
    if (h > s->head) {
        s->head = h;
        pthread_cond_broadcast(&s->head_cond);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Runs a script by SHA, loading it again if the server forgot it. */
static redisReply *run_script(redisContext *c, const char *sha, const char *body, int argc,
                              const char **argv, size_t *argvlen)
{
    argv[0] = "EVALSHA";
    argvlen[0] = 7;
    argv[1] = sha;
    argvlen[1] = strlen(sha);
    redisReply *r = redisCommandArgv(c, argc, argv, argvlen);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        argv[0] = "EVAL";
        argvlen[0] = 4;
        argv[1] = body;
        argvlen[1] = strlen(body);
        r = redisCommandArgv(c, argc, argv, argvlen);
    }
    return r;
}

static int reply_i64(const redisReply *r, int64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return lf_parse_i64(r->str, out);
    if (r->type == REDIS_REPLY_NIL) {
        *out = 0;
        return 0;
    }
    return LF_EIO;
}

/* ---- listener -------------------------------------------------------- */
static void *listener_main(void *arg)
{
    rd_store *s = arg;
    redisContext *c = NULL;
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int closing = s->closing;
        int64_t h = s->head;
        pthread_mutex_unlock(&s->lock);
        if (closing) break;
        if (!c || c->err) {
            if (c) redisFree(c);
            c = NULL;
            if (rd_connect(s, &c)) {
                lf_sleep_ms(200);
                continue;
            }
        }
        char id[32];
        snprintf(id, sizeof id, "%lld-0", (long long)h);
        redisReply *r = redisCommand(c, "XREAD COUNT 1 BLOCK 200 STREAMS %s %s", s->k_log, id);
        int got = r && r->type == REDIS_REPLY_ARRAY;
        if (r) freeReplyObject(r);
        if (!got) continue;
        r = redisCommand(c, "GET %s", s->k_head);
        int64_t nh = 0;
        if (r && reply_i64(r, &nh) == 0) head_seen(s, nh);
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return NULL;
}

/* ---- open / close ---------------------------------------------------- */
static int parse_url(rd_store *s, const char *url, char *err, size_t errlen)
{
    const char *p = url + strlen("redis://");
    snprintf(s->prefix, sizeof s->prefix, "lf");
    const char *at = strchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        const char *pw = colon ? colon + 1 : p;
        snprintf(s->password, sizeof s->password, "%.*s", (int)(at - pw), pw);
        p = at + 1;
    }
    size_t hl = strcspn(p, ":/?");
    if (hl == 0 || hl >= sizeof s->host) {
        snprintf(err, errlen, "redis URL has no host (want redis://HOST:PORT)");
        return LF_EINVAL;
    }
    memcpy(s->host, p, hl);
    s->host[hl] = '\0';
    p += hl;
    s->port = 6379;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (port <= 0 || port > 65535) {
            snprintf(err, errlen, "redis URL: bad port");
            return LF_EINVAL;
        }
        s->port = (int)port;
        p = end;
    }
    if (*p == '/') {
        char *end;
        long db = strtol(p + 1, &end, 10);
        if (db < 0 || db > 1000) {
            snprintf(err, errlen, "redis URL: bad database number");
            return LF_EINVAL;
        }
        s->db = (int)db;
        p = end;
    }
    if (*p == '?') {
        if (strncmp(p + 1, "prefix=", 7) != 0) {
            snprintf(err, errlen, "redis URL: the only parameter is prefix=NAME");
            return LF_EINVAL;
        }
        const char *v = p + 8;
        size_t n = strlen(v);
        int ok = n >= 1 && n <= PREFIX_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = isalnum((unsigned char)v[i]) || v[i] == '_' || v[i] == '-';
        if (!ok) {
            snprintf(err, errlen, "redis URL: prefix must be [A-Za-z0-9_-]{1,%d}", PREFIX_MAX);
            return LF_EINVAL;
        }
        snprintf(s->prefix, sizeof s->prefix, "%s", v);
    } else if (*p) {
        snprintf(err, errlen, "redis URL: unexpected '%s'", p);
        return LF_EINVAL;
    }
    snprintf(s->k_log, sizeof s->k_log, "{%s}:log", s->prefix);
    snprintf(s->k_ids, sizeof s->k_ids, "{%s}:ids", s->prefix);
    snprintf(s->k_head, sizeof s->k_head, "{%s}:head", s->prefix);
    snprintf(s->k_meta, sizeof s->k_meta, "{%s}:meta", s->prefix);
    return 0;
}

static int load_script(redisContext *c, const char *body, char sha[41])
{
    redisReply *r = redisCommand(c, "SCRIPT LOAD %s", body);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        int rc = rd_fail(c, r, "SCRIPT LOAD");
        if (r) freeReplyObject(r);
        return rc;
    }
    memcpy(sha, r->str, 40);
    sha[40] = '\0';
    freeReplyObject(r);
    return 0;
}

/* Says so when the server would lose acknowledged appends. */
static void check_durability(redisContext *c)
{
    redisReply *r = redisCommand(c, "CONFIG GET append*");
    if (!r || r->type != REDIS_REPLY_ARRAY) goto out;
    const char *aof = "?", *fsync = "?";
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (r->element[i]->type != REDIS_REPLY_STRING) continue;
        if (strcmp(r->element[i]->str, "appendonly") == 0) aof = r->element[i + 1]->str;
        if (strcmp(r->element[i]->str, "appendfsync") == 0) fsync = r->element[i + 1]->str;
    }
    if (strcmp(aof, "yes") != 0 || strcmp(fsync, "always") != 0)
        LF_WARN("store",
                "redis runs with appendonly=%s appendfsync=%s: acknowledged appends may be lost "
                "on a crash (want appendonly yes, appendfsync always)",
                aof, fsync);
out:
    if (r) freeReplyObject(r);
}

/* The store's id tag: made by the first process to open it (HSETNX, so
 * concurrent first opens agree), read by every other. A value that is not
 * a tag means the keys were written by something else: refused. */
static int load_tag(rd_store *s, char *err, size_t errlen)
{
    redisContext *c = s->pool[0].c;
    redisReply *r = redisCommand(c, "HSETNX %s id_tag %u", s->k_meta, lf_store_new_id_tag());
    if (!r || r->type != REDIS_REPLY_INTEGER) goto fail;
    freeReplyObject(r);
    r = redisCommand(c, "HGET %s id_tag", s->k_meta);
    if (!r || r->type == REDIS_REPLY_ERROR) goto fail;
    int64_t tag = -1;
    if (r->type != REDIS_REPLY_STRING || lf_parse_i64(r->str, &tag) || tag < 0 ||
        tag >= (1 << LF_STORE_TAG_BITS)) {
        snprintf(err, errlen, "redis: %s field id_tag is damaged (%.40s): not a store of ours?",
                 s->k_meta, r->type == REDIS_REPLY_STRING ? r->str : "missing");
        freeReplyObject(r);
        return LF_ECORRUPT;
    }
    freeReplyObject(r);
    s->tag = (uint32_t)tag;
    return 0;
fail:;
    int rc = rd_fail(c, r, "id tag");
    if (r) freeReplyObject(r);
    snprintf(err, errlen, "%s", lf_err_get());
    return rc;
}

static void rd_close(void *impl);

static int rd_open(const char *url, void **impl, char *err, size_t errlen)
{
    rd_store *s = lf_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    lf_slots_init(&s->slots, &s->lock, &s->closing, POOL);
    pthread_cond_init(&s->head_cond, NULL);
    s->tail = lf_tail_new(TAIL_EVENTS, TAIL_BYTES);
    int rc = parse_url(s, url, err, errlen);
    if (rc) goto fail;
    if ((rc = rd_connect(s, &s->pool[0].c)) ||
        (rc = load_script(s->pool[0].c, APPEND_LUA, s->sha_append)) ||
        (rc = load_script(s->pool[0].c, READ_STREAM_LUA, s->sha_read)) ||
        (rc = load_script(s->pool[0].c, LEASE_LUA, s->sha_lease))) {
        snprintf(err, errlen, "%s", lf_err_get());
        goto fail;
    }
    check_durability(s->pool[0].c);
    if ((rc = load_tag(s, err, errlen))) goto fail;
    redisReply *r = redisCommand(s->pool[0].c, "GET %s", s->k_head);
    if (!r || reply_i64(r, &s->head)) {
        rc = rd_fail(s->pool[0].c, r, "GET head");
        snprintf(err, errlen, "%s", lf_err_get());
        if (r) freeReplyObject(r);
        goto fail;
    }
    freeReplyObject(r);
    if (pthread_create(&s->listener, NULL, listener_main, s) != 0) {
        snprintf(err, errlen, "redis: cannot start the listener thread");
        rc = LF_EIO;
        goto fail;
    }
    s->listener_started = 1;
    *impl = s;
    return 0;
fail:
    rd_close(s);
    return rc;
}

static void rd_close(void *impl)
{
    rd_store *s = impl;
    if (!s) return;
    pthread_mutex_lock(&s->lock);
    s->closing = 1;
    pthread_cond_broadcast(&s->head_cond);
    lf_slots_drain_locked(&s->slots);
    pthread_mutex_unlock(&s->lock);
    if (s->listener_started) pthread_join(s->listener, NULL);
    for (int i = 0; i < POOL; i++)
        if (s->pool[i].c) redisFree(s->pool[i].c);
    pthread_mutex_destroy(&s->lock);
    lf_slots_destroy(&s->slots);
    pthread_cond_destroy(&s->head_cond);
    lf_tail_free(s->tail);
    free(s);
}

/* ---- append ---------------------------------------------------------- */
/* An event's body in its log entry, field b: "TYPE\0TIME\0META\0DATA"
 * (TIME in decimal ms). Type, meta and data are C strings, so the NULs
 * separate them unambiguously; data, last, runs to the end. One field
 * instead of four: XADD and XRANGE cost grows with the number of fields
 * (Redis 7, 100k entries: XADD 2.2 -> 1.2 us, XRANGE 0.73 -> 0.64 us per
 * entry), and the script takes two arguments per event instead of five.
 * Writes up to strlen(type) + strlen(meta) + strlen(data) + 24 bytes. */
static size_t pack_body(char *out, const lf_event_in *e, int64_t time_ms)
{
    const char *meta = e->meta ? e->meta : "{}";
    size_t tl = strlen(e->type), ml = strlen(meta), dl = strlen(e->data);
    char *p = out;
    memcpy(p, e->type, tl + 1);
    p += tl + 1;
    p += snprintf(p, 21, "%lld", (long long)time_ms) + 1;
    memcpy(p, meta, ml + 1);
    p += ml + 1;
    memcpy(p, e->data, dl);
    return (size_t)(p - out) + dl;
}

static int rd_append(void *impl, const char *stream, int64_t expected, const lf_event_in *evs,
                     size_t n, lf_append_result *res)
{
    rd_store *s = impl;
    size_t argc = 2 + 1 + 4 + 5 + 2 * n;
    const char **argv = lf_xcalloc(argc, sizeof *argv);
    size_t *argvlen = lf_xcalloc(argc, sizeof *argvlen);
    char(*idbuf)[LF_UUID_LEN] = lf_xcalloc(n, LF_UUID_LEN);
    char gen[LF_UUID_LEN];
    /* The events' bodies (pack_body), one after the other. */
    size_t blen = 0;
    for (size_t i = 0; i < n; i++)
        blen += strlen(evs[i].type) + strlen(evs[i].data) +
                (evs[i].meta ? strlen(evs[i].meta) : 2) + 24;
    char *bodies = lf_xmalloc(blen ? blen : 1), *bp = bodies;
    char *sk = lf_asprintf("{%s}:s:%s", s->prefix, stream);
    char exp[24], cnt[24];
    snprintf(exp, sizeof exp, "%lld", (long long)expected);
    snprintf(cnt, sizeof cnt, "%zu", n);
    size_t k = 2;
#define ARG(p, l) (argv[k] = (p), argvlen[k] = (l), k++)
    ARG("4", 1);
    ARG(s->k_log, strlen(s->k_log));
    ARG(s->k_ids, strlen(s->k_ids));
    ARG(s->k_head, strlen(s->k_head));
    ARG(sk, strlen(sk));
    ARG(stream, strlen(stream));
    ARG(exp, strlen(exp));
    ARG(cnt, strlen(cnt));
    size_t checkarg = k; /* "1" if any id is the caller's (set below) */
    ARG("0", 1);
    int64_t now = lf_now_ms();
    unsigned char gb[16];
    lf_store_gen_id(gb, (uint64_t)now, s->tag, 0);
    lf_uuid_text(gb, gen);
    ARG(gen, 24); /* the script adds each event's position */
    for (size_t i = 0; i < n; i++) {
        const lf_event_in *e = &evs[i];
        if (e->id && *e->id) {
            for (int j = 0; j < LF_UUID_LEN - 1; j++) /* ids compare as lowercase */
                idbuf[i][j] = (char)tolower((unsigned char)e->id[j]);
            argv[checkarg] = "1";
        } /* else "": generated by the script, which knows the position */
        ARG(idbuf[i], strlen(idbuf[i]));
        size_t bl = pack_body(bp, e, e->time_ms ? e->time_ms : now);
        ARG(bp, bl);
        bp += bl;
    }
#undef ARG
    int idx, rc = conn_get(s, &idx);
    if (rc) goto out;
    redisContext *c = s->pool[idx].c;
    redisReply *r = run_script(c, s->sha_append, APPEND_LUA, (int)argc, argv, argvlen);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        rc = rd_fail(c, r, "append");
    } else {
        const char *st = r->element[0]->str;
        int64_t v[3] = {0, 0, 0};
        for (size_t i = 1; i < r->elements && i <= 3; i++)
            reply_i64(r->element[i], &v[i - 1]);
        if (strcmp(st, "ok") == 0 || strcmp(st, "dup") == 0) {
            res->first_position = v[0];
            res->last_position = v[1];
            res->last_version = v[2];
            res->duplicate = st[0] == 'd';
        } else if (strcmp(st, "madeup") == 0) {
            size_t i = v[0] >= 0 && (size_t)v[0] < n ? (size_t)v[0] : 0;
            lf_err_set("event %zu: id %s has the form of the ids this store makes itself, but no "
                       "stored event has it (such ids cannot be chosen by a client)",
                       i, idbuf[i]);
            rc = LF_EINVAL;
        } else if (strcmp(st, "conflict") == 0) {
            lf_err_set("stream '%s' is at version %lld, expected %s%lld", stream, (long long)v[0],
                       expected == LF_EXPECT_NO_STREAM ? "none " : "",
                       (long long)(expected == LF_EXPECT_NO_STREAM ? 0 : expected));
            rc = LF_ECONFLICT;
        } else {
            lf_err_set("event %lld: id already stored in another stream or order, or the batch "
                       "is partly stored already",
                       (long long)v[0]);
            rc = LF_EEXIST;
        }
    }
    if (r) freeReplyObject(r);
    conn_put(s, idx);
    if (rc == 0 && !res->duplicate) head_seen(s, res->last_position);
out:
    free(sk);
    free(bodies);
    free(idbuf);
    free(argvlen);
    free(argv);
    return rc;
}

/* ---- reads ----------------------------------------------------------- */
static int parse_id_pos(const char *id, int64_t *pos)
{
    char buf[32];
    size_t n = strcspn(id, "-");
    if (n == 0 || n >= sizeof buf) return LF_EIO;
    memcpy(buf, id, n);
    buf[n] = '\0';
    return lf_parse_i64(buf, pos);
}

/* One log entry's field array into an event appended to out (nothing is
 * appended when the entry lacks a field). */
static int fill_event(lf_event_list *out, int64_t pos, const redisReply *f)
{
    if (f->type != REDIS_REPLY_ARRAY) return LF_EIO;
    const redisReply *st = NULL, *ty = NULL, *da = NULL, *me = NULL, *bo = NULL;
    const char *ver = NULL, *id = NULL, *tm = NULL;
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const char *k = f->element[i]->str;
        const redisReply *v = f->element[i + 1];
        if (!k || v->type != REDIS_REPLY_STRING) return LF_EIO;
        if (strcmp(k, "s") == 0)
            st = v;
        else if (strcmp(k, "b") == 0)
            bo = v;
        else if (strcmp(k, "v") == 0)
            ver = v->str;
        else if (strcmp(k, "i") == 0)
            id = v->str;
        else if (strcmp(k, "t") == 0)
            ty = v;
        else if (strcmp(k, "tm") == 0)
            tm = v->str;
        else if (strcmp(k, "d") == 0)
            da = v;
        else if (strcmp(k, "m") == 0)
            me = v;
    }
    if (!st) return LF_EIO;
    lf_event *e;
    if (bo) { /* pack_body */
        const char *b = bo->str, *end = b + bo->len;
        const char *tme = memchr(b, '\0', bo->len);
        const char *mte = tme ? memchr(tme + 1, '\0', (size_t)(end - tme - 1)) : NULL;
        const char *mee = mte ? memchr(mte + 1, '\0', (size_t)(end - mte - 1)) : NULL;
        if (!mee) return LF_EIO;
        e = lf_event_list_push_copy(out, st->str, st->len, b, (size_t)(tme - b), mee + 1,
                                    (size_t)(end - mee - 1), mte + 1, (size_t)(mee - mte - 1));
        tm = tme + 1;
    } else { /* entries written before: one field each */
        if (!ty || !da || !me) return LF_EIO;
        e = lf_event_list_push_copy(out, st->str, st->len, ty->str, ty->len, da->str, da->len,
                                    me->str, me->len);
    }
    e->position = pos;
    if (ver) lf_parse_i64(ver, &e->version);
    if (id) snprintf(e->id, sizeof e->id, "%s", id);
    if (tm) lf_parse_i64(tm, &e->time_ms);
    return 0;
}

static int rd_read_stream(void *impl, const char *stream, int64_t from_version, size_t max,
                          lf_event_list *out)
{
    rd_store *s = impl;
    char *sk = lf_asprintf("{%s}:s:%s", s->prefix, stream);
    char from[24], cnt[24];
    snprintf(from, sizeof from, "%lld", (long long)from_version);
    snprintf(cnt, sizeof cnt, "%zu", max > 1000000 ? (size_t)1000000 : max);
    const char *argv[7] = {NULL, NULL, "2", sk, s->k_log, from, cnt};
    size_t argvlen[7] = {0, 0, 1, strlen(sk), strlen(s->k_log), strlen(from), strlen(cnt)};
    int idx, rc = conn_get(s, &idx);
    if (rc) goto out;
    redisContext *c = s->pool[idx].c;
    redisReply *r = run_script(c, s->sha_read, READ_STREAM_LUA, 7, argv, argvlen);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = rd_fail(c, r, "read stream");
    } else {
        for (size_t i = 0; i < r->elements && !rc; i++) {
            const redisReply *x = r->element[i];
            int64_t pos = 0;
            if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
                reply_i64(x->element[0], &pos)) {
                rc = rd_fail(c, NULL, "read stream");
                break;
            }
            if ((rc = fill_event(out, pos, x->element[1]))) rd_fail(c, NULL, "read stream entry");
        }
    }
    if (r) freeReplyObject(r);
    conn_put(s, idx);
out:
    free(sk);
    return rc;
}

static int rd_read_all_server(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    rd_store *s = impl;
    char from[32], cnt[24];
    snprintf(from, sizeof from, "%lld-0", (long long)after + 1);
    snprintf(cnt, sizeof cnt, "%zu", max > 1000000 ? (size_t)1000000 : max);
    int idx, rc = conn_get(s, &idx);
    if (rc) return rc;
    redisContext *c = s->pool[idx].c;
    redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT %s", s->k_log, from, cnt);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = rd_fail(c, r, "read all");
    } else {
        for (size_t i = 0; i < r->elements; i++) {
            const redisReply *x = r->element[i];
            int64_t pos = 0;
            if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
                x->element[0]->type != REDIS_REPLY_STRING ||
                parse_id_pos(x->element[0]->str, &pos)) {
                rc = rd_fail(c, NULL, "read all");
                break;
            }
            if ((rc = fill_event(out, pos, x->element[1]))) {
                rd_fail(c, NULL, "read all entry");
                break;
            }
        }
    }
    if (r) freeReplyObject(r);
    conn_put(s, idx);
    return rc;
}

/* Through the shared tail: the hub's readers at the top of the log share
 * one query (store_tail.c). */
static int rd_read_all(void *impl, int64_t after, size_t max, lf_event_list *out)
{
    rd_store *s = impl;
    return lf_tail_read_all(s->tail, after, max, out, rd_read_all_server, s);
}

static int rd_head(void *impl, int64_t *pos)
{
    rd_store *s = impl;
    int idx, rc = conn_get(s, &idx);
    if (rc) return rc;
    redisContext *c = s->pool[idx].c;
    /* The last log entry, not the counter: INCRBY and XADD are in one
     * script, but this stays right even if a script were cut short. */
    redisReply *r = redisCommand(c, "XREVRANGE %s + - COUNT 1", s->k_log);
    *pos = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        rc = rd_fail(c, r, "head");
    else if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
             r->element[0]->elements == 2 && r->element[0]->element[0]->str)
        rc = parse_id_pos(r->element[0]->element[0]->str, pos) ? rd_fail(c, NULL, "head") : 0;
    if (r) freeReplyObject(r);
    conn_put(s, idx);
    if (rc == 0) head_seen(s, *pos);
    return rc;
}

static int rd_stream_version(void *impl, const char *stream, int64_t *version)
{
    rd_store *s = impl;
    char *sk = lf_asprintf("{%s}:s:%s", s->prefix, stream);
    int idx, rc = conn_get(s, &idx);
    if (rc) goto out;
    redisContext *c = s->pool[idx].c;
    /* The last entry's id is the version (one entry per batch). */
    const char *argv[6] = {"XREVRANGE", sk, "+", "-", "COUNT", "1"};
    size_t argvlen[6] = {9, strlen(sk), 1, 1, 5, 1};
    redisReply *r = redisCommandArgv(c, 6, argv, argvlen);
    *version = 0;
    if (!r || r->type != REDIS_REPLY_ARRAY)
        rc = rd_fail(c, r, "stream version");
    else if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
             r->element[0]->elements == 2 && r->element[0]->element[0]->str &&
             parse_id_pos(r->element[0]->element[0]->str, version))
        rc = rd_fail(c, NULL, "stream version");
    if (r) freeReplyObject(r);
    conn_put(s, idx);
out:
    free(sk);
    return rc;
}

static int rd_wait(void *impl, int64_t after, int timeout_ms)
{
    rd_store *s = impl;
    int wait = timeout_ms < 1000 ? timeout_ms : 1000;
    struct timespec ts;
    lf_abstime_us((int64_t)wait * 1000, &ts);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    if (!s->closing && s->head <= after) pthread_cond_timedwait(&s->head_cond, &s->lock, &ts);
    if (s->closing) rc = LF_ECLOSED;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- leases ---------------------------------------------------------- */
/* Runs the lease script; *out is the array reply (caller frees). */
static int lease_call(rd_store *s, const char *op, const char *name, const char *owner,
                      int64_t ttl_ms, redisReply **out)
{
    char *key = lf_asprintf("{%s}:leases", s->prefix);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)ttl_ms);
    const char *argv[8] = {NULL, NULL, "1", key, op, name, owner ? owner : "", ttl};
    size_t argvlen[8] = {0, 0, 1, strlen(key), strlen(op), strlen(name), 0, strlen(ttl)};
    argvlen[6] = strlen(argv[6]);
    *out = NULL;
    int idx, rc = conn_get(s, &idx);
    if (rc) goto out;
    redisContext *c = s->pool[idx].c;
    redisReply *r = run_script(c, s->sha_lease, LEASE_LUA, 8, argv, argvlen);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        rc = rd_fail(c, r, "lease");
        if (r) freeReplyObject(r);
    } else {
        *out = r;
    }
    conn_put(s, idx);
out:
    free(key);
    return rc;
}

static int rd_lease(void *impl, const char *name, const char *owner, int64_t ttl_ms, lf_lease *out)
{
    redisReply *r;
    int rc = lease_call(impl, "get", name, owner, ttl_ms, &r);
    if (rc) return rc;
    if (r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        lf_err_set("redis: lease: unexpected reply");
        return LF_EIO;
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    snprintf(out->owner, sizeof out->owner, "%s", r->element[0]->str);
    reply_i64(r->element[1], &out->left_ms);
    freeReplyObject(r);
    if (strcmp(out->owner, owner) != 0) {
        lf_err_set("lease %s is held by %s", name, out->owner);
        return LF_ECONFLICT;
    }
    return 0;
}

static int rd_lease_release(void *impl, const char *name, const char *owner)
{
    redisReply *r;
    int rc = lease_call(impl, "rel", name, owner, 0, &r);
    if (rc == 0) freeReplyObject(r);
    return rc;
}

static int rd_lease_list(void *impl, const char *prefix, lf_lease *out, size_t max, size_t *n)
{
    redisReply *r;
    int rc = lease_call(impl, "list", prefix, NULL, 0, &r);
    if (rc) return rc;
    size_t k = r->elements / 3;
    lf_lease *all = lf_xcalloc(k ? k : 1, sizeof *all);
    for (size_t i = 0; i < k; i++) {
        snprintf(all[i].name, sizeof all[i].name, "%s", r->element[3 * i]->str);
        snprintf(all[i].owner, sizeof all[i].owner, "%s", r->element[3 * i + 1]->str);
        reply_i64(r->element[3 * i + 2], &all[i].left_ms);
    }
    freeReplyObject(r);
    lf_store_lease_sort(all, k);
    for (size_t i = 0; i < k && *n < max; i++)
        out[(*n)++] = all[i];
    free(all);
    return 0;
}

const lf_store_ops lf_store_redis_ops = {
    .name = "redis",
    .open = rd_open,
    .close = rd_close,
    .append = rd_append,
    .read_stream = rd_read_stream,
    .read_all = rd_read_all,
    .head = rd_head,
    .stream_version = rd_stream_version,
    .wait = rd_wait,
    .lease = rd_lease,
    .lease_release = rd_lease_release,
    .lease_list = rd_lease_list,
};
