//! The recursive-descent parser: tokens to an [`Expr`], with fields resolved against the
//! [`Schema`] and every type rule checked, so a parsed query cannot fail at evaluation time.
//!
//! Hostile input is bounded: the text may be at most [`MAX_LEN`] bytes, and both the
//! nesting of parentheses and `not`s as written and the nesting of `and`/`or`/`not` in the
//! result at most [`MAX_DEPTH`], so neither parsing nor evaluating can exhaust the stack.

use crate::ast::{Expr, Field, Operand, Order, Test};
use crate::glob::Glob;
use crate::lex::{Kind, Op, Token, lex};
use crate::{FieldKind, QueryError, Schema};

/// The longest query accepted, in bytes.
pub(crate) const MAX_LEN: usize = 4096;
/// The deepest nesting accepted.
pub(crate) const MAX_DEPTH: usize = 64;

/// Words that cannot be fields or bare values.
const RESERVED: [&str; 5] = ["and", "or", "not", "in", "has"];

fn is_reserved(word: &str) -> bool {
    RESERVED.iter().any(|k| k.eq_ignore_ascii_case(word))
}

fn depth_error(pos: usize) -> QueryError {
    QueryError::new(pos, format!("query nests deeper than {MAX_DEPTH} levels"))
}

/// An expression and its height: the longest chain of `and`/`or`/`not` nodes in it.
struct Node {
    expr: Expr,
    height: usize,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, height: 0 }
    }
}

pub(crate) fn parse(text: &str, schema: &Schema) -> Result<Expr, QueryError> {
    if text.len() > MAX_LEN {
        return Err(QueryError::new(
            MAX_LEN,
            format!("query is longer than {MAX_LEN} bytes"),
        ));
    }
    let tokens = lex(text)?;
    if tokens.len() <= 1 {
        return Err(QueryError::new(0, "empty query"));
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        end: Token {
            kind: Kind::End,
            pos: text.len(),
        },
        schema,
    };
    let node = parser.parse_group(0, false)?;
    let next = parser.peek();
    if next.kind != Kind::End {
        // `firmware < 1.0~rc1`: operator characters end a bare word.
        let hint = match next.kind {
            Kind::Op(op) => format!(" (to use \"{}\" in a value, quote the value)", op.symbol()),
            _ => String::new(),
        };
        return Err(QueryError::new(
            next.pos,
            format!(
                "expected \"and\", \"or\" or end of query, found {}{hint}",
                next.describe()
            ),
        ));
    }
    Ok(node.expr)
}

struct Parser<'q, 's> {
    tokens: Vec<Token<'q>>,
    at: usize,
    /// Returned by [`Parser::peek`] past the end (the token list also ends with one).
    end: Token<'q>,
    schema: &'s Schema,
}

