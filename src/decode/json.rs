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
pub(crate) fn content_id(prefix: &str, raw: &str) -> String {
    let digest = Sha256::digest(raw.as_bytes());
    format!("{prefix}:h{}", hex::encode(&digest[..8]))
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
    }
}
