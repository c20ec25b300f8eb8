//! Parquet objects: a sealed object's JSON lines, written out as one Parquet file to be
//! delivered.
//!
//! A Parquet object is journalled and stored like any other, as JSON lines in its codec, so
//! a crash loses nothing and recovery works as it does for every object. Only when the
//! object is delivered are its lines read back, twice: once to find its columns (unless a
//! schema file declares them), once to write its rows, [`BATCH_ROWS`] at a time, in row
//! groups of at most `parquet.row_group_size` bytes. Memory stays bounded by those two,
//! whatever the object's size.
//!
//! The Parquet file is written beside the object's file ([`beside`]), synced and renamed
//! into place, and kept until the object is delivered: every attempt, after a restart too,
//! sends the same bytes, so an upload in parts resumes where it stopped.

mod schema;
mod value;

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::Schema;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PageCodec, GzipLevel, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

pub use schema::{Column, ColumnType, Columns, Inference};
use value::{FieldValue, Fields};

use crate::object::codec::Codec;
use crate::store::{journal, private};

/// Records converted at a time: the rows held in memory before they go to the writer.
pub const BATCH_ROWS: usize = 4096;
/// The most bytes of a page, and of a column's dictionary: every column holds one of each
/// while its row group is written. Half the writer's default, for about 10 MiB less peak
/// memory at a ratio 0.5% lower (BENCHMARKS.md).
const PAGE_BYTES: usize = 512 * 1024;

/// How a Parquet file's pages are compressed (`compression` with `format parquet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCompression {
    /// Not compressed.
    None,
    /// Snappy.
    Snappy,
    /// Gzip at a level from 1 to 9.
    Gzip(u32),
    /// Zstd at a level from 1 to 19.
    Zstd(i32),
}

/// How Parquet objects are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetOptions {
    /// The page compression.
    pub compression: PageCompression,
    /// The most bytes a row group holds (`parquet.row_group_size`).
    pub row_group_bytes: usize,
    /// The declared columns (`parquet.schema`); None: found from each object's records.
    pub schema: Option<Columns>,
    /// The field of the event time (`json_date_key`), a timestamp column.
    pub time_column: Option<String>,
}

/// What a conversion wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Converted {
    /// Rows written.
    pub rows: u64,
    /// The Parquet file's length.
    pub len: u64,
    /// Values that did not fit their declared column, written as null.
    pub unfit: u64,
    /// The first of them: its field, value and column type.
    pub first_unfit: Option<String>,
}

/// Why an object was not converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file operation failed.
    #[error("{action} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A line of the object is no JSON object: converting it again will not help.
    #[error("{} line {line}: {reason}", .path.display())]
    Record {
        /// The object's file.
        path: PathBuf,
        /// The line, from 1.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// The Parquet writer failed.
    #[error("writing Parquet file {}: {source}", .path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The writer's error.
        source: ParquetError,
    },
}

impl ConvertError {
    /// Whether trying again may succeed: a disk that filled up may not be full later, a
    /// line that is no JSON object stays so.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, ConvertError::Record { .. })
    }

    /// The cause without the object it happened to, as delivery failures are grouped.
    pub fn cause(&self) -> String {
        match self {
            ConvertError::Io { action, source, .. } => format!("{action} a Parquet file: {source}"),
            ConvertError::Record { reason, .. } => reason.clone(),
            ConvertError::Parquet { source, .. } => format!("writing a Parquet file: {source}"),
        }
    }
}

/// The Parquet file beside the object file at `path`.
pub fn beside(path: &Path) -> PathBuf {
    path.with_extension("parquet")
}

/// Whether the file at `path` ends in a Parquet footer that reads: a file cut short, or
/// damaged where its footer is, does not.
pub fn is_whole(path: &Path) -> bool {
    File::open(path)
        .is_ok_and(|file| parquet::file::reader::SerializedFileReader::new(file).is_ok())
}

/// Writes the Parquet files of an instance, one at a time: each holds a row group in
/// memory, so several at once would multiply the memory, and take the cores the input needs.
#[derive(Debug)]
pub struct ParquetWriter {
    options: ParquetOptions,
    turn: std::sync::Mutex<()>,
}

