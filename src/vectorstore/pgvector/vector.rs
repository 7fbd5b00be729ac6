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
