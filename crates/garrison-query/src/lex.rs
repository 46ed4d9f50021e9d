//! The lexer: query text to [`Token`]s with byte offsets. It knows the punctuation, strings
//! and bare words; keywords are bare words the parser recognises in context.

use crate::QueryError;

/// A comparison operator as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Glob,
}

impl Op {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Glob => "~",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind<'a> {
    /// A bare word: a field, keyword, number, `true`/`false` or unquoted value.
    Word(&'a str),
    /// A double-quoted string, unescaped.
    Str(String),
    Op(Op),
    Open,
    Close,
    Comma,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: Kind<'a>,
    /// Byte offset of the token's first character.
    pub(crate) pos: usize,
}

impl Token<'_> {
    /// The token as error messages name it: `"berlin"`, `string "a b"`, `end of query`.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Word(word) => format!("\"{word}\""),
            Kind::Str(text) => format!("string {text:?}"),
            Kind::Op(op) => format!("\"{}\"", op.symbol()),
            Kind::Open => "\"(\"".to_owned(),
            Kind::Close => "\")\"".to_owned(),
            Kind::Comma => "\",\"".to_owned(),
            Kind::End => "end of query".to_owned(),
        }
    }

    /// Whether this is the bare word `keyword`, in any case.
    pub(crate) fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self.kind, Kind::Word(word) if word.eq_ignore_ascii_case(keyword))
    }
}

/// Characters of a bare word.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '+' | '-' | '*' | '?')
}

/// Splits `text` into tokens, ending with one [`Kind::End`] at `text.len()`.
pub(crate) fn lex(text: &str) -> Result<Vec<Token<'_>>, QueryError> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((pos, c)) = chars.next() {
        let kind = match c {
            c if c.is_whitespace() => continue,
            '(' => Kind::Open,
            ')' => Kind::Close,
            ',' => Kind::Comma,
            '=' => Kind::Op(Op::Eq),
            '~' => Kind::Op(Op::Glob),
            '!' | '<' | '>' => {
                let then_eq = chars.next_if(|&(_, next)| next == '=').is_some();
                match (c, then_eq) {
                    ('!', true) => Kind::Op(Op::Ne),
                    ('<', true) => Kind::Op(Op::Le),
                    ('<', false) => Kind::Op(Op::Lt),
                    ('>', true) => Kind::Op(Op::Ge),
                    ('>', false) => Kind::Op(Op::Gt),
                    _ => {
                        return Err(QueryError::new(
                            pos,
                            "unexpected character \"!\" (did you mean \"!=\"?)",
                        ));
                    }
                }
            }
            '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(QueryError::new(pos, "unterminated string")),
                        Some((_, '"')) => break,
                        Some((escape_pos, '\\')) => match chars.next() {
                            Some((_, escaped @ ('"' | '\\'))) => value.push(escaped),
                            Some((_, other)) => {
                                return Err(QueryError::new(
                                    escape_pos,
                                    format!(
                                        "invalid escape \"\\{}\" in string (only \\\" and \\\\ are allowed)",
                                        other.escape_debug()
                                    ),
                                ));
                            }
                            None => return Err(QueryError::new(pos, "unterminated string")),
                        },
                        Some((_, other)) => value.push(other),
                    }
                }
                Kind::Str(value)
            }
            c if is_word_char(c) => {
                let mut end = pos + c.len_utf8();
                while let Some((next_pos, next)) = chars.next_if(|&(_, next)| is_word_char(next)) {
                    end = next_pos + next.len_utf8();
                }
                // `pos..end` spans whole characters of `text`.
                Kind::Word(text.get(pos..end).unwrap_or_default())
            }
            other => {
                return Err(QueryError::new(
                    pos,
                    format!("unexpected character \"{}\"", other.escape_debug()),
                ));
            }
        };
        tokens.push(Token { kind, pos });
    }
    tokens.push(Token {
        kind: Kind::End,
        pos: text.len(),
    });
    Ok(tokens)
}
