"""A store file's SQL: the records table and its full-text index (each namespace a vocabulary of its
own), the mirror outbox, and the SQL functions every connection registers (`ns_terms`, ln, exp)."""

from __future__ import annotations

import functools
import hashlib
import math
import re
import sqlite3

RECORDS_TABLE = """
CREATE TABLE IF NOT EXISTS records(
  rid INTEGER PRIMARY KEY,
  namespace TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
  class TEXT NOT NULL, kind TEXT, text TEXT NOT NULL, content TEXT, tags TEXT NOT NULL, source TEXT,
  observed_at INTEGER NOT NULL, expires_at INTEGER, metadata TEXT NOT NULL,
  tier TEXT, heat REAL NOT NULL DEFAULT 0, last_accessed_at INTEGER,
  UNIQUE(namespace, id)
);
"""
# The full-text index holds each word of a record's text qualified by its namespace (`ns_terms`: a short
# hash of the namespace before every word, "3f9a0c11d2e7apple"), so each namespace has a vocabulary of its
# own: a recall reads only its namespace's postings, and bm25's document frequencies are the namespace's
# (an agent's memory is its own corpus). Measured on 3 000 records in 50 namespaces: the match 15 us
# instead of 49 us with a namespace token ANDed to global words, bm25 of the candidates 56 us instead of
# 139 us (its IDF scans every posting of each query term, and those were the whole table's). The index
# reads its content through a view, so `rebuild` and the triggers compute the same terms; `ns_terms` is
# an SQL function of every connection (`SqliteStore._conn`, `register_functions`). Store files of before
# are upgraded when first opened (`SqliteStore._upgrade_fts`).
INDEXES = """
CREATE INDEX IF NOT EXISTS records_recent ON records(namespace, observed_at DESC);
CREATE VIEW IF NOT EXISTS records_terms AS SELECT rid, ns_terms(namespace, text) AS terms FROM records;
CREATE VIRTUAL TABLE IF NOT EXISTS records_fts USING fts5(terms, content='records_terms', content_rowid='rid');
CREATE TRIGGER IF NOT EXISTS records_ai AFTER INSERT ON records BEGIN
  INSERT INTO records_fts(rowid, terms) VALUES (new.rid, ns_terms(new.namespace, new.text));
END;
CREATE TRIGGER IF NOT EXISTS records_ad AFTER DELETE ON records BEGIN
  INSERT INTO records_fts(records_fts, rowid, terms) VALUES ('delete', old.rid, ns_terms(old.namespace, old.text));
END;
CREATE TRIGGER IF NOT EXISTS records_au AFTER UPDATE OF namespace, text ON records BEGIN
  INSERT INTO records_fts(records_fts, rowid, terms) VALUES ('delete', old.rid, ns_terms(old.namespace, old.text));
  INSERT INTO records_fts(rowid, terms) VALUES (new.rid, ns_terms(new.namespace, new.text));
END;
"""
SCHEMA = RECORDS_TABLE + INDEXES
# A store file of before the namespace's vocabulary (an index of the plain text, with or without a
# namespace token): its triggers and index go, INDEXES makes the new ones, and a rebuild fills the index.
FTS_UPGRADE = """
DROP TRIGGER IF EXISTS records_ai;
DROP TRIGGER IF EXISTS records_ad;
DROP TRIGGER IF EXISTS records_au;
DROP TABLE IF EXISTS records_fts;
DROP VIEW IF EXISTS records_terms;
"""
# bm25 of a recall's terms, in its namespace's vocabulary
BM25 = "bm25(records_fts)"

# The mirror outbox: in a SQLite store's own file, so a write and its mirror row commit together.
# Scanned by seq only: no other index, so an enqueue on the request path writes two pages, the
# table's last leaf and the AUTOINCREMENT counter (outbox_due, on next_attempt_at, no query used).
OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  source TEXT NOT NULL, target TEXT NOT NULL, namespace TEXT NOT NULL, id TEXT NOT NULL,
  op TEXT NOT NULL DEFAULT 'put', enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at REAL NOT NULL, last_error TEXT
);
DROP INDEX IF EXISTS outbox_due;
CREATE TABLE IF NOT EXISTS dead_letter(
  seq INTEGER PRIMARY KEY, source TEXT NOT NULL, target TEXT NOT NULL, namespace TEXT NOT NULL,
  id TEXT NOT NULL, op TEXT NOT NULL, enqueued_at REAL NOT NULL, attempts INTEGER NOT NULL,
  failed_at REAL NOT NULL, last_error TEXT
);
"""
ENQUEUE = "INSERT INTO outbox(source, target, namespace, id, op, enqueued_at, next_attempt_at) VALUES (?,?,?,?,?,?,?)"

FTS_STRUCTURE = "SELECT block FROM records_fts_data WHERE id = 10"  # FTS5's record of its segments
FTS_MERGE_PAGES = 32  # full-text index pages merged a round of `SqliteStore.keep_index`
WAL_RESTART_FRAMES = 4096  # 16 MiB of 4 KiB pages: past this, keep_wal lets the WAL start over

_TERM = re.compile(r"\w+", re.UNICODE)


def _math_functions(conn: sqlite3.Connection) -> None:
    """ln and exp (MemoryOS's SCORE) where SQLite was built without its math functions."""
    try:
        conn.execute("SELECT ln(1.0), exp(0.0)").fetchone()
    except sqlite3.OperationalError:
        conn.create_function("ln", 1, lambda x: math.log(x) if x is not None and x > 0 else None, deterministic=True)
        conn.create_function("exp", 1, lambda x: math.exp(x) if x is not None else None, deterministic=True)


_WORD = re.compile(r"[^\W_]+", re.UNICODE)  # what FTS5's unicode61 tokenizer takes for a word (letters, digits)


@functools.lru_cache(maxsize=65536)
def ns_prefix(namespace: str) -> str:
    """12 hex digits of a hash of the namespace: written before each word of its records in the full-text
    index. Two namespaces with one prefix (48 bits) would share a vocabulary, never answers: every recall
    also filters on the namespace column."""
    return hashlib.blake2b(namespace.encode(), digest_size=6).hexdigest()


def ns_terms(namespace: str, text: str) -> str:
    """A text as the full-text index holds it: each word prefixed with `ns_prefix(namespace)`."""
    p = ns_prefix(namespace)
    return " ".join([p + w for w in _WORD.findall(text)])


def statements(script: str) -> list[str]:
    """The SQL statements of a script, one by one (triggers whole)."""
    out, part = [], ""
    for line in script.splitlines(keepends=True):
        part += line
        if sqlite3.complete_statement(part):
            out.append(part.strip())
            part = ""
    return out


def register_functions(conn: sqlite3.Connection) -> None:
    """The SQL functions a store file's schema calls (`ns_terms`, and ln and exp where SQLite lacks
    them): every connection that writes records or recalls needs them."""
    conn.create_function("ns_terms", 2, ns_terms, deterministic=True)
    _math_functions(conn)


def fts_query(namespace: str, text: str) -> str | None:
    """A recall's full-text query: any of its words (up to 32, of two characters or more) in the
    namespace's vocabulary; None when it has none."""
    terms = [t for t in _TERM.findall(text.lower()) if len(t) > 1][:32]
    return " OR ".join(f'"{ns_terms(namespace, t)}"' for t in terms) if terms else None
