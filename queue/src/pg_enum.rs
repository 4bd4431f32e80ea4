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

/// A Rust enum for the PostgreSQL enum `bosun.$pg`, with `as_str`, `Display`, `FromStr`
/// (unknown text is [`crate::Error::InvalidArgument`]) and serde in snake case.
macro_rules! text_states {
    ($(#[$doc:meta])* $name:ident, $pg:literal, { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The name used in SQL and JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;

            fn from_str(s: &str) -> crate::Result<Self> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(crate::Error::InvalidArgument(format!(
                        concat!("{} is not one of: ", $($text, " "),+), crate::quote_short(s)
                    ))),
                }
            }
        }

        $crate::pg_enum::impl_pg_text_enum!($name, $pg);
    };
}

pub(crate) use text_states;
