//! The statistics endpoints' other formats: every table as CSV (RFC 4180: quoted where a
//! field needs it, CRLF line ends, UTF-8 with a byte-order mark so a spreadsheet opens
//! Chinese text right) and as a bar chart drawn here in SVG (no script, text escaped), so a
//! page shows the chart by inserting it and a report can embed the file.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `?format=`: what a statistics endpoint answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Svg,
}

impl Format {
    /// `json` (or none), `csv`, `svg`; anything else is refused.
    pub fn parse(s: Option<&str>) -> Result<Format, super::ApiError> {
        match s.unwrap_or("json") {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "svg" => Ok(Format::Svg),
            other => Err(super::ApiError::Unprocessable(format!(
                "format {other:?}: expected json, csv or svg"
            ))),
        }
    }
}

/// A CSV document of `header` and `rows`.
pub fn csv(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut out = String::from("\u{feff}");
    let line = |out: &mut String, fields: &mut dyn Iterator<Item = &str>| {
        let mut first = true;
        for f in fields {
            if !first {
                out.push(',');
            }
            first = false;
            let f = neutralised(f);
            if f.contains([',', '"', '\n', '\r']) {
                out.push('"');
                out.push_str(&f.replace('"', "\"\""));
                out.push('"');
            } else {
                out.push_str(&f);
            }
        }
        out.push_str("\r\n");
    };
    line(&mut out, &mut header.iter().copied());
    for row in rows {
        line(&mut out, &mut row.iter().map(String::as_str));
    }
    out
}

/// A field a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, tab or CR first: a
/// citizen's text can carry `=HYPERLINK(...)`), prefixed with `'` so it shows as text; numbers
/// (`-5`, `+3.5`) stay numbers.
fn neutralised(f: &str) -> std::borrow::Cow<'_, str> {
    let risky = f.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && f.trim().parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{f}"))
    } else {
        std::borrow::Cow::Borrowed(f)
    }
}

/// A CSV download named `name`.
pub fn csv_response(name: &str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// An SVG image.
pub fn svg_response(body: String) -> Response {
    (
        [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")],
        body,
    )
        .into_response()
}

/// A number for CSV: empty when absent, one decimal otherwise.
pub fn num(v: Option<f64>) -> String {
    v.map_or(String::new(), |x| format!("{x:.1}"))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Series colours: blue, green, red, amber.
const COLOURS: &[&str] = &["#4e9af1", "#5fd38d", "#ff6b6b", "#f5b942"];

/// A bar chart: one group of bars per label, one bar per series, the values on a common
/// scale from zero; long label lists keep their first 40 groups.
pub fn bars(title: &str, labels: &[String], series: &[(&str, Vec<f64>)]) -> String {
    let groups = labels.len().min(40);
    let (width, height, left, bottom, top) = (900.0, 320.0, 50.0, 70.0, 40.0);
    let plot_h = height - bottom - top;
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().take(groups))
        .fold(0.0f64, |m, v| m.max(*v));
    let scale = if max > 0.0 { plot_h / max } else { 0.0 };
    let group_w = (width - left - 10.0) / groups.max(1) as f64;
    let bar_w = (group_w * 0.8 / series.len().max(1) as f64).clamp(1.0, 48.0);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{t}\" font-family=\"sans-serif\" font-size=\"11\">\
         <title>{t}</title><rect width=\"{width}\" height=\"{height}\" fill=\"#15253a\"/>\
         <text x=\"{left}\" y=\"20\" fill=\"#e8eef5\" font-size=\"14\">{t}</text>",
        t = escape(title)
    );
    // Axis with the maximum and half of it.
    for frac in [0.0, 0.5, 1.0] {
        let y = top + plot_h - plot_h * frac;
        out.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#2a3d55\"/>\
             <text x=\"{}\" y=\"{:.1}\" fill=\"#9fb3c8\" text-anchor=\"end\">{}</text>",
            width - 10.0,
            left - 4.0,
            y + 4.0,
            trim(max * frac)
        ));
    }
    for (g, label) in labels.iter().take(groups).enumerate() {
        // The group's bars centred in its slot.
        let x0 = left + g as f64 * group_w + (group_w - bar_w * series.len() as f64) / 2.0;
        for (s, (name, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0.0);
            let h = v * scale;
            out.push_str(&format!(
                "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{h:.1}\" fill=\"{}\"><title>{}: {} {}</title></rect>",
                x0 + s as f64 * bar_w,
                top + plot_h - h,
                COLOURS[s % COLOURS.len()],
                escape(label),
                escape(name),
                trim(v)
            ));
        }
        let short: String = label.chars().take(12).collect();
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#9fb3c8\" transform=\"rotate(-35 {:.1} {:.1})\" text-anchor=\"end\">{}</text>",
            x0 + bar_w * series.len() as f64 / 2.0,
            top + plot_h + 14.0,
            x0 + bar_w * series.len() as f64 / 2.0,
            top + plot_h + 14.0,
            escape(&short)
        ));
    }
    if groups == 0 {
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" fill=\"#9fb3c8\" text-anchor=\"middle\" font-size=\"16\">no data in this period</text>",
            width / 2.0,
            top + plot_h / 2.0
        ));
    }
    // Legend.
    for (s, (name, _)) in series.iter().enumerate() {
        let x = width - 10.0 - (series.len() - s) as f64 * 110.0;
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"10\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"19\" fill=\"#e8eef5\">{}</text>",
            COLOURS[s % COLOURS.len()],
            x + 14.0,
            escape(name)
        ));
    }
    out.push_str("</svg>");
    out
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_starts_with_a_byte_order_mark() {
        let out = csv(
            &["unit", "tickets"],
            vec![
                vec!["水务局".into(), "12".into()],
                vec!["A, \"B\"".into(), "3".into()],
            ],
        );
        assert_eq!(
            out,
            "\u{feff}unit,tickets\r\n水务局,12\r\n\"A, \"\"B\"\"\",3\r\n"
        );
    }

    #[test]
    fn a_field_a_spreadsheet_would_run_as_a_formula_is_shown_as_text() {
        let out = csv(
            &["text", "n"],
            vec![
                vec!["=HYPERLINK(\"http://x\",\"点击\")".into(), "-5".into()],
                vec!["+86 138".into(), "+3.5".into()],
                vec!["@SUM(A1)".into(), "-".into()],
            ],
        );
        assert_eq!(
            out,
            "\u{feff}text,n\r\n\"'=HYPERLINK(\"\"http://x\"\",\"\"点击\"\")\",-5\r\n'+86 138,+3.5\r\n'@SUM(A1),'-\r\n"
        );
    }

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = bars(
            "by <category>",
            &["a&b".into(), "water".into()],
            &[("tickets", vec![50.0, 100.0])],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("by &lt;category&gt;") && svg.contains("a&amp;b"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 2);
        // The plot is 210 high: 100 fills it, 50 half of it.
        assert!(
            svg.contains("height=\"210.0\"") && svg.contains("height=\"105.0\""),
            "{svg}"
        );
    }
}
