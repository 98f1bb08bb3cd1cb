#!/usr/bin/env python
"""Daily digests end to end: due subscribers -> delivery rows -> assembled, rendered messages
handed to an in-memory backend (bench/sink.py), by worker processes as Celery would run them.

    .venv/bin/python bench/digests.py                      # 100,000 subscribers, SQLite and PostgreSQL
    .venv/bin/python bench/digests.py --subscribers 10000 --database sqlite
    .venv/bin/python bench/digests.py --votes 5 --database sqlite   # with profiles, compared to without
    .venv/bin/python bench/digests.py --signups 4          # and sign-ups meanwhile: confirmation latency

Prints per-stage times, distinct renders, the naive path's rate on a sample (render + premailer +
Django MIME per subscriber) and the speed-up over it, peak RSS, and last `N digests/s`.
PostgreSQL: BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/paperboy_bench) is
dropped and created afresh.
"""

import argparse
import atexit
import datetime as dt
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample"
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/paperboy_bench")
KEYWORDS = ["quantization", "robot", "reasoning", "diffusion", "attack", "reward", "graph", "agents", "LLM", "3D"]


def parse():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--database", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (the machine has 2 cores)")
    parser.add_argument("--batch", type=int, help="recipients per task (default: the DIGEST_BATCH_SIZE setting)")
    parser.add_argument("--naive-sample", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--signups", type=float, default=0,
                        help="sign-ups per second during the timed run, by a process of their own as the mail "
                             "queue's worker: prints the confirmations' latency (p50/p95)")
    parser.add_argument("--history", type=int, default=1, help="days of editions already sent to everyone")
    parser.add_argument("--votes", type=int, default=0, help="votes per subscriber on yesterday's papers (profiles)")
    parser.add_argument("--mode", choices=["message", "batch"], default="message",
                        help="batch: ESP batch calls (anymail's Mailgun backend) to a local HTTP server")
    parser.add_argument("--backend", default="newsletter.esp.MailgunBackend",
                        help="batch mode's backend (anymail.backends.mailgun.EmailBackend: anymail's own)")
    return parser.parse_args()


