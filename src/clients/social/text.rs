//! Text lengths as the platforms count them.
//!
//! X counts a "weighted length" (twitter-text v3): the text is NFC-normalised, every URL
//! counts 23 (its t.co form), code points in the Latin/General-punctuation ranges count 1,
//! everything else (CJK, most symbols) counts 2, and an emoji counts 2 however many code
//! points it is built from (skin tones, ZWJ families, flags, keycaps). The limit is 280.
//! URL detection here covers `http://`, `https://` and `www.` forms; twitter-text also links
//! bare domains with known TLDs, which we count as plain text (so we may under-count those).

use unicode_normalization::UnicodeNormalization;

/// X's limit in weighted characters.
pub const X_LIMIT: usize = 280;
/// What every URL counts on X (t.co links are this long).
pub const X_URL_WEIGHT: usize = 23;

/// twitter-text v3's ranges that weigh 1; everything else weighs 2.
const LIGHT_RANGES: [(u32, u32); 4] = [
    (0x0000, 0x10FF),
    (0x2000, 0x200D),
    (0x2010, 0x201F),
    (0x2032, 0x2037),
];

/// The length X will count for `text`.
pub fn x_weighted_len(text: &str) -> usize {
    let chars: Vec<char> = text.nfc().collect();
    let mut total = 0;
    let mut i = 0;
    while i < chars.len() {
        let at_word_start = i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == '(';
        if at_word_start {
            if let Some(len) = url_len(&chars[i..]) {
                total += X_URL_WEIGHT;
                i += len;
                continue;
            }
        }
        if let Some(len) = emoji_len(&chars[i..]) {
            total += 2;
            i += len;
            continue;
        }
        let c = chars[i] as u32;
        total += if LIGHT_RANGES.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) {
            1
        } else {
            2
        };
        i += 1;
    }
    total
}

/// The number of chars of a URL starting at `s[0]`, trailing punctuation excluded.
fn url_len(s: &[char]) -> Option<usize> {
    let starts = |p: &str| {
        let p: Vec<char> = p.chars().collect();
        s.len() > p.len()
            && s[..p.len()]
                .iter()
                .zip(&p)
                .all(|(a, b)| a.eq_ignore_ascii_case(b))
    };
    if !(starts("http://") || starts("https://") || starts("www.")) {
        return None;
    }
    let mut end = s.iter().position(|c| c.is_whitespace()).unwrap_or(s.len());
    while end > 0 && ".,;:!?)'\"".contains(s[end - 1]) {
        end -= 1;
    }
    // "https://" alone is not a link.
    let host_start = s[..end].iter().position(|&c| c == '/').map_or(0, |p| p + 2);
    (end > host_start.min(end) && s[host_start.min(end)..end].contains(&'.')).then_some(end)
}

fn is_emoji_base(c: char) -> bool {
    matches!(c as u32,
        0x1F000..=0x1FAFF | 0x2600..=0x27BF | 0x2B00..=0x2BFF | 0x2300..=0x23FF
        | 0x3030 | 0x303D | 0x3297 | 0x3299 | 0x00A9 | 0x00AE
        | 0x203C | 0x2049 | 0x2122 | 0x2139 | 0x2194..=0x21AA)
}

fn is_regional(c: char) -> bool {
    (0x1F1E6..=0x1F1FF).contains(&(c as u32))
}

/// Modifiers that belong to the emoji before them.
fn is_emoji_tail(c: char) -> bool {
    matches!(c as u32, 0xFE0E | 0xFE0F | 0x20E3 | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F)
}

