//! The columns of a Parquet object: found from its records, or declared in a schema file
//! (`parquet.schema`).
//!
//! Found columns are every top-level field of the object's records, in the order they first
//! appear, after the time column. A field whose values are all booleans, all integers, all
//! numbers or all strings gets that type; one whose values disagree (a number here, a
//! string there) is a string column holding each value's JSON text; objects and arrays are
//! JSON text too (`json`). Nothing a record holds is left out.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::Deserialize;

use super::value::FieldValue;

/// The type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `true` or `false`.
    Boolean,
    /// A 64-bit integer.
    Int64,
    /// A 64-bit float.
    Float64,
    /// Text: strings as they are, any other value as its JSON text.
    String,
    /// Microseconds since 1970 in UTC: RFC 3339 text, or seconds since 1970 as a number.
    Timestamp,
    /// Any value as its JSON text, for objects and arrays.
    Json,
}

impl ColumnType {
    /// The names a schema file gives types, with the names Athena and Arrow use as well.
    const NAMES: [(&'static str, ColumnType); 11] = [
        ("string", ColumnType::String),
        ("int64", ColumnType::Int64),
        ("bigint", ColumnType::Int64),
        ("float64", ColumnType::Float64),
        ("double", ColumnType::Float64),
        ("boolean", ColumnType::Boolean),
        ("bool", ColumnType::Boolean),
        ("timestamp", ColumnType::Timestamp),
        ("json", ColumnType::Json),
        ("varchar", ColumnType::String),
        ("long", ColumnType::Int64),
    ];

    /// The type a schema file names `name` (in any case).
    pub fn parse(name: &str) -> Option<ColumnType> {
        let name = name.trim().to_ascii_lowercase();
        Self::NAMES
            .iter()
            .find(|(known, _)| *known == name)
            .map(|&(_, kind)| kind)
    }

    /// Its name in a schema file and in messages.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Boolean => "boolean",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::String => "string",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Json => "json",
        }
    }

    /// Its Arrow type; JSON text is a string column.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::String | ColumnType::Json => DataType::Utf8,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

/// One column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The field of the records it holds.
    pub name: String,
    /// Its type.
    pub kind: ColumnType,
}

/// The columns of an object, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Columns(pub Vec<Column>);

impl Columns {
    /// The Arrow schema of these columns; every column may be null.
    pub fn arrow_schema(&self) -> Arc<Schema> {
        let fields: Vec<Field> = self
            .0
            .iter()
            .map(|column| Field::new(&column.name, column.kind.arrow(), true))
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Reads a schema file: `{"columns": [{"name": "level", "type": "string"}, ...]}`. The
    /// time column (`json_date_key`) comes first unless the file places it; it must be a
    /// `timestamp`.
    ///
    /// # Errors
    ///
    /// What is wrong, with the column it concerns; the caller names the file.
    pub fn read(path: &Path, time_column: Option<&str>) -> Result<Columns, String> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            columns: Vec<Declared>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Declared {
            name: String,
            #[serde(rename = "type")]
            kind: String,
        }
        let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
        let file: File = serde_json::from_str(&text).map_err(|error| {
            format!(
                "{error}; expected {{\"columns\": [{{\"name\": \"level\", \"type\": \"string\"}}, ...]}}"
            )
        })?;
        if file.columns.is_empty() {
            return Err("it declares no columns".to_owned());
        }
        let mut columns = Vec::with_capacity(file.columns.len() + 1);
        for declared in file.columns {
            let kind = ColumnType::parse(&declared.kind).ok_or_else(|| {
                format!(
                    "column '{}' has the unknown type '{}'; the types are string, int64, \
                     float64, boolean, timestamp and json",
                    declared.name, declared.kind
                )
            })?;
            if declared.name.is_empty() {
                return Err("a column has an empty name".to_owned());
            }
            if columns.iter().any(|c: &Column| c.name == declared.name) {
                return Err(format!("column '{}' is declared twice", declared.name));
            }
            if Some(declared.name.as_str()) == time_column && kind != ColumnType::Timestamp {
                return Err(format!(
                    "column '{}' is the event time (json_date_key), so its type is timestamp, \
                     not {}",
                    declared.name,
                    kind.name()
                ));
            }
            columns.push(Column {
                name: declared.name,
                kind,
            });
        }
        if let Some(time) = time_column
            && !columns.iter().any(|c| c.name == time)
        {
            columns.insert(0, time_column_of(time));
        }
        Ok(Columns(columns))
    }
}

fn time_column_of(name: &str) -> Column {
    Column {
        name: name.to_owned(),
        kind: ColumnType::Timestamp,
    }
}

/// What the values of one field have been so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Null,
    Boolean,
    Int,
    Float,
    String,
    Json,
}

impl Seen {
    fn of(value: &FieldValue<'_>) -> Seen {
        match value {
            FieldValue::Null => Seen::Null,
            FieldValue::Boolean(_) => Seen::Boolean,
            FieldValue::Int(_) => Seen::Int,
            FieldValue::Float(_) => Seen::Float,
            FieldValue::String(_) => Seen::String,
            // An integer beyond i64 keeps its digits as text.
            FieldValue::Text(text) if !text.starts_with(['{', '[']) => Seen::String,
            FieldValue::Text(_) => Seen::Json,
        }
    }

