//! Lenient, borrowed field types shared by the JSON decoders.
//!
//! Real exports bend their schemas: a field that should be a string holds a
//! number, an object is `null` or `{}`, a list holds one bare value. Decoding
//! into strict types would make one odd field reject a whole record, so the
//! decoders read the fields they use through these wrappers instead:
//!
//! - [`Str`]: a string (borrowed when it has no escapes); numbers and booleans are
//!   kept as their text; anything else is absent.
//! - [`Obj`]: a nested object decoded as `T`; any other JSON value is absent.
//! - [`Objs`]: a list of objects (non-objects in it are dropped); a single object
//!   counts as a list of one.
//! - [`Strs`]: a list of strings; a single string counts as a list of one.
//!
//! Only the fields a decoder names are decoded; serde skips the rest without
//! building them.
//!
//! Beside serde, [`scan_object`] reads the common case of a line faster: it
//! finds a flat object's values by their delimiters, and gives up
//! ([`Unusual`]) on anything it does not read exactly as serde_json does, so
//! a decoder that falls back to serde then makes the same fields either way.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};

use super::DecodeError;

/// A lenient string field (see the module doc).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Str<'a>(pub(crate) Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    /// The text, if present and not empty.
    pub(crate) fn get(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }

    /// The text, if present, not empty and not a placeholder such as `unknown`,
    /// `null`, `-` or `None` that exporters write for a missing value.
    pub(crate) fn known(&self) -> Option<&str> {
        self.get()
            .filter(|s| !matches!(*s, "unknown" | "null" | "None" | "-" | "n/a"))
    }
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Borrowed(v))))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Owned(v.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Owned(v))))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Owned(v.to_string()))))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Str(Some(Cow::Borrowed(if v { "true" } else { "false" }))))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Str(None))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Str(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(StrVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Str(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Str(None))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor)
    }
}

/// A lenient nested object (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Obj<T>(pub(crate) Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T> Obj<T> {
    /// The object, if the field held one.
    pub(crate) fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

struct ObjVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Obj(None))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Obj(None))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor(PhantomData))
    }
}

/// A lenient list of objects (see the module doc).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Objs<T>(pub(crate) Vec<T>);

impl<T> Default for Objs<T> {
    fn default() -> Self {
        Objs(Vec::new())
    }
}

struct ObjsVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjsVisitor<T> {
    type Value = Objs<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Obj(item)) = seq.next_element::<Obj<T>>()? {
            out.extend(item);
        }
        Ok(Objs(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|t| Objs(vec![t]))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Objs::default())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Objs<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjsVisitor(PhantomData))
    }
}

/// A lenient list of strings (see the module doc).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Strs<'a>(pub(crate) Vec<Cow<'a, str>>);

struct StrsVisitor;

impl<'de> Visitor<'de> for StrsVisitor {
    type Value = Strs<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Str(s)) = seq.next_element::<Str<'de>>()? {
            out.extend(s);
        }
        Ok(Strs(out))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Strs(vec![Cow::Borrowed(v)]))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Strs(vec![Cow::Owned(v.to_owned())]))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Strs(vec![Cow::Owned(v.to_string())]))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Strs(vec![Cow::Owned(v.to_string())]))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Strs::default())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Strs::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Strs::default())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Strs::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Strs::default())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Strs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrsVisitor)
    }
}

/// Why [`scan_object`] left a line to serde: something the scanner does not
/// read (a `\u` escape, a control character, nesting deeper than
/// [`SCAN_DEPTH`]), something serde would reject in a field it reads (a field
/// given twice, a number out of range), or text that is not JSON at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unusual;

/// How deep [`scan_object`] follows nested values (serde_json stops at 128).
const SCAN_DEPTH: usize = 64;

