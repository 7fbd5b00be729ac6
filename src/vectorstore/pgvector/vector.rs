//! pgvector's `vector` type on the wire, in binary: `int16 dims, int16 0, float4[dims]`
//! (big-endian), so embeddings are never formatted as text.

use bytes::{BufMut, BytesMut};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};

/// An embedding as a `vector` parameter or column value.
#[derive(Clone, Debug, PartialEq)]
pub struct Vector(pub Vec<f32>);

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl ToSql for Vector {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let dims = i16::try_from(self.0.len()).map_err(|_| {
            format!(
                "a vector has at most 16000 dimensions, not {}",
                self.0.len()
            )
        })?;
        out.reserve(4 + 4 * self.0.len());
        out.put_i16(dims);
        out.put_i16(0);
        for value in &self.0 {
            out.put_f32(*value);
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }

    to_sql_checked!();
}

impl<'a> FromSql<'a> for Vector {
    fn from_sql(_ty: &Type, raw: &'a [u8]) -> Result<Vector, BoxError> {
        if raw.len() < 4 {
            return Err("vector value too short".into());
        }
        let dims = usize::from(u16::from_be_bytes([raw[0], raw[1]]));
        let body = &raw[4..];
        if body.len() != dims * 4 {
            return Err(format!("vector of {dims} dimensions has {} bytes", body.len()).into());
        }
        Ok(Vector(
            body.chunks_exact(4)
                .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ))
    }

    fn accepts(ty: &Type) -> bool {
        ty.name() == "vector"
    }
}

/// A `uuid` value for binary `COPY` (16 bytes), parsed from its text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// `8-4-4-4-12` hex digits (PostgreSQL's canonical form; what the store writes), or 32
    /// bare hex digits; anything else is `None` (the caller lets the server judge it).
    pub fn parse(text: &str) -> Option<Uuid> {
        let bytes = text.as_bytes();
        let digits: Vec<u8> = match bytes.len() {
            36 if [8, 13, 18, 23].iter().all(|i| bytes[*i] == b'-') => bytes
                .iter()
                .enumerate()
                .filter(|(i, _)| ![8, 13, 18, 23].contains(i))
                .map(|(_, b)| *b)
                .collect(),
            32 => bytes.to_vec(),
            _ => return None,
        };
        let nibble = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 16];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Uuid(out))
    }
}

impl ToSql for Uuid {
    fn to_sql(&self, _ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::UUID
    }

    to_sql_checked!();
}

/// JSON text for a `json` or `jsonb` column in binary `COPY` (jsonb adds its version byte).
#[derive(Clone, Copy, Debug)]
pub struct JsonText<'a>(pub &'a str);

impl ToSql for JsonText<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if *ty == Type::JSONB {
            out.put_u8(1);
        }
        out.put_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON || *ty == Type::JSONB
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_text_forms() {
        let canonical = Uuid::parse("00000000-0000-0000-0000-00000000012f").unwrap();
        assert_eq!(canonical.0[15], 0x2f);
        assert_eq!(canonical.0[14], 0x01);
        assert_eq!(
            Uuid::parse("0000000000000000000000000000012F"),
            Some(canonical)
        );
        for bad in [
            "",
            "not-a-uuid",
            "00000000-0000-0000-0000-00000000012g",
            "00000000_0000-0000-0000-00000000012f",
        ] {
            assert_eq!(Uuid::parse(bad), None, "{bad}");
        }
    }
}