    /// The type that holds values of both.
    fn widen(self, other: Seen) -> Seen {
        match (self, other) {
            (a, b) if a == b => a,
            (Seen::Null, b) => b,
            (a, Seen::Null) => a,
            (Seen::Int, Seen::Float) | (Seen::Float, Seen::Int) => Seen::Float,
            _ => Seen::String,
        }
    }

    fn column_type(self) -> ColumnType {
        match self {
            Seen::Boolean => ColumnType::Boolean,
            Seen::Int => ColumnType::Int64,
            Seen::Float => ColumnType::Float64,
            // A field that was always null is a string column of nulls.
            Seen::Null | Seen::String => ColumnType::String,
            Seen::Json => ColumnType::Json,
        }
    }
}

/// Finds the columns of records, one record at a time.
#[derive(Debug, Default)]
pub struct Inference {
    time_column: Option<String>,
    order: Vec<String>,
    seen: HashMap<String, Seen>,
}

impl Inference {
    /// Starts with nothing seen; `time_column` is the event time's field, if lines carry it.
    pub fn new(time_column: Option<&str>) -> Inference {
        Inference {
            time_column: time_column.map(str::to_owned),
            ..Inference::default()
        }
    }

    /// Takes in the fields of one record.
    pub fn add<'v>(&mut self, fields: impl IntoIterator<Item = (&'v str, FieldValue<'v>)>) {
        for (name, value) in fields {
            if Some(name) == self.time_column.as_deref() {
                continue;
            }
            let seen = Seen::of(&value);
            match self.seen.get_mut(name) {
                Some(known) => *known = known.widen(seen),
                None => {
                    self.order.push(name.to_owned());
                    self.seen.insert(name.to_owned(), seen);
                }
            }
        }
    }

    /// The columns of every record taken in.
    pub fn columns(self) -> Columns {
        let time = self.time_column.as_deref().map(time_column_of);
        let seen = self.seen;
        let fields = self.order.into_iter().map(|name| Column {
            kind: seen[&name].column_type(),
            name,
        });
        Columns(time.into_iter().chain(fields).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::parquet::value::Fields;

    fn infer(lines: &[&str]) -> Vec<(String, ColumnType)> {
        let mut inference = Inference::new(Some("date"));
        for line in lines {
            let fields: Fields<'_> = serde_json::from_str(line).unwrap();
            let values = fields.0.iter();
            inference.add(values.map(|(k, v)| (k.as_str(), FieldValue::read(v.get()))));
        }
        let columns = inference.columns().0;
        columns.into_iter().map(|c| (c.name, c.kind)).collect()
    }

    #[test]
    fn found_columns_follow_first_appearance_and_widen_conflicts_to_string() {
        let columns = infer(&[
            r#"{"date":"2024-05-01T10:00:00Z","level":"info","n":1,"ok":true,"x":null}"#,
            r#"{"date":"2024-05-01T10:00:01Z","n":2.5,"code":7,"nested":{"a":1}}"#,
            r#"{"date":"2024-05-01T10:00:02Z","code":"E7","ok":false,"big":18446744073709551615}"#,
        ]);
        use ColumnType::*;
        let expected = [
            ("date", Timestamp),
            ("level", String),
            ("n", Float64),
            ("ok", Boolean),
            ("x", String),
            ("code", String),
            ("nested", Json),
            ("big", String),
        ];
        let expected: Vec<_> = expected.iter().map(|(n, k)| (n.to_string(), *k)).collect();
        assert_eq!(columns, expected);
    }

    #[test]
    fn nested_and_scalar_values_of_one_field_are_a_string_column() {
        let columns = infer(&[r#"{"a":[1]}"#, r#"{"a":2}"#]);
        assert_eq!(columns[1], ("a".to_owned(), ColumnType::String));
    }

    #[test]
    fn schema_files_are_read_and_their_mistakes_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("schema.json");
        let read = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Columns::read(&path, Some("date"))
        };
        let columns = read(
            r#"{"columns":[{"name":"level","type":"string"},{"name":"status","type":"BIGINT"}]}"#,
        )
        .unwrap();
        let names: Vec<_> = columns
            .0
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            names,
            [
                ("date", ColumnType::Timestamp),
                ("level", ColumnType::String),
                ("status", ColumnType::Int64)
            ]
        );
        let error = read(r#"{"columns":[{"name":"status","type":"int"}]}"#).unwrap_err();
        assert!(
            error.contains("'status'") && error.contains("'int'"),
            "{error}"
        );
        let error = read(r#"{"columns":[{"name":"date","type":"string"}]}"#).unwrap_err();
        assert!(error.contains("json_date_key"), "{error}");
        let error =
            read(r#"{"columns":[{"name":"a","type":"string"},{"name":"a","type":"json"}]}"#)
                .unwrap_err();
        assert!(error.contains("twice"), "{error}");
        assert!(
            read(r#"{"columns":[]}"#)
                .unwrap_err()
                .contains("no columns")
        );
        assert!(read(r#"[{"name":"a"}]"#).unwrap_err().contains("expected"));
    }
}
