//! Text analysis for knowledge-base search, beside jieba's words: what survives the way
//! citizens' words arrive (REGULATION.md Art. 31, 38; issue 6).
//!
//! - [`bigrams`]: overlapping pairs of Chinese characters (and whole Latin words and numbers).
//!   A wrong character breaks two pairs, not the whole word, and a phrase jieba cuts
//!   differently in the question and in the article still shares its pairs.
//! - [`pinyin_pairs`]: the same pairs spelt in toneless pinyin (`社保` -> `she_bao`), so a
//!   homophone typed by pinyin input or heard by speech recognition (`设保`) still matches.
//! - [`synonyms`]: everyday words mapped to the official ones articles use (`暖气` -> `供暖`,
//!   `煤气` -> `燃气`, `没水` -> `停水`).
//!
//! Particles and filler that would only add noise to a query are [`crate::china::text`]'s.

use pinyin::ToPinyin;

use crate::china::text::is_han;

/// Runs of Han characters and runs of ASCII letters/digits, in order.
fn runs(text: &str) -> Vec<(bool, String)> {
    let mut out: Vec<(bool, String)> = Vec::new();
    for c in text.chars() {
        let kind = if is_han(c) {
            Some(true)
        } else if c.is_ascii_alphanumeric() {
            Some(false)
        } else {
            None
        };
        match (kind, out.last_mut()) {
            (Some(k), Some((lk, s))) if *lk == k && !s.is_empty() => s.push(c.to_ascii_lowercase()),
            (Some(k), _) => out.push((k, c.to_ascii_lowercase().to_string())),
            (None, Some((_, s))) if !s.is_empty() => out.push((false, String::new())),
            (None, _) => {}
        }
    }
    out.retain(|(_, s)| !s.is_empty());
    out
}

/// Overlapping Han character pairs, plus each Latin word or number whole. A lone Han
/// character (a run of one) is kept as itself.
pub fn bigrams(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (han, run) in runs(text) {
        if !han {
            out.push(run);
            continue;
        }
        let chars: Vec<char> = run.chars().collect();
        if chars.len() == 1 {
            out.push(run);
        }
        for w in chars.windows(2) {
            out.push(w.iter().collect());
        }
    }
    out
}

/// Overlapping pairs of toneless pinyin syllables of Han runs (`社会保险` -> `she_hui`,
/// `hui_bao`, `bao_xian`). Characters without a reading break the run.
pub fn pinyin_pairs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (han, run) in runs(text) {
        if !han {
            continue;
        }
        let syllables: Vec<Option<&str>> = run
            .as_str()
            .to_pinyin()
            .map(|p| p.map(|p| p.plain()))
            .collect();
        for w in syllables.windows(2) {
            if let [Some(a), Some(b)] = w {
                out.push(format!("{a}_{b}"));
            }
        }
    }
    out
}

/// Everyday words and the official words articles use for them. Each query word found here
/// adds its official forms to the query (the everyday word stays too).
const SYNONYMS: &[(&str, &[&str])] = &[
    ("社保", &["社会保险", "社会保障"]),
    ("暖气", &["供暖", "供热", "取暖"]),
    ("煤气", &["燃气", "天然气"]),
    ("没水", &["停水"]),
    ("来水", &["停水", "供水"]),
    ("没电", &["停电"]),
    ("噪音", &["噪声"]),
    ("吵", &["噪声", "扰民"]),
    ("上户口", &["落户", "出生登记"]),
    ("户口", &["户籍", "落户"]),
    ("娃", &["儿童", "新生儿"]),
    ("孩子", &["儿童", "子女"]),
    ("小孩", &["儿童"]),
    ("宝宝", &["新生儿", "婴儿"]),
    ("上学", &["入学"]),
    ("报名", &["招生", "入学"]),
    ("辞职", &["离职"]),
    ("开除", &["失业", "辞退"]),
    ("开了", &["失业", "辞退"]),
    ("不发工资", &["拖欠工资", "欠薪"]),
    ("工钱", &["工资"]),
    ("老板", &["用人单位"]),
    ("补贴", &["津贴", "补助"]),
    ("单车", &["共享单车", "自行车"]),
    ("打车", &["出租车"]),
    ("的士", &["出租车"]),
    ("房东", &["出租人", "租赁"]),
    ("租房", &["租赁"]),
    ("房产证", &["不动产权证书", "不动产登记"]),
    ("跳舞", &["广场舞", "健身"]),
    ("音响", &["音量", "噪声"]),
    ("打桩", &["施工"]),
    ("工地", &["施工"]),
    ("看病", &["就医", "医疗"]),
    ("生孩子", &["生育"]),
    ("过期", &["食品安全"]),
    ("坏了", &["故障", "维修"]),
    ("修", &["维修", "报修"]),
    ("开店", &["营业执照", "个体工商户"]),
    ("饭馆", &["餐饮"]),
    ("饭店", &["餐饮"]),
    ("车", &["车辆", "机动车"]),
    ("停", &["停放", "停车"]),
    ("老人", &["老年人", "高龄"]),
    ("老爷子", &["老年人", "高龄"]),
    ("八十", &["80周岁", "高龄"]),
    ("低保", &["最低生活保障"]),
    ("公积金", &["住房公积金"]),
    ("取", &["提取"]),
    ("贷", &["贷款"]),
    ("疫苗", &["接种"]),
    ("约", &["预约"]),
];

/// The official forms of an everyday word (empty when it has none).
pub fn synonyms(word: &str) -> &'static [&'static str] {
    SYNONYMS
        .iter()
        .find(|(w, _)| *w == word)
        .map_or(&[], |(_, s)| s)
}

/// Everyday words of the table found anywhere in `text` (jieba may not cut them out).
pub fn everyday_words_in(text: &str) -> impl Iterator<Item = &'static str> + '_ {
    SYNONYMS
        .iter()
        .filter(move |(w, _)| w.chars().count() > 1 && text.contains(w))
        .map(|(w, _)| *w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::china::text::is_stopword;

    #[test]
    fn pairs_of_characters_and_whole_latin_words() {
        assert_eq!(bigrams("社保卡"), ["社保", "保卡"]);
        assert_eq!(bigrams("打12345，问APP"), ["打", "12345", "问", "app"]);
        assert!(bigrams("，。！").is_empty());
    }

    #[test]
    fn a_homophone_keeps_its_pinyin() {
        assert_eq!(pinyin_pairs("社保卡"), pinyin_pairs("设保卡"));
        assert_eq!(pinyin_pairs("社会保险"), ["she_hui", "hui_bao", "bao_xian"]);
        assert_ne!(pinyin_pairs("社保"), pinyin_pairs("医保"));
    }

    #[test]
    fn everyday_words_reach_official_ones() {
        assert!(synonyms("暖气").contains(&"供暖"));
        assert!(synonyms("无此词").is_empty());
        let found: Vec<&str> = everyday_words_in("我家突然没水了").collect();
        assert_eq!(found, ["没水"]);
        assert!(is_stopword("咋") && is_stopword("，") && !is_stopword("停水"));
    }
}
