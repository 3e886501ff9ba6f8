//! One way of speaking SQL to either database the store runs on: SQLite
//! (embedded, one school) or PostgreSQL (a trust's shared database).
//!
//! The store's parts write their SQL once, in the common ground of the
//! two dialects, and run it through a [`Db`]:
//! - parameters are `?` or `?N` (SQLite's); for PostgreSQL they become
//!   `$N`, by SQLite's own numbering (a bare `?` is one more than the
//!   largest number before it);
//! - values cross as a [`Value`]: integers (flags are 0 or 1 in both
//!   schemas), reals, text, bytes or null; a PostgreSQL parameter takes
//!   the type the server inferred for it, so `?` binds to `BIGINT`,
//!   `INTEGER` and `TEXT` columns alike;
//! - a row is read as [`Value`]s by position, and [`Row::get`] converts,
//!   refusing a value of the wrong kind (the data is then damaged: see
//!   [`SqlError::Column`]).
//!
//! What the dialects do not share (`PRAGMA`, JSON functions, a few
//! built-ins) goes through [`Db::dialect`].

use std::collections::HashMap;
use std::error::Error as StdError;

use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// Which database a [`Db`] speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// A subquery of the text values of a JSON array given as the one
    /// parameter (`["a", "b"]`): `SELECT value FROM json_each(?)` in
    /// SQLite's words.
    pub fn json_text_values(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT value FROM json_each(?)",
            Dialect::Postgres => "SELECT jsonb_array_elements_text(CAST(CAST(? AS TEXT) AS jsonb))",
        }
    }
}

/// A value crossing to or from either database.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What went wrong talking to a database.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    /// A stored value of a kind or shape no console writes.
    #[error("column {column}: {message}")]
    Column { column: usize, message: String },
    /// `query_row` found no row.
    #[error("no row where one was expected")]
    NoRow,
    /// No connection to the database could be had.
    #[error("{0}")]
    Unavailable(String),
    /// The store's own refusal or finding (a change that would leave a
    /// tie, a stored value that does not read), made inside a transaction:
    /// the transaction rolls back and the caller gets this error as it is.
    #[error("{0}")]
    Abort(Box<super::StoreError>),
}

/// The server's own words for an error (`postgres::Error` shows only "db
/// error"), or the client's.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                m.push_str(&format!("; {detail}"));
            }
            if let Some(hint) = db.hint() {
                m.push_str(&format!("; {hint}"));
            }
            m
        }
        None => match e.source() {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

impl SqlError {
    /// True when the database's disk (or quota) is full.
    pub fn is_disk_full(&self) -> bool {
        match self {
            SqlError::Sqlite(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            other => other.sqlstate() == Some("53100"),
        }
    }

    /// The store's error for this one, met while `during`: a stored value
    /// of the wrong kind is damage ([`super::StoreError::Corrupt`]).
    pub fn during(self, during: &'static str) -> super::StoreError {
        match self {
            SqlError::Column { column, message } => {
                super::StoreError::Corrupt(format!("while {during}: column {column}: {message}"))
            }
            SqlError::Unavailable(m) => super::StoreError::Unavailable(m),
            SqlError::Abort(e) => *e,
            source => super::StoreError::Sql { during, source },
        }
    }

    /// The PostgreSQL error code (SQLSTATE), if this is a server's error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            SqlError::Postgres(e) => e.code().map(postgres::error::SqlState::code),
            _ => None,
        }
    }
}

/// A value that can be a parameter.
pub trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i64, i32, i16, i8, u32, u16, u8);

impl ToValue for u64 {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(i64::from(*self))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToValue for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl ToValue for uuid::Uuid {
    fn to_value(&self) -> Value {
        Value::Text(self.hyphenated().to_string())
    }
}

impl ToValue for protocol::UnixMillis {
    fn to_value(&self) -> Value {
        Value::Int(self.0)
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// Parameters for a statement: `params![a, b, c]`.
#[macro_export]
macro_rules! sql_params {
    () => { [] as [$crate::store::sql::Value; 0] };
    ($($p:expr),+ $(,)?) => {
        [$($crate::store::sql::ToValue::to_value(&$p)),+]
    };
}
pub use crate::sql_params as params;

/// A value that can be read from a column.
pub trait FromValue: Sized {
    /// # Errors
    /// A message saying what was found instead.
    fn from_value(v: &Value) -> Result<Self, String>;
}

impl FromValue for Value {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}

fn found(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Int(i) => format!("the integer {i}"),
        Value::Real(r) => format!("the real {r}"),
        Value::Text(t) => format!("the text {t:?}"),
        Value::Blob(b) => format!("{} bytes", b.len()),
    }
}

impl FromValue for i64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", found(other))),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(v: &Value) -> Result<Self, String> {
                let i = i64::from_value(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} is out of range for {}", stringify!($t)))
            }
        }
    )*};
}
int_from_value!(i32, i16, u64, u32, u16, u8, usize);

