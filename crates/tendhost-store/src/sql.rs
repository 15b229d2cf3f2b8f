//! Small conversions shared by the table modules: JSON columns to and from text, counts, and
//! list paging. No table knowledge here.

use rusqlite::Row;
use rusqlite::types::Type;
use serde_json::Value;

/// JSON text for a JSON column.
pub(crate) fn json_text(value: &Value) -> String {
    value.to_string()
}

/// JSON text for a nullable JSON column.
pub(crate) fn opt_json_text(value: Option<&Value>) -> Option<String> {
    value.map(json_text)
}

/// Reads a JSON column; text that does not parse is a conversion error naming the column.
pub(crate) fn json_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Value> {
    let text: String = row.get(idx)?;
    parse_json(idx, &text)
}

/// Reads a nullable JSON column.
pub(crate) fn opt_json_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(idx)?;
    text.map(|text| parse_json(idx, &text)).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(idx: usize, text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(error))
    })
}

/// Reads a JSON array of strings.
pub(crate) fn string_list_column(row: &Row<'_>, idx: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(idx)?;
    parse_json(idx, &text)
}

/// Rows changed, as the store's count type.
pub(crate) fn count(n_rows: usize) -> u64 {
    u64::try_from(n_rows).unwrap_or(u64::MAX)
}

/// A `COUNT(*)` result (never negative) as the store's count type.
pub(crate) fn total(n_rows: i64) -> u64 {
    u64::try_from(n_rows).unwrap_or(0)
}
