//! A problem with one input field, in both languages: what every form, API body and CSV row
//! reports when it is refused.

use crate::i18n::Message;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: Message,
}

impl FieldError {
    pub fn new(field: &str, message: Message) -> FieldError {
        FieldError {
            field: field.to_owned(),
            message,
        }
    }
}
