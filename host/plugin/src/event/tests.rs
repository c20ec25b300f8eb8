use proptest::prelude::*;
use rmpv::Value;

use super::chunk::{ChunkWriter, EventFormat, TimeForm};
use super::*;

fn record(message: &str) -> Value {
    Value::Map(vec![(Value::from("log"), Value::from(message))])
}

pub(crate) fn at(seconds: i64, nanos: u32) -> EventTime {
    EventTime::new(seconds, nanos)
}

/// The events that decode, and the first error.
fn decode_all(chunk: &[u8]) -> (Vec<Event<'_>>, Option<DecodeError>) {
    let mut decoded = Vec::new();
    let mut first_error = None;
    for item in events(chunk) {
        match item {
            Ok(event) => decoded.push(event),
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    (decoded, first_error)
}

#[test]
fn v1_and_v2_events_mix_in_one_chunk() {
    let meta = Value::Map(vec![(Value::from("otel"), Value::from(true))]);
    let mut chunk = ChunkWriter::new();
    chunk
        .push(
            EventFormat::V1,
            TimeForm::EventTime,
            at(1_700_000_000, 5),
            None,
            record("a"),
        )
        .push(
            EventFormat::V2,
            TimeForm::EventTime,
            at(1_700_000_001, 6),
            Some(meta.clone()),
            record("b"),
        )
        .push(
            EventFormat::V1,
            TimeForm::Integer,
            at(1_700_000_002, 0),
            None,
            record("c"),
        );
    let chunk = chunk.finish();
    let (decoded, error) = decode_all(&chunk);
    assert_eq!(error, None);
    let times: Vec<_> = decoded.iter().map(|e| e.time).collect();
    assert_eq!(
        times,
        [
            at(1_700_000_000, 5),
            at(1_700_000_001, 6),
            at(1_700_000_002, 0)
        ]
    );
    assert_eq!(decoded[0].metadata, None);
    let metadata = decoded[1]
        .metadata
        .map(|mut bytes| rmpv::decode::read_value(&mut bytes).unwrap());
    assert_eq!(metadata, Some(meta));
    assert_eq!(decoded[2].record().to_owned(), record("c"));
}

#[test]
fn all_three_time_forms_decode() {
    let mut chunk = ChunkWriter::new();
    chunk
        .push(
            EventFormat::V2,
            TimeForm::EventTime,
            at(1_600_000_000, 123_456_789),
            None,
            record("ext"),
        )
        .push(
            EventFormat::V2,
            TimeForm::Integer,
            at(1_600_000_000, 0),
            None,
            record("int"),
        )
        .push(
            EventFormat::V2,
            TimeForm::Float,
            at(1_600_000_000, 500_000_000),
            None,
            record("float"),
        );
    let chunk = chunk.finish();
    let (decoded, error) = decode_all(&chunk);
    assert_eq!(error, None);
    assert_eq!(decoded[0].time, at(1_600_000_000, 123_456_789));
    assert_eq!(decoded[1].time, at(1_600_000_000, 0));
    assert_eq!(decoded[2].time, at(1_600_000_000, 500_000_000));
}

#[test]
fn group_markers_are_skipped_and_counted() {
    let mut chunk = ChunkWriter::new();
    chunk
        .group_start(
            Value::Map(vec![(Value::from("schema"), Value::from("otlp"))]),
            Value::Map(vec![(Value::from("service.name"), Value::from("api"))]),
        )
        .push(
            EventFormat::V2,
            TimeForm::EventTime,
            at(10, 0),
            None,
            record("inside"),
        )
        .group_end()
        .push(
            EventFormat::V2,
            TimeForm::EventTime,
            at(11, 0),
            None,
            record("after"),
        );
    let chunk = chunk.finish();
    let mut iter = events(&chunk);
    let bodies: Vec<_> = iter
        .by_ref()
        .map(|e| e.unwrap().record().to_owned())
        .collect();
    assert_eq!(bodies, [record("inside"), record("after")]);
    assert_eq!(iter.group_markers(), 2);
}

#[test]
fn a_truncated_tail_keeps_what_came_before() {
    let mut chunk = ChunkWriter::new();
    chunk.push(
        EventFormat::V2,
        TimeForm::EventTime,
        at(1, 0),
        None,
        record("kept"),
    );
    let good_len = chunk.len();
    chunk.push(
        EventFormat::V2,
        TimeForm::EventTime,
        at(2, 0),
        None,
        record("cut short"),
    );
    let mut bytes = chunk.finish();
    bytes.truncate(bytes.len() - 3);
    let (decoded, error) = decode_all(&bytes);
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].record().to_owned(), record("kept"));
    let error = error.expect("the cut event is reported");
    assert_eq!(error.offset, good_len);
    assert_eq!(error.chunk_len, bytes.len());
}

