//! Parquet objects (`format parquet`) read back by pyarrow and DuckDB: their columns and
//! types, every row and value, the event time, page compression and row groups, and a
//! declared schema.

use std::path::{Path, PathBuf};

use rmpv::Value;
use rustsink::event::EventTime;
use rustsink::event::chunk::{ChunkWriter, EventFormat, TimeForm};
use rustsink_cli::harness::{HostVersion, take_log_lines};

use crate::support::*;

/// The event time of record `n`: a second apart, with microseconds.
fn time_of(n: u64) -> EventTime {
    EventTime::new(1_714_557_600 + n as i64, 123_456_000)
}

/// A record with a field of each kind: `code` is a number in two records of three and a
/// string in the third, `rare` is in one record of a hundred, `user` is an object.
fn varied_record(n: u64) -> Value {
    let code = match n % 3 {
        0 => Value::from(format!("E{n}")),
        _ => Value::from(n),
    };
    let mut fields = vec![
        (Value::from("log"), Value::from(format!("line {n}"))),
        (Value::from("n"), Value::from(n)),
        (Value::from("latency"), Value::from(n as f64 + 0.25)),
        (Value::from("ok"), Value::from(n.is_multiple_of(2))),
        (
            Value::from("user"),
            Value::Map(vec![
                (Value::from("name"), Value::from("u")),
                (Value::from("id"), Value::from(n)),
            ]),
        ),
        (Value::from("code"), code),
    ];
    if n.is_multiple_of(100) {
        fields.push((Value::from("rare"), Value::from("r")));
    }
    Value::Map(fields)
}

fn varied_chunk(first: u64, count: u64) -> Vec<u8> {
    let mut chunk = ChunkWriter::new();
    for n in first..first + count {
        chunk.push(
            EventFormat::V2,
            TimeForm::EventTime,
            time_of(n),
            None,
            varied_record(n),
        );
    }
    chunk.finish()
}

/// Sends `chunks` chunks of `per_chunk` varied records through an instance with `keys`
/// (besides `format parquet`), and returns the objects it delivered under `dir`.
fn deliver(dir: &Path, keys: &[(&str, &str)], chunks: u64, per_chunk: u64) -> Vec<PathBuf> {
    let mut fluent_bit = load(HostVersion::V5);
    let mut options = vec![("format", "parquet"), ("time_window", "off")];
    options.extend_from_slice(keys);
    let out = fluent_bit.add_output(&dir_output(dir, &options)).unwrap();
    for chunk in 0..chunks {
        let bytes = varied_chunk(chunk * per_chunk, per_chunk);
        assert_eq!(fluent_bit.flusher(out).flush(&bytes, "app"), FLB_OK);
    }
    fluent_bit.shutdown().unwrap();
    objects(&dir.join("rustsink/app"))
}

/// What pyarrow says of a Parquet file: its columns with their types, its rows, its row
/// groups and the compression of its first column.
fn pyarrow_summary(path: &Path) -> String {
    let script = "import sys, pyarrow.parquet as pq\n\
                  f = pq.ParquetFile(sys.argv[1])\n\
                  print(';'.join(f'{x.name}:{x.type}' for x in f.schema_arrow))\n\
                  m = f.metadata\n\
                  print(m.num_rows, m.num_row_groups, m.row_group(0).column(0).compression)";
    python(script, &[path])
}

