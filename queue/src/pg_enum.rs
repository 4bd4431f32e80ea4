//! PostgreSQL enums of schema `bosun` as Rust enums, encoded through their text.
//!
//! By hand rather than derived: PostgreSQL names a result column's type `job_state` (the
//! schema is left out when it is not on the search path) while parameters must name it
//! `bosun.job_state`; both are the same enum. The Rust type needs `as_str` and `FromStr`.

/// Implement sqlx's `Type`, `Encode` and `Decode` for `$rust`, the PostgreSQL enum
/// `bosun.$pg`.
macro_rules! impl_pg_text_enum {
    ($rust:ty, $pg:literal) => {
        impl sqlx::Type<sqlx::Postgres> for $rust {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                sqlx::postgres::PgTypeInfo::with_name(concat!("bosun.", $pg))
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                use sqlx::TypeInfo;
                ty.name() == $pg || ty.name() == concat!("bosun.", $pg)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $rust {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl sqlx::Decode<'_, sqlx::Postgres> for $rust {
            fn decode(
                value: sqlx::postgres::PgValueRef<'_>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                Ok(text.parse()?)
            }
        }
    };
}

pub(crate) use impl_pg_text_enum;