/// The number of chars of one emoji sequence at `s[0]`, if one starts there.
fn emoji_len(s: &[char]) -> Option<usize> {
    let first = *s.first()?;
    // Keycaps: digit/#/* + FE0F? + U+20E3.
    if first.is_ascii_digit() || first == '#' || first == '*' {
        let mut j = 1;
        if s.get(j) == Some(&'\u{FE0F}') {
            j += 1;
        }
        return (s.get(j) == Some(&'\u{20E3}')).then_some(j + 1);
    }
    // Below U+2000 only © and ® are emoji; leave them (weight 1) like twitter-text
    // unless followed by the emoji presentation selector.
    if (first as u32) < 0x2000 {
        return (matches!(first as u32, 0xA9 | 0xAE) && s.get(1) == Some(&'\u{FE0F}')).then_some(2);
    }
    if !is_emoji_base(first) {
        return None;
    }
    if is_regional(first) {
        return Some(if s.get(1).is_some_and(|&c| is_regional(c)) {
            2
        } else {
            1
        });
    }
    let mut j = 1;
    loop {
        while s.get(j).is_some_and(|&c| is_emoji_tail(c)) {
            j += 1;
        }
        if s.get(j) == Some(&'\u{200D}') && s.get(j + 1).is_some_and(|&c| is_emoji_base(c)) {
            j += 2;
            continue;
        }
        return Some(j);
    }
}

/// The main text limit of each platform (Reddit: the post body; its title allows 300), in
/// the units [`length`] counts.
pub fn limit(platform: super::Platform) -> usize {
    use super::Platform::*;
    match platform {
        X => X_LIMIT,
        Reddit => 40_000,
        Facebook => 63_206,
        Instagram => 2_200,
        Linkedin => 3_000,
        Stocktwits => super::stocktwits::LIMIT,
    }
}

/// The length of `text` as `platform` counts it (X weighted, others in characters).
pub fn length(platform: super::Platform, text: &str) -> usize {
    match platform {
        super::Platform::X => x_weighted_len(text),
        _ => char_len(text),
    }
}

/// Plain length in Unicode scalar values, as most platforms count.
pub fn char_len(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_text_counts_one_per_character() {
        assert_eq!(x_weighted_len("hello world"), 11);
        assert_eq!(x_weighted_len("café – “quoted”"), 15);
    }

    #[test]
    fn every_url_counts_23_whatever_its_length() {
        let long = format!("see https://example.com/{}", "a".repeat(100));
        assert_eq!(x_weighted_len(&long), 4 + 23);
        assert_eq!(x_weighted_len("http://a.io"), 23);
        assert_eq!(x_weighted_len("(www.example.org)."), 1 + 23 + 2);
        // Not a link: no host.
        assert_eq!(x_weighted_len("https://"), 8);
    }

    #[test]
    fn cjk_counts_two() {
        assert_eq!(x_weighted_len("日本語"), 6);
        assert_eq!(x_weighted_len("한국어 ok"), 6 + 1 + 2);
    }

    #[test]
    fn an_emoji_counts_two_however_it_is_built() {
        assert_eq!(x_weighted_len("😀"), 2);
        assert_eq!(x_weighted_len("👍🏽"), 2, "skin tone modifier");
        assert_eq!(x_weighted_len("👨‍👩‍👧‍👦"), 2, "ZWJ family");
        assert_eq!(x_weighted_len("🇩🇪"), 2, "flag");
        assert_eq!(x_weighted_len("1️⃣"), 2, "keycap");
        assert_eq!(x_weighted_len("❤️ a"), 4);
    }

    #[test]
    fn text_is_nfc_normalised_before_counting() {
        // "e" + combining acute is one character after NFC.
        assert_eq!(x_weighted_len("cafe\u{301}"), 4);
    }

    #[test]
    fn lengths_are_counted_per_platform() {
        use crate::clients::social::Platform;
        assert_eq!(length(Platform::X, "日本"), 4);
        assert_eq!(length(Platform::Linkedin, "日本"), 2);
        assert_eq!(limit(Platform::Instagram), 2_200);
    }

    #[test]
    fn the_limit_is_280_weighted() {
        assert_eq!(x_weighted_len(&"a".repeat(280)), X_LIMIT);
        assert_eq!(x_weighted_len(&"字".repeat(140)), X_LIMIT);
        assert!(x_weighted_len(&"字".repeat(141)) > X_LIMIT);
    }
}
