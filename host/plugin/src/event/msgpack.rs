//! Reading msgpack one item at a time, straight from the chunk's bytes and without
//! allocating: a record is checked with [`skip_value`] when its event is decoded, or
//! checked as it is written as JSON (`object::encode`), with no tree built in between.

use rmp::Marker;

/// How deeply arrays and maps may nest in a record. Deeper records are malformed: this
/// bounds the recursion of everything that walks a record.
pub const MAX_DEPTH: usize = 256;

/// One msgpack item. Arrays and maps give their length; their elements follow.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Item<'a> {
    /// nil.
    Nil,
    /// true or false.
    Bool(bool),
    /// A non-negative integer.
    Uint(u64),
    /// A negative integer (or a signed encoding of any integer).
    Int(i64),
    /// A 32-bit float.
    F32(f32),
    /// A 64-bit float.
    F64(f64),
    /// A string's bytes, not checked to be UTF-8.
    Str(&'a [u8]),
    /// Binary data.
    Bin(&'a [u8]),
    /// An array of this many values.
    Array(u32),
    /// A map of this many key-value pairs.
    Map(u32),
    /// An extension value: its type and data.
    Ext(i8, &'a [u8]),
}

/// Reads the item at the front of `rest` and moves past it (past its data, not past the
/// elements of an array or map).
///
/// # Errors
///
/// When the data ends too soon, or at the reserved byte 0xc1.
#[inline]
pub fn read_item<'a>(rest: &mut &'a [u8]) -> Result<Item<'a>, String> {
    // What records are mostly made of, read here, inline in every walk: strings up to 255
    // bytes, small maps and arrays, small integers. Everything else is read by a call.
    // The strings are cut here rather than by `take_slice` and `sized`: through them, a
    // record's walk took about a third more instructions.
    if let Some((&byte, tail)) = rest.split_first() {
        match byte {
            0xa0..=0xbf if tail.len() >= usize::from(byte & 0x1f) => {
                let (text, after) = tail.split_at(usize::from(byte & 0x1f));
                *rest = after;
                return Ok(Item::Str(text));
            }
            0x00..=0x7f => {
                *rest = tail;
                return Ok(Item::Uint(byte.into()));
            }
            0x80..=0x8f => {
                *rest = tail;
                return Ok(Item::Map((byte & 0x0f).into()));
            }
            0x90..=0x9f => {
                *rest = tail;
                return Ok(Item::Array((byte & 0x0f).into()));
            }
            0xd9 => {
                if let Some((&len, text)) = tail.split_first()
                    && text.len() >= usize::from(len)
                {
                    let (text, after) = text.split_at(usize::from(len));
                    *rest = after;
                    return Ok(Item::Str(text));
                }
            }
            _ => {}
        }
    }
    read_any_item(rest)
}

/// [`read_item`] for every form.
fn read_any_item<'a>(rest: &mut &'a [u8]) -> Result<Item<'a>, String> {
    let [byte] = take::<1>(rest)?;
    Ok(match Marker::from_u8(byte) {
        Marker::FixPos(n) => Item::Uint(n.into()),
        Marker::FixNeg(n) => Item::Int(n.into()),
        Marker::Null => Item::Nil,
        Marker::True => Item::Bool(true),
        Marker::False => Item::Bool(false),
        Marker::U8 => Item::Uint(u8::from_be_bytes(take(rest)?).into()),
        Marker::U16 => Item::Uint(u16::from_be_bytes(take(rest)?).into()),
        Marker::U32 => Item::Uint(u32::from_be_bytes(take(rest)?).into()),
        Marker::U64 => Item::Uint(u64::from_be_bytes(take(rest)?)),
        Marker::I8 => Item::Int(i8::from_be_bytes(take(rest)?).into()),
        Marker::I16 => Item::Int(i16::from_be_bytes(take(rest)?).into()),
        Marker::I32 => Item::Int(i32::from_be_bytes(take(rest)?).into()),
        Marker::I64 => Item::Int(i64::from_be_bytes(take(rest)?)),
        Marker::F32 => Item::F32(f32::from_be_bytes(take(rest)?)),
        Marker::F64 => Item::F64(f64::from_be_bytes(take(rest)?)),
        Marker::FixStr(len) => Item::Str(take_slice(rest, len.into())?),
        Marker::Str8 => Item::Str(sized::<1>(rest)?),
        Marker::Str16 => Item::Str(sized::<2>(rest)?),
        Marker::Str32 => Item::Str(sized::<4>(rest)?),
        Marker::Bin8 => Item::Bin(sized::<1>(rest)?),
        Marker::Bin16 => Item::Bin(sized::<2>(rest)?),
        Marker::Bin32 => Item::Bin(sized::<4>(rest)?),
        Marker::FixArray(len) => Item::Array(len.into()),
        Marker::Array16 => Item::Array(u16::from_be_bytes(take(rest)?).into()),
        Marker::Array32 => Item::Array(u32::from_be_bytes(take(rest)?)),
        Marker::FixMap(len) => Item::Map(len.into()),
        Marker::Map16 => Item::Map(u16::from_be_bytes(take(rest)?).into()),
        Marker::Map32 => Item::Map(u32::from_be_bytes(take(rest)?)),
        Marker::FixExt1 => ext(rest, 1)?,
        Marker::FixExt2 => ext(rest, 2)?,
        Marker::FixExt4 => ext(rest, 4)?,
        Marker::FixExt8 => ext(rest, 8)?,
        Marker::FixExt16 => ext(rest, 16)?,
        Marker::Ext8 => ext_sized::<1>(rest)?,
        Marker::Ext16 => ext_sized::<2>(rest)?,
        Marker::Ext32 => ext_sized::<4>(rest)?,
        Marker::Reserved => return Err("the reserved byte 0xc1 is not msgpack".into()),
    })
}

