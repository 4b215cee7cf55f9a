//! The passage of an article's body shown under a search result, with `<b>` around the words
//! the question matched.
//!
//! Built here rather than by tantivy's `SnippetGenerator`: jieba's search mode gives a long
//! word's parts before the word itself, so its tokens overlap and go backwards, and tantivy's
//! fragment cutter (which assumes tokens in order) then slices outside its fragment and panics
//! (`Snippet::to_html`, tantivy 0.27). Here the matched ranges are checked against the text,
//! sorted and merged before anything is cut, the window is counted in characters, and
//! everything outside the tags is HTML-escaped, so no body and no question can make it fail.

use std::collections::HashSet;
use std::ops::Range;

use tantivy::tokenizer::TextAnalyzer;

/// Characters of context shown before the first matched word.
const LEAD: usize = 12;

/// Matches looked at in one body (a bound on the work an article of any length can cause).
const MAX_MATCHES: usize = 512;

/// The passage of `body` (at most `max_chars` characters) holding the most of `terms` (lower
/// case, as the analyzer's tokens compare), as HTML; `None` when no term occurs in it.
pub fn passage(
    analyzer: &mut TextAnalyzer,
    body: &str,
    terms: &HashSet<String>,
    max_chars: usize,
) -> Option<String> {
    let mut found: Vec<(Range<usize>, String)> = Vec::new();
    let mut stream = analyzer.token_stream(body);
    while let Some(t) = stream.next() {
        if found.len() == MAX_MATCHES {
            break;
        }
        let r = t.offset_from..t.offset_to;
        if r.start < r.end && body.is_char_boundary(r.start) && body.is_char_boundary(r.end) {
            let word = t.text.to_lowercase();
            if terms.contains(&word) {
                found.push((r, word));
            }
        }
    }
    if found.is_empty() {
        return None;
    }
    found.sort_by_key(|(r, _)| (r.start, r.end));
    let window = best_window(body, &found, max_chars.max(1));
    let ranges = merge(found.into_iter().map(|(r, _)| r).collect());
    Some(html(body, window, &ranges))
}

/// The first `max_chars` characters of `body`, escaped (the passage when nothing matched).
pub fn opening(body: &str, max_chars: usize) -> String {
    let end = body
        .char_indices()
        .nth(max_chars)
        .map_or(body.len(), |(i, _)| i);
    escape(&body[..end])
}

/// Sorted, with overlapping and touching ranges joined.
fn merge(mut ranges: Vec<Range<usize>>) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| (r.start, r.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// The byte range of `body`, at most `max_chars` characters, that holds the most different
/// matched words, then the most matched characters; the earliest of equals. It begins a
/// little before its first match. `found` is sorted by start.
fn best_window(body: &str, found: &[(Range<usize>, String)], max_chars: usize) -> Range<usize> {
    // Byte offset of every character boundary, the end included.
    let bounds: Vec<usize> = body
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(body.len()))
        .collect();
    let char_at = |byte: usize| bounds.partition_point(|&b| b < byte);
    let chars = bounds.len() - 1;
    let mut best = ((0usize, 0usize), 0usize); // ((different words, characters), start)
    let mut words: Vec<&str> = Vec::new();
    for (i, (first, _)) in found.iter().enumerate() {
        let start = char_at(first.start).saturating_sub(LEAD);
        let end = (start + max_chars).min(chars);
        words.clear();
        let mut covered = 0;
        for (r, w) in found[i..]
            .iter()
            .take_while(|(r, _)| char_at(r.start) < end)
        {
            covered += char_at(r.end).min(end) - char_at(r.start);
            if !words.contains(&w.as_str()) {
                words.push(w);
            }
        }
        let score = (words.len(), covered);
        if score > best.0 {
            best = (score, start);
        }
    }
    let start = best.1;
    let end = (start + max_chars).min(chars);
    bounds[start]..bounds[end]
}

/// The window as HTML: escaped text, matched parts in `<b>`.
fn html(body: &str, window: Range<usize>, ranges: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(window.len() + 16);
    let mut at = window.start;
    for r in ranges {
        let (s, e) = (r.start.max(window.start), r.end.min(window.end));
        if s >= e {
            continue;
        }
        out.push_str(&escape(&body[at..s]));
        out.push_str("<b>");
        out.push_str(&escape(&body[s..e]));
        out.push_str("</b>");
        at = e;
    }
    out.push_str(&escape(&body[at..window.end]));
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // in a test, a panic is a failure report
    use super::*;

    fn jieba() -> TextAnalyzer {
        TextAnalyzer::from(tantivy_jieba::JiebaTokenizer::new())
    }

    fn terms(t: &[&str]) -> HashSet<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_long_word_and_its_parts_are_one_highlight() {
        let body = "小规模纳税人可以自行开具增值税专用发票和普通发票。";
        let s = passage(&mut jieba(), body, &terms(&["增值税", "专用", "发票"]), 150).unwrap();
        assert!(s.contains("<b>增值税专用发票</b>"), "{s}");
        assert_eq!(s.replace("<b>", "").replace("</b>", ""), body);
    }

    #[test]
    fn the_window_goes_where_most_words_match_and_is_escaped() {
        let filler = "无关的内容。".repeat(40);
        let body = format!("{filler}<注意>办理居住证需要带身份证和居住证明。{filler}");
        let s = passage(&mut jieba(), &body, &terms(&["居住证", "身份证"]), 30).unwrap();
        assert!(
            s.starts_with("无关的内容。&lt;注意&gt;办理<b>居住证</b>"),
            "{s}"
        );
        assert!(s.contains("<b>身份证</b>"), "{s}");
        let shown = s
            .replace("<b>", "")
            .replace("</b>", "")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
        assert_eq!(shown.chars().count(), 30);
        assert!(passage(&mut jieba(), &body, &terms(&["社保"]), 30).is_none());
    }

    #[test]
    fn the_opening_is_counted_in_characters() {
        assert_eq!(opening("一二三四<五>", 5), "一二三四&lt;");
        assert_eq!(opening("短", 80), "短");
    }
}