#[test]
fn parquet_objects_hold_every_record_with_its_types_and_time() {
    let dir = tempfile::tempdir().unwrap();
    const CHUNKS: u64 = 20;
    const PER_CHUNK: u64 = 500;
    let objects = deliver(dir.path(), &[("total_file_size", "16K")], CHUNKS, PER_CHUNK);
    assert!(objects.len() > 2, "cut by size: {objects:?}");
    for object in &objects {
        let name = object.file_name().unwrap().to_string_lossy();
        assert!(name.ends_with(".parquet"), "{name}");
        assert!(
            std::fs::read(object).unwrap().starts_with(b"PAR1"),
            "{name}"
        );
    }
    // The first object holds record 0, and so every field.
    let described = pyarrow_summary(&objects[0]);
    let mut lines = described.lines();
    assert_eq!(
        lines.next().unwrap(),
        "date:timestamp[us, tz=UTC];log:string;n:int64;latency:double;ok:bool;user:string;\
         code:string;rare:string"
    );
    let counts = lines.next().unwrap();
    assert!(
        counts.ends_with(" 1 ZSTD"),
        "one row group, zstd pages: {counts}"
    );

    // Every row, in order, with its values as written.
    let rows = json_lines(dir.path(), "app");
    assert_eq!(rows.len() as u64, CHUNKS * PER_CHUNK);
    for (n, row) in rows.iter().enumerate() {
        let n = n as u64;
        let code = match n % 3 {
            0 => format!("E{n}"),
            _ => n.to_string(),
        };
        let time = chrono::DateTime::from_timestamp(1_714_557_600 + n as i64, 123_456_000)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
            .to_string();
        let mut expected = serde_json::json!({
            "date": time,
            "log": format!("line {n}"),
            "n": n,
            "latency": n as f64 + 0.25,
            "ok": n.is_multiple_of(2),
            "user": format!(r#"{{"name":"u","id":{n}}}"#),
            "code": code,
        });
        // A column appears in the objects whose records have the field.
        if let Some(rare) = row.get("rare") {
            expected["rare"] = match n % 100 {
                0 => "r".into(),
                _ => serde_json::Value::Null,
            };
            assert_eq!(rare, &expected["rare"]);
        }
        assert_eq!(row, &expected, "row {n}");
    }

    // DuckDB reads them all as one table, as Athena would.
    let glob = dir.path().join("rustsink/app/**/*.parquet");
    let row = duckdb(&format!(
        "select count(*), count(distinct n), min(n), max(n), min(date)::varchar, \
         sum(case when code like 'E%' then 1 else 0 end), max(json_extract(user, '$.id')::bigint), \
         count(rare) from read_parquet('{}', union_by_name = true)",
        glob.display()
    ));
    let records = CHUNKS * PER_CHUNK;
    assert_eq!(
        row,
        format!(
            "{records}|{records}|0|{}|2024-05-01 10:00:00.123456+00|{}|{}|{}",
            records - 1,
            records.div_ceil(3),
            records - 1,
            records / 100
        )
    );
    // Nothing is left beside the delivered objects in the store.
    let store: Vec<_> = std::fs::read_dir(dir.path().join(".store/rustsink.0/objects"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(store.is_empty(), "{store:?}");
}

#[test]
fn page_compression_and_row_groups_follow_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let keys = [
        ("compression", "snappy"),
        ("parquet.row_group_size", "1M"),
        ("total_file_size", "100M"),
    ];
    // About 13 MB of JSON lines, in one object.
    let objects = deliver(dir.path(), &keys, 20, 5000);
    assert_eq!(objects.len(), 1, "{objects:?}");
    let described = pyarrow_summary(&objects[0]);
    let counts: Vec<&str> = described.lines().nth(1).unwrap().split(' ').collect();
    assert_eq!(counts[0], "100000");
    let groups: u32 = counts[1].parse().unwrap();
    assert!(groups > 1, "row groups of at most 1M: {described}");
    assert_eq!(counts[2], "SNAPPY");
}

#[test]
fn a_declared_schema_gives_the_columns_and_counts_what_does_not_fit() {
    // In a process of its own: the log is the process's.
    in_own_process(
        "parquet::a_declared_schema_gives_the_columns_and_counts_what_does_not_fit",
        declared_schema,
    );
}

fn declared_schema() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"columns": [{"name": "n", "type": "int64"}, {"name": "code", "type": "bigint"},
            {"name": "user", "type": "json"}, {"name": "missing", "type": "double"}]}"#,
    )
    .unwrap();
    let keys = [
        ("parquet.schema", schema.to_str().unwrap()),
        ("compression", "gzip"),
    ];
    take_log_lines();
    let objects = deliver(dir.path(), &keys, 3, 100);
    assert_eq!(objects.len(), 1);
    let described = pyarrow_summary(&objects[0]);
    assert_eq!(
        described,
        "date:timestamp[us, tz=UTC];n:int64;code:int64;user:string;missing:double\n300 1 GZIP"
    );
    let rows = json_lines(dir.path(), "app");
    assert_eq!(rows[1]["code"], 1);
    assert_eq!(rows[1]["user"], r#"{"name":"u","id":1}"#);
    // "E0", "E3", ...: no int64, so null, and said.
    assert_eq!(rows[0]["code"], serde_json::Value::Null);
    assert_eq!(rows[0]["missing"], serde_json::Value::Null);
    assert_eq!(rows.iter().filter(|row| row["code"].is_null()).count(), 100);
    let said = take_log_lines().into_iter().map(|l| l.message);
    let warning: Vec<String> = said.filter(|l| l.contains("did not fit")).collect();
    assert_eq!(warning.len(), 1, "{warning:?}");
    assert!(
        warning[0].contains("100 of its values")
            && warning[0].contains(r#"field 'code' holds "E0", which is no int64"#),
        "{warning:?}"
    );
}

#[test]
fn rustsink_check_names_a_bad_schema_file_and_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    std::fs::write(
        &schema,
        r#"{"columns": [{"name": "status", "type": "integer"}]}"#,
    )
    .unwrap();
    let config = dir.path().join("fluent-bit.conf");
    let text = format!(
        "[OUTPUT]\n    Name rustsink\n    Match *\n    sink dir\n    path {}\n    store_dir {}\n    \
         format parquet\n    parquet.schema {}\n",
        dir.path().join("out").display(),
        dir.path().join("store").display(),
        schema.display()
    );
    let out = rustsink_check(&config, &text);
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("parquet.schema")
            && said.contains(&schema.display().to_string())
            && said.contains("'status'")
            && said.contains("'integer'"),
        "{said}"
    );
}

#[test]
fn a_parquet_file_cut_short_beside_its_object_is_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = block_deliveries(dir.path());
    let keys = [
        ("format", "parquet"),
        ("Alias", "p"),
        ("time_window", "off"),
        ("shutdown_timeout", "1s"),
        ("upload_retry_limit", "no_limits"),
    ];
    let run = |chunk: Option<Vec<u8>>| {
        let mut fluent_bit = load(HostVersion::V5);
        let out = fluent_bit
            .add_output(&dir_output(dir.path(), &keys))
            .unwrap();
        if let Some(chunk) = chunk {
            assert_eq!(fluent_bit.flusher(out).flush(&chunk, "app"), FLB_OK);
        }
        fluent_bit.shutdown().unwrap();
    };
    // Delivery fails after the Parquet file is written, and it stays beside the object.
    run(Some(varied_chunk(0, 300)));
    let objects = dir.path().join(".store/p/objects");
    let written = objects.join("0.parquet");
    let len = std::fs::metadata(&written).unwrap().len();
    // Cut short, with a half-written file beside it.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&written)
        .unwrap();
    file.set_len(len / 2).unwrap();
    std::fs::write(objects.join("0.parquet-new"), b"PAR1 and no more").unwrap();

    std::fs::remove_file(&blocker).unwrap();
    run(None);
    let rows = json_lines(dir.path(), "app");
    let numbers: Vec<u64> = rows.iter().map(|row| row["n"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (0..300).collect::<Vec<_>>());
    let left: Vec<_> = std::fs::read_dir(&objects)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
