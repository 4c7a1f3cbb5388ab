//! `dreamos social report`: one row per post with each metric's latest value and a
//! sparkline of its samples over time.

use std::collections::BTreeMap;

use serde::Serialize;

use super::types::{MetricSample, PostRecord};
use crate::store::Millis;

/// One post's engagement.
#[derive(Debug, Clone, Serialize)]
pub struct PostReport {
    pub id: i64,
    pub account: String,
    pub platform: String,
    pub status: String,
    pub posted_at: Option<Millis>,
    pub url: Option<String>,
    pub text: String,
    /// Per metric, the samples in time order: `[taken_at, value]`.
    pub metrics: BTreeMap<String, Vec<(Millis, i64)>>,
}

pub fn build(posts: &[PostRecord], samples: &[MetricSample]) -> Vec<PostReport> {
    posts
        .iter()
        .map(|p| {
            let mut metrics: BTreeMap<String, Vec<(Millis, i64)>> = BTreeMap::new();
            for s in samples.iter().filter(|s| s.post == p.id) {
                metrics
                    .entry(s.name.clone())
                    .or_default()
                    .push((s.taken_at, s.value));
            }
            PostReport {
                id: p.id,
                account: p.account.clone(),
                platform: p.platform.name().to_string(),
                status: p.status.name().to_string(),
                posted_at: p.posted_at,
                url: p.url.clone(),
                text: p.content.text.clone(),
                metrics,
            }
        })
        .collect()
}

/// `▁▂▃▄▅▆▇█` scaled between the series' own minimum and maximum (a flat series is all
/// `▁`), one character per sample.
pub fn sparkline(values: &[i64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let (Some(min), Some(max)) = (values.iter().min(), values.iter().max()) else {
        return String::new();
    };
    let span = (max - min) as f64;
    values
        .iter()
        .map(|v| {
            if span == 0.0 {
                BARS[0]
            } else {
                BARS[(((v - min) as f64 / span) * 7.0).round() as usize]
            }
        })
        .collect()
}

/// The human table: a header line per post, then one line per metric.
pub fn render(reports: &[PostReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let when = r
            .posted_at
            .map(|t| crate::scheduler::trigger::format_time(t, chrono_tz::Tz::UTC))
            .unwrap_or_else(|| "-".into());
        let text: String = r.text.chars().take(50).collect();
        let text = text.replace('\n', " ");
        out.push_str(&format!(
            "#{} {} ({}) {} {}  {}\n",
            r.id, r.account, r.platform, r.status, when, text
        ));
        if r.metrics.is_empty() {
            out.push_str("    (no metrics yet)\n");
        }
        let width = r.metrics.keys().map(|k| k.len()).max().unwrap_or(0);
        for (name, series) in &r.metrics {
            let values: Vec<i64> = series.iter().map(|(_, v)| *v).collect();
            let last = values.last().copied().unwrap_or(0);
            out.push_str(&format!(
                "    {name:<width$}  {last:>8}  {}\n",
                sparkline(&values)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_between_min_and_max() {
        assert_eq!(sparkline(&[0, 7, 14]), "▁▅█");
        assert_eq!(sparkline(&[3, 3]), "▁▁");
        assert_eq!(sparkline(&[]), "");
    }
}