impl ParquetWriter {
    /// Writes with `options`.
    pub fn new(options: ParquetOptions) -> ParquetWriter {
        ParquetWriter {
            options,
            turn: std::sync::Mutex::new(()),
        }
    }

    /// [`convert`], once the Parquet file written before is done.
    ///
    /// # Errors
    ///
    /// As [`convert`].
    pub fn convert(
        &self,
        source: &Path,
        codec: Codec,
        target: &Path,
    ) -> Result<Converted, ConvertError> {
        let _turn = self
            .turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        convert(source, codec, &self.options, target)
    }
}

/// Writes the object at `source`, JSON lines stored with `codec`, as a Parquet file at
/// `target`, whole or not at all (written beside it, synced and renamed into place).
///
/// # Errors
///
/// When the object cannot be read, holds a line that is no JSON object, or the file
/// cannot be written; nothing is left at `target` then.
pub fn convert(
    source: &Path,
    codec: Codec,
    options: &ParquetOptions,
    target: &Path,
) -> Result<Converted, ConvertError> {
    let columns = match &options.schema {
        Some(columns) => columns.clone(),
        None => {
            let mut inference = Inference::new(options.time_column.as_deref());
            each_record(source, codec, |record| {
                let fields = record.0.iter();
                inference
                    .add(fields.map(|(name, raw)| (name.as_str(), FieldValue::read(raw.get()))));
                Ok(())
            })?;
            inference.columns()
        }
    };
    let fresh = target.with_extension("parquet-new");
    let written = write(source, codec, options, &columns, &fresh);
    let renamed = written.and_then(|converted| {
        std::fs::rename(&fresh, target)
            .and_then(|()| journal::sync_parent(target))
            .map_err(|source| ConvertError::Io {
                action: "renaming into place",
                path: target.to_owned(),
                source,
            })?;
        Ok(converted)
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(&fresh);
    }
    renamed
}

fn write(
    source: &Path,
    codec: Codec,
    options: &ParquetOptions,
    columns: &Columns,
    fresh: &Path,
) -> Result<Converted, ConvertError> {
    let parquet_error = |source| ConvertError::Parquet {
        path: fresh.to_owned(),
        source,
    };
    let file = private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(fresh)
        .map_err(|source| ConvertError::Io {
            action: "creating",
            path: fresh.to_owned(),
            source,
        })?;
    let schema = columns.arrow_schema();
    let mut writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(properties(options)))
        .map_err(parquet_error)?;
    let mut rows = Rows::new(columns);
    let mut converted = Converted::default();
    each_record(source, codec, |record| {
        rows.push(record, &mut converted);
        if rows.len == BATCH_ROWS {
            writer.write(&rows.take(&schema)).map_err(parquet_error)?;
        }
        Ok(())
    })?;
    if rows.len > 0 {
        writer.write(&rows.take(&schema)).map_err(parquet_error)?;
    }
    writer.finish().map_err(parquet_error)?;
    writer
        .inner()
        .sync_all()
        .map_err(|source| ConvertError::Io {
            action: "syncing",
            path: fresh.to_owned(),
            source,
        })?;
    converted.len = std::fs::metadata(fresh)
        .map_err(|source| ConvertError::Io {
            action: "reading the length of",
            path: fresh.to_owned(),
            source,
        })?
        .len();
    Ok(converted)
}

fn properties(options: &ParquetOptions) -> WriterProperties {
    let codec = match options.compression {
        PageCompression::None => PageCodec::UNCOMPRESSED,
        PageCompression::Snappy => PageCodec::SNAPPY,
        PageCompression::Gzip(level) => {
            PageCodec::GZIP(GzipLevel::try_new(level).unwrap_or_default())
        }
        PageCompression::Zstd(level) => {
            PageCodec::ZSTD(ZstdLevel::try_new(level).unwrap_or_default())
        }
    };
    WriterProperties::builder()
        .set_data_page_size_limit(PAGE_BYTES)
        .set_dictionary_page_size_limit(PAGE_BYTES)
        .set_compression(codec)
        .set_max_row_group_bytes(Some(options.row_group_bytes.max(1)))
        .build()
}