/// A member's value as [`scan_object`] found it, checked to be JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scanned<'a> {
    /// A string: the text between its quotes as written; `escaped` if it
    /// holds backslash escapes (only the one-letter ones get through).
    Str {
        /// The text as written.
        raw: &'a str,
        /// Whether it holds escapes.
        escaped: bool,
    },
    /// A number, as written.
    Number(&'a str),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object, as written, braces included.
    Object(&'a str),
    /// An array, as written, brackets included.
    Array(&'a str),
}

impl<'a> Scanned<'a> {
    /// The value as a [`Str`] field holds it once serde has read it.
    #[inline(always)]
    pub(crate) fn into_str(self) -> Result<Str<'a>, Unusual> {
        Ok(Str(match self {
            Scanned::Str {
                raw,
                escaped: false,
            } => Some(Cow::Borrowed(raw)),
            Scanned::Str { raw, escaped: true } => Some(Cow::Owned(unescape(raw)?)),
            Scanned::Number(n) => Some(number_text(n)?),
            Scanned::Bool(b) => Some(Cow::Borrowed(if b { "true" } else { "false" })),
            Scanned::Null | Scanned::Object(_) | Scanned::Array(_) => None,
        }))
    }

    /// The value as an [`Obj`] field holds it once serde has read it, the
    /// object read by `read`.
    pub(crate) fn into_obj<T>(
        self,
        read: impl FnOnce(&'a str) -> Result<T, Unusual>,
    ) -> Result<Obj<T>, Unusual> {
        match self {
            Scanned::Object(text) => read(text).map(|t| Obj(Some(t))),
            // A number serde cannot read (out of range) fails the record.
            Scanned::Number(n) => number_text(n).map(|_| Obj(None)),
            _ => Ok(Obj(None)),
        }
    }
}

/// The text [`Str`] holds for the number written `n`: serde reads a plain
/// integer (no sign, fraction or exponent, at most 19 digits) as a `u64`,
/// whose text is `n` again; any other number is read by serde_json itself,
/// to be written back as `Str` writes it.
fn number_text(n: &str) -> Result<Cow<'_, str>, Unusual> {
    if n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Cow::Borrowed(n));
    }
    let serde_json::Value::Number(n) = number(n)? else {
        return Err(Unusual);
    };
    // As `StrVisitor` writes what serde visits it with (not as `Number`
    // displays a float).
    let text = match (n.as_u64(), n.as_i64(), n.as_f64()) {
        (Some(u), _, _) => u.to_string(),
        (None, Some(i), _) => i.to_string(),
        (None, None, Some(f)) => f.to_string(),
        (None, None, None) => return Err(Unusual),
    };
    Ok(Cow::Owned(text))
}

/// The number written `n` as serde_json reads it.
pub(crate) fn number(n: &str) -> Result<serde_json::Value, Unusual> {
    serde_json::from_str(n).map_err(|_| Unusual)
}

/// The text of a string holding one-letter escapes only (as the scanner
/// lets through).
fn unescape(raw: &str) -> Result<String, Unusual> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        out.push(match rest.as_bytes().get(i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            _ => return Err(Unusual),
        });
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Reads `text`, one JSON object from its first byte to its last (spaces
/// after it aside), giving `member` each of its members in order: its key
/// (`None` when written with escapes, which no field name a decoder reads
/// needs) and its value.
///
/// The fast way through the lines of a JSON format, beside serde: the scanner
/// finds values by their delimiters and builds nothing, where serde visits
/// every value. It reads what the corpus' writers write and leaves anything
/// else to serde, so that a decoder can take what it reads for what serde
/// would have read: whatever it does not read exactly as serde_json does
/// (see [`Unusual`]), and any text that is not JSON, is `Err(Unusual)`.
pub(crate) fn scan_object<'a>(
    text: &'a str,
    mut member: impl FnMut(Option<&'a str>, Scanned<'a>) -> Result<(), Unusual>,
) -> Result<(), Unusual> {
    let b = text.as_bytes();
    // Control characters are whitespace outside strings and errors inside
    // them; the scanner reads neither. (Folded, not searched, to vectorise.)
    if b.iter().fold(false, |any, &c| any | (c < 0x20)) {
        return Err(Unusual);
    }
    let mut s = Scanner { text, at: 0 };
    s.expect(b'{')?;
    s.object(1, &mut member)?;
    s.space();
    if s.at == b.len() {
        Ok(())
    } else {
        Err(Unusual)
    }
}

/// The high bit of each byte of `word` that equals `byte`, exact up to the
/// first such byte (a borrow may mark bytes after it).
fn bytes_equal(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let zero_where_equal = word ^ (ONES * u64::from(byte));
    zero_where_equal.wrapping_sub(ONES) & !zero_where_equal & (ONES << 7)
}