class FakeMailgun:
    """A local HTTP server answering Mailgun's send API (keep-alive HTTP/1.1), counting calls,
    recipients and bytes. It stands in for a remote ESP, so it is kept lean: its own process,
    asyncio, and no more HTTP parsing than framing a request needs (http.server's parsing cost
    ~1 ms a call, which a real ESP's servers would not take from these two cores)."""

    BODY = b'{"id": "<bench@paperboy.test>", "message": "Queued. Thank you."}'
    REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)

    def __init__(self):
        import multiprocessing

        self._calls, self._recipients, self._bytes = (multiprocessing.Value("q", 0, lock=False) for _ in range(3))
        ready = multiprocessing.get_context("fork").Queue()
        self.process = multiprocessing.get_context("fork").Process(target=self._serve, args=(ready,), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{ready.get()}/v3"

    @property
    def counts(self):
        return {"calls": self._calls.value, "recipients": self._recipients.value, "bytes": self._bytes.value}

    def cpu_seconds(self):
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def _serve(self, ready):
        import asyncio

        asyncio.run(self._main(ready))

    async def _main(self, ready):
        import asyncio

        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        ready.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    async def _connection(self, reader, writer):
        from urllib.parse import parse_qs

        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except Exception:  # the client closed the connection
                return writer.close()
            fields = (line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            headers = {name.strip().lower(): value.strip() for name, value in fields}
            body = await reader.readexactly(int(headers[b"content-length"]))
            if b"multipart/form-data" in headers.get(b"content-type", b""):
                recipients = body.count(b'name="to"')
            else:
                recipients = len(parse_qs(body.decode()).get("to", []))
            self._calls.value += 1
            self._recipients.value += recipients
            self._bytes.value += len(body)
            writer.write(self.REPLY)


def configure(database, mode="message", batch=None, backend=None):
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if batch:
        os.environ["DIGEST_BATCH_SIZE"] = str(batch)
    os.environ["EMAIL_BACKEND"] = "bench.sink.SinkBackend"
    # As in production: with DEBUG on, Django keeps every query's SQL, and memory grows.
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789")
    os.environ.setdefault("SITE_URL", "https://paperboy.test")
    esp = None
    if mode == "batch":
        esp = FakeMailgun()
        os.environ.update({
            "EMAIL_BACKEND": backend, "ANYMAIL_MAILGUN_API_KEY": "bench",
            "ANYMAIL_MAILGUN_API_URL": esp.url, "ANYMAIL_WEBHOOK_SECRET": "bench:bench", "DIGEST_SENDING": "batch",
            "DEFAULT_FROM_EMAIL": "Paperboy <digest@paperboy.test>",
        })
    os.environ.pop("REDIS_URL", None)
    os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="paperboy-bench-")
    atexit.register(shutil.rmtree, os.environ["VAR_DIR"], ignore_errors=True)  # a 100k run leaves ~700 MB
    os.environ["LOG_LEVEL"] = "WARNING"
    if database == "postgres":
        import psycopg

        base, name = POSTGRES_URL.rsplit("/", 1)
        with psycopg.connect(base + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = POSTGRES_URL
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return esp


def load_papers():
    from papers.models import Paper
    from papers.services import paper_feature

    # In a process of its own, as the papers worker imports and embeds them in production: the
    # text model never enters this process, whose memory the sending workers would inherit.
    files = sorted(SAMPLE.glob("daily_papers_*.json"))
    subprocess.run([sys.executable, "manage.py", "import_papers", *map(str, files)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    day = Paper.objects.latest_day()
    paper_feature(paper=Paper.objects.listed_on(day).trending().first(), day=day, note="Editor's pick: <b>start here</b>.")
    return day


def create_subscribers(count, seed):
    """Varied preferences: 0-3 topics, a fifth with keywords, a tenth weekly (not due today)."""
    from django.utils import timezone

    from newsletter.models import Subscriber, interest_key
    from papers.models import Topic

    rng = random.Random(seed)
    topic_ids = list(Topic.objects.values_list("pk", flat=True))
    through = Subscriber.topics.through
    now = timezone.now()
    for start in range(0, count, 10_000):
        batch, chosen = [], []
        for n in range(start, min(count, start + 10_000)):
            keywords = ", ".join(rng.sample(KEYWORDS, rng.randint(1, 2))) if rng.random() < 0.2 else ""
            frequency = "weekly" if rng.random() < 0.1 else "daily"
            topics = rng.sample(topic_ids, rng.randint(0, 3))
            chosen.append(topics)
            batch.append(Subscriber(
                email=f"reader{n}@example.org", status="active", keywords=keywords, confirmed_at=now,
                frequency=frequency, weekday=rng.randint(0, 6), next_digest_at=now,
                interest_key=interest_key(frequency, topics, keywords, ""),
            ))
        created = Subscriber.objects.bulk_create(batch)
        links = [through(subscriber_id=s.pk, topic_id=t) for s, topics in zip(created, chosen) for t in topics]
        through.objects.bulk_create(links, batch_size=10_000)


def history_sent(day, days):
    """The last `days` editions, each already sent to everyone: the history a live database
    has, which the no-repeat check reads (and which gives the planner real statistics). As a
    live table holds it: each edition's rows in the order its fan-out wrote them (the order
    of today's), a digest's worth of picks each, and pages as full as rows that grew in place
    leave them (~7 rows a page on PostgreSQL, where the table's fillfactor is for rows that
    will grow, so it is raised while these are written)."""
    import json

    from django.db import connection

    from newsletter import sql
    from newsletter.fanout import edition_get
    from newsletter.models import Delivery
    from papers.models import Paper

    table = sql.table(Delivery)
    now = dt.datetime.now(dt.timezone.utc)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])
            options = cursor.fetchone()[0] or []
            cursor.execute(f"ALTER TABLE {table} SET (fillfactor = 75)")
    for back in range(days, 0, -1):
        previous = day - dt.timedelta(days=back)
        papers = Paper.objects.listed_on(previous).trending().prefetch_related("topics")[:11]
        picks = [[p.pk, "topic", next((t.name for t in p.topics.all()), "Deep learning"), 1.0] for p in papers]
        sql.deliveries_insert(edition_get(previous).pk, None, state=Delivery.State.SENT, now=now,
                              picks=json.dumps(picks), sent_at=now, order="interest_key, id")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
            if options:
                cursor.execute(f"ALTER TABLE {table} SET ({', '.join(options)})")


def add_votes(day, per_subscriber, seed):
    """Every subscriber voted on some of yesterday's papers: everyone has a profile."""
    from django.db import connection
    from django.utils import timezone

    from newsletter.models import Subscriber, Vote
    from papers.models import Paper

    rng = random.Random(seed)
    papers = list(Paper.objects.listed_on(day - dt.timedelta(days=1)).values_list("pk", flat=True))
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    sql = (f"INSERT INTO {Vote._meta.db_table} (subscriber_id, paper_id, value, created_at, updated_at) "
           "VALUES (%s, %s, %s, %s, %s)")
    ids = Subscriber.objects.order_by("pk").values_list("pk", flat=True).iterator(chunk_size=10_000)
    batch = []
    with connection.cursor() as cursor:
        for pk in ids:
            batch.extend((pk, paper, 1 if rng.random() < 0.7 else -1, now, now)
                         for paper in rng.sample(papers, min(per_subscriber, len(papers))))
            if len(batch) >= 10_000:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)


def naive(day, sample):
    """The straightforward path: rank, render the templates, premailer, Django MIME - per subscriber."""
    from newsletter import tokens
    from newsletter.emails import build_message, list_headers, render_parts
    from newsletter.fanout import scheduled_on
    from newsletter.links import FEEDBACK_TOKEN, PREFERENCES_TOKEN, UNSUBSCRIBE_TOKEN, VIEW_TOKEN, absolute
    from newsletter.models import Edition
    from newsletter.offers import edition_offer, interests_of
    from newsletter.ranking import rank_many
    from newsletter.rendering import digest_context

    subscribers = list(scheduled_on(day).order_by("pk")[:sample])
    offer = edition_offer(Edition(date=day), "daily")
    interests = interests_of({s.pk: (s.keywords, s.authors) for s in subscribers})
    start = time.perf_counter()
    for subscriber in subscribers:
        picks = rank_many(offer.pool, [(interests[subscriber.pk], frozenset())], limit=10)[0]
        items = [{"paper": offer.papers[p], "reason": r, "note": offer.notes.get(p, "")} for p, r in picks]
        subject, text, html = render_parts("digest", digest_context(offer.edition, items))
        unsubscribe = tokens.make(tokens.UNSUBSCRIBE, subscriber.pk)
        preferences = tokens.make(tokens.PREFERENCES, subscriber.pk)
        feedback = tokens.make(tokens.FEEDBACK, subscriber.pk)
        view = tokens.make(tokens.VIEW, subscriber.pk)
        text, html = (
            part.replace(UNSUBSCRIBE_TOKEN, unsubscribe).replace(PREFERENCES_TOKEN, preferences)
            .replace(FEEDBACK_TOKEN, feedback).replace(VIEW_TOKEN, view)
            for part in (text, html)
        )
        headers = list_headers(absolute("newsletter:unsubscribe", unsubscribe))
        build_message(subject, text, html, subscriber.email, headers=headers).message().as_bytes()
    return len(subscribers) / (time.perf_counter() - start)


def _worker_init():
    from django.db import connections

    from config.celery import worker_process_ready

    connections.close_all()
    worker_process_ready()  # as Celery's prefork pool does for each child


def _send(ids):
    from newsletter.delivery import deliveries_send

    stats = deliveries_send(delivery_ids=ids)
    return stats, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _signups(stop, every, results):
    """The mail queue's own worker, while the digests go out: a sign-up every `every` seconds,
    each timed from its start to its confirmation handed to the mail backend."""
    from django.db import connections

    from newsletter.services import subscriber_signup

    connections.close_all()  # inherited from the parent: this process needs its own
    latencies = []
    while not stop.is_set():
        start = time.perf_counter()
        subscriber_signup(email=f"signup{len(latencies)}@bench.example.org")
        latencies.append(time.perf_counter() - start)
        stop.wait(every)
    results.send(latencies)


@dataclass
class Run:
    """What one fast() run measured: wall and idle time, CPU seconds over the run only of the
    coordinator (fan-out) and of its workers, and the largest worker's peak RSS (MB)."""

    edition: object
    stats: object
    elapsed: float
    idle: float
    coordinator: float
    workers: float
    worker_rss: float
    signups: list


def cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def fast(day, workers, signups=0):
    """Fan-out and sending as production runs them, with a process pool in Celery's place
    (and, with `signups` per second, the mail queue's worker signing readers up meanwhile)."""
    import multiprocessing

    from django.db import connections
    from newsletter.delivery import SendStats
    from newsletter.fanout import deliveries_create, edition_get, keyset_pages, scheduled_on

    edition = edition_get(day)
    connections.close_all()  # before the clock starts: it checkpoints what the setup wrote
    stats, peaks = SendStats(), [0]

    def collect(result):
        done, peak = result.get()
        stats.add(done)
        peaks.append(peak)

    context = multiprocessing.get_context("fork")
    if signups:
        stop, (results, sender) = context.Event(), context.Pipe(duplex=False)
        signer = context.Process(target=_signups, args=(stop, 1 / signups, sender))
        signer.start()
    before = cpu_seconds(resource.RUSAGE_SELF), cpu_seconds(resource.RUSAGE_CHILDREN)
    start, idle = time.perf_counter(), idle_seconds()
    with context.Pool(workers, initializer=_worker_init) as pool:
        pending = []
        for ids in keyset_pages(scheduled_on(day), "interest_key", "pk"):  # as digests_dispatch orders them
            pending.append(pool.apply_async(_send, (deliveries_create(edition, ids),)))
            while len(pending) > 2 * workers:  # stream: never queue the whole edition
                collect(pending.pop(0))
        for result in pending:
            collect(result)
        elapsed, idle = time.perf_counter() - start, idle_seconds() - idle
    # The workers' CPU is counted once the pool has ended them.
    coordinator, workers = cpu_seconds(resource.RUSAGE_SELF) - before[0], cpu_seconds(resource.RUSAGE_CHILDREN) - before[1]
    latencies = []
    if signups:  # stopped after the workers' CPU is counted, which it is not part of
        stop.set()
        latencies = results.recv()
        signer.join()
    return Run(edition, stats, elapsed, idle, coordinator, workers, max(peaks) / 1024, latencies)


def settle(connection):
    """What a live database would have done since the setup's bulk writes: statistics
    (ANALYZE) and, on PostgreSQL, the visibility map (VACUUM), without which no scan is
    index-only; the write-ahead log checkpointed (SQLite); and what was written flushed to
    disk, so that the kernel's writing it back does not share the cores of what is timed."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE")
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.sync()


def idle_seconds():
    """CPU time the machine's cores spent idle or waiting for I/O (Linux's /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = stat.readline().split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


def run(args):
    esp = configure(args.database, args.mode, args.batch, args.backend)
    from django.conf import settings
    from django.core.management import call_command

    from newsletter.fanout import edition_get

    call_command("migrate", verbosity=0)
    day = load_papers()
    t = time.perf_counter()
    create_subscribers(args.subscribers, args.seed)
    history_sent(day, args.history)
    from django.db import connection

    settle(connection)
    setup = time.perf_counter() - t
    if args.votes:
        # The same subscribers first without profiles, for the comparison; then they vote.
        plain = fast(day, args.workers).stats
        edition_get(day).deliveries.all().delete()
        add_votes(day, args.votes, args.seed)
        settle(connection)
    # The naive path right before and right after the timed run: the machine's speed drifts
    # by several per cent over a minute, and the ratio is of two rates measured apart.
    naive_rates = [naive(day, args.naive_sample)]
    esp_before = esp.cpu_seconds() if esp else 0.0
    measured = fast(day, args.workers, args.signups)
    esp_cpu = esp.cpu_seconds() - esp_before if esp else 0.0
    naive_rates.append(naive(day, args.naive_sample))
    naive_rate = sum(naive_rates) / 2
    stats, elapsed, idle = measured.stats, measured.elapsed, measured.idle
    totals = measured.edition.deliveries.totals()
    rate = stats.sent / elapsed
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"== {args.database}, {args.mode} mode: {args.subscribers:,} subscribers{f' with {args.votes} votes each' if args.votes else ''}, "
          f"{args.workers} workers, {settings.DIGEST_BATCH_SIZE:,} per task, "
          f"{args.history} day(s) of history (setup {setup:.1f} s, not timed)")
    print(f"deliveries: {totals['sent']:,} sent, {totals['skipped']:,} skipped, {totals['failed']:,} failed, "
          f"{totals['pending'] + totals['sending']} left; weekly readers not due today: {args.subscribers - totals['due']:,}")
    print(f"distinct digests rendered: {stats.renders:,} (summed over workers)")
    print(f"progress files flushed to the disk (msync, at most once a second a group): {stats.flushes:,} times, "
          f"{stats.flush_seconds * 1e3:.0f} ms of wall time waiting in them, summed over workers "
          f"({stats.flush_seconds / max(stats.sent, 1) * 1e6:.1f} us/digest)")
    busy = sum(stats.seconds.values())
    print("per-stage CPU time in workers: " + ", ".join(
        f"{name} {seconds:.2f} s ({seconds / max(stats.sent, 1) * 1e6:.0f} us/digest)" for name, seconds in stats.seconds.most_common()
    ) + f"; total {busy:.2f} s")
    machine = os.cpu_count()
    cores = min(args.workers, machine)  # what the naive path could use with as many workers
    print(f"naive path: {naive_rate:,.0f} digests/s on one core (render + premailer + Django MIME per subscriber; "
          f"{naive_rates[0]:,.0f} before the timed run, {naive_rates[1]:,.0f} after); "
          f"speed-up vs naive on {cores} cores: {rate / (naive_rate * cores):.0f}x")
    others = elapsed * machine - measured.workers - measured.coordinator - idle
    print(f"wall {elapsed:.1f} s; CPU: workers {measured.workers:.1f} s, fan-out {measured.coordinator:.1f} s, "
          f"database server and other processes {max(0.0, others):.1f} s, "
          f"idle {idle:.1f} s, of the {machine} cores' {elapsed * machine:.1f} s")
    print(f"peak RSS: coordinator {rss_self:.0f} MB, largest worker {measured.worker_rss:.0f} MB")
    if args.votes:
        def per_digest(st, *stages):
            return sum(st.seconds[name] for name in stages) / max(st.sent, 1) * 1e6

        for label, stages in (("assembling (choosing the papers)", ["assemble"]),
                              ("a whole digest (all stages)", list(stats.seconds))):
            with_, without = per_digest(stats, *stages), per_digest(plain, *stages)
            print(f"profiles: {label} {with_:.0f} us/digest with, {without:.0f} us without: {with_ / without:.1f}x")
    if esp:
        c = esp.counts
        print(f"batch mode: {c['calls']:,} API calls to the local ESP server, {c['recipients']:,} recipients, "
              f"{c['bytes'] / 1e6:.0f} MB; {c['recipients'] / elapsed:,.0f} recipients/s handed over; "
              f"the server's CPU {esp_cpu:.1f} s (of the other processes' above)")
    if measured.signups:
        ms = sorted(seconds * 1000 for seconds in measured.signups)
        print(f"confirmations during the run (the mail queue's own worker): {len(ms)} sign-ups, "
              f"p50 {ms[len(ms) // 2]:.0f} ms, p95 {ms[int(len(ms) * 0.95)]:.0f} ms")
    print(f"{rate:,.0f} digests/s")


def main():
    args = parse()
    if args.database != "both":
        return run(args)
    for database in ("sqlite", "postgres"):
        argv = [sys.executable, __file__, *sys.argv[1:], "--database", database]
        subprocess.run(argv, check=True)


if __name__ == "__main__":
    main()
