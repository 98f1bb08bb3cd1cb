"""The statements the ORM cannot say, or says too slowly for a million digests a day.

Writes: INSERT ... SELECT ... RETURNING (fan-out), UPDATE ... RETURNING (claim) and one
UPDATE ... FROM (VALUES ...) for a group's outcomes. Reads made per group of up to
DIGEST_CLAIM_SIZE recipients inline their ids (int() makes that safe): as parameters, the ORM
would prepare and the driver parse each of hundreds of placeholders in Python, which costs
more than the query itself (docs/performance.md, "Raw reads per group").

Column lists are written out once here; tests/test_sql.py checks them against the models.
"""

import re
from functools import lru_cache

from django.db import connection, transaction

from newsletter.models import Delivery, SendingGroup, Subscriber, Suppression, Vote
from newsletter.reasons import pick_json

# Every column a new Delivery row needs a value for (tested against the model).
DELIVERY_INSERT = ("edition_id", "subscriber_id", "state", "picks", "attempts", "claim", "message_id", "note",
                   "created_at")
CLAIMED = ("id", "attempts", "subscriber_id", "edition_id")
RECIPIENT = ("id", "email", "status", "confirmed_at", "keywords", "authors", "frequency")
VOTE = ("subscriber_id", "paper_id", "value", "updated_at", "id")


HEX = re.compile(r"[0-9a-f]+")


def table(model):
    return connection.ops.quote_name(model._meta.db_table)


def id_list(ids):
    """Ids as SQL integer literals, for the IN lists of statements made per group."""
    return ", ".join([str(int(pk)) for pk in ids])


