//! SQLite values as PostgreSQL columns want them. SQLite stores whatever a row was given
//! (an INTEGER column may hold text); PostgreSQL checks every value against the column's
//! type. So each value is converted by the PostgreSQL column's type, and a value that does
//! not fit stops the copy with the table, the row and the column named.

use bytes::BytesMut;
use rusqlite::types::ValueRef;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};

/// One value on its way to PostgreSQL, already of the target column's type.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PgValue {
    Null,
    I64(i64),
    I32(i32),
    I16(i16),
    F64(f64),
    F32(f32),
    Bool(bool),
    Text(String),
    Bytes(Vec<u8>),
    /// JSON text, checked to parse; sent as `json` or `jsonb` as the column is.
    Json(String),
}

/// The PostgreSQL column types `store copy` fills; any other stops the copy before it
/// writes (said by [`supported`]).
const SUPPORTED: &[Type] = &[
    Type::INT8,
    Type::INT4,
    Type::INT2,
    Type::FLOAT8,
    Type::FLOAT4,
    Type::BOOL,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::BYTEA,
    Type::JSON,
    Type::JSONB,
];

pub(super) fn supported(ty: &Type) -> bool {
    SUPPORTED.contains(ty)
}

/// Converts one SQLite value for a PostgreSQL column of type `ty`. The error says what the
/// value was and what the column wants; the caller adds table, row and column.
pub(super) fn convert(value: ValueRef<'_>, ty: &Type) -> Result<PgValue, String> {
    let wants = || format!("PostgreSQL wants {ty}");
    Ok(match (value, ty) {
        (ValueRef::Null, _) => PgValue::Null,
        (ValueRef::Integer(i), &Type::INT8) => PgValue::I64(i),
        (ValueRef::Integer(i), &Type::INT4) => PgValue::I32(
            i32::try_from(i).map_err(|_| format!("integer {i} is too large: {}", wants()))?,
        ),
        (ValueRef::Integer(i), &Type::INT2) => PgValue::I16(
            i16::try_from(i).map_err(|_| format!("integer {i} is too large: {}", wants()))?,
        ),
        // Integers become floats exactly up to 2^53, far beyond any count or timestamp.
        (ValueRef::Integer(i), &Type::FLOAT8) => PgValue::F64(i as f64),
        (ValueRef::Real(f), &Type::FLOAT8) => PgValue::F64(f),
        (ValueRef::Integer(i), &Type::FLOAT4) => PgValue::F32(i as f32),
        (ValueRef::Real(f), &Type::FLOAT4) => PgValue::F32(f as f32),
        (ValueRef::Integer(0), &Type::BOOL) => PgValue::Bool(false),
        (ValueRef::Integer(1), &Type::BOOL) => PgValue::Bool(true),
        (ValueRef::Text(t), &Type::JSON | &Type::JSONB) => {
            let text = utf8(t)?;
            serde_json::from_str::<serde::de::IgnoredAny>(&text)
                .map_err(|e| format!("text is not JSON ({e}): {}", wants()))?;
            PgValue::Json(text)
        }
        (ValueRef::Text(t), &Type::TEXT | &Type::VARCHAR | &Type::BPCHAR | &Type::NAME) => {
            PgValue::Text(utf8(t)?)
        }
        // A column without a declared type keeps numbers as numbers; their decimal text is
        // what SQLite itself shows for them.
        (ValueRef::Integer(i), &Type::TEXT | &Type::VARCHAR) => PgValue::Text(i.to_string()),
        (ValueRef::Real(f), &Type::TEXT | &Type::VARCHAR) => PgValue::Text(f.to_string()),
        (ValueRef::Blob(b), &Type::TEXT | &Type::VARCHAR) => PgValue::Text(utf8(b)?),
        (ValueRef::Blob(b) | ValueRef::Text(b), &Type::BYTEA) => PgValue::Bytes(b.to_vec()),
        (other, _) => return Err(format!("{}: {}", describe(other), wants())),
    })
}

fn utf8(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        format!(
            "text is not valid UTF-8 (at byte {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// A SQLite value for an error message, cut short.
fn describe(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => format!("integer {i}"),
        ValueRef::Real(f) => format!("real {f}"),
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            let short: String = text.chars().take(40).collect();
            let more = if short.len() < text.len() { "..." } else { "" };
            format!("text '{short}{more}'")
        }
        ValueRef::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

impl ToSql for PgValue {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            PgValue::Null => Ok(IsNull::Yes),
            PgValue::I64(v) => v.to_sql(ty, out),
            PgValue::I32(v) => v.to_sql(ty, out),
            PgValue::I16(v) => v.to_sql(ty, out),
            PgValue::F64(v) => v.to_sql(ty, out),
            PgValue::F32(v) => v.to_sql(ty, out),
            PgValue::Bool(v) => v.to_sql(ty, out),
            PgValue::Text(v) => v.to_sql(ty, out),
            PgValue::Bytes(v) => v.to_sql(ty, out),
            PgValue::Json(text) => {
                // jsonb's binary form is a version byte (1) and the text; json's is the text.
                if *ty == Type::JSONB {
                    out.extend_from_slice(&[1]);
                }
                out.extend_from_slice(text.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    /// Only values [`convert`] made for a column of type `ty` are sent, so every supported
    /// type is accepted here and the per-variant `to_sql` checks the pairing.
    fn accepts(ty: &Type) -> bool {
        supported(ty)
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_the_postgres_column_type() {
        assert_eq!(
            convert(ValueRef::Integer(7), &Type::INT8),
            Ok(PgValue::I64(7))
        );
        assert_eq!(
            convert(ValueRef::Integer(3), &Type::FLOAT8),
            Ok(PgValue::F64(3.0))
        );
        assert_eq!(
            convert(ValueRef::Integer(1), &Type::BOOL),
            Ok(PgValue::Bool(true))
        );
        assert_eq!(
            convert(ValueRef::Text(b"hi"), &Type::BYTEA),
            Ok(PgValue::Bytes(b"hi".to_vec()))
        );
        assert_eq!(
            convert(ValueRef::Integer(42), &Type::TEXT),
            Ok(PgValue::Text("42".into()))
        );
        assert_eq!(convert(ValueRef::Null, &Type::INT8), Ok(PgValue::Null));
        assert_eq!(
            convert(ValueRef::Text(b"{\"a\":1}"), &Type::JSONB),
            Ok(PgValue::Json("{\"a\":1}".into()))
        );
    }

    #[test]
    fn a_value_that_does_not_fit_says_what_it_was_and_what_was_wanted() {
        assert_eq!(
            convert(ValueRef::Text(b"soon"), &Type::INT8),
            Err("text 'soon': PostgreSQL wants int8".into())
        );
        assert_eq!(
            convert(ValueRef::Integer(1 << 40), &Type::INT4),
            Err("integer 1099511627776 is too large: PostgreSQL wants int4".into())
        );
        assert_eq!(
            convert(ValueRef::Integer(2), &Type::BOOL),
            Err("integer 2: PostgreSQL wants bool".into())
        );
        assert!(convert(ValueRef::Text(b"{"), &Type::JSON)
            .is_err_and(|e| e.starts_with("text is not JSON")));
        assert!(convert(ValueRef::Blob(&[0xff]), &Type::TEXT)
            .is_err_and(|e| e.contains("not valid UTF-8")));
    }
}
