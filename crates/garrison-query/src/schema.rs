//! The fields a query may name: [`Schema`], [`FieldSpec`], [`FieldKind`], [`FieldId`].
//!
//! The caller (the inventory, the rollout planner) owns the list of fields and what they mean;
//! this module only resolves names to indices, case-insensitively, and suggests near misses.

/// What kind of values a field holds, which decides the operators a query may use on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldKind {
    /// Free text: `=`, `!=`, `<`, `<=`, `>`, `>=` (by bytes), `~` (glob), `in`, `not in`.
    Text,
    /// A version string, passed by [`Subject`](crate::Subject)s as
    /// [`Value::Text`](crate::Value::Text) and ordered by
    /// [`garrison_core::version::compare_versions`]; the same operators as [`FieldKind::Text`].
    Version,
    /// A number (`f64`): `=`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`.
    Number,
    /// `true` or `false`: `=` and `!=` only; the field alone means `field = true`.
    Bool,
}

impl FieldKind {
    /// The kind's name in error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Version => "version",
            FieldKind::Number => "number",
            FieldKind::Bool => "bool",
        }
    }
}

/// One field of a [`Schema`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The field's name as queries write it (matched case-insensitively). It should be a bare
    /// word (`[A-Za-z0-9._/@+-]`, no `:`) and not one of the keywords `and`, `or`, `not`,
    /// `in`, `has`, or queries cannot name it.
    pub name: &'static str,
    /// The kind of its values.
    pub kind: FieldKind,
    /// Whether the field is written with a key, `name:key` (e.g. `tag:site`); keys are
    /// case-sensitive and required.
    pub keyed: bool,
    /// One line for operators: what the field holds.
    pub doc: &'static str,
}

/// Index of a field in its [`Schema`], as handed to
/// [`Subject::any_value`](crate::Subject::any_value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldId(pub u16);

/// The fields queries may name. Field `i` of [`Schema::fields`] has id `FieldId(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    fields: Vec<FieldSpec>,
}

impl Schema {
    /// A schema of these fields, in this order. If two share a name (ignoring case) the
    /// first wins; fields past index 65,535 cannot be named.
    pub fn new(fields: Vec<FieldSpec>) -> Schema {
        Schema { fields }
    }

    /// The fields, in id order.
    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// The id of the field called `name` (ignoring ASCII case), if any.
    pub fn field_id(&self, name: &str) -> Option<FieldId> {
        self.lookup(name).map(|(id, _)| id)
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<(FieldId, &FieldSpec)> {
        let index = self
            .fields
            .iter()
            .position(|f| f.name.eq_ignore_ascii_case(name))?;
        let id = u16::try_from(index).ok()?;
        self.fields.get(index).map(|spec| (FieldId(id), spec))
    }

    /// The field name closest to a misspelt `name`, if one is close enough to suggest.
    pub(crate) fn suggest(&self, name: &str) -> Option<&'static str> {
        let typed: Vec<char> = name.to_lowercase().chars().collect();
        let limit = (typed.len() / 3).max(1);
        let mut best: Option<(usize, &'static str)> = None;
        for field in &self.fields {
            let candidate: Vec<char> = field.name.to_lowercase().chars().collect();
            let distance = if typed.len() >= 3 && candidate.starts_with(&typed) {
                // A prefix ("firm" for "firmware") is as good as one typo.
                1
            } else {
                edit_distance(&typed, &candidate)
            };
            if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
                best = Some((distance, field.name));
            }
        }
        best.map(|(_, name)| name)
    }
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions (`modle` → `model` is 1).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    // Three rows of the dynamic-programming table: i-2, i-1, i.
    let mut rows = vec![0usize; 3 * width];
    for (j, cell) in rows.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let (cur, prev, prev2) = (
            (i % 3) * width,
            ((i - 1) % 3) * width,
            ((i + 1) % 3) * width,
        );
        rows[cur] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[prev + j] + 1)
                .min(rows[cur + j - 1] + 1)
                .min(rows[prev + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[prev2 + j - 2] + 1);
            }
            rows[cur + j] = d;
        }
    }
    rows[(a.len() % 3) * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn distances() {
        let cases = [
            ("model", "model", 0),
            ("modle", "model", 1),
            ("mdel", "model", 1),
            ("modelx", "model", 1),
            ("", "abc", 3),
            ("abc", "", 3),
            ("kitten", "sitting", 3),
            ("ca", "abc", 3),
        ];
        for (a, b, expected) in cases {
            let a: Vec<char> = a.chars().collect();
            let b: Vec<char> = b.chars().collect();
            assert_eq!(edit_distance(&a, &b), expected, "{a:?} {b:?}");
        }
    }
}