impl<'q> Parser<'q, '_> {
    fn peek(&self) -> &Token<'q> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> &Token<'q> {
        self.tokens.get(self.at + ahead).unwrap_or(&self.end)
    }

    fn advance(&mut self) {
        if self.at < self.tokens.len() {
            self.at += 1;
        }
    }

    /// `or_expr = and_expr { "or" and_expr }` when `and` is false,
    /// `and_expr = not_expr { "and" not_expr }` when it is true. Nested groups of the same
    /// operator are flattened: `(a and b) and c` is `a and b and c`.
    fn parse_group(&mut self, nest: usize, and: bool) -> Result<Node, QueryError> {
        let keyword = if and { "and" } else { "or" };
        let first = self.parse_operand_of(nest, and)?;
        if !self.peek().is_keyword(keyword) {
            return Ok(first);
        }
        let pos = self.peek().pos;
        let mut items = Vec::new();
        let mut height = 0;
        let mut add = |node: Node| match node.expr {
            Expr::And(inner) if and => {
                height = height.max(node.height);
                items.extend(inner);
            }
            Expr::Or(inner) if !and => {
                height = height.max(node.height);
                items.extend(inner);
            }
            expr => {
                height = height.max(node.height + 1);
                items.push(expr);
            }
        };
        add(first);
        while self.peek().is_keyword(keyword) {
            self.advance();
            add(self.parse_operand_of(nest, and)?);
        }
        if height > MAX_DEPTH {
            return Err(depth_error(pos));
        }
        let expr = if and {
            Expr::And(items)
        } else {
            Expr::Or(items)
        };
        Ok(Node { expr, height })
    }

    fn parse_operand_of(&mut self, nest: usize, and: bool) -> Result<Node, QueryError> {
        if and {
            self.parse_not(nest)
        } else {
            self.parse_group(nest, true)
        }
    }

    /// `not_expr = "not" not_expr | primary`
    fn parse_not(&mut self, nest: usize) -> Result<Node, QueryError> {
        if !self.peek().is_keyword("not") {
            return self.parse_primary(nest);
        }
        let pos = self.peek().pos;
        if nest >= MAX_DEPTH {
            return Err(depth_error(pos));
        }
        self.advance();
        let inner = self.parse_not(nest + 1)?;
        let height = inner.height + 1;
        if height > MAX_DEPTH {
            return Err(depth_error(pos));
        }
        Ok(Node {
            expr: Expr::Not(Box::new(inner.expr)),
            height,
        })
    }

    /// `primary = "(" or_expr ")" | "has" field | comparison`
    fn parse_primary(&mut self, nest: usize) -> Result<Node, QueryError> {
        let token = self.peek().clone();
        match token.kind {
            Kind::Open => {
                if nest >= MAX_DEPTH {
                    return Err(depth_error(token.pos));
                }
                self.advance();
                let inner = self.parse_group(nest + 1, false)?;
                let close = self.peek();
                if close.kind != Kind::Close {
                    return Err(QueryError::new(
                        close.pos,
                        format!(
                            "expected \")\" to close the \"(\" at {}, found {}",
                            token.pos,
                            close.describe()
                        ),
                    ));
                }
                self.advance();
                Ok(inner)
            }
            Kind::Word(word) if word.eq_ignore_ascii_case("has") => {
                self.advance();
                let next = self.peek().clone();
                match next.kind {
                    Kind::Word(field) if !is_reserved(field) => {
                        self.advance();
                        let field = self.resolve_field(field, next.pos)?;
                        Ok(Node::leaf(Expr::Has(field)))
                    }
                    _ => Err(QueryError::new(
                        next.pos,
                        format!("expected a field after \"has\", found {}", next.describe()),
                    )),
                }
            }
            Kind::Word(word) if !is_reserved(word) => {
                self.advance();
                let field = self.resolve_field(word, token.pos)?;
                self.parse_comparison(field)
            }
            _ => Err(QueryError::new(
                token.pos,
                format!(
                    "expected a field, \"has\", \"not\" or \"(\", found {}",
                    token.describe()
                ),
            )),
        }
    }

    /// `field = NAME [ ":" KEY ]`, written as one bare word.
    fn resolve_field(&self, word: &str, pos: usize) -> Result<Field, QueryError> {
        let (name, key) = match word.split_once(':') {
            Some((name, key)) => (name, Some(key)),
            None => (word, None),
        };
        let Some((id, spec)) = self.schema.lookup(name) else {
            let message = match self.schema.suggest(name) {
                Some(close) => format!("unknown field \"{name}\" (did you mean \"{close}\"?)"),
                None => format!("unknown field \"{name}\""),
            };
            return Err(QueryError::new(pos, message));
        };
        let key = match (spec.keyed, key) {
            (true, None) => {
                return Err(QueryError::new(
                    pos,
                    format!("field \"{0}\" needs a key, as in \"{0}:NAME\"", spec.name),
                ));
            }
            (true, Some("")) => {
                return Err(QueryError::new(
                    pos + word.len(),
                    format!("expected a key after \"{name}:\""),
                ));
            }
            (true, Some(key)) => Some(key.into()),
            (false, Some(_)) => {
                return Err(QueryError::new(
                    pos + name.len(),
                    format!("field \"{}\" does not take a key", spec.name),
                ));
            }
            (false, None) => None,
        };
        Ok(Field {
            id,
            name: spec.name,
            kind: spec.kind,
            key,
        })
    }

    /// `comparison = field ( op value | [ "not" ] "in" "(" value { "," value } ")" )`,
    /// or a bool field alone.
    fn parse_comparison(&mut self, field: Field) -> Result<Node, QueryError> {
        let token = self.peek().clone();
        let test = match token.kind {
            Kind::Op(op) => {
                check_operator(&field, op.symbol(), op == Op::Glob, token.pos)?;
                self.advance();
                let after = format!("after \"{}\"", op.symbol());
                match op {
                    Op::Eq => Test::Eq(self.parse_value(&field, &after)?),
                    Op::Ne => Test::Ne(self.parse_value(&field, &after)?),
                    Op::Lt => Test::Order(Order::Lt, self.parse_value(&field, &after)?),
                    Op::Le => Test::Order(Order::Le, self.parse_value(&field, &after)?),
                    Op::Gt => Test::Order(Order::Gt, self.parse_value(&field, &after)?),
                    Op::Ge => Test::Order(Order::Ge, self.parse_value(&field, &after)?),
                    Op::Glob => {
                        let (text, _) = self.value_token(&field, &after)?;
                        Test::Glob(Glob::new(&text))
                    }
                }
            }
            Kind::Word(_) if token.is_keyword("in") => {
                check_operator(&field, "in", false, token.pos)?;
                self.advance();
                Test::In(self.parse_list(&field, "in")?)
            }
            Kind::Word(_) if token.is_keyword("not") && self.peek_at(1).is_keyword("in") => {
                check_operator(&field, "not in", false, token.pos)?;
                self.advance();
                self.advance();
                Test::NotIn(self.parse_list(&field, "not in")?)
            }
            _ if field.kind == FieldKind::Bool => Test::Eq(Operand::Bool(true)),
            _ => {
                return Err(QueryError::new(
                    token.pos,
                    format!(
                        "expected an operator after field \"{}\", found {}",
                        field.name,
                        token.describe()
                    ),
                ));
            }
        };
        Ok(Node::leaf(Expr::Compare(field, test)))
    }

    /// `"(" value { "," value } ")"` after `in` or `not in`.
    fn parse_list(&mut self, field: &Field, after: &str) -> Result<Vec<Operand>, QueryError> {
        let open = self.peek();
        if open.kind != Kind::Open {
            return Err(QueryError::new(
                open.pos,
                format!(
                    "expected \"(\" after \"{after}\", found {}",
                    open.describe()
                ),
            ));
        }
        self.advance();
        let mut list = Vec::new();
        loop {
            list.push(self.parse_value(field, "in the list")?);
            let next = self.peek();
            match next.kind {
                Kind::Comma => self.advance(),
                Kind::Close => {
                    self.advance();
                    return Ok(list);
                }
                _ => {
                    return Err(QueryError::new(
                        next.pos,
                        format!(
                            "expected \",\" or \")\" in the list, found {}",
                            next.describe()
                        ),
                    ));
                }
            }
        }
    }

    /// The next value token's text (a bare word or an unescaped string) and position.
    fn value_token(&mut self, field: &Field, context: &str) -> Result<(String, usize), QueryError> {
        let token = self.peek();
        let text = match &token.kind {
            Kind::Word(word) if is_reserved(word) => {
                let hint = match field.kind {
                    FieldKind::Text | FieldKind::Version => " (quote it to use it as text)",
                    FieldKind::Number | FieldKind::Bool => "",
                };
                return Err(QueryError::new(
                    token.pos,
                    format!("expected a value {context}, found keyword \"{word}\"{hint}"),
                ));
            }
            Kind::Word(word) => (*word).to_owned(),
            Kind::Str(text) => text.clone(),
            _ => {
                return Err(QueryError::new(
                    token.pos,
                    format!("expected a value {context}, found {}", token.describe()),
                ));
            }
        };
        let pos = token.pos;
        self.advance();
        Ok((text, pos))
    }

    /// A value converted to the field's kind.
    fn parse_value(&mut self, field: &Field, context: &str) -> Result<Operand, QueryError> {
        let found = self.peek().describe();
        let (text, pos) = self.value_token(field, context)?;
        match field.kind {
            FieldKind::Text | FieldKind::Version => Ok(Operand::Text(text.into())),
            FieldKind::Number => match parse_number(&text) {
                Some(number) if number.is_finite() => Ok(Operand::Number(number)),
                Some(_) => Err(QueryError::new(
                    pos,
                    format!("number out of range for field \"{}\"", field.name),
                )),
                None => Err(QueryError::new(
                    pos,
                    format!(
                        "expected a number for field \"{}\", found {found}",
                        field.name
                    ),
                )),
            },
            FieldKind::Bool if text.eq_ignore_ascii_case("true") => Ok(Operand::Bool(true)),
            FieldKind::Bool if text.eq_ignore_ascii_case("false") => Ok(Operand::Bool(false)),
            FieldKind::Bool => Err(QueryError::new(
                pos,
                format!(
                    "expected true or false for field \"{}\", found {found}",
                    field.name
                ),
            )),
        }
    }
}

/// Refuses operators the field's kind does not support.
fn check_operator(field: &Field, symbol: &str, glob: bool, pos: usize) -> Result<(), QueryError> {
    let hint = match field.kind {
        FieldKind::Bool if symbol != "=" && symbol != "!=" => "bool fields take only = and !=",
        FieldKind::Number if glob => "~ matches text and version fields",
        _ => return Ok(()),
    };
    Err(QueryError::new(
        pos,
        format!(
            "operator \"{symbol}\" is not valid for {} field \"{}\" ({hint})",
            field.kind.name(),
            field.name
        ),
    ))
}

/// `-?DIGITS[.DIGITS]` as an `f64` (possibly infinite when huge); `None` for other syntax.
fn parse_number(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
        return None;
    }
    text.parse().ok()
}