/// A cursor in the text [`scan_object`] reads.
struct Scanner<'a> {
    text: &'a str,
    /// The next byte to read.
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Reads past spaces (the only whitespace left: see [`scan_object`]).
    fn space(&mut self) {
        while self.peek() == Some(b' ') {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Unusual> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Unusual)
        }
    }

    /// The members of an object whose `{` was read, and its `}`.
    fn object(
        &mut self,
        depth: usize,
        member: &mut impl FnMut(Option<&'a str>, Scanned<'a>) -> Result<(), Unusual>,
    ) -> Result<(), Unusual> {
        self.space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            self.expect(b'"')?;
            let (key, escaped) = self.string()?;
            self.space();
            self.expect(b':')?;
            self.space();
            let value = self.value(depth)?;
            member((!escaped).then_some(key), value)?;
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Unusual),
            }
        }
    }

    /// The values of an array whose `[` was read, and its `]`.
    fn array(&mut self, depth: usize) -> Result<(), Unusual> {
        self.space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            self.value(depth)?;
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(Unusual),
            }
        }
    }

    /// A string whose `"` was read, up to its closing `"` (read past): its
    /// text as written, and whether it holds escapes.
    #[inline(always)]
    fn string(&mut self) -> Result<(&'a str, bool), Unusual> {
        let b = self.text.as_bytes();
        let start = self.at;
        let mut at = start;
        let mut escaped = false;
        loop {
            // Eight bytes at a time while there are eight (a record's strings
            // are short: calling a vector search for each costs more).
            while let Some(chunk) = b.get(at..at + 8) {
                let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
                let found = bytes_equal(word, b'"') | bytes_equal(word, b'\\');
                if found != 0 {
                    at += found.trailing_zeros() as usize / 8;
                    break;
                }
                at += 8;
            }
            match *b.get(at).ok_or(Unusual)? {
                b'"' => {
                    self.at = at + 1;
                    return Ok((&self.text[start..at], escaped));
                }
                b'\\' => {
                    // One-letter escapes only: a `\u` escape is left to serde.
                    match b.get(at + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {}
                        _ => return Err(Unusual),
                    }
                    escaped = true;
                    at += 2;
                }
                _ => at += 1,
            }
        }
    }

    /// The value at the cursor, read past; `depth` is that of the object or
    /// array holding it.
    ///
    /// Inlined into the member loop: returned through memory, the value is
    /// written in parts and read back whole, which stalls the load.
    #[inline(always)]
    fn value(&mut self, depth: usize) -> Result<Scanned<'a>, Unusual> {
        let start = self.at;
        Ok(match self.peek().ok_or(Unusual)? {
            b'"' => {
                self.at += 1;
                let (raw, escaped) = self.string()?;
                Scanned::Str { raw, escaped }
            }
            b'{' | b'[' => self.nested(depth)?,
            b't' => self.literal("true", Scanned::Bool(true))?,
            b'f' => self.literal("false", Scanned::Bool(false))?,
            b'n' => self.literal("null", Scanned::Null)?,
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Scanned::Number(&self.text[start..self.at])
            }
            _ => return Err(Unusual),
        })
    }

    /// The object or array at the cursor, read past.
    fn nested(&mut self, depth: usize) -> Result<Scanned<'a>, Unusual> {
        if depth >= SCAN_DEPTH {
            return Err(Unusual);
        }
        let start = self.at;
        self.at += 1;
        if self.text.as_bytes()[start] == b'{' {
            self.object(depth + 1, &mut |_, _| Ok(()))?;
            Ok(Scanned::Object(&self.text[start..self.at]))
        } else {
            self.array(depth + 1)?;
            Ok(Scanned::Array(&self.text[start..self.at]))
        }
    }

    fn literal(&mut self, word: &str, value: Scanned<'a>) -> Result<Scanned<'a>, Unusual> {
        if self.text.as_bytes()[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(Unusual)
        }
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<(), Unusual> {
        let b = self.text.as_bytes();
        let digits = |at: usize| b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        let mut at = self.at;
        if b.get(at) == Some(&b'-') {
            at += 1;
        }
        match b.get(at) {
            Some(b'0') => at += 1,
            Some(b'1'..=b'9') => at += digits(at),
            _ => return Err(Unusual),
        }
        if b.get(at) == Some(&b'.') {
            let n = digits(at + 1);
            if n == 0 {
                return Err(Unusual);
            }
            at += 1 + n;
        }
        if matches!(b.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(b.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            let n = digits(at);
            if n == 0 {
                return Err(Unusual);
            }
            at += n;
        }
        self.at = at;
        Ok(())
    }
}

/// The line as UTF-8 text, or `None` for a blank line (which is skipped).
pub(crate) fn text(line: &[u8]) -> Result<Option<&str>, DecodeError> {
    let text = std::str::from_utf8(line).map_err(|_| DecodeError::InvalidUtf8)?;
    let text = text.trim();
    Ok((!text.is_empty()).then_some(text))
}

/// Parses one JSON object of type `T` from `text`; anything but an object (or a
/// syntax error) is a [`DecodeError::Json`].
pub(crate) fn object<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
    if !text.starts_with('{') {
        return Err(DecodeError::Json("expected a JSON object".into()));
    }
    serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))
}

