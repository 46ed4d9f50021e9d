//! What a query is evaluated against: [`Subject`] and the [`Value`]s it yields.
//!
//! The caller owns how devices are stored; a subject only has to enumerate the values of one
//! field without allocating, so evaluating a query costs no allocation either.

use crate::FieldId;

/// One value of a field, borrowed from the subject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A [`Text`](crate::FieldKind::Text) or [`Version`](crate::FieldKind::Version) value.
    Text(&'a str),
    /// A [`Number`](crate::FieldKind::Number) value.
    Number(f64),
    /// A [`Bool`](crate::FieldKind::Bool) value.
    Bool(bool),
}

/// Something a [`Query`](crate::Query) can be evaluated against — usually one device.
///
/// A field may have any number of values: none (unknown, absent), one, or many (open ports,
/// groups, installed packages). A value whose variant does not fit the field's kind (a
/// [`Value::Number`] for a text field) never satisfies a comparison.
pub trait Subject {
    /// Calls `f` on each value of `field` (with `key` for keyed fields) until `f` returns true;
    /// returns whether it did.
    ///
    /// `key` is `Some` exactly when the field is [`keyed`](crate::FieldSpec::keyed).
    fn any_value(
        &self,
        field: FieldId,
        key: Option<&str>,
        f: &mut dyn FnMut(Value<'_>) -> bool,
    ) -> bool;
}
