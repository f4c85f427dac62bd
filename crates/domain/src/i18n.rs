//! Bilingual text: Japanese first, English beside it.
//!
//! Every message a person may read (errors, field problems, policy refusals) is a [`Message`]
//! carrying both languages, so a missing translation cannot exist. The web layer picks one with
//! the request's [`Lang`].

use std::borrow::Cow;

/// The language of a response. Japanese is the default; English is chosen by `?lang=en` or by an
/// `Accept-Language` header that prefers English.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Ja,
    En,
}

impl Lang {
    /// Parses a language tag such as `en`, `en-GB` or `ja-JP`; anything else is `None`.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "ja" => Some(Lang::Ja),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Picks the language from an `Accept-Language` header value, honouring q-values. Japanese
    /// wins ties and is the answer when neither language is listed.
    pub fn from_accept_language(header: &str) -> Lang {
        let mut best: Option<(Lang, f32)> = None;
        for part in header.split(',') {
            let mut pieces = part.split(';');
            let Some(lang) = pieces.next().and_then(Lang::from_tag) else {
                continue;
            };
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let better = match best {
                None => true,
                Some((held, best_q)) => q > best_q || (q == best_q && lang == Lang::Ja && held != Lang::Ja),
            };
            if better && q > 0.0 {
                best = Some((lang, q));
            }
        }
        best.map(|(l, _)| l).unwrap_or_default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Ja => "ja",
            Lang::En => "en",
        }
    }
}

/// A text in both languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub ja: Cow<'static, str>,
    pub en: Cow<'static, str>,
}

impl Message {
    pub const fn fixed(ja: &'static str, en: &'static str) -> Message {
        Message {
            ja: Cow::Borrowed(ja),
            en: Cow::Borrowed(en),
        }
    }

    pub fn new(ja: impl Into<Cow<'static, str>>, en: impl Into<Cow<'static, str>>) -> Message {
        Message {
            ja: ja.into(),
            en: en.into(),
        }
    }

    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Ja => &self.ja,
            Lang::En => &self.en,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_prefers_the_higher_q_value() {
        assert_eq!(Lang::from_accept_language("en-US,en;q=0.9,ja;q=0.8"), Lang::En);
        assert_eq!(Lang::from_accept_language("ja,en;q=0.9"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("fr-FR,en;q=0.5"), Lang::En);
    }

    #[test]
    fn accept_language_defaults_to_japanese() {
        assert_eq!(Lang::from_accept_language(""), Lang::Ja);
        assert_eq!(Lang::from_accept_language("fr,de;q=0.8"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("en;q=0"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("en, ja"), Lang::Ja, "ties go to Japanese");
    }
}
