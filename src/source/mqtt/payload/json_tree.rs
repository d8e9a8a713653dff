//! A JSON document that borrows its keys and strings from the payload. Decoding a message into
//! `serde_json::Value` allocated a `String` per key and a `BTreeMap` per object (about a sixth of the async
//! workers' time in `bench e2e`); most keys and values carry no escapes, so here they stay slices of the payload.
//! Objects keep `Value`'s meaning: keys in sorted order, the last of duplicate keys wins.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Number;

/// One JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Object<'a>),
}

/// An object's entries, sorted by key, one entry per key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object<'a>(Vec<(Cow<'a, str>, Node<'a>)>);

impl<'a> Object<'a> {
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The object `{key: value}`, written as JSON (what a rejected entry keeps as its raw text).
    pub fn single_to_json(key: &str, value: &Node<'_>) -> String {
        let one = Object(vec![(Cow::Borrowed(key), value.clone())]);
        serde_json::to_string(&one).unwrap_or_default()
    }
}

impl<'a> Node<'a> {
    /// Parse a whole document.
    pub fn parse(text: &'a str) -> serde_json::Result<Node<'a>> {
        serde_json::from_str(text)
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Object(o) => o.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Node::Object(_))
    }
}

/// The JSON text, as `serde_json::Value` would print it.
impl fmt::Display for Node<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(*b),
            Node::Number(n) => n.serialize(s),
            Node::String(v) => s.serialize_str(v),
            Node::Array(a) => s.collect_seq(a),
            Node::Object(o) => o.serialize(s),
        }
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k.as_ref(), v)?;
        }
        map.end()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Node<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        // JSON text has no NaN or infinity; `Value` maps them to null too.
        Ok(Number::from_f64(v).map_or(Node::Null, Node::Number))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, Node<'de>)> = Vec::new();
        while let Some(Key(k)) = map.next_key()? {
            entries.push((k, map.next_value()?));
        }
        // Sorted by key; of equal keys the last one written stays (a stable sort keeps them in arrival order, and
        // `dedup_by` moves each later value into the kept slot).
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                std::mem::swap(later, kept);
            }
            same
        });
        Ok(Node::Object(Object(entries)))
    }
}

/// An object key, borrowed from the payload unless it holds escapes (`Cow`'s own `Deserialize` always copies).
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Parsing and printing agree with `serde_json::Value` (key order, duplicates, numbers, escapes).
    #[test]
    fn a_tree_prints_what_serde_json_value_prints() {
        for text in [
            r#"{"b": 1, "a": [true, null, -2, 3.5e3, "x"], "b": {"z": "\u00e9\n", "y": 18446744073709551615}}"#,
            r#"{"ts": "2026-11-27T10:00:00+07:00", "COD": 82.5, "pH": "7,2", "a\"b": 0.1}"#,
            r#"[1, {"k": {}}, []]"#,
            r#""plain""#,
        ] {
            let node = Node::parse(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(node.to_string(), value.to_string(), "{text}");
        }
    }

    #[test]
    fn the_last_of_duplicate_keys_wins_and_lookups_find_it() {
        let node = Node::parse(r#"{"COD": 1, "BOD": 2, "COD": 3}"#).unwrap();
        assert_eq!(node.get("COD").unwrap().to_string(), "3");
        assert_eq!(node.get("BOD").unwrap().to_string(), "2");
        assert!(node.get("TSS").is_none());
    }

    #[test]
    fn keys_without_escapes_are_borrowed() {
        let text = r#"{"COD": "82.5", "a\nb": 1}"#;
        let Node::Object(o) = Node::parse(text).unwrap() else {
            panic!("not an object")
        };
        let borrowed: Vec<bool> =
            o.0.iter()
                .map(|(k, _)| matches!(k, Cow::Borrowed(_)))
                .collect();
        assert_eq!(borrowed, [true, false]);
        assert!(matches!(
            o.get("COD"),
            Some(Node::String(Cow::Borrowed("82.5")))
        ));
    }
}
