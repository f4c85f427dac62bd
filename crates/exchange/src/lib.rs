//! File formats of todoke: the CSV import and export formats of CONTRACT.md.
//!
//! Imports stream: a blocking reader thread decodes the bytes (UTF-8 with or without a BOM, or
//! Shift_JIS/CP932), reads and validates each row with the domain's rules, and hands rows to the
//! writer through a bounded channel, so memory stays flat whatever the file's size. The writer
//! keeps one transaction for the whole file: all or nothing by default; with `partial`, the good
//! rows are kept and each bad row is rolled back alone. Re-importing a file updates by
//! `external_id` and never duplicates. Exports write the same formats, so an export re-imports
//! to the same data.

pub mod export;
pub mod import;

use std::io::Read;

use todoke_domain::Message;

/// The text encoding of an imported file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// UTF-8, with or without a byte-order mark.
    #[default]
    Utf8,
    /// Shift_JIS as Windows writes it (CP932 / Windows-31J), the encoding of older Japanese
    /// spreadsheets.
    Cp932,
}

impl Encoding {
    /// Reads `utf-8`, `shift_jis`, `cp932`, `sjis`, `windows-31j`, `ms932` (any case).
    pub fn parse(name: &str) -> Result<Encoding, Message> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(Encoding::Utf8),
            "shift-jis" | "sjis" | "cp932" | "windows-31j" | "ms932" | "x-sjis" => Ok(Encoding::Cp932),
            other => Err(Message::new(
                format!("文字コード「{other}」には対応していません（utf-8 または cp932）"),
                format!("unsupported encoding \"{other}\" (use utf-8 or cp932)"),
            )),
        }
    }
}

/// A byte reader that yields UTF-8: CP932 is transcoded; a UTF-8 byte-order mark is dropped.
/// UTF-8 input is passed through unchanged, so invalid bytes are caught per field and reported
/// with their row instead of being silently replaced.
pub(crate) fn utf8_reader(
    mut input: Box<dyn Read + Send>,
    encoding: Encoding,
) -> std::io::Result<Box<dyn Read + Send>> {
    match encoding {
        Encoding::Cp932 => Ok(Box::new(
            encoding_rs_io::DecodeReaderBytesBuilder::new()
                .encoding(Some(encoding_rs::SHIFT_JIS))
                .build(input),
        )),
        Encoding::Utf8 => {
            let mut head = [0u8; 3];
            let mut filled = 0;
            while filled < 3 {
                match input.read(&mut head[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            let keep = if filled == 3 && head == [0xEF, 0xBB, 0xBF] {
                0..0
            } else {
                0..filled
            };
            Ok(Box::new(std::io::Cursor::new(head[keep].to_vec()).chain(input)))
        }
    }
}
