//! The device query language: how operators name a set of devices, for dynamic groups,
//! inventory search and update rollout targets.
//!
//! ```text
//! model = "cam-x" and firmware < 2.1 and tag:site = berlin
//! (has finding:ssh-password-auth or port in (23, 2323)) and not online
//! ```
//!
//! This crate owns the grammar, the type rules and evaluation. The caller owns the fields: it
//! supplies a [`Schema`] (names, kinds, keyed or not) and, per device, a [`Subject`] that
//! enumerates a field's values. [`Query::parse`] resolves and checks everything once;
//! [`Query::matches`] then allocates nothing, so one query over 100,000 devices is cheap.
//! It refuses I/O and knows nothing of storage: translating a query to SQL, if ever wanted,
//! belongs to the store.
//!
//! # Grammar
//!
//! ```text
//! query      = or_expr END ;
//! or_expr    = and_expr { "or" and_expr } ;
//! and_expr   = not_expr { "and" not_expr } ;
//! not_expr   = "not" not_expr | primary ;
//! primary    = "(" or_expr ")"
//!            | "has" field
//!            | field op value
//!            | field [ "not" ] "in" "(" value { "," value } ")"
//!            | field ;                              (* bool fields only: field = true *)
//! op         = "=" | "!=" | "<" | "<=" | ">" | ">=" | "~" ;
//! field      = NAME [ ":" KEY ] ;                   (* one bare word, e.g. tag:site *)
//! value      = WORD | STRING ;
//! WORD       = { "A".."Z" | "a".."z" | "0".."9" | "." | "_" | ":" | "/" | "@" | "+" | "-"
//!              | "*" | "?" }- ;
//! STRING     = '"' { any character but '"' and '\' | '\"' | '\\' } '"' ;
//! ```
//!
//! Keywords (`and`, `or`, `not`, `in`, `has`, and `true`/`false` as values) and field names
//! are case-insensitive; keys and values are case-sensitive. Keywords cannot be bare values
//! (quote them: `name = "and"`). Whitespace separates tokens and is otherwise ignored.
//! Precedence: `not` binds tightest, then `and`, then `or`.
//!
//! # Types, checked at parse time
//!
//! | kind                   | operators                          | values                  |
//! |------------------------|------------------------------------|-------------------------|
//! | [`FieldKind::Text`]    | all; `<` etc. compare bytes        | any word or string      |
//! | [`FieldKind::Version`] | all; ordered by [`compare_versions`] | any word or string    |
//! | [`FieldKind::Number`]  | all but `~`                        | `-?DIGITS[.DIGITS]`     |
//! | [`FieldKind::Bool`]    | `=`, `!=`; the field alone         | `true`, `false`         |
//!
//! `=` on text is exact (case-sensitive); on versions it is version equality (`2.1` equals
//! `v2.1.0`). `~` is a glob over the value's text: `*` any run of characters, `?` exactly one,
//! case-insensitive, anchored at both ends; there is no escape (`?` matches a literal `*`).
//!
//! # Multi-valued and missing fields
//!
//! A field may have no values, one, or many (ports, groups, packages). A comparison is true if
//! **any** value satisfies it, so `port > 1000 and port < 2000` may be satisfied by two
//! different ports. The negative forms are negations of the positive ones: `f != v` means
//! `not (f = v)` (no value equals `v`) and `f not in (…)` means `not (f in (…))`. Hence a field
//! with no values makes every comparison false except `!=` and `not in`, which are true; use
//! `has f` to ask whether it has values at all. A value of the wrong variant for its field
//! (a number for a text field) satisfies nothing.
//!
//! # Limits
//!
//! A query is at most 4,096 bytes; parentheses and `not`s nest at most 64 deep, and so do
//! `and`/`or`/`not` in the parsed query (a change from `and` to `or` counts as a level).
//! Errors ([`QueryError`]) carry the byte offset of the problem.
//!
//! [`compare_versions`]: garrison_core::version::compare_versions
#![forbid(unsafe_code)]

mod ast;
mod error;
mod glob;
mod lex;
mod parse;
mod query;
mod schema;
mod subject;

pub use error::QueryError;
pub use query::Query;
pub use schema::{FieldId, FieldKind, FieldSpec, Schema};
pub use subject::{Subject, Value};

#[cfg(test)]
mod tests;
