"""Connections to the engines that can hold metric events outside the promptver file.

Each engine knows how to reach its data, list the columns of the events relation (name and
type), and run one query with named parameters, returning column names and rows. What a query
returns is always an aggregate (``promptver.store.warehouse`` writes the queries); nothing here
reads events row by row.

- :class:`ParquetEngine`: an in-memory DuckDB over a file, directory or glob of Parquet files
  (hive partitions read as columns), as a view; DuckDB pushes filters into the scan.
- :class:`PostgresEngine`: psycopg 3, one connection, autocommit reads in UTC.
- :class:`SparkEngine`: pyspark; a Spark Connect URL (``remote``), or local mode.

Failures become :class:`~promptver.errors.SourceError` naming the source and what failed
(cannot connect, no such table or files); the drivers are imported only here, on first use.
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from promptver.errors import SourceError

#: the name the events relation has inside the engine (a view or the quoted table)
SOURCE_VIEW = "pv_events_source"

Rows = tuple[list[str], list[tuple[Any, ...]]]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def redact_dsn(dsn: str) -> str:
    """A connection string without its password (for messages)."""
    dsn = re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)(\S+)", r"\1***", dsn, flags=re.IGNORECASE)


def quote_ident(name: str) -> str:
    """An identifier quoted for the DuckDB dialect the queries are written in."""
    return '"' + name.replace('"', '""') + '"'


def quote_table(name: str) -> str:
    """A dotted table name, each part quoted."""
    return ".".join(quote_ident(part) for part in name.split("."))


class Engine(ABC):
    """What every engine offers. ``label`` names the source in messages."""

    dialect = "duckdb"
    label = "source"
    #: the per-user reduction runs in passes over the users that keep its hash table under
    #: this (engines in this process); None: the engine manages its own memory (a server)
    user_pass_bytes: int | None = None

    def relation(self) -> str:
        """The events relation as SQL in the DuckDB dialect (a quoted name)."""
        return quote_ident(SOURCE_VIEW)

    @abstractmethod
    def schema(self) -> list[tuple[str, str]]:
        """The events relation's columns and their types."""

    def partition_columns(self) -> set[str]:
        return set()

    @abstractmethod
    def run(self, sql: str, params: dict[str, Any]) -> Rows:
        """Run DuckDB-dialect ``sql`` (translated for the engine) with ``params``."""

    @contextmanager
    def parallel(self) -> Iterator[None]:
        """A block of statements whose state stays small (counts, ranges, histograms of
        bounded bins): an engine in this process runs them on every core, where the per-user
        reductions run on one. Engines that run elsewhere decide for themselves."""
        yield

    def sidecar(self) -> Engine | None:
        """A second engine over the same events, on one thread, for statements with small
        state to run while a per-user pass holds this one (the machine's other core); None for
        engines that run elsewhere."""
        return None

    def close(self) -> None:  # noqa: B027 - engines without a connection have nothing to close
        """Release the engine's connection or session."""


