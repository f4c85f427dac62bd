//! Codes that identify places and organisations: prefectures (JIS X 0401), health centres
//! (保健所) and medical institutions (医療機関).
//!
//! Each is a newtype that can only be built by parsing, so a value of the type is always valid.

use std::fmt;

use crate::i18n::Message;

/// A problem with a code, in both languages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.en)]
pub struct CodeError(pub Message);

/// JIS X 0401 prefecture code, `01` (Hokkaido) to `47` (Okinawa), always two digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PrefectureCode(u8);

impl PrefectureCode {
    pub const ALL: std::ops::RangeInclusive<u8> = 1..=47;

    pub fn parse(s: &str) -> Result<PrefectureCode, CodeError> {
        let s = s.trim();
        let ok_shape = s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
        match s.parse::<u8>() {
            Ok(n) if ok_shape && Self::ALL.contains(&n) => Ok(PrefectureCode(n)),
            _ => Err(CodeError(Message::new(
                format!("都道府県コード「{s}」は 01〜47 の2桁で指定してください"),
                format!("prefecture code \"{s}\" must be two digits from 01 to 47"),
            ))),
        }
    }

    pub fn from_number(n: u8) -> Option<PrefectureCode> {
        Self::ALL.contains(&n).then_some(PrefectureCode(n))
    }

    pub fn number(self) -> u8 {
        self.0
    }

    /// The two-digit code as stored and printed ("01" to "47"), without formatting or
    /// allocating (bulk writes bind it for every row).
    pub fn as_str(self) -> &'static str {
        const DIGITS: &str =
            "0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849";
        let at = usize::from(self.0) * 2;
        &DIGITS[at..at + 2]
    }

    /// Every prefecture in JIS order, the order of the open-data columns.
    pub fn all() -> impl Iterator<Item = PrefectureCode> {
        Self::ALL.map(PrefectureCode)
    }
}

impl fmt::Display for PrefectureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PrefectureCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for PrefectureCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PrefectureCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Defines an organisation code: 1 to 32 characters of ASCII letters, digits, `-` and `_`.
/// Codes are printed in URLs and CSV files, so anything else is refused at the door.
macro_rules! org_code {
    ($(#[$doc:meta])* $name:ident, $ja:literal, $en:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<$name, CodeError> {
                let s = s.trim();
                let ok = (1..=32).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if ok {
                    Ok($name(s.to_owned()))
                } else {
                    Err(CodeError(Message::new(
                        format!(concat!($ja, "「{}」は半角英数字・ハイフン・下線の1〜32文字で指定してください"), s),
                        format!(concat!($en, " \"{}\" must be 1 to 32 ASCII letters, digits, '-' or '_'"), s),
                    )))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

org_code!(
    /// Code of a health centre (保健所), unique nationally.
    HealthCentreCode, "保健所コード", "health-centre code"
);
org_code!(
    /// Code of a medical institution (医療機関), unique nationally.
    InstitutionCode, "医療機関コード", "institution code"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn prefecture_codes_are_two_digits_from_01_to_47() {
        assert_eq!(PrefectureCode::parse("01").unwrap().to_string(), "01");
        assert_eq!(PrefectureCode::parse("47").unwrap().number(), 47);
        for bad in ["00", "48", "1", "001", "ab", "", "+1", "4 "] {
            assert!(PrefectureCode::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(PrefectureCode::all().count(), 47);
    }

    #[test]
    fn bad_codes_explain_themselves_in_both_languages() {
        let err = PrefectureCode::parse("99").unwrap_err();
        assert!(err.0.ja.contains("01〜47"));
        assert!(err.0.en.contains("01 to 47"));
        let err = HealthCentreCode::parse("東京").unwrap_err();
        assert!(err.0.en.contains("health-centre code"));
    }

    proptest! {
        #[test]
        fn prefecture_code_round_trips(n in 1u8..=47) {
            let code = PrefectureCode::from_number(n).unwrap();
            prop_assert_eq!(code.as_str(), format!("{n:02}"));
            prop_assert_eq!(PrefectureCode::parse(&code.to_string()).unwrap(), code);
        }

        #[test]
        fn org_codes_accept_exactly_the_safe_alphabet(s in "\\PC{0,40}") {
            let ok = (1..=32).contains(&s.trim().len())
                && s.trim().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            prop_assert_eq!(InstitutionCode::parse(&s).is_ok(), ok);
        }
    }
}