/// Calls `visit` with each record of the object at `path`, in order.
fn each_record(
    path: &Path,
    codec: Codec,
    mut visit: impl FnMut(Fields<'_>) -> Result<(), ConvertError>,
) -> Result<(), ConvertError> {
    let io_error = |action| {
        move |source| ConvertError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let file = File::open(path).map_err(io_error("opening"))?;
    let decoded = codec
        .format()
        .reader(Box::new(file))
        .map_err(io_error("reading"))?;
    let mut reader = BufReader::with_capacity(256 * 1024, decoded);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader
            .read_until(b'\n', &mut line)
            .map_err(io_error("reading"))?
            == 0
        {
            return Ok(());
        }
        number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        let fields =
            serde_json::from_slice::<Fields<'_>>(text).map_err(|error| ConvertError::Record {
                path: path.to_owned(),
                line: number,
                reason: format!("not a JSON object ({error})"),
            })?;
        visit(fields)?;
    }
}

/// The rows of one batch, column by column.
struct Rows<'a> {
    columns: &'a Columns,
    /// Each column's index by its name.
    index: std::collections::HashMap<&'a str, usize>,
    builders: Vec<Builder>,
    /// For each column, which of a record's fields holds it; reused from record to record.
    slots: Vec<Option<usize>>,
    len: usize,
}

enum Builder {
    Boolean(BooleanBuilder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    /// Text; `true` when every value is written as JSON, strings too.
    Text(StringBuilder, bool),
    Timestamp(TimestampMicrosecondBuilder),
}

impl<'a> Rows<'a> {
    fn new(columns: &'a Columns) -> Rows<'a> {
        Rows {
            columns,
            index: columns
                .0
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.as_str(), i))
                .collect(),
            builders: columns.0.iter().map(|c| Builder::new(c.kind)).collect(),
            slots: vec![None; columns.0.len()],
            len: 0,
        }
    }

    fn push(&mut self, record: Fields<'_>, converted: &mut Converted) {
        for (at, (name, _)) in record.0.iter().enumerate() {
            if let Some(&i) = self.index.get(name.as_str()) {
                self.slots[i] = Some(at);
            }
        }
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let raw = self.slots[i].take().map(|at| record.0[at].1.get());
            let value = raw.map_or(FieldValue::Null, FieldValue::read);
            if !builder.append(&value, raw) {
                converted.unfit += 1;
                if converted.first_unfit.is_none() {
                    let column = &self.columns.0[i];
                    let mut text = raw.unwrap_or_default().to_owned();
                    if text.len() > 100 {
                        let cut = (0..=100).rev().find(|&i| text.is_char_boundary(i));
                        text.truncate(cut.unwrap_or(0));
                        text.push_str("...");
                    }
                    converted.first_unfit = Some(format!(
                        "field '{}' holds {text}, which is no {}",
                        column.name,
                        column.kind.name()
                    ));
                }
            }
        }
        self.len += 1;
        converted.rows += 1;
    }

    /// The batch so far, leaving the builders empty.
    fn take(&mut self, schema: &Arc<Schema>) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        // The count of rows says it when there is no column (records without fields).
        let rows = RecordBatchOptions::new().with_row_count(Some(std::mem::take(&mut self.len)));
        RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &rows)
            .expect("the builders follow the schema's types, and each has a value per row")
    }
}