/// A stable id for a record that carries none: `<prefix>:h<16 hex digits>` from
/// a SHA-256 of its raw text, so the same record always gets the same id.
///
/// Written into one string of the final size: the id is made for most lines
/// of some formats.
pub(crate) fn content_id(prefix: &str, raw: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(raw.as_bytes());
    let mut id = String::with_capacity(prefix.len() + 2 + 16);
    id.push_str(prefix);
    id.push_str(":h");
    for b in &digest[..8] {
        id.push(char::from(HEX[usize::from(b >> 4)]));
        id.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    struct Inner<'a> {
        #[serde(borrow)]
        name: Str<'a>,
    }

    #[derive(Deserialize)]
    struct Outer<'a> {
        #[serde(borrow, default)]
        a: Str<'a>,
        #[serde(borrow, default)]
        o: Obj<Inner<'a>>,
        #[serde(borrow, default)]
        l: Objs<Inner<'a>>,
        #[serde(borrow, default)]
        s: Strs<'a>,
    }

    fn parse(s: &str) -> Outer<'_> {
        object(s).unwrap()
    }

    #[test]
    fn wrong_shapes_degrade_to_absent_instead_of_failing_the_record() {
        let o = parse(r#"{"a":{"x":1},"o":"text","l":7,"s":{"k":"v"}}"#);
        assert_eq!(o.a.get(), None);
        assert!(o.o.get().is_none());
        assert!(o.l.0.is_empty());
        assert!(o.s.0.is_empty());
        let o = parse(r#"{"a":null,"o":null,"l":null,"s":null}"#);
        assert_eq!(o.a.get(), None);
        let o = parse(r#"{}"#);
        assert_eq!(o.a.get(), None);
    }

    #[test]
    fn scalars_become_text_and_single_values_become_lists() {
        let o = parse(
            r#"{"a":123456789012,"o":{"name":"x"},"l":{"name":"one"},"s":"only","extra":[1,{"y":2}]}"#,
        );
        assert_eq!(o.a.get(), Some("123456789012"));
        assert_eq!(o.o.get().unwrap().name.get(), Some("x"));
        assert_eq!(o.l.0.len(), 1);
        assert_eq!(o.s.0, vec!["only"]);
        let o = parse(r#"{"l":[{"name":"a"},3,{"name":"b"}],"s":["x",1,null,"y"],"a":true}"#);
        assert_eq!(o.l.0.len(), 2);
        assert_eq!(o.s.0, vec!["x", "1", "y"]);
        assert_eq!(o.a.get(), Some("true"));
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let o = parse(r#"{"a":"plain"}"#);
        assert!(matches!(o.a.0, Some(Cow::Borrowed(_))));
        let o = parse(r#"{"a":"with \"quote\""}"#);
        assert_eq!(o.a.get(), Some("with \"quote\""));
    }

    #[test]
    fn placeholders_are_not_known_values() {
        for p in ["unknown", "null", "-", ""] {
            assert_eq!(Str(Some(Cow::Borrowed(p))).known(), None);
        }
        assert_eq!(Str(Some(Cow::Borrowed("alice"))).known(), Some("alice"));
    }

    #[test]
    fn non_objects_and_bad_json_are_errors() {
        assert!(matches!(
            object::<Outer<'_>>("[1]"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            object::<Outer<'_>>("{\"a\":"),
            Err(DecodeError::Json(_))
        ));
        assert_eq!(text(b"  ").unwrap(), None);
        assert_eq!(text(&[0xff]), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn content_ids_are_stable_and_distinct() {
        let a = content_id("ct", "{\"x\":1}");
        assert_eq!(a, content_id("ct", "{\"x\":1}"));
        assert_ne!(a, content_id("ct", "{\"x\":2}"));
        assert!(a.starts_with("ct:h") && a.len() == 4 + 16, "{a}");
        // Ids are kept in journals: the same text must keep its id.
        assert_eq!(
            content_id("gh", r#"{"actor":"cat","action":"git.clone"}"#),
            "gh:h4541286f81c90891"
        );
    }

    proptest::proptest! {
        #[test]
        fn scanned_strings_hold_what_serde_reads(
            s in "[a-z\"\\\\/é ]{0,40}",
            escape in proptest::sample::select(vec!["", "\\/", "\\\"", "\\\\", "\\n", "\\u0041"]),
            at in 0..40usize,
        ) {
            let mut s = s;
            let at = (0..=at.min(s.len())).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
            s.insert_str(at, escape);
            let line = format!("{{\"a\":\"{s}\"}}");
            let mut scanned = None;
            let read = scan_object(&line, |key, value| {
                scanned = Some((key, value.into_str()?));
                Ok(())
            });
            if read.is_ok() {
                let serde: Outer<'_> = object(&line).unwrap();
                proptest::prop_assert_eq!(scanned, Some((Some("a"), serde.a)));
            }
        }

        #[test]
        fn content_ids_are_the_hex_of_the_first_half_of_the_digest(
            prefix in "[a-z]{0,5}",
            raw in ".{0,300}",
        ) {
            let digest = Sha256::digest(raw.as_bytes());
            proptest::prop_assert_eq!(
                content_id(&prefix, &raw),
                format!("{prefix}:h{}", hex::encode(&digest[..8]))
            );
        }
    }
}
