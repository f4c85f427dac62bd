//! The one access policy: who may read or change what, and when.
//!
//! Every page, API route and export asks [`decide`] before it touches data, and list queries take
//! their row filter from [`org_filter`], so the rules of DOMAIN.md section 2 live here and nowhere
//! else. The answer distinguishes the refusals a user must be told apart:
//!
//! * not logged in → [`Denial::Unauthenticated`] (401);
//! * a single record outside the user's scope → [`Denial::NotFound`] (404), so that its existence
//!   is not revealed;
//! * an action the role may not take → [`Denial::Forbidden`] (403);
//! * a change refused by the lifecycle schedule → [`Denial::Locked`] (423), naming the phase.

use chrono::{DateTime, FixedOffset, Utc};

use crate::account::{Place, Principal, Role, Scope};
use crate::codes::{HealthCentreCode, InstitutionCode, PrefectureCode};
use crate::i18n::Message;

/// Where the system is in its life (seed 002). A later issue drives this from the operator's
/// schedule; until then the server is always [`LifecyclePhase::Open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecyclePhase {
    /// Normal operation.
    Open,
    /// 閲覧のみ: every create, edit and delete of registry data is closed; viewing, exports and
    /// certificates go on.
    ReadOnly { since: DateTime<Utc> },
    /// 切替作業: nobody can log in or use anything but the public pages.
    Maintenance { since: DateTime<Utc> },
    /// 運用終了: viewing and downloads are closed too; only public pages remain.
    Closed { since: DateTime<Utc> },
}

impl LifecyclePhase {
    fn name(&self) -> Message {
        match self {
            LifecyclePhase::Open => Message::fixed("通常運用", "open"),
            LifecyclePhase::ReadOnly { .. } => Message::fixed("閲覧のみ期間", "read-only period"),
            LifecyclePhase::Maintenance { .. } => Message::fixed("切替作業中", "maintenance"),
            LifecyclePhase::Closed { .. } => Message::fixed("運用終了", "closed"),
        }
    }

    fn since(&self) -> Option<DateTime<Utc>> {
        match self {
            LifecyclePhase::Open => None,
            LifecyclePhase::ReadOnly { since }
            | LifecyclePhase::Maintenance { since }
            | LifecyclePhase::Closed { since } => Some(*since),
        }
    }
}

