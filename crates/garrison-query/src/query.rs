//! [`Query`]: a parsed, type-checked query, ready to be evaluated against many subjects.

use crate::ast::Expr;
use crate::{QueryError, Schema, Subject, parse};

/// A compiled query. Parse once with [`Query::parse`], then [`Query::matches`] each device.
///
/// Two queries are equal (`==`) when they mean the same thing structurally, whatever their
/// spelling: `MODEL = cam-x` equals `model = "cam-x"`.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    expr: Expr,
}

impl Query {
    /// Parses `text` against `schema`: resolves fields, checks every operator and value
    /// against its field's kind, compiles globs. See the [crate documentation](crate) for
    /// the language.
    pub fn parse(text: &str, schema: &Schema) -> Result<Query, QueryError> {
        let expr = parse::parse(text, schema)?;
        Ok(Query {
            text: text.to_owned(),
            expr,
        })
    }

    /// Whether `subject` satisfies the query. Allocates nothing.
    pub fn matches(&self, subject: &dyn Subject) -> bool {
        self.expr.eval(subject)
    }

    /// Whether the query names `field` anywhere (a dynamic group, for one, may not depend on
    /// group membership).
    pub fn uses_field(&self, field: crate::FieldId) -> bool {
        self.expr.uses_field(field)
    }

    /// The text the query was parsed from.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The normalised form: lower-case keywords, fields as the schema spells them, text and
    /// version values quoted, numbers in shortest form, bare bool fields written out
    /// (`online = true`), nested groups of the same operator flattened, and every `and`/`or`
    /// group inside another expression parenthesised.
    ///
    /// It parses back (with the same schema) to an equal `Query`. It may be longer than the
    /// original text, so the canonical form of a query near the 4 KiB limit can exceed it.
    pub fn to_canonical(&self) -> String {
        let mut out = String::with_capacity(self.text.len() + 16);
        self.expr.write_canonical(&mut out, false);
        out
    }
}

impl PartialEq for Query {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}
