//! Synthetic names: people, doctors, health centres and medical institutions. Common Japanese
//! surnames and given names in kanji with their readings; no real person or facility is meant.

use todoke_domain::notification::Sex;

use crate::rng::Rng;

/// (kanji, katakana)
const SURNAMES: [(&str, &str); 40] = [
    ("佐藤", "サトウ"),
    ("鈴木", "スズキ"),
    ("高橋", "タカハシ"),
    ("田中", "タナカ"),
    ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"),
    ("山本", "ヤマモト"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山田", "ヤマダ"),
    ("佐々木", "ササキ"),
    ("山口", "ヤマグチ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("斎藤", "サイトウ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
    ("阿部", "アベ"),
    ("石川", "イシカワ"),
    ("山下", "ヤマシタ"),
    ("中島", "ナカジマ"),
    ("石井", "イシイ"),
    ("小川", "オガワ"),
    ("前田", "マエダ"),
    ("岡田", "オカダ"),
    ("長谷川", "ハセガワ"),
    ("藤田", "フジタ"),
    ("後藤", "ゴトウ"),
    ("近藤", "コンドウ"),
    ("村上", "ムラカミ"),
    ("遠藤", "エンドウ"),
    ("青木", "アオキ"),
    ("坂本", "サカモト"),
];

const MALE_NAMES: [(&str, &str); 20] = [
    ("太郎", "タロウ"),
    ("翔太", "ショウタ"),
    ("大輔", "ダイスケ"),
    ("健一", "ケンイチ"),
    ("誠", "マコト"),
    ("浩", "ヒロシ"),
    ("隆", "タカシ"),
    ("拓也", "タクヤ"),
    ("蓮", "レン"),
    ("悠真", "ユウマ"),
    ("陽翔", "ハルト"),
    ("和夫", "カズオ"),
    ("茂", "シゲル"),
    ("清", "キヨシ"),
    ("直樹", "ナオキ"),
    ("亮", "リョウ"),
    ("健太", "ケンタ"),
    ("修", "オサム"),
    ("勇気", "ユウキ"),
    ("湊", "ミナト"),
];

const FEMALE_NAMES: [(&str, &str); 20] = [
    ("花子", "ハナコ"),
    ("陽菜", "ヒナ"),
    ("美咲", "ミサキ"),
    ("恵子", "ケイコ"),
    ("裕子", "ユウコ"),
    ("幸子", "サチコ"),
    ("由美", "ユミ"),
    ("愛", "アイ"),
    ("結衣", "ユイ"),
    ("さくら", "サクラ"),
    ("葵", "アオイ"),
    ("明美", "アケミ"),
    ("久美子", "クミコ"),
    ("和子", "カズコ"),
    ("真由美", "マユミ"),
    ("彩", "アヤ"),
    ("凛", "リン"),
    ("千尋", "チヒロ"),
    ("芽依", "メイ"),
    ("節子", "セツコ"),
];

/// A person's name and its reading, `姓 名` / `セイ メイ`.
pub fn person(rng: &mut Rng, sex: Sex) -> (String, String) {
    let (sur, sur_kana) = rng.pick(&SURNAMES);
    let given = match sex {
        Sex::Male => rng.pick(&MALE_NAMES),
        Sex::Female => rng.pick(&FEMALE_NAMES),
        Sex::Unknown => {
            if rng.chance(0.5) {
                rng.pick(&MALE_NAMES)
            } else {
                rng.pick(&FEMALE_NAMES)
            }
        }
    };
    (format!("{sur} {}", given.0), format!("{sur_kana} {}", given.1))
}

/// A doctor's name (kanji only).
pub fn doctor(rng: &mut Rng) -> String {
    let (sur, _) = rng.pick(&SURNAMES);
    let given = if rng.chance(0.7) {
        rng.pick(&MALE_NAMES)
    } else {
        rng.pick(&FEMALE_NAMES)
    };
    format!("{sur} {}", given.0)
}

const DIRECTIONS: [&str; 8] = ["中央", "北部", "南部", "東部", "西部", "北東", "南西", "中部"];

/// The `n`th health centre of a prefecture (0-based), e.g. `鳥取県東部保健所`, `東京都第12保健所`.
pub fn health_centre(prefecture_ja: &str, n: usize) -> String {
    match DIRECTIONS.get(n) {
        Some(d) => format!("{prefecture_ja}{d}保健所"),
        None => format!("{prefecture_ja}第{}保健所", n + 1),
    }
}

const CLINIC_KINDS: [&str; 6] = ["内科クリニック", "医院", "診療所", "総合病院", "記念病院", "小児科"];

/// The `n`th medical institution of a health centre, e.g. `田中内科クリニック（鳥取県東部）`.
pub fn institution(rng: &mut Rng, health_centre_name: &str, n: usize) -> String {
    let (sur, _) = rng.pick(&SURNAMES);
    let kind = CLINIC_KINDS[n % CLINIC_KINDS.len()];
    let area = health_centre_name.trim_end_matches("保健所");
    format!("{sur}{kind}（{area}）")
}

/// The kanji of a surname given its reading.
pub fn surname_of(kana: &str) -> &'static str {
    SURNAMES
        .iter()
        .find(|(_, k)| *k == kana)
        .map(|(s, _)| *s)
        .unwrap_or("佐藤")
}