impl Builder {
    fn new(kind: ColumnType) -> Builder {
        match kind {
            ColumnType::Boolean => Builder::Boolean(BooleanBuilder::new()),
            ColumnType::Int64 => Builder::Int64(Int64Builder::new()),
            ColumnType::Float64 => Builder::Float64(Float64Builder::new()),
            ColumnType::String => Builder::Text(StringBuilder::new(), false),
            ColumnType::Json => Builder::Text(StringBuilder::new(), true),
            ColumnType::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone("UTC"))
            }
        }
    }

    /// Appends `value` (whose JSON text is `raw`); false when it does not fit the column,
    /// and null is appended instead.
    fn append(&mut self, value: &FieldValue<'_>, raw: Option<&str>) -> bool {
        let value = Some(value).filter(|v| **v != FieldValue::Null);
        match self {
            Builder::Boolean(b) => fits(value, |v| b.append_option(v), as_bool),
            Builder::Int64(b) => fits(value, |v| b.append_option(v), as_i64),
            Builder::Float64(b) => fits(value, |v| b.append_option(v), as_f64),
            Builder::Timestamp(b) => fits(value, |v| b.append_option(v), as_micros),
            Builder::Text(b, json) => {
                match (value, raw) {
                    (None, _) | (_, None) => b.append_null(),
                    (Some(FieldValue::String(s)), _) if !*json => b.append_value(s),
                    (Some(_), Some(raw)) => b.append_value(raw),
                }
                true
            }
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Text(b, _) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
        }
    }
}

/// Appends the conversion of `value` (null for none, or when it does not convert); false when
/// there was a value that did not.
fn fits<T>(
    value: Option<&FieldValue<'_>>,
    mut append: impl FnMut(Option<T>),
    convert: fn(&FieldValue<'_>) -> Option<T>,
) -> bool {
    let converted = value.map(convert);
    let fit = !matches!(converted, Some(None));
    append(converted.flatten());
    fit
}

fn as_bool(value: &FieldValue<'_>) -> Option<bool> {
    match value {
        FieldValue::Boolean(b) => Some(*b),
        FieldValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_i64(value: &FieldValue<'_>) -> Option<i64> {
    match value {
        FieldValue::Int(i) => Some(*i),
        // A whole float within range, such as 200.0.
        FieldValue::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(*f as i64),
        FieldValue::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn as_f64(value: &FieldValue<'_>) -> Option<f64> {
    match value {
        FieldValue::Int(i) => Some(*i as f64),
        FieldValue::Float(f) => Some(*f),
        FieldValue::String(s) => s.trim().parse().ok(),
        FieldValue::Text(t) if !t.starts_with(['{', '[']) => t.parse().ok(),
        _ => None,
    }
}

/// RFC 3339 text, or seconds since 1970 as a number, in microseconds since 1970.
fn as_micros(value: &FieldValue<'_>) -> Option<i64> {
    let seconds = match value {
        FieldValue::String(s) => {
            return chrono::DateTime::parse_from_rfc3339(s.trim())
                .ok()
                .map(|t| t.timestamp_micros());
        }
        FieldValue::Int(i) => *i as f64,
        FieldValue::Float(f) => *f,
        _ => return None,
    };
    Some((seconds * 1e6).round())
        .filter(|micros| micros.abs() < 9.2e18)
        .map(|micros| micros as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(time_column: Option<&str>) -> ParquetOptions {
        ParquetOptions {
            compression: PageCompression::Zstd(1),
            row_group_bytes: 8 << 20,
            schema: None,
            time_column: time_column.map(str::to_owned),
        }
    }

    /// Converts plain `lines` and returns the Parquet file's rows and columns.
    fn convert_lines(lines: &str, options: &ParquetOptions) -> Result<(i64, usize), ConvertError> {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("0");
        std::fs::write(&source, lines).unwrap();
        let target = beside(&source);
        convert(&source, Codec::None, options, &target)?;
        assert!(is_whole(&target));
        let reader =
            parquet::file::reader::SerializedFileReader::new(File::open(&target).unwrap()).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        let columns = metadata.file_metadata().schema_descr().num_columns();
        Ok((metadata.file_metadata().num_rows(), columns))
    }

    #[test]
    fn records_without_fields_and_without_a_time_column_still_make_a_file() {
        // Nothing to hold, and Parquet counts rows by columns: a valid file without either.
        assert_eq!(convert_lines("{}\n{}\n", &options(None)).unwrap(), (0, 0));
    }

    #[test]
    fn an_empty_object_is_an_empty_file() {
        assert_eq!(convert_lines("", &options(Some("date"))).unwrap(), (0, 1));
    }

    #[test]
    fn a_line_that_is_no_json_object_is_named_and_not_retried() {
        let error = convert_lines("{\"a\":1}\n[1,2]\n", &options(None)).unwrap_err();
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