impl FromValue for bool {
    fn from_value(v: &Value) -> Result<Self, String> {
        Ok(i64::from_value(v)? != 0)
    }
}

impl FromValue for f64 {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(r) => Ok(*r),
            Value::Int(i) => Ok(*i as f64),
            other => Err(format!("expected a number, found {}", found(other))),
        }
    }
}

impl FromValue for String {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(t) => Ok(t.clone()),
            other => Err(format!("expected text, found {}", found(other))),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Blob(b) => Ok(b.clone()),
            Value::Text(t) => Ok(t.as_bytes().to_vec()),
            other => Err(format!("expected bytes, found {}", found(other))),
        }
    }
}

impl FromValue for uuid::Uuid {
    fn from_value(v: &Value) -> Result<Self, String> {
        let text = String::from_value(v)?;
        uuid::Uuid::parse_str(&text).map_err(|e| format!("{text:?} is not an id: {e}"))
    }
}

impl FromValue for protocol::UnixMillis {
    fn from_value(v: &Value) -> Result<Self, String> {
        i64::from_value(v).map(protocol::UnixMillis)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One row of a result, by column position.
#[derive(Debug)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `i` as a `T`.
    ///
    /// # Errors
    /// [`SqlError::Column`] if there is no such column or it holds a value
    /// of another kind.
    /// Every column, in order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    pub fn get<T: FromValue>(&self, i: usize) -> Result<T, SqlError> {
        let v = self.values.get(i).ok_or_else(|| SqlError::Column {
            column: i,
            message: format!("the row has {} columns", self.values.len()),
        })?;
        T::from_value(v).map_err(|message| SqlError::Column { column: i, message })
    }
}

/// A connection, or a transaction, on either database.
pub enum Db<'c, 't> {
    Sqlite(&'c rusqlite::Connection),
    Postgres {
        tx: &'c mut postgres::Transaction<'t>,
        /// Statements prepared on this connection, by their SQLite text.
        prepared: &'c mut HashMap<String, postgres::Statement>,
    },
}

impl Db<'_, '_> {
    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres { .. } => Dialect::Postgres,
        }
    }

    /// Runs a statement; returns the rows it changed.
    ///
    /// # Errors
    /// The database's error.
    pub fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, SqlError> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let n = stmt.execute(rusqlite::params_from_iter(params.iter()))?;
                Ok(n as u64)
            }
            Db::Postgres { tx, prepared } => {
                let stmt = pg_statement(tx, prepared, sql)?;
                let refs = pg_params(params);
                Ok(tx.execute(&stmt, &refs)?)
            }
        }
    }

    /// Every row of a query, each made into a `T` by `f`.
    ///
    /// # Errors
    /// The database's error, or `f`'s.
    pub fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        match self {
            Db::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let values = (0..columns)
                        .map(|i| r.get_ref(i).map(sqlite_value))
                        .collect::<Result<_, _>>()?;
                    out.push(f(&Row { values })?);
                }
                Ok(out)
            }
            Db::Postgres { tx, prepared } => {
                let stmt = pg_statement(tx, prepared, sql)?;
                let refs = pg_params(params);
                let rows = tx.query(&stmt, &refs)?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let values = (0..r.len())
                        .map(|i| r.try_get::<_, PgValue>(i).map(|v| v.0))
                        .collect::<Result<_, _>>()?;
                    out.push(f(&Row { values })?);
                }
                Ok(out)
            }
        }
    }

    /// The first row of a query, made into a `T`; [`SqlError::NoRow`] if
    /// there is none.
    ///
    /// # Errors
    /// The database's error, `f`'s, or no row.
    pub fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.query_opt(sql, params, f)?.ok_or(SqlError::NoRow)
    }

    /// The first row of a query, if any, made into a `T`.
    ///
    /// # Errors
    /// The database's error, or `f`'s.
    pub fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        f: impl FnMut(&Row) -> Result<T, SqlError>,
    ) -> Result<Option<T>, SqlError> {
        Ok(self.query_map(sql, params, f)?.into_iter().next())
    }

    /// Runs several statements with no parameters (a migration).
    ///
    /// # Errors
    /// The database's error.
    pub fn batch(&mut self, sql: &str) -> Result<(), SqlError> {
        match self {
            Db::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Db::Postgres { tx, .. } => Ok(tx.batch_execute(sql)?),
        }
    }
}

