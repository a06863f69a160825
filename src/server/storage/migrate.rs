//! `stoa migrate-db`: copies everything from a SQLite database into PostgreSQL (users,
//! sessions, keys, conversations, messages, collections, documents, chunks with their
//! vectors), table by table in batches. Rows are upserted by primary key, so a run that
//! stopped half-way is simply run again. Ends with a row count check of every table.

use sqlx::{Postgres, QueryBuilder, Row, ValueRef, sqlite::SqliteRow};

use super::{
    StoreError, postgres::PgStore, postgres_documents::to_text, sqlite::SqliteStore,
    sqlite_documents::from_blob,
};

/// Every table Stoa keeps, parents before children (foreign keys hold at every step).
/// SQLite's full-text tables are not copied: PostgreSQL computes its own search columns.
const TABLES: &[(&str, &str)] = &[
    ("users", "id"),
    ("instance_settings", "key"),
    ("sessions", "token_hash"),
    ("api_keys", "id"),
    ("conversations", "id"),
    // Insertion order: a message's parent was stored before it.
    ("messages", "rowid"),
    ("collections", "id"),
    ("documents", "id"),
    ("chunks", "id"),
    ("conversation_collections", "conversation_id, collection_id"),
];

const BATCH: usize = 200;

/// One table's rows on each side after the copy.
pub struct Copied {
    pub table: &'static str,
    pub source: i64,
    pub target: i64,
}

/// A column of the PostgreSQL table: its name and how to read it from SQLite.
struct Target {
    name: String,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Text,
    Bytes,
    /// pgvector: SQLite keeps the vector as little-endian f32 bytes.
    Vector,
}

async fn target_columns(pg: &PgStore, table: &str) -> Result<(Vec<Target>, Vec<String>), StoreError> {
    let rows = sqlx::query(
        "SELECT column_name, data_type, udt_name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND is_generated = 'NEVER' \
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pg.pool())
    .await?;
    let mut columns = Vec::new();
    for row in rows {
        let (name, data_type, udt): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let kind = match (data_type.as_str(), udt.as_str()) {
            ("bigint" | "integer" | "smallint", _) => Kind::Int,
            ("double precision" | "real" | "numeric", _) => Kind::Float,
            ("text" | "character varying", _) => Kind::Text,
            ("bytea", _) => Kind::Bytes,
            (_, "vector") => Kind::Vector,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "{table}.{name}: cannot copy type {other:?}"
                )));
            }
        };
        columns.push(Target { name, kind });
    }
    let keys: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = $1::regclass AND i.indisprimary",
    )
    .bind(table)
    .fetch_all(pg.pool())
    .await?;
    Ok((columns, keys))
}

/// Appends one SQLite row's values, bound with the target column's type.
fn push_row(
    values: &mut sqlx::query_builder::Separated<'_, '_, Postgres, &'static str>,
    row: &SqliteRow,
    columns: &[Target],
) -> Result<(), StoreError> {
    for (i, column) in columns.iter().enumerate() {
        let null = row.try_get_raw(i)?.is_null();
        match column.kind {
            Kind::Int => values.push_bind(row.try_get::<Option<i64>, _>(i)?),
            Kind::Float => values.push_bind(row.try_get::<Option<f64>, _>(i)?),
            Kind::Text => values.push_bind(row.try_get::<Option<String>, _>(i)?),
            Kind::Bytes => values.push_bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
            Kind::Vector => {
                let text = if null {
                    None
                } else {
                    Some(to_text(&from_blob(&row.try_get::<Vec<u8>, _>(i)?)))
                };
                values.push_bind(text).push_unseparated("::vector")
            }
        };
    }
    Ok(())
}

/// `ON CONFLICT` for a table with primary key `keys`: rerunning the copy updates what an
/// earlier run copied instead of failing on it.
fn upsert_clause(names: &[&str], keys: &[String]) -> String {
    let updates: Vec<String> = names
        .iter()
        .filter(|n| !keys.iter().any(|k| k == *n))
        .map(|n| format!("{n} = EXCLUDED.{n}"))
        .collect();
    match (keys.is_empty(), updates.is_empty()) {
        (true, _) => String::new(),
        (false, true) => format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")),
        (false, false) => format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            updates.join(", ")
        ),
    }
}

/// Writes one batch of SQLite rows into PostgreSQL as one multi-row insert.
async fn insert_batch(
    to: &PgStore,
    table: &str,
    list: &str,
    rows: &[SqliteRow],
    columns: &[Target],
    on_conflict: &str,
) -> Result<(), StoreError> {
    let mut insert = QueryBuilder::<Postgres>::new(format!("INSERT INTO {table} ({list}) VALUES "));
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            insert.push(", ");
        }
        insert.push("(");
        push_row(&mut insert.separated(", "), row, columns)?;
        insert.push(")");
    }
    insert.push(on_conflict);
    let mut tx = to.pool().begin().await?;
    insert.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn copy_table(
    from: &SqliteStore,
    to: &PgStore,
    table: &'static str,
    order: &str,
) -> Result<Copied, StoreError> {
    let (columns, keys) = target_columns(to, table).await?;
    let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    // Nothing may be left behind: every SQLite column needs its PostgreSQL twin.
    let theirs: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
        .fetch_all(from.pool())
        .await?;
    if let Some(lost) = theirs.iter().find(|c| !names.contains(&c.as_str())) {
        return Err(StoreError::Corrupt(format!(
            "{table}.{lost} has no column in PostgreSQL"
        )));
    }
    let list = names.join(", ");
    let source: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(from.pool())
        .await?;
    let on_conflict = upsert_clause(&names, &keys);
    let mut offset = 0i64;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {list} FROM {table} ORDER BY {order} LIMIT ? OFFSET ?"
        ))
        .bind(BATCH as i64)
        .bind(offset)
        .fetch_all(from.pool())
        .await?;
        if rows.is_empty() {
            break;
        }
        insert_batch(to, table, &list, &rows, &columns, &on_conflict).await?;
        offset += rows.len() as i64;
    }
    // Identity columns go on after the largest id copied.
    if table == "users" || table == "chunks" {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST((SELECT max(id) FROM {table}), 1))"
        ))
        .execute(to.pool())
        .await?;
    }
    let target: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(to.pool())
        .await?;
    Ok(Copied {
        table,
        source,
        target,
    })
}

/// Copies every table; `progress` hears about each one as it is done. Fails if a table
/// has fewer rows in PostgreSQL than in SQLite afterwards.
pub async fn sqlite_to_postgres(
    from: &SqliteStore,
    to: &PgStore,
    mut progress: impl FnMut(&Copied),
) -> Result<Vec<Copied>, StoreError> {
    let mut done = Vec::new();
    for &(table, order) in TABLES {
        let copied = copy_table(from, to, table, order).await?;
        progress(&copied);
        done.push(copied);
    }
    if let Some(short) = done.iter().find(|c| c.target < c.source) {
        return Err(StoreError::Corrupt(format!(
            "{}: {} rows in SQLite but {} in PostgreSQL after copying",
            short.table, short.source, short.target
        )));
    }
    Ok(done)
}