/// What a request wants to do. Each route names exactly one action; the match in [`decide`] is
/// exhaustive, so a new action cannot be added without a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// Public pages and open data: anyone, in every phase.
    ReadPublic,
    /// Logging in, which is closed only during maintenance.
    LogIn,
    /// Reading one's own account.
    ReadOwnAccount,
    /// Second factor, API tokens, logging out: one's own credentials.
    ManageOwnCredentials,
    /// Listing organisations; the rows are cut by [`org_filter`].
    ListOrganisations,
    /// Reading one organisation record located at the place.
    ReadOrganisation(&'a Place),
    /// Creating or changing health centres and institutions.
    ManageOrganisations,
    /// Creating, changing and listing user accounts.
    ManageAccounts,
    /// Reading and verifying the audit log.
    ReadAuditLog,
    /// Filing a notification (発生届) at the given place.
    FileNotification(&'a Place),
    /// Listing notifications; the rows are cut by [`case_filter`].
    ListCases,
    /// Reading one notification (personal data) located at the place.
    ReadCase(&'a Place),
    /// 保健所確認済: the health centre confirms a notification.
    ConfirmCase(&'a Place),
    /// 取り下げ: the filing institution or the health centre withdraws a notification.
    WithdrawCase(&'a Place),
    /// Recording a case's status (療養状況) and severity.
    UpdateCaseStatus(&'a Place),
    /// Uploading a file (notifications, status changes, decisions...); each row is then checked
    /// as the single request it stands for ([`import_row_allowed`]).
    ImportCases,
    /// Merging a possible duplicate into the notification it repeats, or dismissing the flag.
    ResolveDuplicate(&'a Place),
    /// Registering a cluster (集団感染等) at a health centre's place.
    CreateCluster(&'a Place),
    /// Reading clusters of a prefecture.
    ReadClusters(PrefectureCode),
    /// Recording what the active investigation (積極的疫学調査) found for a case.
    Investigate(&'a Place),
    /// A patient reporting their own health observation with a one-time code (no account).
    SelfReport,
    /// Reading the difference indicator (registry against municipal figures) of one prefecture,
    /// or of all prefectures (the follow-up list) when `None`: analysts of that prefecture and
    /// the national role. Not public: it is for following up the input, not for readers.
    ReadDifference(Option<PrefectureCode>),
    /// Searching cases by a person's identifiers (kana name, phone): staff who may see those
    /// identifiers only, never the national role, for whom a search would tie a person to a case.
    SearchCasesByIdentity,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    Unauthenticated,
    Forbidden,
    NotFound,
    Locked { phase: LifecyclePhase },
}

impl Denial {
    pub fn message(&self) -> Message {
        match self {
            Denial::Unauthenticated => Message::fixed(
                "ログインが必要です。ログインするか、有効なAPIトークンを指定してください。",
                "Authentication required: log in or send a valid API token.",
            ),
            Denial::Forbidden => Message::fixed(
                "この操作を行う権限がありません。",
                "Your role does not allow this action.",
            ),
            Denial::NotFound => Message::fixed("指定されたデータは見つかりません。", "Not found."),
            Denial::Locked { phase } => {
                let jst = FixedOffset::east_opt(9 * 3600).expect("JST is a valid offset");
                let since = phase
                    .since()
                    .map(|s| s.with_timezone(&jst).format("%Y-%m-%d %H:%M JST").to_string())
                    .unwrap_or_default();
                let name = phase.name();
                Message::new(
                    format!("{}（{}から）のため、この操作はできません。", name.ja, since),
                    format!("This action is closed: {} since {}.", name.en, since),
                )
            }
        }
    }
}

/// Decides whether `actor` (None for the public) may take `action` in `phase`.
pub fn decide(actor: Option<&Principal>, action: &Action<'_>, phase: &LifecyclePhase) -> Result<(), Denial> {
    let locked = || Denial::Locked { phase: phase.clone() };
    // The schedule first: during maintenance even a correct password must not open a session.
    // Public pages stay open in every phase. (Every action so far is a read or account work,
    // which the read-only period allows; registry writes will be refused there.)
    match phase {
        _ if *action == Action::ReadPublic => {}
        // 閲覧のみ: registry data can no longer be created, edited or deleted.
        LifecyclePhase::ReadOnly { .. } if action.writes_registry() => return Err(locked()),
        LifecyclePhase::Open | LifecyclePhase::ReadOnly { .. } => {}
        LifecyclePhase::Maintenance { .. } => return Err(locked()),
        LifecyclePhase::Closed { .. } => {
            // After the close only operators work (accounts, the directory, the audit log). The
            // login form stays open to the public; the login handler asks again once it knows
            // who is logging in.
            let operator = actor.is_some_and(|p| p.role == Role::Admin);
            let login_form = actor.is_none() && *action == Action::LogIn;
            if !operator && !login_form {
                return Err(locked());
            }
        }
    }
    let principal = match (action, actor) {
        // The one-time code is the credential; the handler checks it.
        (Action::ReadPublic | Action::LogIn | Action::SelfReport, _) => return Ok(()),
        (_, None) => return Err(Denial::Unauthenticated),
        (_, Some(p)) => p,
    };
    let admin_only = || {
        if principal.role == Role::Admin {
            Ok(())
        } else {
            Err(Denial::Forbidden)
        }
    };
    match action {
        Action::ReadPublic | Action::LogIn | Action::SelfReport => Ok(()),
        Action::ReadOwnAccount | Action::ManageOwnCredentials | Action::ListOrganisations => Ok(()),
        Action::ReadOrganisation(place) => {
            if org_filter(principal).matches(place) {
                Ok(())
            } else {
                Err(Denial::NotFound)
            }
        }
        Action::ManageOrganisations | Action::ManageAccounts | Action::ReadAuditLog => admin_only(),
        // Filing happens in one's own scope; filing elsewhere is an action out of scope.
        Action::FileNotification(place) => match principal.role {
            Role::Doctor | Role::HealthCentre | Role::Prefecture if case_visible(principal, place) => Ok(()),
            Role::Doctor | Role::HealthCentre | Role::Prefecture => Err(Denial::Forbidden),
            Role::National | Role::Admin => Err(Denial::Forbidden),
        },
        Action::ListCases => match principal.role {
            Role::Admin => Err(Denial::Forbidden),
            _ => Ok(()),
        },
        Action::ReadCase(place) => in_case_scope(
            principal,
            place,
            &[Role::Doctor, Role::HealthCentre, Role::Prefecture, Role::National],
        ),
        Action::ConfirmCase(place) => in_case_scope(principal, place, &[Role::HealthCentre]),
        Action::WithdrawCase(place) => in_case_scope(principal, place, &[Role::Doctor, Role::HealthCentre]),
        Action::UpdateCaseStatus(place) => in_case_scope(principal, place, &[Role::HealthCentre, Role::Prefecture]),
        Action::ResolveDuplicate(place) => in_case_scope(principal, place, &[Role::HealthCentre, Role::Prefecture]),
        Action::CreateCluster(place) | Action::Investigate(place) => {
            in_case_scope(principal, place, &[Role::HealthCentre, Role::Prefecture])
        }
        // Clusters name facilities, not persons: a health centre sees its whole prefecture's.
        Action::ReadClusters(prefecture) => match (&principal.role, principal.scope.prefecture()) {
            (Role::National, _) => Ok(()),
            (Role::HealthCentre | Role::Prefecture, Some(own)) if own == *prefecture => Ok(()),
            (Role::HealthCentre | Role::Prefecture, _) => Err(Denial::NotFound),
            _ => Err(Denial::Forbidden),
        },
        Action::SearchCasesByIdentity => match principal.role {
            Role::Doctor | Role::HealthCentre | Role::Prefecture => Ok(()),
            Role::National | Role::Admin => Err(Denial::Forbidden),
        },
        Action::ImportCases => match principal.role {
            Role::Doctor | Role::HealthCentre | Role::Prefecture | Role::National => Ok(()),
            Role::Admin => Err(Denial::Forbidden),
        },
        Action::ReadDifference(prefecture) => match (&principal.role, principal.scope.prefecture(), prefecture) {
            (Role::National, _, _) => Ok(()),
            (Role::Prefecture, Some(own), Some(asked)) if own == *asked => Ok(()),
            _ => Err(Denial::Forbidden),
        },
    }
}

impl Action<'_> {
    /// Creating, editing or deleting registry data, which the read-only period closes.
    fn writes_registry(&self) -> bool {
        matches!(
            self,
            Action::FileNotification(_)
                | Action::ConfirmCase(_)
                | Action::WithdrawCase(_)
                | Action::UpdateCaseStatus(_)
                | Action::ResolveDuplicate(_)
                | Action::CreateCluster(_)
                | Action::Investigate(_)
                | Action::SelfReport
                | Action::ImportCases
        )
    }
}

/// What the rows of an upload stand for (`POST /api/imports/{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportedRows {
    Notifications,
    Status,
    Totals,
    Municipal,
}

impl ImportedRows {
    /// The single requests one row at `place` stands for: an upload may hold only rows its
    /// uploader could send one by one (a doctor files but does not record status; the ministry
    /// reads but does not file). Total-count reports and municipal figures have no single
    /// request; a row of theirs needs only to lie in the uploader's scope.
    pub fn actions(self, place: &Place) -> Vec<Action<'_>> {
        match self {
            ImportedRows::Notifications => vec![Action::FileNotification(place)],
            ImportedRows::Status => vec![Action::UpdateCaseStatus(place)],
            ImportedRows::Totals | ImportedRows::Municipal => Vec::new(),
        }
    }
}

/// Whether `principal` may write one row of `rows` at `place` (the upload itself was allowed:
/// [`Action::ImportCases`], in the schedule's phase).
pub fn import_row_allowed(principal: &Principal, rows: ImportedRows, place: &Place) -> bool {
    case_visible(principal, place)
        && rows
            .actions(place)
            .iter()
            .all(|action| decide(Some(principal), action, &LifecyclePhase::Open).is_ok())
}

/// Whether `principal` may, by an uploaded notifications row, withdraw or reinstate the
/// notification at `place`: as [`Action::WithdrawCase`] one by one.
pub fn import_withdrawal_allowed(principal: &Principal, place: &Place) -> bool {
    decide(Some(principal), &Action::WithdrawCase(place), &LifecyclePhase::Open).is_ok()
}

/// A role that may take the action at all gets 404 for a record outside its scope (its existence
/// is not revealed); any other role gets 403.
fn in_case_scope(principal: &Principal, place: &Place, roles: &[Role]) -> Result<(), Denial> {
    if !roles.contains(&principal.role) {
        Err(Denial::Forbidden)
    } else if case_visible(principal, place) {
        Ok(())
    } else {
        Err(Denial::NotFound)
    }
}

/// Whether a case at `place` lies in the user's scope: a doctor's institution, a health
/// centre's jurisdiction, a prefecture, or the whole country for the national role. An
/// administrator sees no case at all.
pub fn case_visible(principal: &Principal, place: &Place) -> bool {
    match &principal.scope {
        Scope::Institution { institution, .. } => place.institution.as_ref() == Some(institution),
        Scope::HealthCentre { health_centre, .. } => place.health_centre.as_ref() == Some(health_centre),
        Scope::Prefecture { prefecture } => place.prefecture == *prefecture,
        Scope::Nation => true,
        Scope::System => false,
    }
}

/// The rows of case lists a user may see, as a filter on equality (a case without an
/// institution is never in a doctor's list); `None` for administrators, who see none.
pub fn case_filter(principal: &Principal) -> Option<PlaceFilter> {
    match &principal.scope {
        Scope::Institution { institution, .. } => Some(PlaceFilter {
            institution: Some(institution.clone()),
            ..PlaceFilter::default()
        }),
        Scope::HealthCentre { health_centre, .. } => Some(PlaceFilter {
            health_centre: Some(health_centre.clone()),
            ..PlaceFilter::default()
        }),
        Scope::Prefecture { prefecture } => Some(PlaceFilter {
            prefecture: Some(*prefecture),
            ..PlaceFilter::default()
        }),
        Scope::Nation => Some(PlaceFilter::default()),
        Scope::System => None,
    }
}

/// Which organisation records (health centres, institutions) a user can see: their own place in
/// the tree and everything below it. National and admin users see the whole directory.
///
/// This is the rule for the organisation directory only. Case data has its own rule, under which
/// an administrator sees nothing; never reuse this filter for cases.
pub fn org_filter(principal: &Principal) -> PlaceFilter {
    match &principal.scope {
        Scope::Institution {
            institution,
            health_centre,
            prefecture,
        } => PlaceFilter {
            prefecture: Some(*prefecture),
            health_centre: Some(health_centre.clone()),
            institution: Some(institution.clone()),
        },
        Scope::HealthCentre {
            health_centre,
            prefecture,
        } => PlaceFilter {
            prefecture: Some(*prefecture),
            health_centre: Some(health_centre.clone()),
            institution: None,
        },
        Scope::Prefecture { prefecture } => PlaceFilter {
            prefecture: Some(*prefecture),
            ..PlaceFilter::default()
        },
        Scope::Nation | Scope::System => PlaceFilter::default(),
    }
}

/// A row filter: a record matches when every level that both the filter and the record have is
/// equal. A doctor's filter thus admits their institution and their health centre, but no sibling
/// institution. Storage turns it into a `WHERE` clause.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceFilter {
    pub prefecture: Option<PrefectureCode>,
    pub health_centre: Option<HealthCentreCode>,
    pub institution: Option<InstitutionCode>,
}

impl PlaceFilter {
    pub fn matches(&self, place: &Place) -> bool {
        let level = |want: Option<&str>, have: Option<&str>| match (want, have) {
            (Some(w), Some(h)) => w == h,
            _ => true,
        };
        self.prefecture.is_none_or(|p| p == place.prefecture)
            && level(
                self.health_centre.as_ref().map(|c| c.as_str()),
                place.health_centre.as_ref().map(|c| c.as_str()),
            )
            && level(
                self.institution.as_ref().map(|c| c.as_str()),
                place.institution.as_ref().map(|c| c.as_str()),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{Login, UserId};

    fn pc(s: &str) -> PrefectureCode {
        PrefectureCode::parse(s).unwrap()
    }
    fn hc(s: &str) -> HealthCentreCode {
        HealthCentreCode::parse(s).unwrap()
    }
    fn ic(s: &str) -> InstitutionCode {
        InstitutionCode::parse(s).unwrap()
    }

    fn principal(role: Role) -> Principal {
        let scope = match role {
            Role::Doctor => Scope::Institution {
                institution: ic("I1"),
                health_centre: hc("H1"),
                prefecture: pc("13"),
            },
            Role::HealthCentre => Scope::HealthCentre {
                health_centre: hc("H1"),
                prefecture: pc("13"),
            },
            Role::Prefecture => Scope::Prefecture { prefecture: pc("13") },
            Role::National => Scope::Nation,
            Role::Admin => Scope::System,
        };
        Principal {
            user_id: UserId(1),
            login: Login::parse("someone").unwrap(),
            role,
            scope,
        }
    }

    #[test]
    fn an_upload_holds_only_rows_its_uploader_could_send_one_by_one() {
        let own = Place {
            prefecture: pc("13"),
            health_centre: Some(hc("H1")),
            institution: Some(ic("I1")),
        };
        let sibling = Place {
            institution: Some(ic("I2")),
            ..own.clone()
        };
        let who_may = |rows: ImportedRows, place: &Place| -> Vec<Role> {
            Role::ALL
                .into_iter()
                .filter(|r| import_row_allowed(&principal(*r), rows, place))
                .collect()
        };
        use Role::*;
        assert_eq!(
            who_may(ImportedRows::Notifications, &own),
            [Doctor, HealthCentre, Prefecture]
        );
        assert_eq!(who_may(ImportedRows::Status, &own), [HealthCentre, Prefecture]);
        assert_eq!(
            who_may(ImportedRows::Totals, &own),
            [Doctor, HealthCentre, Prefecture, National]
        );
        assert_eq!(
            who_may(ImportedRows::Notifications, &sibling),
            [HealthCentre, Prefecture],
            "the clinic next door is not the doctor's"
        );
    }

    #[test]
    fn only_admins_manage_accounts_and_organisations() {
        for role in Role::ALL {
            let p = principal(role);
            let expect = if role == Role::Admin {
                Ok(())
            } else {
                Err(Denial::Forbidden)
            };
            assert_eq!(
                decide(Some(&p), &Action::ManageAccounts, &LifecyclePhase::Open),
                expect,
                "{role}"
            );
            assert_eq!(
                decide(Some(&p), &Action::ManageOrganisations, &LifecyclePhase::Open),
                expect,
                "{role}"
            );
        }
    }

    #[test]
    fn the_difference_indicator_is_for_the_prefecture_and_the_ministry() {
        let open = LifecyclePhase::Open;
        let own = Action::ReadDifference(Some(pc("13")));
        let other = Action::ReadDifference(Some(pc("27")));
        let all = Action::ReadDifference(None);
        let national = principal(Role::National);
        for a in [&own, &other, &all] {
            assert_eq!(decide(Some(&national), a, &open), Ok(()));
            assert_eq!(decide(None, a, &open), Err(Denial::Unauthenticated), "not public");
        }
        let prefecture = principal(Role::Prefecture);
        assert_eq!(decide(Some(&prefecture), &own, &open), Ok(()));
        assert_eq!(decide(Some(&prefecture), &other, &open), Err(Denial::Forbidden));
        assert_eq!(
            decide(Some(&prefecture), &all, &open),
            Err(Denial::Forbidden),
            "the national list"
        );
        for role in [Role::Doctor, Role::HealthCentre, Role::Admin] {
            assert_eq!(
                decide(Some(&principal(role)), &own, &open),
                Err(Denial::Forbidden),
                "{role:?}"
            );
        }
    }

    #[test]
    fn the_public_reads_public_pages_only() {
        assert_eq!(decide(None, &Action::ReadPublic, &LifecyclePhase::Open), Ok(()));
        assert_eq!(
            decide(None, &Action::ReadOwnAccount, &LifecyclePhase::Open),
            Err(Denial::Unauthenticated)
        );
        assert_eq!(
            decide(None, &Action::ManageAccounts, &LifecyclePhase::Open),
            Err(Denial::Unauthenticated)
        );
    }

    #[test]
    fn organisation_records_out_of_scope_are_not_found() {
        let own_inst = Place {
            prefecture: pc("13"),
            health_centre: Some(hc("H1")),
            institution: Some(ic("I1")),
        };
        let sibling = Place {
            prefecture: pc("13"),
            health_centre: Some(hc("H1")),
            institution: Some(ic("I2")),
        };
        let own_hc = Place {
            prefecture: pc("13"),
            health_centre: Some(hc("H1")),
            institution: None,
        };
        let other_pref = Place {
            prefecture: pc("27"),
            health_centre: Some(hc("H9")),
            institution: None,
        };
        let open = LifecyclePhase::Open;
        let doctor = principal(Role::Doctor);
        assert_eq!(
            decide(Some(&doctor), &Action::ReadOrganisation(&own_inst), &open),
            Ok(())
        );
        assert_eq!(decide(Some(&doctor), &Action::ReadOrganisation(&own_hc), &open), Ok(()));
        assert_eq!(
            decide(Some(&doctor), &Action::ReadOrganisation(&sibling), &open),
            Err(Denial::NotFound)
        );
        let pref = principal(Role::Prefecture);
        assert_eq!(decide(Some(&pref), &Action::ReadOrganisation(&sibling), &open), Ok(()));
        assert_eq!(
            decide(Some(&pref), &Action::ReadOrganisation(&other_pref), &open),
            Err(Denial::NotFound)
        );
        for role in [Role::National, Role::Admin] {
            assert_eq!(
                decide(Some(&principal(role)), &Action::ReadOrganisation(&other_pref), &open),
                Ok(())
            );
        }
    }

    #[test]
    fn case_data_follows_the_stricter_rule() {
        let own = Place {
            prefecture: pc("13"),
            health_centre: Some(hc("H1")),
            institution: Some(ic("I1")),
        };
        let sibling = Place {
            prefecture: pc("13"),
            health_centre: Some(hc("H1")),
            institution: Some(ic("I2")),
        };
        let open = LifecyclePhase::Open;
        let doctor = principal(Role::Doctor);
        assert_eq!(decide(Some(&doctor), &Action::ReadCase(&own), &open), Ok(()));
        assert_eq!(
            decide(Some(&doctor), &Action::ReadCase(&sibling), &open),
            Err(Denial::NotFound)
        );
        assert_eq!(
            decide(Some(&doctor), &Action::ConfirmCase(&own), &open),
            Err(Denial::Forbidden),
            "doctors do not confirm"
        );
        assert_eq!(
            decide(
                Some(&principal(Role::HealthCentre)),
                &Action::ConfirmCase(&sibling),
                &open
            ),
            Ok(())
        );
        let admin = principal(Role::Admin);
        assert_eq!(
            decide(Some(&admin), &Action::ReadCase(&own), &open),
            Err(Denial::Forbidden),
            "admins never read cases"
        );
        assert_eq!(case_filter(&admin), None);
        assert_eq!(
            decide(Some(&principal(Role::National)), &Action::ReadCase(&sibling), &open),
            Ok(())
        );
        assert_eq!(
            decide(Some(&doctor), &Action::FileNotification(&sibling), &open),
            Err(Denial::Forbidden),
            "filing for another institution"
        );
        let read_only = LifecyclePhase::ReadOnly { since: Utc::now() };
        assert!(matches!(
            decide(Some(&doctor), &Action::FileNotification(&own), &read_only),
            Err(Denial::Locked { .. })
        ));
        assert_eq!(
            decide(Some(&doctor), &Action::ReadCase(&own), &read_only),
            Ok(()),
            "reading goes on"
        );
    }

    #[test]
    fn maintenance_closes_everything_but_public_pages() {
        let since = DateTime::parse_from_rfc3339("2023-10-31T18:00:00+09:00")
            .unwrap()
            .to_utc();
        let phase = LifecyclePhase::Maintenance { since };
        let admin = principal(Role::Admin);
        assert_eq!(decide(None, &Action::ReadPublic, &phase), Ok(()));
        let denial = decide(Some(&admin), &Action::LogIn, &phase).unwrap_err();
        let msg = denial.message();
        assert!(
            msg.ja.contains("切替作業中") && msg.ja.contains("2023-10-31 18:00 JST"),
            "{}",
            msg.ja
        );
        assert!(msg.en.contains("maintenance since 2023-10-31 18:00 JST"), "{}", msg.en);
    }

    #[test]
    fn read_only_keeps_reading_and_account_work_open() {
        let since = Utc::now();
        let phase = LifecyclePhase::ReadOnly { since };
        let hc_user = principal(Role::HealthCentre);
        assert_eq!(decide(Some(&hc_user), &Action::ListOrganisations, &phase), Ok(()));
        assert_eq!(
            decide(Some(&principal(Role::Admin)), &Action::ManageAccounts, &phase),
            Ok(())
        );
        let closed = LifecyclePhase::Closed { since };
        assert!(matches!(
            decide(Some(&hc_user), &Action::ListOrganisations, &closed),
            Err(Denial::Locked { .. })
        ));
        assert!(matches!(
            decide(Some(&hc_user), &Action::LogIn, &closed),
            Err(Denial::Locked { .. })
        ));
        let admin = principal(Role::Admin);
        for action in [
            Action::LogIn,
            Action::ReadOwnAccount,
            Action::ManageAccounts,
            Action::ReadAuditLog,
        ] {
            assert_eq!(
                decide(Some(&admin), &action, &closed),
                Ok(()),
                "operators keep working after the close: {action:?}"
            );
        }
        assert_eq!(
            decide(None, &Action::LogIn, &closed),
            Ok(()),
            "the form is shown; the handler asks again"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn code(n: u32) -> String {
            format!("C{n}")
        }

        prop_compose! {
            /// A place in a small tree: 3 prefectures × 3 health centres × 3 institutions, at the
            /// prefecture, health-centre or institution level.
            fn place()(p in 1u8..=3, h in 0u8..3, i in 0u8..3, level in 0u8..3) -> Place {
                let prefecture = PrefectureCode::from_number(p).unwrap();
                let (p32, h32, i32) = (u32::from(p), u32::from(h), u32::from(i));
                let hc = HealthCentreCode::parse(&code(p32 * 10 + h32)).unwrap();
                let inst = InstitutionCode::parse(&code(p32 * 100 + h32 * 10 + i32)).unwrap();
                Place {
                    prefecture,
                    health_centre: (level >= 1).then_some(hc),
                    institution: (level == 2).then_some(inst),
                }
            }
        }

        prop_compose! {
            fn someone()(role in 0usize..5, at in place()) -> Principal {
                let role = Role::ALL[role];
                let hc = at.health_centre.clone().unwrap_or_else(|| HealthCentreCode::parse("C10").unwrap());
                let scope = match role {
                    Role::Doctor => Scope::Institution {
                        institution: at.institution.clone().unwrap_or_else(|| InstitutionCode::parse("C100").unwrap()),
                        health_centre: hc,
                        prefecture: at.prefecture,
                    },
                    Role::HealthCentre => Scope::HealthCentre { health_centre: hc, prefecture: at.prefecture },
                    Role::Prefecture => Scope::Prefecture { prefecture: at.prefecture },
                    Role::National => Scope::Nation,
                    Role::Admin => Scope::System,
                };
                Principal { user_id: UserId(1), login: Login::parse("someone").unwrap(), role, scope }
            }
        }

        proptest! {
            /// Whatever the tree, a scoped user never reads an organisation of another
            /// prefecture, a health-centre user never one of another health centre, a doctor
            /// never another institution; and a refusal of a single record is always 404.
            #[test]
            fn scoped_users_never_read_outside_their_scope(who in someone(), target in place()) {
                let decision = decide(Some(&who), &Action::ReadOrganisation(&target), &LifecyclePhase::Open);
                if let Err(denial) = &decision {
                    prop_assert_eq!(denial, &Denial::NotFound);
                }
                if decision.is_ok() {
                    if let Some(p) = who.scope.prefecture() {
                        prop_assert_eq!(p, target.prefecture);
                    }
                    match &who.scope {
                        Scope::HealthCentre { health_centre, .. } | Scope::Institution { health_centre, .. } => {
                            prop_assert!(target.health_centre.as_ref().is_none_or(|h| h == health_centre));
                        }
                        _ => {}
                    }
                    if let Scope::Institution { institution, .. } = &who.scope {
                        prop_assert!(target.institution.as_ref().is_none_or(|i| i == institution));
                    }
                }
                // The list filter and the single-record decision agree.
                prop_assert_eq!(org_filter(&who).matches(&target), decision.is_ok());
            }
        }
    }
}