#[test]
fn wrong_shapes_are_reported_with_their_offset() {
    // A whole value that is not a valid event is skipped, and the event after it is read;
    // bytes that are not msgpack end the chunk.
    let cases: Vec<(Vec<u8>, &str, Damage)> = vec![
        (
            rmp_of(&Value::from(7)),
            "expected an event array",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![Value::from(1)])),
            "of 2 elements, found 1",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![Value::from("x"), record("b")])),
            "expected a timestamp",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![
                Value::from(1),
                Value::from("not a map"),
            ])),
            "body to be a map",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![
                Value::Array(vec![Value::from(1), Value::from(2)]),
                record("b"),
            ])),
            "metadata map",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![
                Value::Array(vec![Value::from(1)]),
                record("b"),
            ])),
            "found an array of 1",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![Value::F64(f64::NAN), record("b")])),
            "not a finite time",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![Value::F64(1e300), record("b")])),
            "not a finite time",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![Value::from(u64::MAX), record("b")])),
            "out of range",
            Damage::Event,
        ),
        (
            rmp_of(&Value::Array(vec![
                Value::from(1),
                nested_deeper_than_allowed(),
            ])),
            "nest deeper than 256 levels",
            Damage::Event,
        ),
        (vec![0xc1], "expected an event array", Damage::Framing),
        (vec![0x92, 0x01, 0xc1], "0xc1", Damage::Framing),
    ];
    for (bad, expected, damage) in cases {
        let mut chunk = ChunkWriter::new();
        chunk.push(
            EventFormat::V1,
            TimeForm::Integer,
            at(1, 0),
            None,
            record("ok"),
        );
        let offset = chunk.len();
        chunk.push_raw(&bad);
        chunk.push(
            EventFormat::V1,
            TimeForm::Integer,
            at(2, 0),
            None,
            record("after"),
        );
        let chunk = chunk.finish();
        let (decoded, error) = decode_all(&chunk);
        let error = error.unwrap();
        assert_eq!(error.offset, offset, "{expected}");
        assert_eq!(error.damage, damage, "{expected}");
        assert!(
            error.reason.contains(expected),
            "{} does not say {expected}",
            error.reason
        );
        let kept: Vec<_> = decoded.iter().map(|e| e.record().to_owned()).collect();
        match damage {
            Damage::Event => assert_eq!(kept, [record("ok"), record("after")], "{expected}"),
            Damage::Framing => assert_eq!(kept, [record("ok")], "{expected}"),
        }
    }
}

#[test]
fn an_empty_chunk_has_no_events() {
    assert_eq!(events(&[]).count(), 0);
}

#[test]
fn huge_declared_lengths_do_not_allocate_or_crash() {
    // An array header claiming 2^32-1 elements followed by nothing.
    let mut bytes = rmp_of(&Value::Array(vec![Value::from(1), record("a")]));
    bytes.extend_from_slice(&[0x92, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff]);
    let (decoded, error) = decode_all(&bytes);
    assert_eq!(decoded.len(), 1);
    assert!(error.is_some());
}

/// A record whose maps nest one level deeper than a record may.
pub(crate) fn nested_deeper_than_allowed() -> Value {
    let mut deep = Value::Nil;
    for _ in 0..=crate::event::msgpack::MAX_DEPTH {
        deep = Value::Map(vec![(Value::from("k"), deep)]);
    }
    deep
}

pub(super) fn rmp_of(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, value).unwrap();
    out
}