class ParquetEngine(Engine):
    """Parquet files through an in-memory DuckDB (``events.path``: a file, directory or glob)."""

    dialect = "duckdb"
    #: the per-user hash table of a pass (``Relation.run_by_users``): 50M events of 6M users
    #: run in two passes of ~3.2M users
    user_pass_bytes = 512 << 20

    def __init__(self, path: str, *, solo: bool = False) -> None:
        self.path = path
        self.label = f"parquet source {path!r}"
        self._lock = threading.Lock()
        self._con: Any = None
        self._partitions: set[str] = set()
        self._cores = 1  # DuckDB's default threads, used inside parallel()
        self._parallel = 0  # parallel() blocks running now
        #: a sidecar stays on one thread (the main engine's pass holds the other core)
        self._solo = solo
        self._side: ParquetEngine | None = None

    def _pattern(self) -> str:
        p = Path(self.path)
        return str(p / "**" / "*.parquet") if p.is_dir() else self.path

    def _connect(self) -> Any:
        with self._lock:
            if self._con is not None:
                return self._con
            import duckdb

            con = duckdb.connect(":memory:")
            con.execute("SET TimeZone = 'UTC'")
            # The footprint stays flat as the files grow because no query needs memory in
            # proportion to the events: the per-user reduction runs in passes over slices of
            # the users (user_pass_bytes, Relation.run_by_users) and the exact quantiles refine
            # histograms (warehouse.exact_quantiles). DuckDB's own spilling is no substitute:
            # the per-user GROUP BY of 50M events ran out of memory under 512 MB and was 9x
            # slower under 1 GB; quantile_cont keeps every value outside the limit. The limit
            # is the backstop. One thread: each thread builds its own hash table (2x the
            # memory of a pass). Statements with small state (the user estimate, the
            # quantiles' ranges and bins, the p95 histogram) run on every core (parallel()):
            # 20M events: 4.99 -> 3.63 s, 50M: 21.49 -> 16.78 s. The per-user passes on two
            # threads were slower and larger (50M: 21.8 s, 1,240 MiB against 16.8 s, 771 MiB),
            # and one pass of every user too (29.6 s, 1.7 GB). The core a pass leaves idle runs
            # the p95's statements on a sidecar (sidecar(); 50M: 10.15 -> 7.88 s, 837 MiB;
            # benchmarks/bench_sources.py, docs/warehouse.md).
            con.execute("SET memory_limit = '1GB'")
            self._cores = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
            con.execute("SET threads = 1")
            con.execute("SET preserve_insertion_order = false")
            lit = "'" + self._pattern().replace("'", "''") + "'"
            try:
                con.execute(
                    f"CREATE VIEW {quote_ident(SOURCE_VIEW)} AS SELECT * FROM read_parquet("
                    f"{lit}, hive_partitioning = true, union_by_name = true)"
                )
                plain = {
                    r[0]
                    for r in con.execute(
                        f"DESCRIBE SELECT * FROM read_parquet({lit}, hive_partitioning = false,"
                        " union_by_name = true)"
                    ).fetchall()
                }
            except duckdb.Error as exc:
                con.close()
                msg = _first_line(exc)
                if "No files found" in msg or "does not exist" in msg:
                    raise SourceError(f"{self.label}: no Parquet files match the path") from None
                raise SourceError(f"{self.label}: cannot read the files: {msg}") from None
            hive = {r[0] for r in con.execute(f"DESCRIBE {quote_ident(SOURCE_VIEW)}").fetchall()}
            self._partitions = hive - plain
            self._con = con
            return con

    def schema(self) -> list[tuple[str, str]]:
        with self._connect().cursor() as cur:  # the connection refuses a second thread's call
            rows = cur.execute(f"DESCRIBE {quote_ident(SOURCE_VIEW)}").fetchall()
        return [(r[0], str(r[1])) for r in rows]

    def partition_columns(self) -> set[str]:
        self._connect()
        return set(self._partitions)

    def run(self, sql: str, params: dict[str, Any]) -> Rows:
        import duckdb

        try:
            with self._connect().cursor() as cur:  # one cursor per call: readers in threads
                res = cur.execute(sql, params)
                return [d[0] for d in res.description], res.fetchall()
        except duckdb.Error as exc:
            raise SourceError(f"{self.label}: the query failed: {_first_line(exc)}") from None

    @contextmanager
    def parallel(self) -> Iterator[None]:
        con = self._connect()
        if self._solo:
            yield
            return
        with self._lock:
            self._parallel += 1
            if self._parallel == 1 and self._cores > 1:
                _set_threads(con, self._cores)
        try:
            yield
        finally:
            with self._lock:
                self._parallel -= 1
                if self._parallel == 0 and self._con is not None:
                    _set_threads(self._con, 1)

    def threads(self) -> int:
        """DuckDB's threads now: 1, or every core inside :meth:`parallel`."""
        with self._connect().cursor() as cur:
            return int(cur.execute("SELECT current_setting('threads')").fetchone()[0])

    def explain(self, sql: str, params: dict[str, Any], *, analyze: bool = False) -> str:
        """The plan of a query; ``analyze`` runs it and adds what the scan read (files, row
        groups): the tests check that filters reach the Parquet scan."""
        head = "EXPLAIN ANALYZE " if analyze else "EXPLAIN "
        with self._connect().cursor() as cur:
            return "\n".join(str(r[1]) for r in cur.execute(head + sql, params).fetchall())

    def sidecar(self) -> ParquetEngine:
        """A second in-memory DuckDB over the same files (its own threads setting, so that it
        stays on one thread while this one runs a per-user pass on the other)."""
        with self._lock:
            if self._side is None:
                self._side = ParquetEngine(self.path, solo=True)
            return self._side

    def close(self) -> None:
        with self._lock:
            side, self._side = self._side, None
            if self._con is not None:
                self._con.close()
                self._con = None
        if side is not None:
            side.close()


def _set_threads(con: Any, n: int) -> None:
    """DuckDB's threads (a setting of the database): through a cursor of its own, since the
    connection may be in use on another thread."""
    with con.cursor() as cur:
        cur.execute(f"SET threads = {int(n)}")


