//! Reading PromQL just enough to name the metrics a query uses: the check that the shipped
//! Grafana dashboard queries only what `/metrics` exports (see `metrics_tests.rs`).

/// The metric names a PromQL expression reads: identifiers outside label matchers,
/// grouping clauses, range brackets and strings that are not PromQL functions or keywords.
pub fn metric_names(expr: &str) -> Vec<String> {
    const WORDS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
        "group",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "offset",
        "bool",
        "rate",
        "irate",
        "increase",
        "delta",
        "idelta",
        "deriv",
        "histogram_quantile",
        "sum_over_time",
        "avg_over_time",
        "max_over_time",
        "min_over_time",
        "count_over_time",
        "last_over_time",
        "time",
        "timestamp",
        "vector",
        "scalar",
        "abs",
        "ceil",
        "floor",
        "round",
        "clamp_min",
        "clamp_max",
        "label_replace",
        "changes",
        "resets",
        "absent",
        "sort",
        "sort_desc",
        "inf",
        "nan",
    ];
    let mut names = Vec::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    i += 1;
                }
                i += 1;
            }
            '(' if after_grouping => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                after_grouping = false;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                after_grouping = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if !WORDS.contains(&word.as_str()) && !names.contains(&word) {
                    names.push(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers, including exponents and durations like 5m are inside [] anyway.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => {
                if !c.is_whitespace() {
                    after_grouping = false;
                }
                i += 1;
            }
        }
    }
    names
}
