//! Who a user is: their role (医療機関, 保健所, 都道府県, 厚労省, operator) and the scope the role
//! is bound to.

use std::fmt;

use crate::codes::{CodeError, HealthCentreCode, InstitutionCode, PrefectureCode};
use crate::i18n::Message;

/// Database id of a user account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The five roles of DOMAIN.md section 2. The public is not a role: it is the absence of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 医療機関: a user of one medical institution.
    Doctor,
    /// 保健所: staff of one health centre.
    HealthCentre,
    /// 都道府県: staff of one prefecture.
    Prefecture,
    /// 厚生労働省: the ministry's data team.
    National,
    /// Operators: accounts, organisations, schedules; never case data.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Doctor,
        Role::HealthCentre,
        Role::Prefecture,
        Role::National,
        Role::Admin,
    ];

    pub fn parse(s: &str) -> Result<Role, CodeError> {
        Role::ALL.into_iter().find(|r| r.as_str() == s.trim()).ok_or_else(|| {
            CodeError(Message::new(
                format!("ロール「{s}」は doctor, health_centre, prefecture, national, admin のいずれかです"),
                format!("role \"{s}\" must be one of doctor, health_centre, prefecture, national, admin"),
            ))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::HealthCentre => "health_centre",
            Role::Prefecture => "prefecture",
            Role::National => "national",
            Role::Admin => "admin",
        }
    }

    pub fn label(self) -> Message {
        match self {
            Role::Doctor => Message::fixed("医療機関", "medical institution"),
            Role::HealthCentre => Message::fixed("保健所", "health centre"),
            Role::Prefecture => Message::fixed("都道府県", "prefecture"),
            Role::National => Message::fixed("厚生労働省", "ministry (national)"),
            Role::Admin => Message::fixed("システム管理者", "administrator"),
        }
    }

    /// National and admin accounts reach every record or every account, so a stolen password
    /// alone must not be enough: they need a second factor (TOTP).
    pub fn requires_second_factor(self) -> bool {
        matches!(self, Role::National | Role::Admin)
    }

    /// What kind of scope code the role is bound to, if any.
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Role::Doctor => ScopeKind::Institution,
            Role::HealthCentre => ScopeKind::HealthCentre,
            Role::Prefecture => ScopeKind::Prefecture,
            Role::National | Role::Admin => ScopeKind::None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of code a role's scope is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    Institution,
    HealthCentre,
    Prefecture,
    None,
}

/// A login name: 3 to 64 characters of lower-case ASCII letters, digits, `.`, `_`, `-`, `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Login(String);

impl Login {
    pub fn parse(s: &str) -> Result<Login, CodeError> {
        let s = s.trim();
        let ok = (3..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_@".contains(&b));
        if ok {
            Ok(Login(s.to_owned()))
        } else {
            Err(CodeError(Message::new(
                format!("ログイン名「{s}」は半角小文字・数字・「.-_@」の3〜64文字で指定してください"),
                format!("login \"{s}\" must be 3 to 64 lower-case ASCII letters, digits or .-_@"),
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a user's role applies, resolved down the organisation tree so that every containment
/// question ("is this institution inside my prefecture?") is answered without another lookup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// One medical institution, which belongs to one health centre of one prefecture.
    Institution {
        institution: InstitutionCode,
        health_centre: HealthCentreCode,
        prefecture: PrefectureCode,
    },
    /// One health centre's jurisdiction.
    HealthCentre {
        health_centre: HealthCentreCode,
        prefecture: PrefectureCode,
    },
    /// One prefecture and all its health centres.
    Prefecture { prefecture: PrefectureCode },
    /// The whole country (national role).
    Nation,
    /// No case data at all (admin role): accounts, organisations and schedules only.
    System,
}

impl Scope {
    pub fn prefecture(&self) -> Option<PrefectureCode> {
        match self {
            Scope::Institution { prefecture, .. }
            | Scope::HealthCentre { prefecture, .. }
            | Scope::Prefecture { prefecture } => Some(*prefecture),
            Scope::Nation | Scope::System => None,
        }
    }
}

/// Where a record sits in the organisation tree: always a prefecture, and a health centre and an
/// institution when the record belongs to one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub prefecture: PrefectureCode,
    pub health_centre: Option<HealthCentreCode>,
    pub institution: Option<InstitutionCode>,
}

/// An authenticated user, as every access decision sees them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    pub user_id: UserId,
    pub login: Login,
    pub role: Role,
    pub scope: Scope,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_are_lower_case_and_bounded() {
        assert!(Login::parse("hc.tokyo-01").is_ok());
        assert!(Login::parse("Admin").is_err());
        assert!(Login::parse("ab").is_err());
        assert!(Login::parse("a b c").is_err());
    }

    #[test]
    fn roles_parse_from_their_contract_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("root").unwrap_err().0.ja.contains("doctor"));
    }
}