class PostgresEngine(Engine):
    """A PostgreSQL table through psycopg 3 (``events.dsn`` and ``events.table``)."""

    dialect = "postgres"

    def __init__(self, dsn: str, table: str) -> None:
        self.dsn = dsn
        self.table = table
        self.label = f"postgres source {table!r} at {redact_dsn(dsn)}"
        self._lock = threading.Lock()
        self._conn: Any = None

    def relation(self) -> str:
        return quote_table(self.table)

    def _connect(self) -> Any:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                return self._conn
            try:
                import psycopg
            except ImportError:
                raise SourceError(
                    f"{self.label}: psycopg is not installed (pip install 'promptver[warehouse]')"
                ) from None
            try:
                conn = psycopg.connect(
                    self.dsn, autocommit=True, connect_timeout=10, options="-c TimeZone=UTC"
                )
            except psycopg.Error as exc:
                raise SourceError(f"{self.label}: cannot connect: {_first_line(exc)}") from None
            self._conn = conn
            return conn

    def schema(self) -> list[tuple[str, str]]:
        parts = self.table.split(".")
        schema, name = (parts[-2], parts[-1]) if len(parts) > 1 else (None, parts[-1])
        names, rows = self.run(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = coalesce(%(schema)s, current_schema())"
            " AND table_name = %(name)s ORDER BY ordinal_position",
            {"schema": schema, "name": name},
        )
        if not rows:
            raise SourceError(f"{self.label}: table {self.table!r} does not exist")
        return [(str(r[0]), str(r[1])) for r in rows]

    def run(self, sql: str, params: dict[str, Any]) -> Rows:
        import psycopg

        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                names = [d.name for d in cur.description or []]
                return names, cur.fetchall()
        except psycopg.OperationalError as exc:
            raise SourceError(f"{self.label}: connection lost: {_first_line(exc)}") from None
        except psycopg.Error as exc:
            raise SourceError(f"{self.label}: the query failed: {_first_line(exc)}") from None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class SparkEngine(Engine):
    """A Spark table (or Parquet files) through pyspark: Spark Connect at ``remote``, else a
    local-mode session (two cores, 1 GiB driver, two shuffle partitions)."""

    dialect = "spark"

    def __init__(self, table: str | None, path: str | None, remote: str | None) -> None:
        self.table = table
        self.path = path
        self.remote = remote
        what = f"table {table!r}" if table else f"files {path!r}"
        where = f" at {remote}" if remote else " (local mode)"
        self.label = f"spark source {what}{where}"
        self._lock = threading.Lock()
        self._spark: Any = None
        self._df: Any = None

    def _connect(self) -> Any:
        with self._lock:
            if self._spark is not None:
                return self._spark
            try:
                from pyspark.sql import SparkSession
            except ImportError:
                raise SourceError(
                    f"{self.label}: pyspark is not installed (pip install 'promptver[warehouse]')"
                ) from None
            builder = SparkSession.builder.appName("promptver")
            try:
                if self.remote:
                    spark = builder.remote(self.remote).getOrCreate()
                else:
                    spark = (
                        builder.master("local[2]")
                        .config("spark.driver.memory", "1g")
                        .config("spark.sql.shuffle.partitions", "2")
                        .config("spark.ui.enabled", "false")
                        .config("spark.sql.session.timeZone", "UTC")
                        .config("spark.ui.showConsoleProgress", "false")
                        # the local driver listens on loopback only (never the LAN's address)
                        .config("spark.driver.bindAddress", "127.0.0.1")
                        .config("spark.driver.host", "127.0.0.1")
                        .getOrCreate()
                    )
                    spark.sparkContext.setLogLevel("ERROR")
                spark.conf.set("spark.sql.session.timeZone", "UTC")
            except Exception as exc:  # the JVM or the server: any failure means no connection
                raise SourceError(f"{self.label}: cannot connect: {_first_line(exc)}") from None
            try:
                df = spark.table(self.table) if self.table else spark.read.parquet(self.path)
                df.createOrReplaceTempView(SOURCE_VIEW)
            except Exception as exc:
                msg = _first_line(exc)
                if self.table:
                    raise SourceError(
                        f"{self.label}: table {self.table!r} does not exist or cannot be read"
                        f" ({msg})"
                    ) from None
                raise SourceError(f"{self.label}: cannot read the files ({msg})") from None
            self._spark, self._df = spark, df
            return spark

    def schema(self) -> list[tuple[str, str]]:
        self._connect()
        return [(f.name, f.dataType.simpleString()) for f in self._df.schema.fields]

    def run(self, sql: str, params: dict[str, Any]) -> Rows:
        spark = self._connect()
        try:
            df = spark.sql(sql, args=params)
            rows = df.collect()
        except Exception as exc:  # Spark reports analysis and runtime errors as many types
            raise SourceError(f"{self.label}: the query failed: {_first_line(exc)}") from None
        return list(df.columns), [tuple(r) for r in rows]

    def close(self) -> None:
        # a local session belongs to the process (getOrCreate shares it): it is not stopped here
        with self._lock:
            self._spark = self._df = None


def make_engine(
    source: str, *, path: str | None, dsn: str | None, table: str | None, remote: str | None
) -> Engine:
    """The engine of an ``events:`` setting."""
    if source == "parquet":
        return ParquetEngine(str(path))
    if source == "postgres":
        return PostgresEngine(str(dsn), str(table))
    if source == "spark":
        return SparkEngine(table, path, remote)
    raise ValueError(source)
