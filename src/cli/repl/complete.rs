//! Tab completion against a live Lua state: globals, fields of tables (`json.en` →
//! `json.encode`), and methods after `:` (`s:up` → `s:upper`).
//!
//! Lookups are raw and follow only table-valued `__index` chains: pressing Tab must never
//! run user code (an `__index` function could loop, yield or have side effects).

use std::collections::BTreeSet;

use mlua::{Lua, Table, Value};

use super::eval::Completion;

/// Lua's reserved words, offered with the globals because they are typed just as often.
const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

/// How many `__index` tables to follow before giving up (a chain can loop).
const MAX_INDEX_DEPTH: usize = 8;

/// The dotted word before the cursor: `json.en` is path `["json"]`, partial `en`.
#[derive(Debug, PartialEq, Eq)]
pub struct Word<'a> {
    /// Byte offset of `partial` in the line: what a candidate replaces.
    pub start: usize,
    /// Names to walk from the globals.
    pub path: Vec<&'a str>,
    /// The last separator was `:`, so only functions are candidates.
    pub method: bool,
    /// The unfinished name being completed (may be empty: `json.`).
    pub partial: &'a str,
}

/// Splits off the completable word that ends at `pos`; `None` when the cursor is not after
/// a name (inside a number, after `a:b.`, between two dots).
pub fn word_at(line: &str, pos: usize) -> Option<Word<'_>> {
    let head = line.get(..pos)?;
    let begin = head
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':'))
        .last()
        .map_or(pos, |(i, _)| i);
    let expr = &head[begin..];
    if expr.starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == ':') {
        return None;
    }
    let cut = expr.rfind(['.', ':']);
    let (prefix, partial) = match cut {
        Some(i) => (&expr[..i], &expr[i + 1..]),
        None => ("", expr),
    };
    let method = cut.is_some_and(|i| expr[i..].starts_with(':'));
    if prefix.contains(':') {
        return None;
    }
    let path: Vec<&str> = if prefix.is_empty() {
        Vec::new()
    } else {
        prefix.split('.').collect()
    };
    if path.iter().any(|p| !is_name(p)) {
        return None;
    }
    Some(Word {
        start: pos - partial.len(),
        path,
        method,
        partial,
    })
}

/// Candidates for the word ending at `pos` of `line`, sorted.
pub fn complete(lua: &Lua, line: &str, pos: usize) -> Completion {
    let Some(word) = word_at(line, pos) else {
        return Completion::default();
    };
    let mut target = Value::Table(lua.globals());
    for name in &word.path {
        target = field(lua, &target, name);
        if target.is_nil() {
            return Completion::default();
        }
    }
    let mut names = BTreeSet::new();
    for table in lookup_chain(lua, &target) {
        for (key, value) in table.pairs::<Value, Value>().flatten() {
            let Value::String(key) = key else { continue };
            let Ok(key) = key.to_str() else { continue };
            if is_name(&key)
                && key.starts_with(word.partial)
                && (!word.method || value.is_function())
            {
                names.insert(key.to_string());
            }
        }
    }
    if word.path.is_empty() {
        names.extend(
            KEYWORDS
                .iter()
                .filter(|k| k.starts_with(word.partial))
                .map(|k| k.to_string()),
        );
    }
    Completion {
        start: word.start,
        candidates: names.into_iter().collect(),
    }
}

/// `value[name]`, raw, falling back along table `__index` chains.
fn field(lua: &Lua, value: &Value, name: &str) -> Value {
    for table in lookup_chain(lua, value) {
        match table.raw_get::<Value>(name) {
            Ok(Value::Nil) | Err(_) => continue,
            Ok(found) => return found,
        }
    }
    Value::Nil
}

/// The tables a lookup on `value` consults, in order: the table itself (if it is one),
/// then each table-valued `__index` of the metatables along the way.
fn lookup_chain(lua: &Lua, value: &Value) -> Vec<Table> {
    let mut chain = Vec::new();
    let mut current = value.clone();
    for _ in 0..MAX_INDEX_DEPTH {
        if let Value::Table(t) = &current {
            if chain.iter().any(|seen: &Table| seen == t) {
                break;
            }
            chain.push(t.clone());
        }
        match index_of(lua, &current) {
            Some(next @ Value::Table(_)) => current = next,
            _ => break,
        }
    }
    chain
}

/// The `__index` metafield of `value`'s metatable, read raw.
fn index_of(lua: &Lua, value: &Value) -> Option<Value> {
    let meta = match value {
        Value::Table(t) => t.metatable()?,
        Value::String(_) => lua.type_metatable::<mlua::LuaString>()?,
        Value::UserData(ud) => return ud.metatable().ok()?.get::<Value>("__index").ok(),
        _ => return None,
    };
    meta.raw_get::<Value>("__index").ok()
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_word_before_the_cursor() {
        let w = word_at("print(json.en", 13).expect("word");
        assert_eq!(
            (w.start, w.path, w.method, w.partial),
            (11, vec!["json"], false, "en")
        );
        let w = word_at("s:up", 4).expect("word");
        assert_eq!(
            (w.start, w.path, w.method, w.partial),
            (2, vec!["s"], true, "up")
        );
        let w = word_at("x = ", 4).expect("word");
        assert_eq!((w.start, w.partial), (4, ""));
        assert_eq!(word_at("1.5", 3), None);
        assert_eq!(word_at("a:b.c", 5), None);
        assert_eq!(word_at("a..b", 4), None);
        assert_eq!(word_at("é", 1), None, "not a char boundary");
    }

    #[test]
    fn completes_globals_fields_and_methods() {
        let lua = Lua::new();
        lua.load("json = { encode = 1, decode = 2 } s = 'x' obj = setmetatable({}, {__index = {go = print}})")
            .exec()
            .expect("setup");
        let names = |line: &str| complete(&lua, line, line.len()).candidates;
        assert_eq!(names("json.en"), vec!["encode"]);
        assert_eq!(names("js"), vec!["json"]);
        assert_eq!(names("s:up"), vec!["upper"]);
        assert_eq!(names("obj:g"), vec!["go"]);
        assert_eq!(names("fun"), vec!["function"]);
        assert!(names("nothing.here").is_empty());
    }
}
