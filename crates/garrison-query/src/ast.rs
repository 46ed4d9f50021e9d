//! The compiled query: an expression tree with fields resolved to ids and operands converted
//! to their field's kind, its evaluation against a [`Subject`], and its canonical text.
//!
//! Evaluation allocates nothing: every operand was parsed, every pattern compiled and every
//! field looked up when the query was parsed.

use std::cmp::Ordering;
use std::fmt::Write as _;

use garrison_core::version::compare_versions;

use crate::glob::Glob;
use crate::{FieldId, FieldKind, Subject, Value};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    /// All of these (at least two; never directly containing another `And`).
    And(Vec<Expr>),
    /// Any of these (at least two; never directly containing another `Or`).
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// The field has at least one value.
    Has(Field),
    Compare(Field, Test),
}

/// A field reference, resolved against the schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub(crate) id: FieldId,
    /// The schema's spelling, for the canonical form.
    pub(crate) name: &'static str,
    pub(crate) kind: FieldKind,
    pub(crate) key: Option<Box<str>>,
}

/// A comparison operand, already of the field's kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// For text and version fields.
    Text(Box<str>),
    Number(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Eq(Operand),
    /// No value equals the operand.
    Ne(Operand),
    Order(Order, Operand),
    Glob(Glob),
    In(Vec<Operand>),
    /// No value equals any operand.
    NotIn(Vec<Operand>),
}

impl Expr {
    /// Whether `field` appears anywhere in the expression.
    pub(crate) fn uses_field(&self, field: FieldId) -> bool {
        match self {
            Expr::And(list) | Expr::Or(list) => list.iter().any(|e| e.uses_field(field)),
            Expr::Not(inner) => inner.uses_field(field),
            Expr::Has(f) | Expr::Compare(f, _) => f.id == field,
        }
    }
}

impl Order {
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Order::Lt => ordering == Ordering::Less,
            Order::Le => ordering != Ordering::Greater,
            Order::Gt => ordering == Ordering::Greater,
            Order::Ge => ordering != Ordering::Less,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Order::Lt => "<",
            Order::Le => "<=",
            Order::Gt => ">",
            Order::Ge => ">=",
        }
    }
}

/// Whether a subject's value equals an operand, by the field's kind.
fn equals(kind: FieldKind, value: Value<'_>, operand: &Operand) -> bool {
    match (value, operand) {
        (Value::Text(text), Operand::Text(expected)) => match kind {
            FieldKind::Version => compare_versions(text, expected) == Ordering::Equal,
            _ => text == &**expected,
        },
        (Value::Number(number), Operand::Number(expected)) => number == *expected,
        (Value::Bool(flag), Operand::Bool(expected)) => flag == *expected,
        _ => false,
    }
}

/// How a subject's value orders against an operand, if the two are comparable.
fn order(kind: FieldKind, value: Value<'_>, operand: &Operand) -> Option<Ordering> {
    match (value, operand) {
        (Value::Text(text), Operand::Text(expected)) => Some(match kind {
            FieldKind::Version => compare_versions(text, expected),
            _ => text.cmp(expected),
        }),
        (Value::Number(number), Operand::Number(expected)) => number.partial_cmp(expected),
        _ => None,
    }
}

impl Expr {
    pub(crate) fn eval(&self, subject: &dyn Subject) -> bool {
        match self {
            Expr::And(all) => all.iter().all(|e| e.eval(subject)),
            Expr::Or(any) => any.iter().any(|e| e.eval(subject)),
            Expr::Not(inner) => !inner.eval(subject),
            Expr::Has(field) => subject.any_value(field.id, field.key.as_deref(), &mut |_| true),
            Expr::Compare(field, test) => {
                let kind = field.kind;
                let any = |f: &mut dyn FnMut(Value<'_>) -> bool| {
                    subject.any_value(field.id, field.key.as_deref(), f)
                };
                match test {
                    Test::Eq(operand) => any(&mut |v| equals(kind, v, operand)),
                    Test::Ne(operand) => !any(&mut |v| equals(kind, v, operand)),
                    Test::Order(op, operand) => {
                        any(&mut |v| order(kind, v, operand).is_some_and(|o| op.holds(o)))
                    }
                    Test::Glob(glob) => {
                        any(&mut |v| matches!(v, Value::Text(t) if glob.matches(t)))
                    }
                    Test::In(list) => any(&mut |v| list.iter().any(|o| equals(kind, v, o))),
                    Test::NotIn(list) => !any(&mut |v| list.iter().any(|o| equals(kind, v, o))),
                }
            }
        }
    }

    /// Writes the canonical form: keywords in lower case, fields as the schema spells them,
    /// text quoted, numbers in shortest form, every nested `and`/`or` group parenthesised.
    pub(crate) fn write_canonical(&self, out: &mut String, nested: bool) {
        match self {
            Expr::And(items) | Expr::Or(items) => {
                let joiner = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                if nested {
                    out.push('(');
                }
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(joiner);
                    }
                    item.write_canonical(out, true);
                }
                if nested {
                    out.push(')');
                }
            }
            Expr::Not(inner) => {
                out.push_str("not ");
                inner.write_canonical(out, true);
            }
            Expr::Has(field) => {
                out.push_str("has ");
                field.write(out);
            }
            Expr::Compare(field, test) => {
                field.write(out);
                match test {
                    Test::Eq(operand) => write_operand(out, " = ", operand),
                    Test::Ne(operand) => write_operand(out, " != ", operand),
                    Test::Order(op, operand) => {
                        out.push(' ');
                        out.push_str(op.symbol());
                        write_operand(out, " ", operand);
                    }
                    Test::Glob(glob) => {
                        out.push_str(" ~ ");
                        write_quoted(out, glob.source());
                    }
                    Test::In(list) => write_list(out, " in (", list),
                    Test::NotIn(list) => write_list(out, " not in (", list),
                }
            }
        }
    }
}

impl Field {
    fn write(&self, out: &mut String) {
        out.push_str(self.name);
        if let Some(key) = &self.key {
            out.push(':');
            out.push_str(key);
        }
    }
}

fn write_list(out: &mut String, open: &str, list: &[Operand]) {
    out.push_str(open);
    for (i, operand) in list.iter().enumerate() {
        write_operand(out, if i == 0 { "" } else { ", " }, operand);
    }
    out.push(')');
}

fn write_operand(out: &mut String, prefix: &str, operand: &Operand) {
    out.push_str(prefix);
    match operand {
        Operand::Text(text) => write_quoted(out, text),
        // `Display` for f64 is the shortest text that parses back to the same number, and
        // never uses an exponent, so it is always valid number syntax.
        Operand::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Operand::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
    }
}

fn write_quoted(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}