def _rows(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _datetime(value):
    return connection.ops.adapt_datetimefield_value(value)


def deliveries_insert(edition_id, subscriber_ids, *, state, now, picks="[]", sent_at=None, order=None):
    """A row per subscriber in one INSERT ... SELECT; rows that exist already are left alone,
    so fanning out twice creates nothing twice. Returns the new rows' ids. Without
    subscriber_ids, a row for every subscriber in `order` (the benchmark's history)."""
    columns = DELIVERY_INSERT + (("sent_at",) if sent_at else ())
    values = "%s, id, %s, %s, 0, '', '', '', %s" + (", %s" if sent_at else "")
    # (SQLite reads an INSERT ... SELECT with ON CONFLICT only after a WHERE clause.)
    where = f"WHERE id IN ({id_list(subscriber_ids)})" if subscriber_ids is not None else f"WHERE 1 = 1 ORDER BY {order}"
    sql = (
        f"INSERT INTO {table(Delivery)} ({', '.join(columns)}) SELECT {values} FROM {table(Subscriber)} {where} "
        f"ON CONFLICT DO NOTHING RETURNING id"
    )
    params = [edition_id, state, picks, _datetime(now)] + ([_datetime(sent_at)] if sent_at else [])
    return [pk for (pk,) in _rows(sql, params)]


def deliveries_claim(delivery_ids, *, claim, now):
    """pending -> sending for these rows, in one statement that also returns them (UPDATE ...
    RETURNING, on PostgreSQL and SQLite alike): only rows this call moved come back, so two
    workers never get the same row. By primary key: whatever the planner's statistics say
    (they lag behind a burst of new rows), that is one index probe per row."""
    sql = (
        f"UPDATE {table(Delivery)} SET state = %s, claim = %s, claimed_at = %s "
        f"WHERE state = %s AND id IN ({id_list(delivery_ids)}) RETURNING {', '.join(CLAIMED)}"
    )
    with transaction.atomic():
        return _rows(sql, [Delivery.State.SENDING, claim, _datetime(now), Delivery.State.PENDING])


def recipients(subscriber_ids):
    """{subscriber id: (email, status, confirmed_at, keywords, authors, frequency)}."""
    if not subscriber_ids:
        return {}
    sql = f"SELECT {', '.join(RECIPIENT)} FROM {table(Subscriber)} WHERE id IN ({id_list(subscriber_ids)})"
    return {row[0]: row[1:] for row in _rows(sql)}


def suppressed(hashes):
    """Which of these e-mail hashes (hex digests, models.email_hash) are on the suppression list."""
    if not hashes:
        return set()
    # Inlined like ids, once checked to be hex digits: a placeholder each would cost more.
    literals = ", ".join(f"'{h}'" for h in hashes if HEX.fullmatch(h))
    return {h for (h,) in _rows(f"SELECT email_hash FROM {table(Suppression)} WHERE email_hash IN ({literals})")}


def topics_followed(subscriber_ids):
    """[(subscriber id, topic id)] for these subscribers."""
    through = Subscriber.topics.through
    return _rows(f"SELECT subscriber_id, topic_id FROM {table(through)} WHERE subscriber_id IN ({id_list(subscriber_ids)})")


def picks_received(subscriber_ids, edition_ids):
    """[(subscriber id, picks as JSON text)] of the deliveries sent (or being sent) to these
    subscribers in these editions. As text: most subscribers got one of a few digests, so the
    caller parses each distinct one once."""
    sql = (
        f"SELECT subscriber_id, CAST(picks AS text) FROM {table(Delivery)} "
        f"WHERE subscriber_id IN ({id_list(subscriber_ids)}) AND state IN (%s, %s) AND edition_id IN ({id_list(edition_ids)})"
    )
    return _rows(sql, [Delivery.State.SENT, Delivery.State.SENDING])


def votes(subscriber_ids, latest):
    """[(subscriber id, paper id, +1 or -1, Unix time of the vote)]: the `latest` votes of each
    of these subscribers. In steps: who has more than `latest` (at most `latest` + 1 index
    entries each; few do), then the others' votes as they are, and only those few's through a
    window, which costs twice as much a vote and numbers all of them before keeping `latest`."""
    when = "EXTRACT(EPOCH FROM updated_at)"
    if connection.vendor != "postgresql":  # from the Julian day: strftime('%s') makes text that CAST parses
        when = "(julianday(updated_at) - 2440587.5) * 86400"
    columns, name = f"subscriber_id, paper_id, value, CAST(ROUND({when}) AS BIGINT)", table(Vote)
    values = ", ".join(f"({int(pk)})" for pk in subscriber_ids)
    many = {pk for (pk,) in _rows(
        f"WITH s(id) AS (VALUES {values}) SELECT id FROM s "
        f"WHERE EXISTS (SELECT 1 FROM {name} WHERE subscriber_id = s.id LIMIT 1 OFFSET %s)", [latest],
    )}
    few = [pk for pk in subscriber_ids if pk not in many]
    rows = _rows(f"SELECT {columns} FROM {name} WHERE subscriber_id IN ({id_list(few)})") if few else []
    if many:
        rows += _rows(
            f"SELECT {columns} FROM (SELECT {', '.join(VOTE)}, "
            f"ROW_NUMBER() OVER (PARTITION BY subscriber_id ORDER BY updated_at DESC, id DESC) AS n "
            f"FROM {name} WHERE subscriber_id IN ({id_list(many)})) AS v WHERE n <= %s",
            [latest],
        )
    return rows


@lru_cache(maxsize=4096)
def picks_json(picks):
    """A digest's picks as stored (JSON text, newsletter.reasons): the progress record and the
    outcome statement share it. Made of each pick's, as readers with a profile each get their
    own picks, made of the same few hundred (paper, reason) pairs."""
    return f"[{', '.join(map(pick_json, picks))}]"


def deliveries_finish(outcomes, *, claim=None, beat=None):
    """Record a group's outcomes in one UPDATE ... FROM (VALUES ...). outcomes: [(id, state,
    picks, sent_at, note, message_id, attempts)]; with `claim`, of rows still held under it (a
    group taken over meanwhile is someone else's now: its worker's late writes change
    nothing). Without, unguarded: for groups that no one takes over (no checkpoints, on one
    machine), as SQLite, given the condition, reads the whole table for it (80 µs a digest
    against 18 at 100,000 rows).
    With `beat` (a time), the group's heart-beat too, in the same transaction; returns False
    if the group has no heart-beat any more (taken over). What rows share (state, picks, time sent,
    note) is listed once and referred to by number, and numbers are inlined: the statement
    stays small, with one parameter a row (its Message-ID), and each distinct picks is parsed
    as JSON once, not once per row. Where most rows differ (readers with a profile each get
    their own picks), each row carries its own: joining on a number would cost more."""
    postgres = connection.vendor == "postgresql"
    jsonb, timestamptz = ("::jsonb", "::timestamptz") if postgres else ("", "")
    guard = "" if claim is None else f" AND {table(Delivery)}.claim = %s"
    shared = {}
    for _, state, picks, sent_at, note, _, _ in outcomes:
        shared.setdefault((state, picks, sent_at, note), len(shared))
    times = {sent_at: _datetime(sent_at) for sent_at in {sent_at for _, _, sent_at, _ in shared}}  # one or two
    name = table(Delivery)
    if len(shared) * 2 > len(outcomes):
        rows = ", ".join(
            f"({int(pk)}, %s, %s{jsonb}, %s{timestamptz}, %s, %s, {int(attempts)})" for pk, *_, attempts in outcomes
        )
        sql = (
            f"WITH v(id, state, picks, sent_at, note, message_id, attempts) AS (VALUES {rows}) "
            f"UPDATE {name} SET state = v.state, picks = v.picks, sent_at = v.sent_at, note = v.note, "
            f"message_id = v.message_id, attempts = v.attempts FROM v WHERE {name}.id = v.id{guard}"
        )
        params = [
            value
            for _, state, picks, sent_at, note, message_id, _ in outcomes
            for value in (state, picks_json(picks), times[sent_at], note, message_id)
        ]
    else:
        rows = ", ".join(
            f"({int(pk)}, {shared[state, picks, sent_at, note]}, %s, {int(attempts)})"
            for pk, state, picks, sent_at, note, _, attempts in outcomes
        )
        values = ", ".join(f"({n}, %s, %s{jsonb}, %s{timestamptz}, %s)" for n in shared.values())
        sql = (
            f"WITH o(n, state, picks, sent_at, note) AS (VALUES {values}), "
            f"v(id, o, message_id, attempts) AS (VALUES {rows}) "
            f"UPDATE {name} SET state = o.state, picks = o.picks, sent_at = o.sent_at, note = o.note, "
            f"message_id = v.message_id, attempts = v.attempts FROM v JOIN o ON o.n = v.o "
            f"WHERE {name}.id = v.id{guard}"
        )
        params = [value for state, picks, sent_at, note in shared for value in (state, picks_json(picks), times[sent_at], note)]
        params += [message_id for _, _, _, _, _, message_id, _ in outcomes]
    with transaction.atomic(), connection.cursor() as cursor:
        if postgres and beat is not None:
            # A checkpoint is safe to lose in a database crash: the worker's next write then
            # fails, and its group's last write records every outcome again (delivery.Record).
            # That last write, the claim and the end of a group must not be lost: synchronous.
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        if outcomes:
            cursor.execute(sql, params if claim is None else [*params, claim])
        if beat is None:
            return True
        cursor.execute(f"UPDATE {table(SendingGroup)} SET beat_at = %s WHERE claim = %s", [_datetime(beat), claim])
        return cursor.rowcount == 1