pub(super) fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Nil),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::F64),
        ".{0,12}".prop_map(Value::from),
        proptest::collection::vec(any::<u8>(), 0..12).prop_map(Value::Binary),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((".{0,6}".prop_map(Value::from), inner), 0..4)
                .prop_map(Value::Map),
        ]
    })
}

pub(crate) fn arb_event() -> impl Strategy<Value = (bool, u8, i64, u32, Value)> {
    (
        any::<bool>(),
        0u8..3,
        0i64..=(u32::MAX - 2) as i64,
        0u32..1_000_000_000,
        proptest::collection::vec((".{0,6}".prop_map(Value::from), arb_value()), 0..5)
            .prop_map(Value::Map),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Every well-formed chunk decodes to exactly the events written, in order.
    #[test]
    fn written_events_decode_back(list in proptest::collection::vec(arb_event(), 0..8)) {
        let mut chunk = ChunkWriter::new();
        let mut expected = Vec::new();
        for (v2, form, seconds, nanos, body) in list {
            let form = [TimeForm::EventTime, TimeForm::Integer, TimeForm::Float][form as usize];
            let format = if v2 { EventFormat::V2 } else { EventFormat::V1 };
            let nanos = match form { TimeForm::EventTime => nanos, TimeForm::Integer => 0, TimeForm::Float => 0 };
            chunk.push(format, form, at(seconds, nanos), None, body.clone());
            expected.push((at(seconds, nanos), body));
        }
        let bytes = chunk.finish();
        let (decoded, error) = decode_all(&bytes);
        prop_assert_eq!(error, None);
        let got: Vec<_> = decoded.into_iter().map(|e| (e.time, e.record().to_owned())).collect();
        prop_assert_eq!(got, expected);
    }

    /// Arbitrary bytes never panic, every record that decoded reads as a value, and an
    /// error always points inside the chunk after the events that decoded.
    #[test]
    fn arbitrary_bytes_never_crash(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut last_end = 0;
        for item in events(&bytes) {
            match item {
                Ok(event) => {
                    event.record();
                }
                Err(error) => {
                    prop_assert!(error.offset < bytes.len());
                    prop_assert!(error.offset >= last_end);
                    last_end = error.offset + 1;
                }
            }
        }
    }

    /// Corrupting one byte of a valid chunk keeps every event that ends before it.
    #[test]
    fn corruption_keeps_the_prefix(
        list in proptest::collection::vec(arb_event(), 1..6),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut chunk = ChunkWriter::new();
        let mut written = Vec::new();
        for (v2, _, seconds, nanos, body) in list {
            let format = if v2 { EventFormat::V2 } else { EventFormat::V1 };
            chunk.push(format, TimeForm::EventTime, at(seconds, nanos), None, body.clone());
            written.push((chunk.len(), at(seconds, nanos), body));
        }
        let mut bytes = chunk.finish();
        let corrupted = position.index(bytes.len());
        bytes[corrupted] = byte;
        let (decoded, _) = decode_all(&bytes);
        // Events after the corrupted byte may decode too; their records read as values.
        decoded.iter().for_each(|event| {
            event.record();
        });
        let intact: Vec<_> = written.iter().filter(|(end, _, _)| *end <= corrupted).collect();
        prop_assert!(decoded.len() >= intact.len());
        for (event, (_, time, body)) in decoded.iter().zip(intact) {
            prop_assert_eq!(event.time, *time);
            prop_assert_eq!(&event.record().to_owned(), body);
        }
    }
}

#[test]
fn tags_become_text_one_to_one() {
    assert_eq!(tag_text(b"app.web-1"), "app.web-1");
    assert_eq!(tag_text("k\u{e9}".as_bytes()), "k\u{e9}");
    assert_eq!(tag_text(b"bad\xff\xfe"), "bad%FF%FE");
    assert_eq!(tag_text(b"bad\xff\xfd"), "bad%FF%FD");
    assert_eq!(tag_text(b"100%"), "100%25");
    assert_eq!(tag_text(b"a%FF"), "a%25FF");
}

proptest! {
    /// Two different tags never give the same text.
    #[test]
    fn tag_text_is_injective(
        a in proptest::collection::vec(any::<u8>(), 0..12),
        b in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        prop_assert_eq!(a == b, tag_text(&a) == tag_text(&b));
    }
}