/// A value SQLite gave, as a [`Value`].
pub fn sqlite_value(v: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(r) => ValueRef::Real(*r),
            Value::Text(t) => ValueRef::Text(t.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

fn pg_statement(
    tx: &mut postgres::Transaction<'_>,
    prepared: &mut HashMap<String, postgres::Statement>,
    sql: &str,
) -> Result<postgres::Statement, SqlError> {
    if let Some(stmt) = prepared.get(sql) {
        return Ok(stmt.clone());
    }
    let stmt = tx.prepare(&for_postgres(sql))?;
    prepared.insert(sql.to_owned(), stmt.clone());
    Ok(stmt)
}

fn pg_params(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

/// A statement in the common dialect as PostgreSQL takes it: SQLite's `?`
/// and `?N` parameters become `$N`, by SQLite's numbering, and the column
/// names `user` and `end` (reserved words in PostgreSQL; SQL's own
/// keywords are written in capitals, `END`) are quoted. Quoted text and
/// names are left alone.
pub fn for_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut largest = 0u32;
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = if digits.is_empty() {
                    largest + 1
                } else {
                    digits.parse().unwrap_or(u32::MAX)
                };
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut word = String::from(c);
                while let Some(w) = chars
                    .peek()
                    .filter(|w| w.is_ascii_alphanumeric() || **w == '_')
                {
                    word.push(*w);
                    chars.next();
                }
                if word == "user" || word == "end" {
                    out.push('"');
                    out.push_str(&word);
                    out.push('"');
                } else {
                    out.push_str(&word);
                }
            }
            c => out.push(c),
        }
    }
    out
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be a parameter of type {ty}").into()),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (*r as f32).to_sql(ty, out),
                _ => Err(format!("a real cannot be a parameter of type {ty}").into()),
            },
            Value::Text(t) => t.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::FLOAT8
                | Type::FLOAT4
                | Type::TEXT
                | Type::VARCHAR
                | Type::BPCHAR
                | Type::NAME
                | Type::UNKNOWN
                | Type::JSON
                | Type::JSONB
                | Type::BYTEA
        )
    }

    to_sql_checked!();
}

/// A column of any type the store uses, read as a [`Value`].
struct PgValue(Value);

impl<'a> FromSql<'a> for PgValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(PgValue(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Int(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(<Vec<u8>>::from_sql(ty, raw)?),
            _ => Value::Text(String::from_sql(ty, raw)?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(PgValue(Value::Null))
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8
                | Type::INT4
                | Type::INT2
                | Type::BOOL
                | Type::FLOAT8
                | Type::FLOAT4
                | Type::BYTEA
        ) || <String as FromSql>::accepts(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_numbered_as_sqlite_numbers_them() {
        assert_eq!(for_postgres("a = ? AND b = ?"), "a = $1 AND b = $2");
        assert_eq!(
            for_postgres("a = ?2 AND b = ?1 OR c = ?"),
            "a = $2 AND b = $1 OR c = $3"
        );
        assert_eq!(
            for_postgres("x = '?' AND y = \"a?\" AND z = ?"),
            "x = '?' AND y = \"a?\" AND z = $1"
        );
        assert_eq!(for_postgres("it''s ? "), "it''s $1 ");
    }

    #[test]
    fn the_reserved_column_names_are_quoted_for_postgres() {
        assert_eq!(
            for_postgres(
                "SELECT c.user, user_id, CASE WHEN end > 1 THEN 1 END FROM t WHERE user = ?"
            ),
            "SELECT c.\"user\", user_id, CASE WHEN \"end\" > 1 THEN 1 END FROM t WHERE \"user\" = $1"
        );
        assert_eq!(for_postgres("'user' users"), "'user' users");
    }
}