/// Moves past one whole value (an array or map with all its elements) and returns its
/// bytes.
///
/// # Errors
///
/// When the value is cut short, holds the reserved byte, or nests deeper than
/// [`MAX_DEPTH`].
pub fn skip_value<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let start = *rest;
    skip_within(rest, MAX_DEPTH)?;
    Ok(&start[..start.len() - rest.len()])
}

/// Moves past one whole value at any depth and returns its bytes: what an event's framing
/// needs, so that a record nested too deeply is one bad event, not the end of the chunk.
/// Walks the value without recursion.
///
/// # Errors
///
/// When the value is cut short or holds the reserved byte.
pub fn frame_value<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let start = *rest;
    let mut pending: u64 = 1;
    while pending > 0 {
        // Every value left takes at least a byte: a count beyond the data fails here, at
        // once, instead of after reading the rest.
        if pending > rest.len() as u64 {
            return Err(format!("the data ends with {pending} values still to come"));
        }
        pending -= 1;
        pending += match read_item(rest)? {
            Item::Array(len) => u64::from(len),
            Item::Map(len) => 2 * u64::from(len),
            _ => 0,
        };
    }
    Ok(&start[..start.len() - rest.len()])
}

/// Moves past one whole value whose arrays and maps may nest `depth` levels: a value met
/// `n` levels inside a record is skipped within `MAX_DEPTH - n`.
///
/// # Errors
///
/// As [`skip_value`].
pub fn skip_within(rest: &mut &[u8], depth: usize) -> Result<(), String> {
    let elements = match read_item(rest)? {
        Item::Array(len) => u64::from(len),
        Item::Map(len) => 2 * u64::from(len),
        _ => return Ok(()),
    };
    if depth == 0 {
        return Err(format!(
            "arrays and maps nest deeper than {MAX_DEPTH} levels"
        ));
    }
    // A length larger than the data fails at the end of the data: every element takes at
    // least a byte.
    for _ in 0..elements {
        skip_within(rest, depth - 1)?;
    }
    Ok(())
}

fn take<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], String> {
    let (head, tail) = rest
        .split_first_chunk::<N>()
        .ok_or_else(|| format!("the data ends {} bytes too soon", N - rest.len()))?;
    *rest = tail;
    Ok(*head)
}

fn take_slice<'a>(rest: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if rest.len() < len {
        return Err(format!("the data ends {} bytes too soon", len - rest.len()));
    }
    let (head, tail) = rest.split_at(len);
    *rest = tail;
    Ok(head)
}

/// A big-endian length of `N` bytes.
fn length<const N: usize>(rest: &mut &[u8]) -> Result<usize, String> {
    let mut len = [0; 8];
    len[8 - N..].copy_from_slice(&take::<N>(rest)?);
    Ok(usize::try_from(u64::from_be_bytes(len)).unwrap_or(usize::MAX))
}

/// Data after a big-endian length of `N` bytes.
fn sized<'a, const N: usize>(rest: &mut &'a [u8]) -> Result<&'a [u8], String> {
    let len = length::<N>(rest)?;
    take_slice(rest, len)
}

/// An extension value after a big-endian length of `N` bytes.
fn ext_sized<'a, const N: usize>(rest: &mut &'a [u8]) -> Result<Item<'a>, String> {
    let len = length::<N>(rest)?;
    ext(rest, len)
}

