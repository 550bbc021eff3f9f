//! Plain-text tables and number formatting for command-line reports.

/// Right-aligns numeric-looking cells, left-aligns the rest; columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let columns = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let render = |cells: Vec<&str>| -> String {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i > 0 && looks_numeric(c) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let mut out = render(headers.to_vec());
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&rule.join("  "));
    out.push('\n');
    for row in rows {
        out.push_str(&render(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

fn looks_numeric(cell: &str) -> bool {
    let c = cell
        .trim_end_matches(['%', 'x', 's', 'B', 'G', 'M', 'k'])
        .trim();
    !c.is_empty()
        && c.chars()
            .all(|ch| ch.is_ascii_digit() || ",.-+ ".contains(ch))
}

/// 8911301 -> "8,911,301".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Multiply-accumulates in G (10^9) or M.
pub fn giga(macs: u64) -> String {
    if macs >= 100_000_000 {
        format!("{:.2} G", macs as f64 / 1e9)
    } else {
        format!("{:.1} M", macs as f64 / 1e6)
    }
}

/// Bytes in MB (10^6).
pub fn megabytes(bytes: u64) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(8_911_301), "8,911,301");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["name", "n"],
            &[
                vec!["a".into(), "10".into()],
                vec!["bbb".into(), "2".into()],
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[2], "a     10");
        assert_eq!(lines[3], "bbb    2");
    }
}