/// An extension value of `len` bytes: the type, then the data.
fn ext<'a>(rest: &mut &'a [u8], len: usize) -> Result<Item<'a>, String> {
    let [kind] = take::<1>(rest)?;
    Ok(Item::Ext(kind as i8, take_slice(rest, len)?))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use rmpv::Value;

    use super::*;
    use crate::event::tests::{arb_value, rmp_of};

    proptest! {
        #[test]
        fn a_value_is_skipped_whole_and_a_cut_one_is_refused(value in arb_value()) {
            let mut bytes = rmp_of(&value);
            bytes.extend_from_slice(b"after");
            let mut rest = &bytes[..];
            let skipped = skip_value(&mut rest).unwrap();
            prop_assert_eq!(rest, b"after");
            prop_assert_eq!(skipped, &bytes[..bytes.len() - 5]);
            let mut cut = &skipped[..skipped.len() - 1];
            prop_assert!(skip_value(&mut cut).is_err());
        }
    }

    proptest! {
        #[test]
        fn a_value_is_framed_as_it_is_skipped(value in arb_value()) {
            let mut bytes = rmp_of(&value);
            bytes.extend_from_slice(b"after");
            let framed = frame_value(&mut &bytes[..]).unwrap();
            prop_assert_eq!(framed, skip_value(&mut &bytes[..]).unwrap());
            prop_assert!(frame_value(&mut &framed[..framed.len() - 1]).is_err());
        }
    }

    #[test]
    fn every_form_of_an_item_reads_as_rmpv_reads_it() {
        let values = [
            Value::from(5u8),
            Value::from(200u8),
            Value::from(60_000u16),
            Value::from(4_000_000_000u32),
            Value::from(u64::MAX),
            Value::from(-3i8),
            Value::from(-100i8),
            Value::from(-30_000i16),
            Value::from(-2_000_000_000i32),
            Value::from(i64::MIN),
            Value::F32(1.5),
            Value::F64(-2.25),
            Value::from("x".repeat(20)),
            Value::from("y".repeat(200)),
            Value::from("z".repeat(70_000)),
            Value::Binary(vec![1; 300]),
            Value::Ext(0, vec![0; 8]),
            Value::Ext(-5, vec![7; 3]),
            Value::Ext(9, vec![7; 70_000]),
        ];
        for value in values {
            let bytes = rmp_of(&value);
            let mut rest = &bytes[..];
            let item = read_item(&mut rest).unwrap();
            assert!(rest.is_empty(), "{value:?}");
            let same = match (item, &value) {
                (Item::Uint(n), Value::Integer(i)) => i.as_u64() == Some(n),
                (Item::Int(n), Value::Integer(i)) => i.as_i64() == Some(n),
                (Item::F32(f), Value::F32(g)) => f == *g,
                (Item::F64(f), Value::F64(g)) => f == *g,
                (Item::Str(s), Value::String(t)) => s == t.as_bytes(),
                (Item::Bin(s), Value::Binary(t)) => s == t.as_slice(),
                (Item::Ext(k, s), Value::Ext(l, t)) => k == *l && s == t.as_slice(),
                _ => false,
            };
            assert!(same, "{item:?} is not {value:?}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused() {
        let mut deep = Value::Nil;
        for _ in 0..=MAX_DEPTH {
            deep = Value::Array(vec![deep]);
        }
        let bytes = rmp_of(&deep);
        let error = skip_value(&mut &bytes[..]).unwrap_err();
        assert!(error.contains("deeper than 256"), "{error}");
        let Value::Array(mut inner) = deep else {
            unreachable!()
        };
        let bytes = rmp_of(&inner.pop().unwrap());
        assert!(skip_value(&mut &bytes[..]).is_ok());
        // Framing has no limit: a value a million levels deep is framed without recursion.
        let mut deep = vec![0x91; 1_000_000];
        deep.push(0xc0);
        deep.push(b'!');
        let mut rest = &deep[..];
        assert_eq!(frame_value(&mut rest).unwrap().len(), 1_000_001);
        assert_eq!(rest, b"!");
    }

    #[test]
    fn a_length_beyond_the_data_is_refused() {
        // An array that says it holds 2^32-1 values, then ends.
        let mut rest: &[u8] = &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0];
        assert!(skip_value(&mut rest).is_err());
        let mut rest: &[u8] = &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0];
        assert!(
            frame_value(&mut rest)
                .unwrap_err()
                .contains("still to come")
        );
        let mut rest: &[u8] = &[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'];
        assert!(read_item(&mut rest).unwrap_err().contains("too soon"));
        let mut rest: &[u8] = &[0xc1];
        assert!(read_item(&mut rest).unwrap_err().contains("0xc1"));
    }
}
